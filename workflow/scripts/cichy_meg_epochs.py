"""Rule cichy_meg_epochs: one subject's epochs, Cichy preprocessing, written as the array format."""

import pandas as pd

from _bootstrap import rule_log
from brainalign.cichy2016 import load_meg
from brainalign.io.meg import write_meg_array

sm = snakemake
with rule_log(sm):
    opts = sm.params.meg
    conditions = pd.read_csv(sm.input.stimuli, sep="\t")["stimulus_id"].to_numpy()
    meg = load_meg(
        list(sm.input.epochs), conditions, picks=opts["picks"], n_trials=opts["n_trials"],
        baseline=opts["baseline"], remove_baseline_mean=opts["remove_baseline_mean"],
        smooth_ms=opts["smooth_ms"], baseline_std_normalize=opts["baseline_std_normalize"],
        baseline_std_scope=opts["baseline_std_scope"],
    )
    write_meg_array(sm.output.epochs, meg)
    print(f"sub-{sm.wildcards.subject}: {meg.data.shape} (conditions, trials, channels, times), "
          f"{meg.sfreq:g} Hz")
