"""Model-to-brain linking: classical RSA (cRSA), voxel-encoding RSA (veRSA), encoding r.

Conwell et al. (2024), SPEC section 1:

- the stimuli are split into train and test halves (their code: even indices train,
  odd indices test);
- **cRSA**: Pearson RSM of a layer vs Pearson RSM of the ROI; score = Pearson r between
  the upper triangles;
- **veRSA**: per voxel, ridge regression from the layer's sparse-random-projection
  features on the train images, alpha chosen per voxel by exact leave-one-out CV
  (scored by Pearson r); the predicted responses give a predicted RSM that is compared
  with the ROI's RSM — on train with the leave-one-out predictions, on test with the
  predictions of the fitted model;
- the layer is selected on train and its test score is reported;
- voxel-wise encoding r (LOO on train, predicted vs observed on test) is a by-product.

A caveat of leave-one-out train predictions, measured on the demo: LOO predictions
leak the held-out response with a negative sign (for a heavily regularised fit,
``yhat_-i ~ mean - y_i / (n - 1)``), and a correlation RSM is blind to that sign, so a
*useless* layer can earn a high train veRSA (untrained AlexNet's last layer: 0.79 on
train, 0.29 on test) and be selected. ``train_predictions="kfold"`` builds the train
RSM from K-fold cross-fitted predictions instead, which carry no such leak; ``"loo"``
(default) is the paper's procedure. Layers whose features are constant over the
train images (e.g. zero-initialised BatchNorm in untrained timm ResNets) get NaN
scores and are never selected.

All brain targets that share the stimulus set are fitted in ONE ridge problem per
layer (all subjects' and ROIs' voxels as targets), so the eigendecomposition of the
layer's kernel is shared by every voxel of every subject.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from brainalign.encoding import RidgeGCV, pearson_columns
from brainalign.rdm import compare_rdms, compute_rdm, pearson_rdm_from_projection
from brainalign.survey import effective_dimensionality
from brainalign.utils import InputError, check_finite, check_option

__all__ = [
    "ALPHA_GRIDS",
    "BrainTarget",
    "LayerFeatures",
    "alpha_grid",
    "split_train_test",
    "crsa",
    "versa",
    "score_layers",
    "select_layers",
]

#: The two alpha grids of SPEC section 1: the paper text's and the published code's.
ALPHA_GRIDS = {
    "paper": np.logspace(1, 7, 7),
    "code": np.logspace(-1, 5, 7),
}

SPLIT_SCHEMES = ("even_odd", "first_half")
TRAIN_PREDICTIONS = ("loo", "kfold")


def alpha_grid(spec) -> np.ndarray:
    """Resolve the ``alphas`` config value: a grid name ("paper", "code") or a list of floats."""
    if isinstance(spec, str):
        check_option("alphas", spec, ALPHA_GRIDS)
        return ALPHA_GRIDS[spec].copy()
    alphas = np.asarray(spec, dtype=np.float64)
    if alphas.ndim != 1 or alphas.size == 0 or np.any(alphas <= 0):
        raise InputError(
            f"config key 'alphas': expected a grid name or a list of positive floats, got {spec!r}."
        )
    return alphas


def split_train_test(n: int, scheme: str = "even_odd") -> tuple[np.ndarray, np.ndarray]:
    """Train/test stimulus indices. ``even_odd`` (Conwell's code): even train, odd test."""
    check_option("split", scheme, SPLIT_SCHEMES)
    idx = np.arange(n)
    if scheme == "even_odd":
        return idx[0::2], idx[1::2]
    half = n // 2
    return idx[:half], idx[half:]


@dataclass
class BrainTarget:
    """Responses of one ROI of one subject, in the shared stimulus order."""

    subject: str
    roi: str
    responses: np.ndarray  # (n_stimuli, n_voxels)
    ceiling: float = np.nan  # noise ceiling of the test RSM (correlation units)
    rdm_train: np.ndarray = field(init=False, repr=False)
    rdm_test: np.ndarray = field(init=False, repr=False)


@dataclass
class LayerFeatures:
    """One layer of a feature artifact (see :mod:`brainalign.models.extraction`)."""

    name: str
    depth: float
    index: int
    n_units: int
    srp: np.ndarray  # (n_stimuli, k)
    row_mean: np.ndarray  # (n_stimuli,)
    ones_proj: np.ndarray  # (k,)
    raw: np.ndarray | None = None  # (n_stimuli, n_units) when the layer is small

    def pearson_rdm(self, idx: np.ndarray) -> np.ndarray:
        """The layer's Pearson RDM over the stimuli ``idx`` (exact when raw is kept)."""
        if self.raw is not None:
            return compute_rdm(self.raw[idx], "pearson")
        return pearson_rdm_from_projection(self.srp[idx], self.row_mean[idx], self.ones_proj)


def _prepare_targets(targets: list[BrainTarget], train, test) -> None:
    for t in targets:
        check_finite(t.responses, f"responses of subject {t.subject}, ROI {t.roi}")
        t.rdm_train = compute_rdm(t.responses[train], "pearson")
        t.rdm_test = compute_rdm(t.responses[test], "pearson")


def crsa(layer: LayerFeatures, target: BrainTarget, train, test, compare: str = "pearson"):
    """cRSA train and test scores of one layer for one target."""
    return (
        compare_rdms(target.rdm_train, layer.pearson_rdm(train), compare),
        compare_rdms(target.rdm_test, layer.pearson_rdm(test), compare),
    )


class _Selection:
    """Tracks, per (subject, roi, metric), the best layer on train and its test RDM."""

    def __init__(self):
        self.best: dict[tuple[str, str, str], tuple[float, str, np.ndarray]] = {}

    def offer(self, key, train_score, layer, rdm_test_fn):
        # strictly greater: the first layer wins ties, as select_layers does
        if np.isfinite(train_score) and (key not in self.best or train_score > self.best[key][0]):
            self.best[key] = (train_score, layer, rdm_test_fn())

    def rdms(self) -> dict[tuple[str, str, str], tuple[str, np.ndarray]]:
        return {key: (layer, rdm) for key, (_, layer, rdm) in self.best.items()}


def _standardize(X, train):
    mu = X[train].mean(axis=0)
    sd = X[train].std(axis=0)
    sd[sd == 0] = 1.0
    return (X - mu) / sd


def versa(
    features: np.ndarray,
    targets: list[BrainTarget],
    train,
    test,
    *,
    alphas=ALPHA_GRIDS["paper"],
    scoring: str = "pearson",
    compare: str = "pearson",
    standardize: bool = False,
    n_targets_batch: int | None = None,
    train_predictions: str = "loo",
    n_folds: int = 5,
) -> list[dict]:
    """veRSA and voxel-wise encoding scores of one layer for several targets at once.

    ``train_predictions`` chooses the train-image predictions that make the train RSM
    (and the train encoding r): ``"loo"`` the exact leave-one-out predictions of the
    fit (paper), ``"kfold"`` predictions cross-fitted over ``n_folds`` interleaved folds
    of the train images (each fold predicted by a RidgeGCV fit on the others).

    Returns one dict per target with keys ``versa_train``, ``versa_test``,
    ``encoding_train`` (mean train r over voxels), ``encoding_test`` (mean test r),
    ``voxel_r_test`` (per-voxel test r), ``rdm_test`` (the predicted test RDM) and
    ``alpha_median``.
    """
    check_option("train_predictions", train_predictions, TRAIN_PREDICTIONS)
    X = np.asarray(features)
    if standardize:
        X = _standardize(X, train)
    Y = np.concatenate([t.responses for t in targets], axis=1)

    def ridge():
        return RidgeGCV(alphas, scoring=scoring, alpha_per_target=True, fit_intercept=True,
                        n_targets_batch=n_targets_batch)

    model = ridge().fit(X[train], Y[train])
    pred_test = np.asarray(model.predict(X[test]))
    if train_predictions == "loo":
        loo = np.asarray(model.loo_predictions_)
    else:
        loo = np.empty((len(train), Y.shape[1]), dtype=pred_test.dtype)
        fold = np.arange(len(train)) % n_folds
        for k in range(n_folds):
            held = fold == k
            loo[held] = ridge().fit(X[train[~held]], Y[train[~held]]).predict(X[train[held]])
    alpha = np.atleast_1d(model.alpha_)
    out = []
    start = 0
    for t in targets:
        cols = slice(start, start + t.responses.shape[1])
        start = cols.stop
        voxel_r_train = pearson_columns(loo[:, cols], t.responses[train])
        voxel_r_test = pearson_columns(pred_test[:, cols], t.responses[test])
        rdm_test = compute_rdm(pred_test[:, cols], "pearson")
        out.append({
            "versa_train": compare_rdms(t.rdm_train, compute_rdm(loo[:, cols], "pearson"), compare),
            "versa_test": compare_rdms(t.rdm_test, rdm_test, compare),
            "rdm_test": rdm_test,
            "encoding_train": float(np.nanmean(voxel_r_train)),
            "encoding_test": float(np.nanmean(voxel_r_test)),
            "voxel_r_test": voxel_r_test.astype(np.float32),
            "alpha_median": float(np.median(alpha[cols])),
        })
    return out


def score_layers(
    model_name: str,
    layers: Iterable[LayerFeatures],
    targets: list[BrainTarget],
    *,
    split: str = "even_odd",
    alphas=ALPHA_GRIDS["paper"],
    scoring: str = "pearson",
    compare: str = "pearson",
    standardize: bool = False,
    n_targets_batch: int | None = None,
    metrics=("crsa", "versa"),
    train_predictions: str = "loo",
    n_folds: int = 5,
    progress=None,
) -> tuple[pd.DataFrame, dict, dict]:
    """Score every layer against every target.

    Returns
    -------
    scores : DataFrame
        Tidy rows: model, layer, layer_index, depth, n_units, effective_dim (of the
        layer's SRP features over all stimuli), subject, roi, metric, split, score,
        alpha_median.
    voxel_r : dict
        (subject, roi) -> {layer: per-voxel test encoding r}.
    selected_rdms : dict
        (subject, roi, metric) -> (layer selected on train, its test RDM): the layer's
        own RDM for cRSA, the predicted-response RDM for veRSA (for model-to-model RSA).
    """
    if not targets:
        raise InputError("No brain targets to score against.")
    n = targets[0].responses.shape[0]
    for t in targets:
        if t.responses.shape[0] != n:
            raise InputError(
                f"Subject {t.subject}, ROI {t.roi} has {t.responses.shape[0]} stimuli, expected {n}."
            )
    metrics = tuple(metrics)
    for m in metrics:
        check_option("metrics", m, ("crsa", "versa"))
    check_option("train_predictions", train_predictions, TRAIN_PREDICTIONS)
    train, test = split_train_test(n, split)
    _prepare_targets(targets, train, test)
    rows = []
    voxel_r: dict[tuple[str, str], dict[str, np.ndarray]] = {(t.subject, t.roi): {} for t in targets}
    selection = _Selection()
    for layer in layers:
        if layer.srp.shape[0] != n:
            raise InputError(f"Layer {layer.name} has {layer.srp.shape[0]} stimuli, expected {n}.")
        constant = np.ptp(layer.srp[train], axis=0).max() == 0
        base = {"model": model_name, "layer": layer.name, "layer_index": layer.index,
                "depth": layer.depth, "n_units": layer.n_units,
                "effective_dim": np.nan if constant else effective_dimensionality(layer.srp)}
        if constant:
            # constant features (e.g. zero-initialised BatchNorm): nothing to score
            for t in targets:
                for metric in metrics + (("encoding_r",) if "versa" in metrics else ()):
                    for sp in ("train", "test"):
                        rows.append({**base, "subject": t.subject, "roi": t.roi, "metric": metric,
                                     "split": sp, "score": np.nan, "alpha_median": np.nan})
                if "versa" in metrics:
                    voxel_r[(t.subject, t.roi)][layer.name] = np.full(t.responses.shape[1], np.nan,
                                                                      dtype=np.float32)
            if progress is not None:
                progress.update(1)
            continue
        if "crsa" in metrics:
            for t in targets:
                tr, te = crsa(layer, t, train, test, compare)
                selection.offer((t.subject, t.roi, "crsa"), tr, layer.name,
                                lambda layer=layer: layer.pearson_rdm(test))
                for sp, sc in (("train", tr), ("test", te)):
                    rows.append({**base, "subject": t.subject, "roi": t.roi, "metric": "crsa",
                                 "split": sp, "score": sc, "alpha_median": np.nan})
        if "versa" in metrics:
            results = versa(layer.srp, targets, train, test, alphas=alphas, scoring=scoring,
                            compare=compare, standardize=standardize, n_targets_batch=n_targets_batch,
                            train_predictions=train_predictions, n_folds=n_folds)
            for t, res in zip(targets, results, strict=True):
                selection.offer((t.subject, t.roi, "versa"), res["versa_train"], layer.name,
                                lambda res=res: res["rdm_test"])
                for metric, key in (("versa", "versa"), ("encoding_r", "encoding")):
                    for sp in ("train", "test"):
                        rows.append({**base, "subject": t.subject, "roi": t.roi, "metric": metric,
                                     "split": sp, "score": res[f"{key}_{sp}"],
                                     "alpha_median": res["alpha_median"]})
                voxel_r[(t.subject, t.roi)][layer.name] = res["voxel_r_test"]
        if progress is not None:
            progress.update(1)
    return pd.DataFrame(rows), voxel_r, selection.rdms()


def select_layers(scores: pd.DataFrame, ceilings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Select the best layer on train per (model, subject, roi, metric); report its test score.

    ``ceilings`` (columns subject, roi, ceiling) adds the noise ceiling and the
    explainable variance explained, score^2 / ceiling^2.
    """
    keys = ["model", "subject", "roi", "metric"]
    train = scores[scores["split"] == "train"]
    test = scores[scores["split"] == "test"].set_index(keys + ["layer"])["score"]
    # idxmax ignores NaN; the first layer wins ties, deterministically
    best = train.loc[train.groupby(keys, sort=True)["score"].idxmax()]
    out = best[keys + ["layer", "layer_index", "depth"]].rename(columns={"layer": "selected_layer"})
    out["train_score"] = best["score"].to_numpy()
    out["score"] = [test.get(tuple(k) + (layer,), np.nan)
                    for k, layer in zip(best[keys].itertuples(index=False), best["layer"], strict=True)]
    out = out.reset_index(drop=True)
    if ceilings is not None:
        out = out.merge(ceilings[["subject", "roi", "ceiling"]], on=["subject", "roi"], how="left")
        out["explainable_variance"] = out["score"] ** 2 / out["ceiling"] ** 2
    return out
