"""Small shared helpers: option checking, input errors, atomic writes, seeding.

Every module of brainalign uses these instead of its own variants, so that
error messages look the same everywhere and no output is left half-written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "InputError",
    "check_option",
    "atomic_path",
    "make_rng",
    "check_finite",
    "check_ids_match",
]


class InputError(ValueError):
    """Bad user input: a missing or malformed file, a wrong shape, a config typo.

    The message always names the offending file or key and what was expected.
    """


def check_option(name: str, value, allowed: Iterable):
    """Raise :class:`InputError` unless ``value`` is one of ``allowed``; return it otherwise.

    The message lists the allowed values and the value received, e.g.
    ``Invalid value for the 'metric' parameter. Allowed values are 'pearson' and
    'spearman', but got 'kendall' instead.`` :class:`InputError` subclasses
    ``ValueError``, so ``except ValueError`` handlers still catch it.
    """
    allowed = list(allowed)
    if value in allowed:
        return value
    reprs = [repr(a) for a in allowed]
    if len(reprs) > 1:
        listed = ", ".join(reprs[:-1]) + " and " + reprs[-1]
    else:
        listed = reprs[0]
    raise InputError(
        f"Invalid value for the {name!r} parameter. Allowed values are {listed}, "
        f"but got {value!r} instead."
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    If the body raises, the temporary file is removed and ``path`` is untouched,
    so no half-written artifact is ever left behind. The suffix of ``path`` is
    kept on the temporary name so that libraries that dispatch on the extension
    (matplotlib, pandas) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def make_rng(seed) -> np.random.Generator:
    """A numpy Generator from an int seed (or pass a Generator through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("A seed is required: brainalign never draws unseeded random numbers.")
    return np.random.default_rng(seed)


def check_finite(array: np.ndarray, what: str) -> np.ndarray:
    """Raise :class:`InputError` naming ``what`` if ``array`` holds NaN or inf."""
    array = np.asarray(array)
    if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))
        raise InputError(
            f"{what}: found {len(bad)} non-finite values (NaN or inf), first at index "
            f"{tuple(int(i) for i in bad[0])}; expected finite numbers."
        )
    return array


def check_ids_match(ids_a, ids_b, what_a: str, what_b: str) -> None:
    """Raise :class:`InputError` unless two stimulus-id vectors are identical, in order."""
    a = np.asarray(ids_a)
    b = np.asarray(ids_b)
    if a.shape == b.shape and np.array_equal(a.astype(str), b.astype(str)):
        return
    if a.shape != b.shape:
        detail = f"{len(a)} vs {len(b)} stimuli"
    else:
        first = int(np.flatnonzero(a.astype(str) != b.astype(str))[0])
        detail = f"first difference at position {first}: {a[first]!r} vs {b[first]!r}"
    raise InputError(
        f"Stimulus ids of {what_a} and {what_b} differ ({detail}); both arrays must be "
        "computed on the same stimuli in the same order."
    )
