"""Matrices of the field's large benchmark files, read as items x features without copies.

NUS-WIDE's image features are 186,557 x 4,096 (3 GB as float32), MS-COCO's 122,218 x 4,096.
:func:`item_matrix` keeps them float32 (the precision they are stored in; every hasher converts
the rows it fits or encodes to float64 itself), reads a v7.3/HDF5 file a block of rows at a time
into one preallocated array (no float64 copy, no transposed copy of the whole view) and checks
finiteness block by block. The orientation follows the item count: the official loaders
transpose some of these matrices and not others (DJSRH transposes NUS-WIDE's ``YAll`` read with
h5py, UCCH reads its ``.h5py`` MS-COCO file N-first), so the axis whose length is the number of
labelled items is the item axis, whichever way the file stores it.
"""

from __future__ import annotations

import numpy as np

from mmhash.data.formats._common import multi_hot
from mmhash.data.formats.matfile import KeyedFile
from mmhash.errors import DataError

BLOCK_ROWS = 8192


def _item_axis(shape: tuple[int, ...], n: int, key: str, source: str) -> int:
    if len(shape) != 2:
        hint = ""
        if len(shape) == 4 and 3 in shape:
            hint = " (raw images: turn them into features with `mmhash features`)"
        raise DataError(f"{source}: {key} has shape {shape}, expected an items x features "
                        f"matrix with {n} items{hint}")
    if shape[0] == n:
        return 0
    if shape[1] == n:
        return 1
    raise DataError(f"{source}: {key} has shape {shape}, but the labels cover {n} items; the "
                    f"files disagree on the number of items")


def as_float32(block: object, key: str, source: str, first_row: int) -> np.ndarray:
    """``block`` (rows ``first_row``... of ``key``; dense or scipy.sparse) as float32, without a
    copy when it is float32 already; :class:`DataError` for non-numbers and NaN/inf (naming the
    first item and column)."""
    if hasattr(block, "toarray"):
        block = block.toarray()
    block = np.asarray(block)
    if block.dtype == object or not (np.issubdtype(block.dtype, np.number)
                                     or block.dtype == bool):
        raise DataError(f"{source}: {key} is not a numeric matrix (dtype {block.dtype})")
    block = block.astype(np.float32, copy=False)
    if not np.isfinite(block).all():
        row, col = np.argwhere(~np.isfinite(block))[0]
        raise DataError(f"{source}: {key} has NaN or infinite values (first at item "
                        f"{first_row + row}, column {col})")
    return block


def item_matrix(f: KeyedFile, key: str, n: int, source: str) -> np.ndarray:
    """``key`` of ``f`` as a float32 C-ordered ``(n, d)`` matrix, one row per item.

    A dense v7.3/HDF5 array is read :data:`BLOCK_ROWS` items at a time into the result, so the
    peak is the float32 result plus one block. :class:`DataError` for a missing key, a shape
    without an axis of ``n`` items (a 4-D array of raw images gets the `mmhash features` hint),
    a non-numeric array and NaN/inf values (naming the first).
    """
    if not f.blockwise(key):  # in memory already, or read whole: read it once
        whole = f.read([key])[key]
        whole = whole.T if _item_axis(np.shape(whole), n, key, source) == 1 else whole
        return np.ascontiguousarray(as_float32(whole, key, source, 0))
    shape = f.shape(key)
    axis = _item_axis(shape, n, key, source)
    d = shape[1 - axis]
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(n, start + BLOCK_ROWS)
        block = f.read_block(key, axis, start, stop)
        out[start:stop] = as_float32(block.T if axis == 1 else block, key, source, start)
    return out


def item_labels(f: KeyedFile, key: str, source: str, n: int | None = None) -> np.ndarray:
    """``key`` of ``f`` as uint8 multi-hot ``(n, c)``; with ``n`` given, oriented so that the
    item axis has ``n`` rows (else the longer axis is taken as the items)."""
    labels = f.read([key])[key]
    labels = np.asarray(labels.toarray() if hasattr(labels, "toarray") else labels)
    if labels.ndim == 2:
        items = n if n is not None else max(labels.shape)
        if labels.shape[0] != items and labels.shape[1] == items:
            labels = labels.T
    return strict_multi_hot(labels, key, source)


def strict_multi_hot(labels: np.ndarray, key: str, source: str) -> np.ndarray:
    """An items x labels matrix of 0/1 values as uint8; :class:`DataError` for other values
    (class ids or scores are not multi-hot labels) and for anything but a matrix."""
    if labels.ndim == 2 and np.issubdtype(labels.dtype, np.number):
        values = np.unique(labels)
        if not np.isin(values, (0, 1)).all():  # class ids or scores, not multi-hot
            shown = ", ".join(str(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
            raise DataError(f"{source}: {key} is not a 0/1 multi-hot label matrix (values "
                            f"{shown})")
    return multi_hot(labels, key, source)
