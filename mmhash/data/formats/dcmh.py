"""Reader for MIRFlickr-25K as the DCMH family circulates it: three aligned ``.mat`` files.

``mirflickr25k-iall.mat`` (``IAll``: image features, e.g. 4096-d VGG fc7), ``-yall.mat``
(``YAll``: the 1,386-d binary tag vectors) and ``-lall.mat`` (``LAll``: 24 multi-hot labels),
items as rows, rows aligned across the files (DCMH, Jiang & Li, CVPR 2017, and the many methods
built on its files: DJSRH, JDSH, DGCPN, UCCH, ...). MATLAB v5 or v7.3. Given any one of the
three paths, the other two are found beside it by the suffix.

The split is the family's protocol: rows ``0..1999`` are the queries, the rest the retrieval
set, and the training set a fixed draw of 5,000 rows from the retrieval set. For the 20,015-row
release the draw is the stored index file ``mmhash/data/splits/mirflickr25k.npz`` (written by
``datasets/make_splits.py``); a file of another length gets the same rule
(:func:`training_draw`) and is recorded as such.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmhash.data.formats._common import RawData, as_features, check_rows, multi_hot
from mmhash.data.formats.matfile import open_keyed, require_file
from mmhash.errors import DataError

#: role -> (file suffix, variable) of the three files.
FILES = {"image": ("iall", "IAll"), "text": ("yall", "YAll"), "labels": ("lall", "LAll")}
_SUFFIX = re.compile(r"-(iall|yall|lall)$", re.IGNORECASE)
QUERY_ROWS = 2000
TRAIN_ROWS = 5000
TRAIN_SEED = 0
#: Rows of the standard release, whose training draw is stored with mmhash.
STANDARD_ROWS = 20015
STORED_SPLIT = "mirflickr25k.npz"


def is_dcmh_path(path: str | Path) -> bool:
    """Whether ``path`` is named like one of the three files (``<prefix>-iall.mat`` ...)."""
    path = Path(path)
    return path.suffix.lower() == ".mat" and _SUFFIX.search(path.stem) is not None


def dcmh_paths(path: str | Path) -> dict[str, Path]:
    """The three files of the set ``path`` belongs to: role -> path (they may not exist)."""
    path = Path(path)
    match = _SUFFIX.search(path.stem)
    if match is None or path.suffix.lower() != ".mat":
        raise DataError(f"{path}: expected a <prefix>-iall.mat, -yall.mat or -lall.mat file")
    prefix = path.stem[: match.start()]
    return {role: path.with_name(f"{prefix}-{suffix}{path.suffix}")
            for role, (suffix, _) in FILES.items()}


def training_draw(retrieval: np.ndarray, size: int = TRAIN_ROWS,
                  seed: int = TRAIN_SEED) -> np.ndarray:
    """The fixed training rows: ``size`` rows of ``retrieval`` drawn with
    ``numpy.random.default_rng(seed)`` without replacement, sorted (int64)."""
    if len(retrieval) < size:
        raise DataError(f"the retrieval set has {len(retrieval)} rows; the protocol draws "
                        f"{size} training rows from it")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(retrieval, size=size, replace=False)).astype(np.int64)


def _read_one(path: Path, variable: str):
    with open_keyed(require_file(path, f"{variable} file")) as f:
        if variable not in f.keys():
            raise DataError(f"{path}: no variable {variable!r} (found: "
                            f"{', '.join(f.keys()) or 'none'})")
        return f.read([variable])[variable], f.format


def read_dcmh(path: str | Path) -> RawData:
    """Read the three DCMH MIRFlickr files of which ``path`` is one.

    Returns
    -------
    RawData with float64 views ``image`` (n, d_image) and ``text`` (n, d_text), uint8 labels
    (n, c), and ``parts``: ``query`` rows ``0..1999``, ``retrieval`` the rest, ``train`` the
    fixed 5,000-row draw from the retrieval set (see the module docstring).
    """
    paths = dcmh_paths(path)
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"the DCMH MIRFlickr set needs three files side by side; missing: "
                        f"{', '.join(missing)}")
    arrays, formats = {}, {}
    for role, (_, variable) in FILES.items():
        arrays[role], formats[role] = _read_one(paths[role], variable)
    views = {role: as_features(arrays[role], FILES[role][1], str(paths[role]))
             for role in ("image", "text")}
    labels = multi_hot(arrays["labels"], "LAll", str(paths["labels"]))
    n = check_rows(views, labels, f"the DCMH files beside {paths['image']}")
    if n <= QUERY_ROWS + TRAIN_ROWS:
        raise DataError(f"{paths['labels']}: {n} rows; the protocol needs more than "
                        f"{QUERY_ROWS} queries + {TRAIN_ROWS} training rows")
    retrieval = np.arange(QUERY_ROWS, n, dtype=np.int64)
    if n == STANDARD_ROWS:
        from mmhash.data.splits import stored_split

        train, origin = np.asarray(stored_split(STORED_SPLIT).train), "stored"
    else:
        train, origin = training_draw(retrieval), "drawn (not the standard 20,015 rows)"
    parts = {"query": np.arange(QUERY_ROWS, dtype=np.int64), "retrieval": retrieval,
             "train": train}
    notes = {"files": {role: str(p) for role, p in paths.items()}, "formats": formats,
             "training_draw": f"{origin}: {TRAIN_ROWS} rows of the retrieval set, "
                              f"default_rng({TRAIN_SEED})"}
    return RawData(views, labels, parts, list(paths.values()), "dcmh", notes)
