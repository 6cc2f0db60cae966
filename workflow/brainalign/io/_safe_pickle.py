"""Read pickled ``.npy`` files without running code from them.

``np.load(path, allow_pickle=True)`` unpickles object arrays with :mod:`pickle`, which
calls any importable function a file names (``os.system``, ``subprocess.Popen``, ...).
:func:`load_npy_pickle` reads the ``.npy`` header with :mod:`numpy.lib.format` and
unpickles the payload of an object array with :class:`RestrictedUnpickler`, whose
``find_class`` hands out only the few globals that ``np.save`` writes for dicts, lists,
str, numbers, numpy arrays, numpy scalars and dtypes (:data:`ALLOWED_GLOBALS`), under
numpy 1.x (``numpy.core``) and numpy 2.x (``numpy._core``) spellings alike. Any other
global is refused with :class:`~brainalign.utils.InputError` before it is imported or
called. Non-object arrays are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import builtins
import importlib
import pickle
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from brainalign.utils import InputError

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "load_npy_pickle"]

_BUILTINS = ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int",
             "float", "complex", "bool")
_NUMPY_CORE = (
    ("multiarray", "_reconstruct"),  # ndarray.__reduce__ (protocols <= 4)
    ("multiarray", "scalar"),  # numpy scalars: np.float64(1.0), np.str_("a"), ...
    ("numeric", "_frombuffer"),  # ndarray.__reduce_ex__ (protocol 5)
)
#: (module, name) pairs a pickle may name. ``__builtin__`` is Python 2's (and pickle
#: protocol 2's) name of ``builtins``; protocol 2 writes bytes (and so array data) as
#: ``_codecs.encode(text, "latin1")``, resolved to a latin-1-only stand-in.
ALLOWED_GLOBALS = frozenset(
    [(mod, name) for mod in ("builtins", "__builtin__") for name in _BUILTINS]
    + [("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype")]
    + [(f"{pkg}.{sub}", name) for pkg in ("numpy.core", "numpy._core") for sub, name in _NUMPY_CORE]
)
# numpy >= 2 moved numpy.core to numpy._core (numpy.core still imports, with a warning).
_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as pickle protocol 2 uses it for bytes: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(
            f"_codecs.encode({type(text).__name__}, {encoding!r}, {errors!r}): only "
            "_codecs.encode(str, 'latin1') is allowed."
        )
    return text.encode("latin-1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`; ``path`` names the file in errors."""

    def __init__(self, file, path, **kwargs):
        super().__init__(file, **kwargs)
        self._path = path

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise InputError(
                f"{self._path}: refused to load global '{module}.{name}' from the pickle; "
                "expected only dicts, lists, str, numbers and numpy arrays (a pickle that names "
                "other globals can run code when loaded, so it is not opened)."
            )
        if module == "_codecs":
            return _latin1_encode
        if module in ("builtins", "__builtin__"):
            return getattr(builtins, name)
        if module == "numpy":
            return getattr(np, name)
        sub = module.rsplit(".", 1)[1]
        return getattr(importlib.import_module(f"{_CORE}.{sub}"), name)

    def persistent_load(self, pid):
        raise InputError(f"{self._path}: refused a persistent id in the pickle; expected plain data.")


def load_npy_pickle(path, *, name=None) -> np.ndarray:
    """What ``np.load(path, allow_pickle=True)`` returns for a ``.npy`` file, without running code.

    Object arrays (e.g. ``np.save(f, np.array(a_dict, dtype=object))``) are unpickled with
    :class:`RestrictedUnpickler`; other arrays are loaded with ``allow_pickle=False``.
    ``name`` (default ``path``) is the file name used in error messages.

    Raises
    ------
    InputError
        The pickle names a global outside :data:`ALLOWED_GLOBALS`, or its payload is not
        an array. Other failures (not a ``.npy`` file, truncated data) raise what numpy or
        :mod:`pickle` raise.
    """
    path = Path(path)
    name = path if name is None else name
    with open(path, "rb") as f:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            _, _, dtype = npy_format.read_array_header_1_0(f)
        elif version == (2, 0):
            _, _, dtype = npy_format.read_array_header_2_0(f)
        else:  # 3.0 (utf-8 field names): never used for object arrays
            dtype = None
        if dtype is None or not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        # np.load's defaults for Python 3 pickles: encoding="ASCII", fix_imports=True
        payload = RestrictedUnpickler(f, name, encoding="ASCII").load()
    if not isinstance(payload, np.ndarray):
        raise InputError(
            f"{name}: the pickle after the .npy header holds a {type(payload).__name__}; "
            "expected an array."
        )
    return payload
