"""Uniform access to the named arrays of a MATLAB file (v5 or v7.3/HDF5) or a NumPy ``.npz``.

MATLAB v7.3 files are HDF5 files with a 512-byte MATLAB header; ``scipy.io.loadmat`` refuses
them with ``NotImplementedError``, so we catch that and read them with h5py. h5py sees MATLAB's
column-major arrays with their axes reversed (an n x d matrix is stored as (d, n)), stores cells
as arrays of object references into ``#refs#`` and sparse matrices as groups of
``data``/``ir``/``jc``; :func:`_h5_value` undoes all three, so both versions give the same arrays.

scipy, h5py and the file are touched only when a file is opened, keeping ``import mmhash`` light.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmhash.errors import DataError


def require_file(path: Path, what: str = "file") -> Path:
    """``path`` if it is an existing file, else :class:`DataError` saying what was expected."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    if not path.is_file():
        raise DataError(f"{what} is not a regular file: {path}")
    return path


class KeyedFile:
    """A file of named arrays, opened for reading: ``keys()`` and ``read([...])``.

    Use as a context manager (a v7.3 file keeps an HDF5 handle open)::

        with open_keyed(path) as f:
            arrays = f.read(["I_tr", "L_tr"])

    ``format`` is ``"mat-v5"`` (also v4), ``"mat-v7.3"`` or ``"npz"``.
    """

    format = ""

    def __init__(self, path: Path):
        self.path = Path(path)

    def keys(self) -> list[str]:
        raise NotImplementedError

    def read(self, keys: Sequence[str]) -> dict[str, Any]:
        """The arrays stored under ``keys``; :class:`DataError` if one is absent or unreadable."""
        self.require(keys)
        try:
            return self._read(list(keys))
        except DataError:
            raise
        except Exception as e:  # any parse failure below is a corrupt or truncated file
            raise DataError(f"{self.path}: cannot read {', '.join(keys)} ({_why(e)})") from e

    def require(self, keys: Sequence[str]) -> None:
        """:class:`DataError` naming the missing and the found keys unless all of ``keys`` are
        in the file; nothing is read."""
        missing = [k for k in keys if k not in self.keys()]
        if missing:
            raise DataError(
                f"{self.path}: missing key(s) {', '.join(missing)}; expected "
                f"{', '.join(keys)}; found {', '.join(self.keys()) or '(none)'}"
            )

    def _read(self, keys: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def blockwise(self, key: str) -> bool:
        """Whether :meth:`read_block` reads only the block asked for (a dense v7.3 array);
        otherwise the whole array is in memory already or is read whole (v5, npz, sparse)."""
        return False

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of the array under ``key`` as :meth:`read` would return it, without
        reading a v7.3 file's data (a raw-image ``IAll`` is tens of gigabytes)."""
        return tuple(np.shape(self.read([key])[key]))

    def read_block(self, key: str, axis: int, start: int, stop: int) -> np.ndarray:
        """``read([key])[key]`` sliced to ``start:stop`` along ``axis`` (in :meth:`read`'s axis
        order); only that block is read from a v7.3 file."""
        index = [slice(None)] * len(self.shape(key))
        index[axis] = slice(start, stop)
        return np.asarray(self.read([key])[key][tuple(index)])

    def close(self) -> None:
        pass

    def __enter__(self) -> KeyedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _why(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


class _Mat5(KeyedFile):
    format = "mat-v5"

    def __init__(self, path: Path, data: dict[str, Any]):
        super().__init__(path)
        self._data = data

    def keys(self) -> list[str]:
        return list(self._data)

    def _read(self, keys: list[str]) -> dict[str, Any]:
        return {k: self._data[k] for k in keys}


class _Mat73(KeyedFile):
    format = "mat-v7.3"

    def __init__(self, path: Path, axes_by_dataset: bool = False):
        import h5py

        super().__init__(path)
        self._h5 = h5py.File(path, "r")
        # "#refs#" holds the elements of cells, "#subsystem#" MATLAB objects: not variables.
        self._names = [k for k in self._h5.keys() if not k.startswith("#")]
        self._axes_by_dataset = axes_by_dataset

    def keys(self) -> list[str]:
        return self._names

    def _read(self, keys: list[str]) -> dict[str, Any]:
        return {k: _h5_value(self._h5, self._h5[k]) for k in keys}

    def _dataset(self, key: str) -> Any:
        import h5py

        self.require([key])
        obj = self._h5[key]
        if not isinstance(obj, h5py.Dataset) or obj.dtype == h5py.ref_dtype:
            raise DataError(f"{self.path}: {key} is not a numeric array")
        return obj

    def blockwise(self, key: str) -> bool:
        import h5py

        obj = self._h5.get(key) if key in self._names else None
        return isinstance(obj, h5py.Dataset) and obj.dtype != h5py.ref_dtype

    def _reversed(self, key: str) -> bool:
        """Whether ``key``'s axes are stored reversed (column-major): every array of a file
        read as MATLAB's; with ``axes_by_dataset``, only those MATLAB wrote (``MATLAB_class``)."""
        return not self._axes_by_dataset or "MATLAB_class" in self._h5[key].attrs

    def shape(self, key: str) -> tuple[int, ...]:
        if not self.blockwise(key):  # a sparse matrix, cell or struct: its shape once read
            return super().shape(key)
        shape = tuple(self._dataset(key).shape)
        return shape[::-1] if self._reversed(key) else shape

    def read_block(self, key: str, axis: int, start: int, stop: int) -> np.ndarray:
        obj = self._dataset(key)
        reverse = self._reversed(key)
        index = [slice(None)] * obj.ndim
        index[obj.ndim - 1 - axis if reverse else axis] = slice(start, stop)
        try:
            block = np.asarray(obj[tuple(index)])
        except Exception as e:
            raise DataError(f"{self.path}: cannot read {key} rows {start}..{stop - 1} "
                            f"({_why(e)}); is the file truncated?") from e
        return block.T if reverse else block

    def close(self) -> None:
        self._h5.close()


class _Npz(KeyedFile):
    format = "npz"

    def __init__(self, path: Path):
        super().__init__(path)
        # allow_pickle=False: an .npz from a stranger must not run code when it is read.
        self._z = np.load(path, allow_pickle=False)
        self._names = list(self._z.files)

    def keys(self) -> list[str]:
        return self._names

    def _read(self, keys: list[str]) -> dict[str, Any]:
        return {k: self._z[k] for k in keys}

    def close(self) -> None:
        self._z.close()


def open_keyed(path: Path) -> KeyedFile:
    """Open a ``.mat`` (v4/v5/v7.3) or ``.npz`` file; :class:`DataError` if missing or corrupt."""
    path = require_file(Path(path))
    try:
        if path.suffix.lower() == ".npz":
            return _Npz(path)
        return _open_mat(path)
    except DataError:
        raise
    except Exception as e:
        kind = "NumPy .npz" if path.suffix.lower() == ".npz" else "MATLAB"
        raise DataError(
            f"{path}: not a readable {kind} file; is it corrupt or truncated? ({_why(e)})"
        ) from e


def open_hdf5_arrays(path: Path) -> KeyedFile:
    """An HDF5 file, MATLAB v7.3 or plain, whose dense arrays :meth:`KeyedFile.shape` and
    :meth:`KeyedFile.read_block` give in MATLAB's axis order where MATLAB wrote them (they carry
    ``MATLAB_class``) and as stored otherwise (an ``(n, H, W, 3)`` array written from Python
    would read as ``(3, W, H, n)`` if reversed). ``format`` is ``mat-v7.3`` when any array is
    MATLAB's, else ``hdf5``; :class:`DataError` for an unreadable file."""
    path = require_file(Path(path))
    try:
        f = _Mat73(path, axes_by_dataset=True)
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 / MATLAB v7.3 file ({_why(e)})") from None
    if not any("MATLAB_class" in f._h5[k].attrs for k in f.keys()):
        f.format = "hdf5"
    return f


def _open_mat(path: Path) -> KeyedFile:
    import h5py
    from scipy.io import loadmat

    # The whole file is parsed up front: a truncated v5 file then fails here, instead of
    # looking like a complete file with fewer variables (scipy stops listing at the cut).
    try:
        data = loadmat(path)
    except NotImplementedError:
        return _Mat73(path)  # scipy's answer for a v7.3 file
    except Exception:
        if h5py.is_hdf5(path):  # plain HDF5 without MATLAB's header, in MATLAB's layout
            return _Mat73(path)
        raise
    return _Mat5(path, {k: v for k, v in data.items() if not k.startswith("__")})


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    value = obj.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes | np.bytes_) else value


def _h5_value(h5: Any, obj: Any) -> Any:
    """One MATLAB variable from a v7.3 file, in the layout scipy.io.loadmat would give."""
    import h5py

    if isinstance(obj, h5py.Group):
        if "MATLAB_sparse" in obj.attrs:
            from scipy.sparse import csc_matrix

            n_rows = int(_attr(obj, "MATLAB_sparse"))
            jc = np.asarray(obj["jc"])
            data = np.asarray(obj["data"]) if "data" in obj else np.ones(jc[-1])
            return csc_matrix((data, np.asarray(obj["ir"]), jc), shape=(n_rows, len(jc) - 1))
        return {k: _h5_value(h5, obj[k]) for k in obj.keys()}  # a struct
    if _attr(obj, "MATLAB_empty", 0):
        return np.zeros((0, 0))
    cls = _attr(obj, "MATLAB_class", "")
    raw = obj[()]
    if cls == "cell" or raw.dtype == h5py.ref_dtype:
        refs = np.asarray(raw).T
        out = np.empty(refs.shape, dtype=object)
        for idx in np.ndindex(refs.shape):
            out[idx] = _h5_value(h5, h5[refs[idx]])
        return out
    arr = np.asarray(raw).T  # MATLAB is column-major: reverse every axis
    if cls == "char":
        return "".join(map(chr, arr.reshape(-1, order="F")))
    if cls == "logical":
        return arr.astype(bool)
    if arr.dtype.names:  # complex numbers are stored as a compound of real and imag
        raise DataError(f"{obj.name}: complex MATLAB arrays are not supported as features")
    return arr
