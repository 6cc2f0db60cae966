"""Matched-population decoding (Arend et al. 2018, Fig. 5) against direct scikit-learn calls."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, ShuffleSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from brainalign.population_decoding import (
    C_GRID,
    decode_across,
    decode_within,
    matched_decoding,
    run_seeds,
    standardise,
)
from brainalign.utils import InputError


def _populations(seed=0, n_per_class=12, n_classes=4, d=6):
    """Neural sites and matched 'units' (an affine, noisy copy) sharing a category code."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.array([f"cat{c}" for c in range(n_classes)]), n_per_class)
    means = rng.normal(size=(n_classes, d)) * 1.5
    code = means[np.repeat(np.arange(n_classes), n_per_class)]
    neural = code + rng.normal(size=code.shape)
    units = 50 + 7 * (code + 0.8 * rng.normal(size=code.shape))
    return neural, units, labels


def _sklearn_pipeline(classifier, seed):
    svm = (
        LinearSVC(dual="auto", max_iter=10000, random_state=seed)
        if classifier == "linear_svc"
        else SVC(kernel="linear", random_state=seed)
    )
    return Pipeline([("scale", StandardScaler()), ("svm", svm)])


def _direct_fit(X, y, cv_seed, clf_seed, classifier):
    search = GridSearchCV(
        _sklearn_pipeline(classifier, int(clf_seed)),
        {"svm__C": list(C_GRID)},
        cv=ShuffleSplit(n_splits=10, test_size=0.1, random_state=int(cv_seed)),
    )
    return search.fit(X, y)


@pytest.mark.parametrize("classifier", ["linear_svc", "svc"])
def test_decode_within_equals_direct_sklearn(classifier):
    neural, _, labels = _populations()
    res = decode_within(neural, labels, n_runs=2, seed=3, classifier=classifier)
    for j, (split_seed, cv_seed, clf_seed) in enumerate(run_seeds(3, 2)):
        train, test = next(ShuffleSplit(1, test_size=0.1, random_state=int(split_seed)).split(neural))
        search = _direct_fit(neural[train], labels[train], cv_seed, clf_seed, classifier)
        assert res.C[j] == search.best_params_["svm__C"]
        assert res.accuracy[j] == pytest.approx(search.score(neural[test], labels[test]))
        assert res.confusion[j].sum() == len(test)
        assert np.trace(res.confusion[j]) == round(res.accuracy[j] * len(test))
    assert list(res.classes) == sorted(set(labels))


def test_decode_across_equals_direct_sklearn():
    neural, units, labels = _populations(1)
    res = decode_across(units, neural, labels, n_runs=2, seed=4)
    for j, (_, cv_seed, clf_seed) in enumerate(run_seeds(4, 2)):
        search = _direct_fit(standardise(units), labels, cv_seed, clf_seed, "linear_svc")
        assert res.C[j] == search.best_params_["svm__C"]
        assert res.accuracy[j] == pytest.approx(search.score(standardise(neural), labels))


def test_standardise():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    z = standardise(x)
    np.testing.assert_allclose(z[:, 0], [-1.224744871391589, 0, 1.224744871391589])
    np.testing.assert_array_equal(z[:, 1], 0)


def test_matched_decoding_transfers_and_baseline_does_not():
    neural, units, labels = _populations(2, n_per_class=20)
    rng = np.random.default_rng(0)
    baseline = rng.normal(size=units.shape)
    fast = dict(n_runs_within=3, n_runs_across=2, C_grid=(0.1, 1.0), n_cv_splits=3)
    out = matched_decoding(units, neural, labels, baseline_units=baseline, **fast)
    assert set(out) == {"neural", "model", "model_to_neural", "neural_to_model"} | {
        "baseline", "baseline_to_neural", "neural_to_baseline"
    }
    assert out["model"].accuracy.shape == (3,) and out["model_to_neural"].accuracy.shape == (2,)
    chance = 0.25
    assert out["model_to_neural"].mean > chance + 0.3
    assert out["neural_to_model"].mean > chance + 0.3
    assert out["baseline_to_neural"].mean < chance + 0.2
    again = matched_decoding(units, neural, labels, **fast)
    np.testing.assert_array_equal(again["model"].accuracy, out["model"].accuracy)


def test_decoding_errors():
    neural, units, labels = _populations(3)
    with pytest.raises(InputError, match="same shape"):
        decode_across(units[:, :3], neural, labels, n_runs=1)
    with pytest.raises(InputError, match="one label per stimulus"):
        decode_within(neural, labels[:-1], n_runs=1)
    with pytest.raises(InputError, match="two classes"):
        decode_within(neural, np.zeros(len(labels)), n_runs=1)
    with pytest.raises(ValueError, match="classifier"):
        decode_within(neural, labels, n_runs=1, classifier="knn")
