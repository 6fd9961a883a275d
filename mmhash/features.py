"""A user's feature file, read in row chunks: what ``mmhash encode`` and ``mmhash search`` take.

Formats, by extension:

* ``.npy``: one ``(n, d)`` array, memory-mapped, so a chunk is read from disk when it is encoded
  and the file never sits in memory whole;
* ``.npz``: the array under ``--key`` (default: the only 2-D array); an ``ids`` array of ``n``
  entries beside it, if present, names the rows;
* ``.mat`` (MATLAB v5 or v7.3): the variable under ``--key`` (default: the only 2-D numeric one);
* ``.csv``: a header row, then one row per item, streamed with pandas in chunks; a column named
  ``id`` names the rows, every other column is a feature. The header is required: a first row
  of numbers only is refused rather than read as names (which would drop an item and shift every
  id) or guessed to be data. The one all-numeric header accepted is ``0,1,...,d-1``, the column
  positions ``pandas.DataFrame.to_csv`` writes for a frame without names.

Row ids are kept as strings; without ids, rows are named by their position (0, 1, ...).
Every problem -- a missing or unreadable file, no or several candidate arrays, no rows, NaN or
infinite values, a non-numeric column -- is one :class:`DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmhash.errors import DataError

#: Extensions :func:`open_features` reads.
FEATURE_FORMATS = (".npy", ".npz", ".mat", ".csv")
#: Rows per chunk: a chunk's float64 copy is at most ~256 MB at d = 1,000.
CHUNK_ROWS = 32768
ID_KEY = "ids"
ID_COLUMN = "id"


@dataclass
class FeatureFile:
    """An opened feature file: ``n_rows`` x ``n_features``, read by :meth:`chunks`.

    ``ids``: str array (n_rows,) of row names, or None (rows are named by position).
    """

    path: Path
    n_rows: int
    n_features: int
    ids: np.ndarray | None
    _array: np.ndarray | None = None  # .npy (memory map), .npz, .mat: the whole array
    _csv_columns: list[str] | None = None

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
        """float64 ``(<= rows, n_features)`` blocks in file order, each checked finite."""
        start = 0
        for block in self._raw_chunks(rows):
            block = np.asarray(block, dtype=np.float64)
            if not np.isfinite(block).all():
                bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
                raise DataError(f"{self.path}: row {bad} holds NaN or infinite values")
            start += len(block)
            yield block

    def _raw_chunks(self, rows: int) -> Iterator[np.ndarray]:
        if self._array is not None:
            for start in range(0, self.n_rows, rows):
                yield self._array[start:start + rows]
            return
        import pandas as pd

        features = [c for c in self._csv_columns or [] if c != ID_COLUMN]
        try:
            start = 0
            for frame in pd.read_csv(self.path, usecols=features, chunksize=rows):
                yield _numeric(frame[features], self.path, start)
                start += len(frame)
        except DataError:
            raise
        except (ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{self.path}: cannot read the CSV rows ({exc})") from None


def open_features(path: str | Path, key: str | None = None) -> FeatureFile:
    """Open a feature file (see the module docstring); ``key`` picks the array of an ``.npz``
    or ``.mat`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"feature file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in FEATURE_FORMATS:
        raise DataError(f"{path}: unknown feature file type {suffix or '(none)'!r}; use one of "
                        f"{', '.join(FEATURE_FORMATS)}")
    if suffix == ".csv":
        opened = _open_csv(path)
    else:
        array, ids = _open_array(path, suffix, key)
        if array.ndim != 2:
            raise DataError(f"{path}: features must be a 2-D (rows, features) array, got shape "
                            f"{array.shape}")
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise DataError(f"{path}: features must be real numbers, got dtype {array.dtype}")
        opened = FeatureFile(path, array.shape[0], array.shape[1], ids, _array=array)
    if opened.n_rows == 0 or opened.n_features == 0:
        raise DataError(f"{path}: no feature rows to read (shape {opened.n_rows} x "
                        f"{opened.n_features})")
    if opened.ids is not None and len(opened.ids) != opened.n_rows:
        raise DataError(f"{path}: {len(opened.ids)} ids for {opened.n_rows} feature rows")
    return opened


def _open_array(path: Path, suffix: str, key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    if suffix == ".npy":
        if key is not None:
            raise DataError(f"{path}: a .npy file holds one array; --key is for .npz and .mat")
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    from mmhash.data.formats.matfile import open_keyed

    with open_keyed(path) as f:
        keys = f.keys()
        if key is None:
            candidates = [k for k in keys if k != ID_KEY and not k.startswith("__")]
            shapes = {k: np.shape(f.read([k])[k]) for k in candidates}
            matrices = [k for k, shape in shapes.items() if len(shape) == 2]
            if len(matrices) != 1:
                raise DataError(f"{path}: name the feature array with --key; it holds "
                                f"{', '.join(f'{k} {shapes[k]}' for k in candidates) or 'none'}")
            key = matrices[0]
        elif key not in keys:
            raise DataError(f"{path}: no array named {key!r}; it holds {', '.join(keys)}")
        found = f.read([key, ID_KEY] if ID_KEY in keys else [key])
    ids = found.get(ID_KEY)
    return np.asarray(found[key]), None if ids is None else np.asarray(ids).astype(str).ravel()


def _open_csv(path: Path) -> FeatureFile:
    import pandas as pd

    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
        header = pd.read_csv(path, nrows=0).columns.tolist()
        _check_header(path, first.iloc[0].tolist() if len(first) else [])
        ids = (pd.read_csv(path, usecols=[ID_COLUMN], dtype=str)[ID_COLUMN].to_numpy()
               if ID_COLUMN in header else None)
        n_rows = (len(ids) if ids is not None
                  else sum(len(c) for c in pd.read_csv(path, usecols=[header[0]],
                                                       chunksize=CHUNK_ROWS)))
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a readable CSV with a header row ({exc})") from None
    features = [c for c in header if c != ID_COLUMN]
    return FeatureFile(path, n_rows, len(features), ids, _csv_columns=header)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_header(path: Path, cells: list[str]) -> None:
    """Refuse a first row that is data: every cell a number, and not the column positions
    ``0,1,...`` that pandas writes as the header of a frame without column names."""
    cells = [c.strip() for c in cells]
    if not cells or not all(_is_number(c) for c in cells):
        return
    if cells == [str(i) for i in range(len(cells))]:
        return
    raise DataError(f"{path}: the first row holds only numbers, but a feature CSV starts with a "
                    f"header row naming its columns (e.g. id,f0,f1,...); add one (the first "
                    f"row would otherwise be dropped as names)")


def _numeric(frame, path: Path, start: int = 0) -> np.ndarray:
    """float64 ``(rows, columns)`` of a chunk of CSV rows whose first row is data row
    ``start``; a cell that is not a number is one :class:`DataError` naming its column and
    line."""
    import pandas as pd

    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if not bad:
        return frame.to_numpy(dtype=np.float64)
    column = bad[0]
    values = frame[column]
    parsed = pd.to_numeric(values, errors="coerce")
    rows = np.flatnonzero(parsed.isna().to_numpy() & values.notna().to_numpy())
    row = int(rows[0]) if len(rows) else 0
    listed = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
    # line numbers count the header as line 1, as an editor shows them
    raise DataError(f"{path}: column(s) {listed} are not numbers (line {start + row + 2}, "
                    f"column {column}: {values.iloc[row]!r})")
