"""Reading info pickles without trusting them: a size cap, a short list of allowed globals, checked arrays.

An info pickle (mmdet3d's dataset index) holds dicts, lists, strings and numbers, numpy scalars and, in
older mmdet3d versions, small numpy arrays. `load_pickle` reads the file's bytes (refusing a file over
`MAX_PICKLE_BYTES`), unpickles them from memory -- a corrupted length field then reads as truncated
data instead of a huge read from the file -- and allows only the globals below: numpy array and
scalar reconstruction (with their dtype canonicalised and their byte count checked, so that no
corrupted state reaches numpy's C code), numpy dtypes, latin-1 byte strings (protocol 2), and the
builtin / collections containers. Any failure, MemoryError included, becomes a DatasetError naming the
file.

Left to the OS: the C unpickler sizes its memo table from the largest memo index it sees, so a
corrupted 4-byte index can ask for a table of up to 64 GiB, which usually fails at once (MemoryError,
reported as above). The pure-Python unpickler has no such table but is about 5 times slower, which
matters for real nuScenes infos of hundreds of MB.
"""

from __future__ import annotations

import collections
import gc
import io
import math
import pickle
from pathlib import Path

import numpy as np

from dos.data.errors import DatasetError
from dos.data.readers.files import read_bytes

try:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct, scalar as _np_scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct as _np_reconstruct, scalar as _np_scalar

MAX_PICKLE_BYTES = 4 << 30


def _plain_dtype(dtype) -> np.dtype:
    """A fresh dtype equal to `dtype`, which must be a plain (unstructured, object-free) numpy dtype."""
    if not isinstance(dtype, np.dtype) or dtype.names is not None or dtype.subdtype is not None:
        raise pickle.UnpicklingError(f"array dtype {dtype!r} is not a plain numpy dtype")
    plain = np.dtype(dtype.str)  # drops whatever flags a corrupted dtype state set
    if plain.hasobject:
        raise pickle.UnpicklingError("arrays of Python objects are not allowed in an info pickle")
    return plain


class _CheckedArray(np.ndarray):
    """An ndarray whose pickled state is checked before numpy sees it (numpy trusts it, and a corrupted
    object-array state crashes the interpreter)."""

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("bad ndarray state")
        version, shape, dtype, fortran, data = state
        dtype = _plain_dtype(dtype)
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise pickle.UnpicklingError(f"bad ndarray shape {shape!r}")
        if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
            raise pickle.UnpicklingError(f"ndarray data does not match shape {shape} of {dtype}")
        super().__setstate__((version, shape, dtype, bool(fortran), data))


class _NdarrayType:
    """Stands for numpy.ndarray in a pickle: only an argument of _reconstruct, never called (calling the real
    class with corrupted arguments would allocate an array of any size)."""


def _reconstruct(subtype, shape, typecode):
    if subtype is not _NdarrayType or shape != (0,) or typecode != b"b":
        raise pickle.UnpicklingError("unexpected ndarray reconstruction arguments")
    return _np_reconstruct(_CheckedArray, (0,), b"b")


def _scalar(dtype, data=None):
    dtype = _plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"numpy scalar data does not match {dtype}")
    return _np_scalar(dtype, data)


def _encode(text, encoding="latin1"):
    """How protocol 2 writes bytes: _codecs.encode(str, "latin1"); no other codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected _codecs.encode arguments")
    return text.encode("latin-1")


_BUILTINS = {"list": list, "dict": dict, "tuple": tuple, "set": set, "frozenset": frozenset}
ALLOWED_GLOBALS = {
    **{(module, name): value for module in ("builtins", "__builtin__") for name, value in _BUILTINS.items()},
    **{(module, name): value for module in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name, value in (("scalar", _scalar), ("_reconstruct", _reconstruct))},
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
}


class _InfoUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an info pickle") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not allowed in an info pickle")


def load_pickle(path: Path, what: str, max_bytes: int = MAX_PICKLE_BYTES):
    """The object stored in the pickle file `path`, read under the restrictions of the module docstring."""
    data = read_bytes(path, what, max_bytes)
    collecting = gc.isenabled()
    gc.disable()  # the collector would scan the growing object graph over and over: ~2x slower
    try:
        return _InfoUnpickler(io.BytesIO(data)).load()
    except Exception as error:  # noqa: BLE001 -- whatever a corrupted file makes the unpickler raise
        detail = str(error)[:200]
        raise DatasetError(f"{path}: not a readable {what} ({type(error).__name__}: {detail})") from error
    finally:
        if collecting:
            gc.enable()
