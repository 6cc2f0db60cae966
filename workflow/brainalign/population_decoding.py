"""Category decoding from matched populations (Arend et al. 2018, Fig. 5).

A *matched population* has one model unit per recorded site: column ``i`` of the model
features is the unit matched to site ``i`` (:class:`brainalign.unit_matching.UnitGatherer`),
so model and neural populations share a feature space and a classifier trained on one
can be tested on the other. The paper's three conditions, all with a linear SVM over the
8 object categories (chance 0.125):

(i)   train and test on the matched units: random 90/10 splits of the stimuli, 25 runs
      (:func:`decode_within`; on the neural data it gives the "population" bar);
(ii)  train on the matched units, test on the neural responses, all stimuli both times,
      5 runs (:func:`decode_across`);
(iii) train on the neural responses, test on the matched units, 5 runs.

In every run the SVM's C is chosen from ``C_grid`` by mean accuracy over 10 random 90/10
splits of that run's training data (``GridSearchCV`` with ``ShuffleSplit``; ties go to
the first C of the grid), then refitted on all of it. The baseline repeats (i)-(iii)
with random unmatched units from the same layers
(:func:`brainalign.unit_matching.sample_unmatched_units`).

Scales: every classifier is a pipeline ``StandardScaler -> SVM``; the scaler is fitted on
the training data of each fit. For (ii) and (iii) the two populations have unrelated
units (spike counts vs activations), so each is first z-scored per feature over all
stimuli with its own mean and standard deviation (constant features become 0); the
paper shows standardised responses (Fig. 2) but does not spell this step out: it is our
reading of how a classifier can be carried from one population to the other.

The classifier is scikit-learn's ``LinearSVC`` (liblinear, one-vs-rest, squared hinge;
``dual="auto"``, ``max_iter=10000``) or ``SVC(kernel="linear")`` (libsvm, one-vs-one,
hinge); the paper does not say which. Seeds: run ``j`` uses the three integers
``run_seeds(seed, n_runs)[j]`` as the ``random_state`` of the 90/10 split, of the C
selection splits and of the classifier.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from brainalign.utils import InputError, check_finite, check_option, make_rng

__all__ = [
    "CLASSIFIERS",
    "C_GRID",
    "DecodingResult",
    "run_seeds",
    "standardise",
    "make_classifier",
    "fit_with_C_selection",
    "decode_within",
    "decode_across",
    "matched_decoding",
]

CLASSIFIERS = ("linear_svc", "svc")
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@dataclasses.dataclass
class DecodingResult:
    """Accuracy of each run, the C chosen and the test confusion counts.

    Attributes
    ----------
    accuracy : ndarray (n_runs,)
        Fraction correct on the test data.
    C : ndarray (n_runs,)
    confusion : ndarray (n_runs, n_classes, n_classes), int64
        Counts, rows = true class, columns = predicted class, classes in ``classes`` order.
    classes : ndarray (n_classes,)
    """

    accuracy: np.ndarray
    C: np.ndarray
    confusion: np.ndarray
    classes: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracy))

    @property
    def std(self) -> float:
        """Standard deviation over runs (ddof = 1; 0 for a single run)."""
        return float(np.std(self.accuracy, ddof=1)) if len(self.accuracy) > 1 else 0.0


def run_seeds(seed, n_runs: int) -> np.ndarray:
    """``(n_runs, 3)`` int seeds per run: 90/10 split, C-selection splits, classifier."""
    return make_rng(seed).integers(0, 2**31 - 1, size=(int(n_runs), 3))


def standardise(features) -> np.ndarray:
    """z-score each column over the rows (ddof = 0); constant columns become 0."""
    x = np.asarray(features, dtype=np.float64)
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def make_classifier(classifier: str = "linear_svc", C: float = 1.0, random_state: int = 0):
    """The pipeline ``StandardScaler -> linear SVM`` (step names ``scale`` and ``svm``)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    check_option("classifier", classifier, CLASSIFIERS)
    if classifier == "linear_svc":
        svm = LinearSVC(C=C, dual="auto", max_iter=10000, random_state=random_state)
    else:
        svm = SVC(kernel="linear", C=C, random_state=random_state)
    return Pipeline([("scale", StandardScaler()), ("svm", svm)])


def fit_with_C_selection(
    X,
    y,
    *,
    C_grid=C_GRID,
    n_cv_splits: int = 10,
    cv_test_size: float = 0.1,
    cv_seed: int = 0,
    classifier: str = "linear_svc",
    classifier_seed: int = 0,
    n_jobs: int = 1,
):
    """Choose C by ``n_cv_splits`` random splits of (X, y), refit on all; returns (model, C)."""
    from sklearn.model_selection import GridSearchCV, ShuffleSplit

    search = GridSearchCV(
        make_classifier(classifier, random_state=int(classifier_seed)),
        {"svm__C": [float(c) for c in C_grid]},
        cv=ShuffleSplit(n_splits=int(n_cv_splits), test_size=cv_test_size, random_state=int(cv_seed)),
        scoring="accuracy",
        n_jobs=n_jobs,
        refit=True,
    )
    search.fit(X, y)
    return search.best_estimator_, float(search.best_params_["svm__C"])


def _check(features, labels, what):
    x = check_finite(np.asarray(features, dtype=np.float64), what)
    labels = np.asarray(labels)
    if x.ndim != 2 or x.shape[0] != labels.shape[0]:
        raise InputError(
            f"{what}: features must be (n_stimuli, n_features) with one label per stimulus; got "
            f"{x.shape} and {labels.shape[0]} labels."
        )
    if len(np.unique(labels)) < 2:
        raise InputError(f"{what}: at least two classes are needed.")
    return x, labels


def _confusion(y_true, y_pred, classes):
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=classes).astype(np.int64)


def decode_within(
    features,
    labels,
    *,
    n_runs: int = 25,
    test_size: float = 0.1,
    C_grid=C_GRID,
    n_cv_splits: int = 10,
    cv_test_size: float = 0.1,
    classifier: str = "linear_svc",
    seed=0,
    n_jobs: int = 1,
) -> DecodingResult:
    """Condition (i): train and test on one population, ``n_runs`` random 90/10 splits.

    Parameters
    ----------
    features : array (n_stimuli, n_features)
    labels : array (n_stimuli,)
        Category of each stimulus.
    n_runs, test_size : int, float
        Runs and test fraction of each run's random split (``ShuffleSplit``).
    C_grid, n_cv_splits, cv_test_size, classifier, n_jobs
        See :func:`fit_with_C_selection`.
    seed : int or numpy.random.Generator
        See :func:`run_seeds`.
    """
    from sklearn.model_selection import ShuffleSplit

    x, labels = _check(features, labels, "decode_within")
    classes = np.unique(labels)
    acc, Cs, conf = [], [], []
    for split_seed, cv_seed, clf_seed in run_seeds(seed, n_runs):
        train, test = next(ShuffleSplit(1, test_size=test_size, random_state=int(split_seed)).split(x))
        model, C = fit_with_C_selection(
            x[train], labels[train], C_grid=C_grid, n_cv_splits=n_cv_splits, cv_test_size=cv_test_size,
            cv_seed=cv_seed, classifier=classifier, classifier_seed=clf_seed, n_jobs=n_jobs,
        )
        pred = model.predict(x[test])
        acc.append(float(np.mean(pred == labels[test])))
        Cs.append(C)
        conf.append(_confusion(labels[test], pred, classes))
    return DecodingResult(np.array(acc), np.array(Cs), np.stack(conf), classes)


def decode_across(
    train_features,
    test_features,
    labels,
    *,
    n_runs: int = 5,
    C_grid=C_GRID,
    n_cv_splits: int = 10,
    cv_test_size: float = 0.1,
    classifier: str = "linear_svc",
    seed=0,
    n_jobs: int = 1,
) -> DecodingResult:
    """Conditions (ii)/(iii): train on one population, test on the other, all stimuli.

    Column ``i`` of ``train_features`` must correspond to column ``i`` of
    ``test_features`` (unit matched to site ``i``). Each population is z-scored per
    column over all stimuli (:func:`standardise`) first; runs differ in their seeds
    (C selection splits, classifier).
    """
    xa, labels = _check(train_features, labels, "decode_across (training population)")
    xb, _ = _check(test_features, labels, "decode_across (test population)")
    if xa.shape != xb.shape:
        raise InputError(
            f"decode_across: training population {xa.shape} and test population {xb.shape} must "
            "have the same shape (one matched unit per site)."
        )
    xa, xb = standardise(xa), standardise(xb)
    classes = np.unique(labels)
    acc, Cs, conf = [], [], []
    for _, cv_seed, clf_seed in run_seeds(seed, n_runs):
        model, C = fit_with_C_selection(
            xa, labels, C_grid=C_grid, n_cv_splits=n_cv_splits, cv_test_size=cv_test_size,
            cv_seed=cv_seed, classifier=classifier, classifier_seed=clf_seed, n_jobs=n_jobs,
        )
        pred = model.predict(xb)
        acc.append(float(np.mean(pred == labels)))
        Cs.append(C)
        conf.append(_confusion(labels, pred, classes))
    return DecodingResult(np.array(acc), np.array(Cs), np.stack(conf), classes)


def matched_decoding(
    model_units,
    neural,
    labels,
    *,
    baseline_units=None,
    n_runs_within: int = 25,
    n_runs_across: int = 5,
    seed=0,
    **kwargs,
) -> dict[str, DecodingResult]:
    """All of Fig. 5 for one model and region.

    Parameters
    ----------
    model_units : array (n_stimuli, n_sites)
        Matched units, column ``i`` matched to site ``i``.
    neural : array (n_stimuli, n_sites)
    labels : array (n_stimuli,)
    baseline_units : array (n_stimuli, n_sites), optional
        Random unmatched units from the same layers.
    n_runs_within, n_runs_across : int
        25 and 5 in the paper.
    seed : int
        Each condition gets its own seed derived from it.
    **kwargs
        ``C_grid``, ``n_cv_splits``, ``cv_test_size``, ``classifier``, ``n_jobs``.

    Returns
    -------
    dict
        ``"neural"`` (population bar), ``"model"`` (i), ``"model_to_neural"`` (ii),
        ``"neural_to_model"`` (iii) and, with ``baseline_units``, ``"baseline"``,
        ``"baseline_to_neural"``, ``"neural_to_baseline"``.
    """
    seeds = run_seeds(seed, 7)[:, 0]
    out = {
        "neural": decode_within(neural, labels, n_runs=n_runs_within, seed=int(seeds[0]), **kwargs),
        "model": decode_within(model_units, labels, n_runs=n_runs_within, seed=int(seeds[1]), **kwargs),
        "model_to_neural": decode_across(
            model_units, neural, labels, n_runs=n_runs_across, seed=int(seeds[2]), **kwargs
        ),
        "neural_to_model": decode_across(
            neural, model_units, labels, n_runs=n_runs_across, seed=int(seeds[3]), **kwargs
        ),
    }
    if baseline_units is not None:
        out["baseline"] = decode_within(
            baseline_units, labels, n_runs=n_runs_within, seed=int(seeds[4]), **kwargs
        )
        out["baseline_to_neural"] = decode_across(
            baseline_units, neural, labels, n_runs=n_runs_across, seed=int(seeds[5]), **kwargs
        )
        out["neural_to_baseline"] = decode_across(
            neural, baseline_units, labels, n_runs=n_runs_across, seed=int(seeds[6]), **kwargs
        )
    return out
