"""What every reader returns, and the checks they share (rows, labels, finiteness)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmhash.errors import DataError

# Names of the parts a file may carry. "test" is the query side of a train/test release and
# "database" the retrieval side of a train/query/database release.
PART_NAMES = ("train", "test", "query", "database", "retrieval", "validation")


@dataclass
class RawData:
    """Plain arrays read from one source, before a split is attached.

    Attributes
    ----------
    views : dict str -> float64 array (n, d_v)
        Paired views in the source's order; rows are items.
    labels : uint8 array (n, c)
        Multi-hot labels (class ids are turned into one-hot columns).
    parts : dict str -> int64 array
        The split the file itself carries, as row indices (keys from ``PART_NAMES``); empty when
        the file has none.
    files : list of Path
        Every file that was read.
    reader : str
        Registry name of the reader (``svcl``, ``wikidata``, ``cnn``, ``cell``, ``mfeat``,
        ``triple``, ``npz``).
    notes : dict
        Reader-specific facts worth recording in ``Dataset.info`` (keys used, class ids, ...).
    """

    views: dict[str, np.ndarray]
    labels: np.ndarray
    parts: dict[str, np.ndarray]
    files: list[Path]
    reader: str
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])


#: How the field's files name their collection (``RawData.notes["collection"]``): a fragment
#: at the start of the name or after a separator (``bonus-iall.mat`` is not NUS-WIDE).
_COLLECTION_NAMES = re.compile(r"(?:^|[^a-z])(mirflickr|flickr|nus|mscoco|coco|iapr)")
_COLLECTIONS = {"mirflickr": "mirflickr25k", "flickr": "mirflickr25k", "nus": "nuswide10",
                "mscoco": "mscoco", "coco": "mscoco", "iapr": "iapr12"}


def collection_of(name: str) -> str | None:
    """The benchmark collection a file name belongs to (``mirflickr25k``, ``nuswide10``,
    ``mscoco``, ``iapr12``), or None: ``nus-wide-tc10-yall.mat`` -> ``nuswide10``."""
    match = _COLLECTION_NAMES.search(name.lower())
    return _COLLECTIONS[match.group(1)] if match else None


def where(files: Path | Sequence[Path]) -> str:
    """How an error message names its source: one path, or the first and a count."""
    if isinstance(files, Path):
        return str(files)
    files = list(files)
    return str(files[0]) if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more)"


def as_features(x: Any, name: str, source: str) -> np.ndarray:
    """A stored matrix as float64 (n, d); sparse matrices are densified.

    Raises :class:`DataError` naming ``name`` and ``source`` for anything that is not a finite
    2-D numeric matrix (a 4-D array of raw images, a string, a cell, NaN values).
    """
    if hasattr(x, "toarray"):  # scipy.sparse: TF-IDF and bag-of-words are often stored sparse
        x = x.toarray()
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{source}: {name} is not a numeric matrix (dtype {x.dtype})")
    if x.ndim != 2:
        hint = " (raw images? mmhash needs one feature vector per row)" if x.ndim > 2 else ""
        raise DataError(f"{source}: {name} has shape {x.shape}, expected (n, d){hint}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise DataError(
            f"{source}: {name} has NaN or infinite values (first at row {bad[0]}, column {bad[1]})"
        )
    return x


def is_class_vector(y: np.ndarray) -> bool:
    """True for a 1-D vector or an n x 1 / 1 x n matrix of class ids (not a label matrix)."""
    return y.ndim == 1 or (y.ndim == 2 and 1 in y.shape)


def label_rows(y: Any) -> int:
    """Number of items a stored label array covers (a class-id row vector counts its length)."""
    shape = np.shape(y)
    if len(shape) == 0:
        return 0
    return int(np.prod(shape)) if len(shape) == 1 or 1 in shape else int(shape[0])


def class_ids(y: Any, name: str, source: str) -> np.ndarray:
    """Class ids as int64 (n,) from a vector or an n x 1 / 1 x n matrix of whole numbers >= 0."""
    y = np.asarray(y.toarray() if hasattr(y, "toarray") else y)
    if not np.issubdtype(y.dtype, np.number) or not is_class_vector(y):
        raise DataError(f"{source}: {name} is not a class-id vector (shape {y.shape}, {y.dtype})")
    y = y.reshape(-1)
    if not np.isfinite(y).all() or (y != np.round(y)).any() or (y < 0).any():
        raise DataError(f"{source}: {name} must hold whole class ids >= 0")
    return y.astype(np.int64)


def one_hot(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """One-hot uint8 (n, c) from class ids, and the id of the first column.

    Ids are taken as 1-based (MATLAB's convention, column j = class j+1) unless a 0 occurs, in
    which case they are 0-based. A class that never occurs still gets its (empty) column, so the
    column count is the largest class id, whatever subset of the classes a file holds.
    """
    base = 0 if ids.size and ids.min() == 0 else 1
    c = int(ids.max()) - base + 1 if ids.size else 0
    out = np.zeros((ids.size, c), dtype=np.uint8)
    out[np.arange(ids.size), ids - base] = 1
    return out, base


def multi_hot(y: Any, name: str, source: str) -> np.ndarray:
    """A stored n x c label matrix (one-hot or multi-hot, c > 1) as uint8 0/1."""
    y = np.asarray(y.toarray() if hasattr(y, "toarray") else y)
    if (not np.issubdtype(y.dtype, np.number) and y.dtype != bool) or y.ndim != 2:
        raise DataError(f"{source}: {name} is not an n x c label matrix (shape {y.shape})")
    if not np.isfinite(y).all() or (y < 0).any():
        raise DataError(f"{source}: {name} has negative or non-finite label values")
    return (y > 0).astype(np.uint8)


def labels_from_parts(blocks: Sequence[tuple[str, Any]], source: str) -> tuple[np.ndarray, dict]:
    """Stack the label blocks of a file's parts into one uint8 (n, c) multi-hot matrix.

    ``blocks`` is ``[(key, stored_array), ...]`` in row order. Either every block is a class-id
    vector (n x 1, as in wikiData.mat's ``L_tr``; converted to one-hot over all parts together so
    the columns agree) or every block is an n x c matrix with the same c.

    Returns the labels and notes for ``Dataset.info`` (``label_format``, ``first_class_id``).
    """
    arrays = [np.asarray(a.toarray() if hasattr(a, "toarray") else a) for _, a in blocks]
    vector = [is_class_vector(a) for a in arrays]
    if all(vector):
        ids = np.concatenate([class_ids(a, k, source) for (k, _), a in zip(blocks, arrays)])
        labels, base = one_hot(ids)
        return labels, {"label_format": "class ids", "first_class_id": base}
    if any(vector):
        kinds = ", ".join(f"{k} {a.shape}" for (k, _), a in zip(blocks, arrays))
        raise DataError(f"{source}: label blocks mix class-id vectors and label matrices: {kinds}")
    mats = [multi_hot(a, k, source) for (k, _), a in zip(blocks, arrays)]
    widths = {m.shape[1] for m in mats}
    if len(widths) != 1:
        kinds = ", ".join(f"{k} {m.shape}" for (k, _), m in zip(blocks, mats))
        raise DataError(f"{source}: label matrices have different class counts: {kinds}")
    return np.vstack(mats), {"label_format": "label matrix"}


def check_rows(views: Mapping[str, np.ndarray], labels: np.ndarray, source: str) -> int:
    """Raise :class:`DataError` unless every view and the labels have the same number of rows."""
    counts = {f"view {v!r}": X.shape[0] for v, X in views.items()}
    counts["labels"] = labels.shape[0]
    if len(set(counts.values())) != 1:
        listed = ", ".join(f"{k}: {c}" for k, c in counts.items())
        raise DataError(f"{source}: views and labels must have the same number of rows ({listed})")
    return labels.shape[0]


def consecutive_parts(sizes: Sequence[tuple[str, int]]) -> dict[str, np.ndarray]:
    """Row indices of parts stacked one after the other: [("train", 3), ("test", 2)] -> ..."""
    parts, start = {}, 0
    for name, size in sizes:
        parts[name] = np.arange(start, start + size, dtype=np.int64)
        start += size
    return parts


def stack_parts(blocks: Mapping[str, tuple[dict[str, np.ndarray], np.ndarray]], what: str
                ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Stack parts a file set keeps apart (part -> (views, labels), in row order) into one set.

    Returns the stacked views and labels and each part's rows (:func:`consecutive_parts`).
    :class:`DataError` naming ``what`` when the parts disagree on a view's or the labels' width.
    """
    first_views = next(iter(blocks.values()))[0]
    widths = {part: (*(X.shape[1] for X in views.values()), labels.shape[1])
              for part, (views, labels) in blocks.items()}
    if len(set(widths.values())) != 1:
        raise DataError(f"{what}: the {' and '.join(blocks)} parts have different widths "
                        f"({', '.join([*first_views, 'labels'])}): {widths}")
    views = {v: np.concatenate([block_views[v] for block_views, _ in blocks.values()])
             for v in first_views}
    labels = np.concatenate([block_labels for _, block_labels in blocks.values()])
    return views, labels, consecutive_parts([(p, len(b[1])) for p, b in blocks.items()])
