"""Rule nsd_brain: one NSD subject's ROI responses (shared images) and noise ceilings."""

from _bootstrap import rule_log
from brainalign.artifacts import write_brain
from brainalign.io.nsd import load_nsd_subject, nsd_root_from_design
from brainalign.linking import split_train_test
from brainalign.noise_ceiling import gsn_ceiling, split_half_ceiling

sm = snakemake
with rule_log(sm):
    nsd = sm.params.nsd
    data = load_nsd_subject(
        nsd_root_from_design(sm.input.design), int(sm.wildcards.subject), rois=tuple(nsd["rois"]),
        ncsnr_threshold=nsd["ncsnr_threshold"], otc_streams=tuple(nsd["otc_streams"]),
        floc_rois=tuple(nsd["floc_rois"]), floc_t_threshold=nsd["floc_t_threshold"],
        zscore_sessions=nsd["zscore_sessions"], n_reps=nsd["n_reps"],
    )
    _, test = split_train_test(len(data.image_ids), sm.params.split)
    rois = {}
    for roi in nsd["rois"]:
        # the ceiling of the test-image RSM: the RSM every reported score is computed on
        reps = data.repetitions[roi][:, test]
        sb = split_half_ceiling(reps)
        gsn = gsn_ceiling(reps, seed=sm.params.seed)
        rois[roi] = {"responses": data.responses[roi], "voxel_ijk": data.voxel_ijk[roi],
                     "ceiling": gsn["ceiling"], "ceiling_split_half": sb["ceiling"],
                     "reliability": sb["reliability"], "n_reps": sb["n_reps"],
                     "ceiling_method": "gsn-like (generative signal + noise model)"}
        print(f"subj{sm.wildcards.subject} {roi}: {data.responses[roi].shape[1]} voxels, noise ceiling "
              f"r = {gsn['ceiling']:.3f} (GSN-like), {sb['ceiling']:.3f} (split-half Spearman-Brown)")
    write_brain(sm.output.brain, dataset="nsd", subject=sm.wildcards.subject,
                stimulus_ids=data.image_ids, rois=rois)
