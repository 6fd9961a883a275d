"""Reader for multi-view ``.mat`` files that keep the views in a cell: ``X{1}, X{2}, ..., gt``.

This is the layout of the CPM-Nets family of multi-view files (``cub_googlenet_doc2vec_c10.mat``:
``X`` a 1x2 cell of 600x1024 and 600x300 doubles, ``gt`` 600x1 uint8 classes 1..10). Each
``X{v}`` is an n x d_v matrix; the labels are a class-id column or an n x c label matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmhash.data.formats._common import (
    RawData,
    as_features,
    check_rows,
    label_rows,
    labels_from_parts,
)
from mmhash.data.formats.matfile import open_keyed
from mmhash.errors import DataError

# Label variable names used by multi-view .mat files, most common first.
LABEL_KEYS = ("gt", "Y", "y", "truth", "truelabel", "gnd", "label", "labels", "L")


def default_view_names(n_views: int) -> list[str]:
    """``image``, ``text`` for two views (the first view is the image side), else ``view0``..."""
    return ["image", "text"] if n_views == 2 else [f"view{i}" for i in range(n_views)]


def read_cell(
    path: str | Path,
    *,
    view_names: Sequence[str] | None = None,
    cell_key: str = "X",
    label_key: str | None = None,
) -> RawData:
    """Read a cell-array multi-view ``.mat`` file (MATLAB v5 or v7.3).

    Parameters
    ----------
    path : the ``.mat`` file.
    view_names : one name per cell element; default :func:`default_view_names`.
    cell_key : the cell variable (default ``X``).
    label_key : the label variable; default the first of ``LABEL_KEYS`` in the file.

    Returns
    -------
    RawData with float64 views (n, d_v) in cell order, uint8 labels (n, c) and no ``parts``
    (these files carry no split). A view stored as d x n (features as columns, which some
    multi-view files do) is transposed when only that orientation matches the label count;
    ``notes["transposed"]`` lists such views.
    """
    path = Path(path)
    with open_keyed(path) as f:
        keys = f.keys()
        if label_key is None:
            label_key = next((k for k in LABEL_KEYS if k in keys), None)
        if cell_key not in keys or label_key is None or label_key not in keys:
            raise DataError(
                f"{path}: missing key(s); expected a cell {cell_key!r} and labels "
                f"({label_key or ' or '.join(LABEL_KEYS)}); found {', '.join(keys) or '(none)'}"
            )
        arrays = f.read([cell_key, label_key])
    cell = arrays[cell_key]
    if not (isinstance(cell, np.ndarray) and cell.dtype == object) or cell.size == 0:
        raise DataError(f"{path}: {cell_key!r} is not a non-empty cell array of view matrices")
    elements = list(cell.reshape(-1, order="F"))
    names = list(view_names) if view_names is not None else default_view_names(len(elements))
    if len(names) != len(elements):
        raise DataError(f"{path}: {len(elements)} views in {cell_key!r} for {len(names)} names")
    n = label_rows(arrays[label_key])
    views, transposed = {}, []
    for i, (name, element) in enumerate(zip(names, elements), start=1):
        X = as_features(element, f"{cell_key}{{{i}}}", str(path))
        if X.shape[0] != n and X.shape[1] == n:
            X = np.ascontiguousarray(X.T)
            transposed.append(name)
        views[name] = X
    labels, notes = labels_from_parts([(label_key, arrays[label_key])], str(path))
    check_rows(views, labels, str(path))
    notes = {"keys": {"cell": cell_key, "labels": label_key}, **notes}
    if transposed:
        notes["transposed"] = transposed
    return RawData(views, labels, {}, [path], "cell", notes)
