"""Rule cichy_model_rdms: one RDM per layer of a model on the Cichy image set, plus the summary RDM."""

from _bootstrap import rule_log
from brainalign.cichy2016 import model_rdms, write_model_rdms

sm = snakemake
with rule_log(sm):
    rdms = model_rdms(sm.input.features, layers=sm.params.layers, metric=sm.params.metric)
    write_model_rdms(sm.output.rdms, rdms, model=sm.wildcards.model)
    for name, metric in zip(rdms["layers"], rdms["metrics"], strict=True):
        print(f"{sm.wildcards.model} {name}: 1 - {metric}")
