"""Networks: the model table and loading (:mod:`.registry`), streamed feature extraction
(:mod:`.extraction`) and the demo's ground-truth network (:mod:`.gtnet`).

Typical use::

    table = read_model_table("config/models.csv")
    check_models(table, ["resnet18_random", "gtnet"], checkpoint_dir="resources")
    model, transform = load_model("resnet18_random", table, seed=0)
    extract_features(model, transform, images, ids, "features/resnet18_random.h5")
    for name, depth, n_units in feature_layers("features/resnet18_random.h5"): ...
"""

from .extraction import (
    extract_features,
    feature_layers,
    list_layers,
    match_layers,
    read_feature_attrs,
    read_feature_ids,
    read_layer,
)
from .gtnet import GTNET_INPUT_SIZE, GTNET_SEED, GroundTruthNet, gtnet
from .registry import check_models, load_model, read_model_table, resolve_checkpoint

__all__ = [
    "read_model_table",
    "check_models",
    "load_model",
    "resolve_checkpoint",
    "extract_features",
    "list_layers",
    "match_layers",
    "read_feature_ids",
    "read_feature_attrs",
    "feature_layers",
    "read_layer",
    "gtnet",
    "GroundTruthNet",
    "GTNET_SEED",
    "GTNET_INPUT_SIZE",
]
