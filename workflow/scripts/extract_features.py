"""Rule extract_features: streamed SRP features of one model on one stimulus set."""

from _bootstrap import rule_log
from brainalign.io.nsd import nsd_root_from_design
from brainalign.models.extraction import extract_features
from brainalign.models.registry import load_model, read_model_table
from brainalign.stimuli import load_stimulus_set

sm = snakemake
with rule_log(sm):
    opts = sm.params.extraction
    # extra inputs registered for this stimulus set (register_paper(stimset_inputs=...)):
    # an NSD set names the NSD design file, whose root holds the stimulus HDF5
    extra = [sm.input.extra] if isinstance(sm.input.extra, str) else list(sm.input.extra)
    nsd_root = nsd_root_from_design(extra[0]) if extra else None
    ids, images = load_stimulus_set(sm.input.stimuli, nsd_root=nsd_root)
    table = read_model_table(sm.input.models)
    model, transform = load_model(sm.wildcards.model, table, seed=sm.params.seed,
                                  checkpoint_dir=sm.params.checkpoint_dir, device=opts["device"],
                                  checkpoint=sm.input.checkpoint or None)
    kept = extract_features(
        model, transform, images, ids, sm.output.features,
        layers=opts["layers"], batch_size=opts["batch_size"], n_components=opts["n_components"],
        eps=opts["eps"], srp_seed=sm.params.seed, srp_backend=opts["srp_backend"],
        raw_max_units=opts["raw_max_units"], device=opts["device"], model_name=sm.wildcards.model,
    )
    print(f"{sm.wildcards.model}: {len(kept)} layers kept")
