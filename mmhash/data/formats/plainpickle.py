"""Reading a user's pickle without running it: plain arrays and containers only.

``pickle.load`` on a file from someone else runs whatever the file names (any importable callable
with any arguments). Feature files of the CLIP-era methods are pickles (UCMFH's ``train.pkl``,
``query.pkl``, ``retrieval.pkl``), so mmhash reads them with :class:`PlainUnpickler`, which
resolves only the handful of globals a pickled NumPy array, a dict, a list and Python numbers and
strings need, and refuses every other global in one line naming it. Nothing a refused file names
is imported or called.

What is admitted, and why each entry is needed:

- ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct`` (NumPy 1 and
  2 spell it differently) and ``numpy.ndarray``: how ``ndarray.__reduce__`` rebuilds an array;
- ``numpy._core.numeric._frombuffer`` (and NumPy 1's ``numpy.core.numeric``): the same under
  pickle protocol 5, from the array's raw bytes;
- ``numpy.dtype``: the array's dtype (checked below: numbers and booleans only, no ``object``);
- ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar``: a pickled NumPy scalar
  (``np.float32(1.0)``);
- ``collections.OrderedDict`` and ``builtins`` ``dict``, ``list``, ``tuple``, ``set``,
  ``frozenset``, ``int``, ``float``, ``complex``, ``bool``, ``str``, ``bytes``, ``bytearray``,
  ``slice`` and ``range``: plain containers and values (most are pickled without a global at all;
  these cover protocols 0-1 and ``copyreg``'s reconstructor for them).
- ``_codecs.encode``: how protocols 0-1 write ``bytes`` (an array's buffer) as latin-1 text;
- ``copyreg._reconstructor`` only for the builtin types above (protocol 0-1 objects).

An array whose dtype holds Python objects is refused: its elements would be unpickled by NumPy
with the unrestricted ``pickle`` module.
"""

from __future__ import annotations

import builtins
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mmhash.errors import DataError

_NUMPY_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"),
                      ("numpy._core.multiarray", "_reconstruct")}
_NUMPY_SCALAR = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}
_NUMPY_FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}
_BUILTIN_TYPES = ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex",
                  "bool", "str", "bytes", "bytearray", "slice", "range")
_PLAIN_TYPES = tuple(getattr(builtins, name) for name in _BUILTIN_TYPES)


def _checked_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError("a NumPy array of Python objects (dtype object)")
    return dtype


def _refuse_objects(array: np.ndarray) -> np.ndarray:
    _checked_dtype(array.dtype)  # an array built without a pickled dtype: the same check
    return array


def _checked_ndarray(*args: Any) -> np.ndarray:
    return _refuse_objects(np.ndarray(*args))


def _checked_reconstruct(cls: Any, *args: Any) -> np.ndarray:
    from numpy._core.multiarray import _reconstruct

    if cls not in (np.ndarray, _checked_ndarray):
        raise pickle.UnpicklingError(f"an array of type {getattr(cls, '__qualname__', cls)}")
    return _refuse_objects(_reconstruct(np.ndarray, *args))


def _checked_scalar(dtype: np.dtype, *args: Any) -> Any:
    from numpy._core.multiarray import scalar  # the same function under NumPy 2's name

    if np.dtype(dtype).hasobject:
        raise pickle.UnpicklingError("a NumPy scalar holding a Python object")
    return scalar(dtype, *args)


def _checked_reconstructor(cls: type, base: type, state: Any) -> Any:
    if cls not in _PLAIN_TYPES or base not in _PLAIN_TYPES + (object,):
        raise pickle.UnpicklingError(f"an object of type {cls.__module__}.{cls.__qualname__}")
    import copyreg

    return copyreg._reconstructor(cls, base, state)


class PlainUnpickler(pickle.Unpickler):
    """An unpickler that admits NumPy arrays of numbers, dicts, lists, tuples, numbers and
    strings, and raises :class:`pickle.UnpicklingError` naming any other global it meets."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_RECONSTRUCT:
            return _checked_reconstruct
        if (module, name) in _NUMPY_SCALAR:
            return _checked_scalar
        if (module, name) in _NUMPY_FROMBUFFER:  # protocol 5's array (pickle.PickleBuffer)
            from numpy._core.numeric import _frombuffer

            return _frombuffer
        if module == "numpy" and name == "ndarray":
            return _checked_ndarray
        if module == "numpy" and name == "dtype":
            return _checked_dtype
        if module == "collections" and name == "OrderedDict":
            from collections import OrderedDict

            return OrderedDict
        if module in ("builtins", "__builtin__") and name in _BUILTIN_TYPES:
            return getattr(builtins, name)
        if module == "__builtin__" and name == "xrange":  # range under protocols 0-2
            return range
        if module == "_codecs" and name == "encode":  # protocols 0-1 spell bytes as latin-1 text
            import codecs

            return codecs.encode
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return _checked_reconstructor
        raise pickle.UnpicklingError(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a persistent id (an external object reference)")


def load_plain_pickle(path: str | Path) -> Any:
    """The plain data in a pickle file: NumPy arrays, dicts, lists, numbers, strings.

    Raises :class:`DataError` in one line naming the file and what it holds when it holds
    anything else (a class instance, a function, a torch tensor, an object array), and for a
    truncated or corrupt file. The refused object is never imported or built.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or type(e).__name__})") from e
    try:
        return PlainUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        what = str(e)
        if "." in what and " " not in what:  # a refused global: module.name
            raise DataError(f"{path}: the pickle holds {what}, which is not plain data; mmhash "
                            f"reads pickles of NumPy arrays, lists, dicts, numbers and strings "
                            f"only (never arbitrary objects)") from None
        if what.startswith(("a ", "an ")):
            raise DataError(f"{path}: the pickle holds {what}; mmhash reads pickles of NumPy "
                            f"arrays, lists, dicts, numbers and strings only") from None
        raise DataError(f"{path}: not a readable pickle; is it corrupt or truncated? "
                        f"({what or 'UnpicklingError'})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError) as e:
        raise DataError(f"{path}: not a readable pickle; is it corrupt or truncated? "
                        f"({type(e).__name__})") from None
