"""Rule kuzovkin_layer_rdms: Euclidean RDM of every layer of a model (pixels first) on the Kuzovkin images."""

from _bootstrap import rule_log
from brainalign.kuzovkin2018 import layer_rdms, pixel_rdm, write_layer_rdms
from brainalign.models.extraction import read_feature_ids
from brainalign.stimuli import load_stimulus_set
from brainalign.utils import check_ids_match

sm = snakemake
with rule_log(sm):
    pixels = None
    if sm.params.pixels:
        ids, images = load_stimulus_set(sm.input.stimuli)
        check_ids_match(ids, read_feature_ids(sm.input.features), sm.input.stimuli, sm.input.features)
        pixels = pixel_rdm(images, sm.params.pixel_size)
    rdms = layer_rdms(sm.input.features, layers=sm.params.layers, pixels=pixels)
    write_layer_rdms(sm.output.rdms, rdms, model=sm.wildcards.model)
    for name, metric in zip(rdms["layers"], rdms["metrics"], strict=True):
        print(f"{sm.wildcards.model} {name}: {metric}")
