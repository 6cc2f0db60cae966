"""Streamed sparse random projection (SRP) with scikit-learn semantics, built fast.

veRSA step 1 (SPEC section 1) projects every layer of a network to
``k = johnson_lindenstrauss_min_dim(n_stimuli, eps=0.1)`` dimensions with
scikit-learn's :class:`~sklearn.random_projection.SparseRandomProjection`:
density ``1 / sqrt(p)`` ("auto"), and each entry of the ``(k, p)`` matrix ``R``
independently

- ``+sqrt(1 / density) / sqrt(k)`` with probability ``density / 2``,
- ``-sqrt(1 / density) / sqrt(k)`` with probability ``density / 2``,
- ``0`` otherwise;

the projection of a ``(n, p)`` feature matrix ``X`` is ``X @ R.T``.

scikit-learn draws ``R`` row by row with a Python loop (about 11 s for one
800,000-unit layer), and a network has hundreds of layers. :func:`sparse_random_matrix`
draws the same distribution vectorised: per-row non-zero counts from one
binomial draw, all column indices and signs in bulk, duplicates within a row
re-drawn until none is left (which keeps every row's column set uniformly
distributed). It is the same *distribution* as scikit-learn's, not the same
random stream; ``backend="sklearn"`` uses scikit-learn's own matrix where
bit-compatibility with scikit-learn based pipelines (DeepNSD) matters.

:class:`StreamingSRP` holds one matrix per layer width ``p`` (cached), so a
batch of any layer can be projected the moment it is computed and the full
``(n, p)`` feature matrix never exists. Layers with ``p < k`` are "upsampled"
through the same kind of matrix (still ``k`` outputs), as in SPEC section 1.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .utils import InputError, check_option, make_rng

__all__ = ["StreamingSRP", "sparse_random_matrix", "srp_density", "jl_min_dim", "BACKENDS"]

#: SRP matrix generators: ``"brainalign"`` (fast, same distribution) and ``"sklearn"``.
BACKENDS = ("brainalign", "sklearn")

# Below this many matrix entries the non-zero pattern is drawn as a dense Bernoulli mask.
_DENSE_MASK_MAX_ENTRIES = 1 << 22


def jl_min_dim(n_samples: int, eps: float = 0.1) -> int:
    """``sklearn.random_projection.johnson_lindenstrauss_min_dim`` as a plain int."""
    from sklearn.random_projection import johnson_lindenstrauss_min_dim

    return int(johnson_lindenstrauss_min_dim(int(n_samples), eps=eps))


def srp_density(density, n_features: int) -> float:
    """The density scikit-learn uses: ``1 / sqrt(n_features)`` for ``"auto"``."""
    if isinstance(density, str):
        check_option("density", density, ["auto"])
        return 1.0 / math.sqrt(n_features)
    density = float(density)
    if not 0.0 < density <= 1.0:
        raise InputError(f"SRP density must be 'auto' or in (0, 1], got {density!r}.")
    return density


def sparse_random_matrix(
    n_components: int, n_features: int, *, density="auto", seed=0
) -> sp.csr_array:
    """Draw a ``(n_components, n_features)`` float32 CSR matrix with SparseRandomProjection's law.

    Every entry is independently ``+-sqrt(1/density)/sqrt(n_components)`` with
    probability ``density/2`` each and 0 otherwise. Column indices are sorted
    within each row. ``seed`` is an int or a numpy Generator.
    """
    k, p = int(n_components), int(n_features)
    if k < 1 or p < 1:
        raise InputError(f"SRP needs n_components >= 1 and n_features >= 1, got {k} and {p}.")
    density = srp_density(density, p)
    rng = make_rng(seed)
    value = np.float32(np.sqrt(1.0 / density) / np.sqrt(k))

    if density == 1.0 or k * p <= _DENSE_MASK_MAX_ENTRIES:
        # Small matrices: one Bernoulli(density) draw per entry (row-major -> sorted CSR).
        mask = rng.random((k, p)) < density
        rows, cols = np.nonzero(mask)
        counts = np.bincount(rows, minlength=k)
    else:
        counts = rng.binomial(p, density, size=k)
        cols = _distinct_sorted_columns(rng, counts, p)
    indptr = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    signs = rng.integers(0, 2, size=len(cols), dtype=np.int8)
    data = np.where(signs == 1, value, -value).astype(np.float32)
    index_dtype = np.int32 if max(p, len(cols)) < np.iinfo(np.int32).max else np.int64
    return sp.csr_array(
        (data, cols.astype(index_dtype, copy=False), indptr.astype(index_dtype)), shape=(k, p)
    )


def _distinct_sorted_columns(rng: np.random.Generator, counts: np.ndarray, p: int) -> np.ndarray:
    """For row i draw ``counts[i]`` distinct uniform columns of ``range(p)``; rows concatenated.

    Columns are drawn with replacement in bulk; duplicates within a row are
    dropped and re-drawn (only the deficit) until every row is duplicate-free.
    The result is exchangeable over columns, so each row's set is uniform over
    all subsets of its size, exactly as sampling without replacement.
    """
    k = len(counts)
    rows = np.repeat(np.arange(k, dtype=np.int64), counts)
    keys = rows * p + rng.integers(0, p, size=len(rows), dtype=np.int64)  # row-major flat index
    del rows
    keys.sort()
    while True:
        dup = np.flatnonzero(keys[1:] == keys[:-1]) + 1
        if len(dup) == 0:
            break
        deficit_rows = keys[dup] // p
        keys = np.delete(keys, dup)
        new = np.sort(deficit_rows * p + rng.integers(0, p, size=len(dup), dtype=np.int64))
        keys = np.insert(keys, np.searchsorted(keys, new), new)
    return keys % p


def _sklearn_matrix(n_components: int, n_features: int, density, seed: int) -> sp.csr_array:
    """scikit-learn's own matrix: ``SparseRandomProjection(k, random_state=seed).fit(X)``."""
    from sklearn.exceptions import DataDimensionalityWarning
    from sklearn.random_projection import SparseRandomProjection

    if not isinstance(seed, (int, np.integer)):
        raise InputError(f"The 'sklearn' SRP backend needs an int seed, got {seed!r}.")
    srp = SparseRandomProjection(
        n_components=int(n_components), density=density, random_state=int(seed)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataDimensionalityWarning)  # p < k is intended
        srp.fit(np.zeros((1, int(n_features)), dtype=np.float32))
    # Keep scikit-learn's (unsorted) index order, so that products match its transform bit for bit.
    return sp.csr_array(srp.components_, dtype=np.float32)


class StreamingSRP:
    """Sparse random projection to ``n_components`` dimensions for layers of any width.

    Parameters
    ----------
    n_components : int
        Target dimension ``k`` (see :func:`jl_min_dim`).
    density : "auto" or float
        Fraction of non-zero entries; "auto" = ``1 / sqrt(p)`` (scikit-learn's default).
    seed : int
        The matrix for width ``p`` is drawn from ``SeedSequence(seed, spawn_key=(p,))``
        (backend "brainalign") or is scikit-learn's matrix for ``random_state=seed``
        (backend "sklearn", identical to ``SparseRandomProjection(k, random_state=seed)``
        fitted on a ``p``-column matrix). Either way it depends only on ``(seed, p)``:
        layers of equal width share one matrix, so identical layers project identically.
    backend : "brainalign" or "sklearn"
        "brainalign" is the fast vectorised generator; "sklearn" reproduces scikit-learn.

    Notes
    -----
    Matrices are cached per width in ``matrices_`` (about ``8 k sqrt(p)`` bytes
    each: 85 MB for p = 3.2 M, k = 5920). :meth:`transform` is row-independent:
    a stimulus gets the same projection bit for bit whatever batch it is in.
    """

    def __init__(
        self, n_components: int, *, density="auto", seed: int = 0, backend: str = "brainalign"
    ):
        self.n_components = n_components
        self.density = density
        self.seed = seed
        self.backend = backend
        check_option("backend", backend, BACKENDS)
        if int(n_components) < 1:
            raise InputError(f"SRP n_components must be a positive int, got {n_components!r}.")
        if seed is None or not isinstance(seed, (int, np.integer)):
            raise InputError(f"SRP seed must be an int, got {seed!r}.")
        if not isinstance(density, str):
            srp_density(density, 1)  # validates the range
        self.matrices_: dict[int, sp.csr_array] = {}
        self._ones: dict[int, np.ndarray] = {}
        self._torch: dict[int, torch.Tensor] = {}

    def matrix(self, n_features: int) -> sp.csr_array:
        """The ``(k, p)`` float32 CSR projection matrix for width ``p`` (cached)."""
        p = int(n_features)
        if p not in self.matrices_:
            k = int(self.n_components)
            if self.backend == "sklearn":
                R = _sklearn_matrix(k, p, self.density, int(self.seed))
            else:
                seq = np.random.SeedSequence(int(self.seed), spawn_key=(p,))
                R = sparse_random_matrix(
                    k, p, density=self.density, seed=np.random.default_rng(seq)
                )
            self.matrices_[p] = R
        return self.matrices_[p]

    def density_for(self, n_features: int) -> float:
        """The density used for width ``n_features``."""
        return srp_density(self.density, int(n_features))

    def transform(self, X) -> np.ndarray:
        """Project a ``(B, p)`` batch (numpy array or torch tensor) -> ``(B, k)`` float32 numpy.

        Computed as ``(R @ X.T).T`` with torch's sparse-CSR kernel (multi-threaded;
        about 2x scipy's). Each output row depends only on its input row, summed
        in R's index order, so results do not depend on the batch composition.
        """
        X = _as_float32_2d_tensor(X)
        Rt = self._torch_matrix(X.shape[1])
        out = torch.sparse.mm(Rt, X.T.contiguous())  # (k, B)
        return np.ascontiguousarray(out.T.numpy())

    def _torch_matrix(self, p: int):
        if p not in self._torch:
            R = self.matrix(p)
            indptr, indices = R.indptr, R.indices
            if indptr.dtype != indices.dtype:
                indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                self._torch[p] = torch.sparse_csr_tensor(
                    torch.from_numpy(indptr),
                    torch.from_numpy(indices),
                    torch.from_numpy(R.data),
                    size=R.shape,
                    check_invariants=False,
                )
        return self._torch[p]

    def ones_projection(self, n_features: int) -> np.ndarray:
        """``R @ 1`` (k,) float32: SRP(x - c) = SRP(x) - c * ones_projection for a scalar c."""
        p = int(n_features)
        if p not in self._ones:
            R = self.matrix(p)
            self._ones[p] = np.asarray(R.astype(np.float64).sum(axis=1)).ravel().astype(np.float32)
        return self._ones[p]

    def clear(self) -> None:
        """Drop the cached matrices."""
        self.matrices_.clear()
        self._ones.clear()
        self._torch.clear()

    def __repr__(self) -> str:
        return (
            f"StreamingSRP(n_components={self.n_components!r}, density={self.density!r}, "
            f"seed={self.seed!r}, backend={self.backend!r})"
        )


def _as_float32_2d_tensor(X) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        X = X.detach().to("cpu", torch.float32)
    else:
        X = torch.from_numpy(np.asarray(X, dtype=np.float32))
    if X.ndim != 2:
        raise InputError(
            f"SRP input must be a 2-D (batch, features) array, got shape {tuple(X.shape)}."
        )
    return X
