"""Reader for UCMFH's CLIP feature pickles: ``train.pkl``, ``query.pkl``, ``retrieval.pkl``.

UCMFH (Xia et al., Information Fusion 2023; XinyuXia97/UCMFH@116f015 ``load_dataset.py:27-53``)
keeps each part of a set in one pickle holding a dict ``{"image": (n, 512), "text": (n, 512),
"label": (n, c)}`` of CLIP ViT-B/32 features and multi-hot labels (it casts image and text to
float32 and labels to int64). Later CLIP-era papers reuse these files. They are read with
:func:`~mmhash.data.formats.plainpickle.load_plain_pickle`, which admits arrays and containers
only, never ``pickle.load``.

The three parts are stacked train, query, retrieval, and ``parts`` says which rows are which:
the ``ucmfh`` protocol uses them as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmhash.data.formats._common import RawData, check_rows, collection_of, stack_parts
from mmhash.data.formats._items import as_float32, strict_multi_hot
from mmhash.data.formats.plainpickle import load_plain_pickle
from mmhash.errors import DataError

PART_FILES = {"train": "train.pkl", "query": "query.pkl", "retrieval": "retrieval.pkl"}
KEYS = {"image": "image", "text": "text", "labels": "label"}


def ucmfh_folder(path: str | Path) -> Path | None:
    """The folder of the UCMFH set ``path`` names (a folder holding any of the three pickles,
    or one of them), or None when ``path`` is neither."""
    path = Path(path)
    if path.is_dir():
        return path if any((path / f).is_file() for f in PART_FILES.values()) else None
    return path.parent if path.name in PART_FILES.values() else None


def _read_part(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    data = load_plain_pickle(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict with keys {', '.join(KEYS.values())}, found "
                        f"a {type(data).__name__}")
    missing = [k for k in KEYS.values() if k not in data]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}; expected "
                        f"{', '.join(KEYS.values())}; found {', '.join(map(str, data)) or 'none'}")
    labels = strict_multi_hot(np.asarray(data["label"]), "label", str(path))
    views = {}
    for view in ("image", "text"):
        X = np.asarray(data[view])
        if X.ndim != 2:
            raise DataError(f"{path}: {view} has shape {X.shape}, expected (n, d)")
        views[view] = np.ascontiguousarray(as_float32(X, view, str(path), 0))  # float32 as is
    check_rows(views, labels, str(path))
    return views, labels


def read_ucmfh(path: str | Path) -> RawData:
    """Read the three pickles of the UCMFH set ``path`` is (or is one of).

    Returns RawData with float32 views ``image``/``text``, uint8 labels, ``parts`` ``train``,
    ``query``, ``retrieval`` (rows of the stacked parts, in that order), and
    ``notes["collection"]`` from the folder name (``mirflickr``, ``nus-wide``, ``mscoco``).
    """
    folder = ucmfh_folder(path) or Path(path)
    paths = {part: folder / name for part, name in PART_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"a UCMFH set needs train.pkl, query.pkl and retrieval.pkl in one "
                        f"folder; missing: {', '.join(missing)}")
    views, labels, parts = stack_parts({part: _read_part(p) for part, p in paths.items()},
                                       str(folder))
    notes = {"files": {p: str(path) for p, path in paths.items()},
             "collection": collection_of(folder.name)}
    return RawData(views, labels, parts, list(paths.values()), "ucmfh", notes)
