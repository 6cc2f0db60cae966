"""Rule cichy_demo_data: synthetic Cichy 2016 stimuli, MEG epochs and fMRI volumes with a planted answer."""

from pathlib import Path

from _bootstrap import rule_log
from brainalign.cichy2016 import write_demo

sm = snakemake
with rule_log(sm):
    d = sm.params.demo
    truth = write_demo(
        Path(sm.output.truth).parent, subjects=sm.params.subjects, n_conditions=d["n_conditions"],
        n_categories=d["n_categories"], n_trials=d["n_trials"], n_channels=d["n_channels"],
        sfreq=d["sfreq"], tmin=d["tmin"], n_times=d["n_times"], meg_peaks=d["meg_peaks"],
        meg_noise_sd=d["meg_noise_sd"], fmri_shape=d["fmri_shape"], voxel_mm=d["voxel_mm"],
        fmri_noise_sd=d["fmri_noise_sd"], seed=sm.params.seed,
    )
    print(f"Cichy 2016 demo: {len(truth['conditions'])} conditions, subjects {truth['subjects']}, "
          f"MEG peaks {truth['meg_peak_latency_s']}, searchlight peaks {truth['searchlight_peak_voxel']}")
