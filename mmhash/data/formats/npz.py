"""Reader for ``.npz`` files that name their views directly (``image``, ``text``, ``Y``, ...).

The layout of the staged ``cub10.npz`` and ``uci_mfeat.npz``: one float matrix per view under the
view's name, labels as ``Y`` (n x c one-/multi-hot) or a class-id vector (``label``, ``labels``,
``gt``, ``y``), and optionally a split as index vectors ``query_idx``, ``train_idx``,
``database_idx`` (or ``retrieval_idx``) and ``validation_idx``. An ``.npz`` with wikiData-style
keys (``I_tr``, ...) is read by :mod:`mmhash.data.formats.keyed` instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmhash.data.formats._common import RawData, as_features, check_rows, labels_from_parts
from mmhash.data.formats.matfile import open_keyed
from mmhash.errors import DataError

LABEL_KEYS = ("Y", "labels", "label", "gt", "y", "L")
SPLIT_KEYS = {
    "query_idx": "query",
    "train_idx": "train",
    "database_idx": "database",
    "retrieval_idx": "retrieval",
    "validation_idx": "validation",
}


def read_npz(path: str | Path) -> RawData:
    """Read a named-view ``.npz``.

    Returns
    -------
    RawData: every 2-D numeric array with one row per label row is a view (float64), in file
    order; labels uint8 (n, c); ``parts`` from the ``*_idx`` keys (int64 row indices), empty
    when there are none.
    """
    path = Path(path)
    with open_keyed(path) as f:
        keys = f.keys()
        label_key = next((k for k in LABEL_KEYS if k in keys), None)
        if label_key is None:
            raise DataError(
                f"{path}: missing labels; expected one of {', '.join(LABEL_KEYS)}; "
                f"found {', '.join(keys) or '(none)'}"
            )
        arrays = f.read(keys)
    labels, notes = labels_from_parts([(label_key, arrays[label_key])], str(path))
    n = labels.shape[0]
    views = {}
    for k, a in arrays.items():
        if k in LABEL_KEYS or k in SPLIT_KEYS:
            continue
        if a.ndim == 2 and a.shape[0] == n and np.issubdtype(a.dtype, np.number):
            views[k] = as_features(a, k, str(path))
    if not views:
        raise DataError(f"{path}: no view matrices with {n} rows (keys: {', '.join(keys)})")
    check_rows(views, labels, str(path))
    parts = {}
    for k, part in SPLIT_KEYS.items():
        if k in arrays:
            idx = np.asarray(arrays[k])
            if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
                raise DataError(f"{path}: {k} must be a 1-D integer index vector")
            parts[part] = idx.astype(np.int64)
    return RawData(views, labels, parts, [path], "npz", {"keys": {"labels": label_key}, **notes})
