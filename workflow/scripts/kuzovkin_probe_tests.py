"""Rule kuzovkin_probe_tests: RSA + permutation test of every probe x layer, one band x window."""

from _bootstrap import rule_log
from brainalign.artifacts import write_table
from brainalign.kuzovkin2018 import probe_layer_table, read_layer_rdms

sm = snakemake
with rule_log(sm):
    p = sm.params.permutation
    rdms = {m: read_layer_rdms(path) for m, path in zip(sm.params.models, sm.input.rdms, strict=True)}
    table = probe_layer_table(
        dict(zip(sm.params.subjects, sm.input.subjects, strict=True)), rdms,
        band=sm.wildcards.band, window=sm.wildcards.window, n_stimuli=sm.params.n_stimuli,
        n_permutations=p["n_permutations"], alpha=p["alpha"], min_valid=p["min_valid"], null=p["null_model"],
        seed=sm.params.seed, n_jobs=sm.threads,
    )
    write_table(table, sm.output.table)
