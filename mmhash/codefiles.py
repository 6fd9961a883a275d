"""The files of the front door: encoded codes (``mmhash encode``) and search indexes
(``mmhash index build``), plus the one way every command writes a file.

Codes file (``.npz``, no pickle)
    ``__meta__``: JSON ``{"format": "mmhash-codes-file/1", "n_bits", "view", "packing",
    "method", "model"}``; ``codes``: uint8 ``(n, n_bits / 8)`` bit-packed rows (``packed``, +1 ->
    1, ``numpy.packbits`` order) or int8 ``(n, n_bits)`` in {-1, +1} (``int8``); ``ids``: str
    ``(n,)`` row names, only when the feature file had ids (else rows are named by position,
    and nothing is stored for them: a million position strings would cost ~80 MB).
Index file (``.npz``)
    :meth:`mmhash.evaluation.HammingIndex.save`'s fields, and ``ids`` and ``__meta__`` (the codes
    file's view, method and model) beside them, so search results name the database rows.

:func:`atomic_output` writes through a temporary file in the target folder and renames it into
place, so a failed or interrupted command never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmhash.errors import DataError, InvalidInputError, MMHashError

CODES_FORMAT = "mmhash-codes-file/1"
INDEX_META_FORMAT = "mmhash-index-file/1"
PACKINGS = ("packed", "int8")


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path if a file can be written there (its folder exists and is writable,
    it is not a folder). Commands check their outputs fully (extension, not an input) with
    :func:`mmhash.outputs.check_output` before any work; this is the part every write needs."""
    from mmhash.outputs import check_output

    return check_output(path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on any error it
    is removed. An output path in a missing folder is refused before anything runs."""
    target = check_output_path(path)
    folder = target.parent
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                             dir=folder)
    except OSError as exc:  # the folder changed since the check, a full disk, ...
        raise InvalidInputError(f"{target} cannot be written ({exc.strerror})") from None
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; the file should be like any other
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


@dataclass
class CodesFile:
    """Codes read back: int8 ``codes`` (n, n_bits) in {-1, +1}, str ``ids`` (n,) or None (rows
    named by position), and the
    ``view``, ``method`` and ``model`` (path) they came from."""

    codes: np.ndarray
    ids: np.ndarray | None
    n_bits: int
    view: str
    method: str
    model: str


def write_codes(path: str | os.PathLike, codes: np.ndarray, ids: np.ndarray | None, *,
                n_bits: int,
                view: str, method: str, model: str, packing: str = "packed") -> None:
    """Write a codes file atomically. ``codes``: uint8 packed rows (``packing="packed"``) or
    int8 ±1 rows (``"int8"``)."""
    meta = {"format": CODES_FORMAT, "n_bits": int(n_bits), "view": view, "packing": packing,
            "method": method, "model": model}
    with atomic_output(path) as temporary, open(temporary, "wb") as fh:
        np.savez(fh, __meta__=np.array(json.dumps(meta)), codes=codes, **_ids_field(ids))


def pack_rows(codes: np.ndarray) -> np.ndarray:
    """int8 ±1 ``(n, n_bits)`` -> uint8 ``(n, ceil(n_bits / 8))`` (+1 -> bit 1)."""
    return np.packbits(codes > 0, axis=1)


def read_codes(path: str | os.PathLike) -> CodesFile:
    """A codes file written by :func:`write_codes`; one clear :class:`DataError` otherwise."""
    meta, arrays = _read_npz(path, ("codes",), "codes file")
    if meta.get("format") != CODES_FORMAT:
        raise DataError(_format_problem(path, meta.get("format"), CODES_FORMAT, "codes file"))
    n_bits, codes = int(meta["n_bits"]), arrays["codes"]
    if meta.get("packing") == "packed":
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != -(-n_bits // 8):
            raise DataError(f"{path}: packed codes of shape {codes.shape}, expected "
                            f"(n, {-(-n_bits // 8)}) uint8 for {n_bits} bits")
        codes = (np.unpackbits(codes, axis=1, count=n_bits).astype(np.int8) * 2 - 1)
    elif meta.get("packing") == "int8":
        if codes.ndim != 2 or codes.shape[1] != n_bits or not np.isin(codes, (-1, 1)).all():
            raise DataError(f"{path}: int8 codes must be (n, {n_bits}) in {{-1, +1}}")
        codes = codes.astype(np.int8)
    else:
        raise DataError(f"{path}: unknown packing {meta.get('packing')!r}; one of {PACKINGS}")
    ids = arrays.get("ids")
    if ids is not None and len(ids) != len(codes):
        raise DataError(f"{path}: {len(ids)} ids for {len(codes)} codes")
    return CodesFile(codes, ids, n_bits, str(meta.get("view", "")), str(meta.get("method", "")),
                     str(meta.get("model", "")))


def write_index(path: str | os.PathLike, index, ids: np.ndarray | None, source: CodesFile
                ) -> None:
    """Write a :class:`~mmhash.evaluation.HammingIndex` with the row ids and provenance of the
    codes it holds (see the module docstring), atomically."""
    meta = {"format": INDEX_META_FORMAT, "view": source.view, "method": source.method,
            "model": source.model}
    with atomic_output(path) as temporary, open(temporary, "wb") as fh:
        index.save(fh, extra={**_ids_field(ids), "__meta__": np.array(json.dumps(meta))})


def read_index(path: str | os.PathLike):
    """``(HammingIndex, ids or None, meta)`` of an index file written by :func:`write_index`."""
    from mmhash.evaluation import HammingIndex

    meta, arrays = _read_npz(path, (), "index file")
    if meta.get("format") != INDEX_META_FORMAT:
        raise DataError(_format_problem(path, meta.get("format"), INDEX_META_FORMAT,
                                        "index file"))
    try:
        index = HammingIndex.load(path)
    except (KeyError, ValueError, TypeError) as exc:  # the index fields are missing or odd
        raise DataError(f"{path} is not an mmhash index file ({npz_problem(exc)})") from None
    ids = arrays.get("ids")
    if ids is not None and len(ids) != index.ntotal:
        raise DataError(f"{path} is corrupt: {len(ids)} ids for {index.ntotal} codes")
    return index, ids, meta


def _ids_field(ids: np.ndarray | None) -> dict[str, np.ndarray]:
    return {} if ids is None else {"ids": np.asarray(ids).astype(str)}


def row_names(ids: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    """The names of ``rows`` (int positions): their ids, or the positions themselves."""
    return rows if ids is None else ids[rows]


#: What reading a damaged, truncated or foreign ``.npz`` file can raise (numpy, zipfile, json).
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def npz_problem(exc: BaseException) -> str:
    """Why an ``.npz`` file could not be read, in a few words. numpy's advice to load a file
    that is not an archive with ``allow_pickle`` is never passed on: mmhash does not unpickle."""
    if isinstance(exc, (zipfile.BadZipFile, EOFError)):
        return "not a complete .npz archive: truncated or corrupt"
    if isinstance(exc, ValueError) and "pickle" in str(exc):
        return "not an .npz archive"
    if isinstance(exc, json.JSONDecodeError):
        return "its __meta__ record is not JSON"
    if isinstance(exc, KeyError):
        return f"no {exc} entry"
    return getattr(exc, "strerror", None) or str(exc)


@contextlib.contextmanager
def open_npz(path: str | os.PathLike, what: str) -> Iterator[np.lib.npyio.NpzFile]:
    """An ``.npz`` archive opened without pickle; a missing, damaged, truncated or foreign file
    (also while its members are read inside the block) is one :class:`DataError`:
    ``PATH is not an mmhash WHAT (why)``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except NPZ_ERRORS as exc:
        raise DataError(f"{path} is not an mmhash {what} ({npz_problem(exc)})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path} is not an mmhash {what} (a single .npy array, not an .npz "
                        "archive)")
    with loaded:
        try:
            yield loaded
        except MMHashError:
            raise
        except NPZ_ERRORS as exc:  # a member that is cut short or fails its CRC
            raise DataError(f"{path} is not an mmhash {what} ({npz_problem(exc)})") from None


def _read_npz(path, keys: tuple[str, ...], what: str) -> tuple[dict, dict[str, np.ndarray]]:
    with open_npz(path, what) as npz:
        if "__meta__" not in npz.files:
            raise DataError(f"{path} is not an mmhash {what} (no __meta__ record)")
        meta = json.loads(str(npz["__meta__"]))
        if not isinstance(meta, dict):
            raise DataError(f"{path} is not an mmhash {what} (its __meta__ record is not an "
                            "object)")
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise DataError(f"{path} is not an mmhash {what} (missing {', '.join(missing)})")
        found = {k: npz[k] for k in keys}
        if "ids" in npz.files:
            found["ids"] = npz["ids"].astype(str)
        return meta, found


def _format_problem(path, found, expected: str, what: str) -> str:
    family, _, version = expected.rpartition("/")
    if isinstance(found, str) and found.startswith(family + "/"):
        return (f"{path} is an mmhash {what} of format {found}, written by a newer mmhash; this "
                f"one reads {expected}: upgrade mmhash")
    return f"{path} is not an mmhash {what} (format {found!r}, expected {expected})"
