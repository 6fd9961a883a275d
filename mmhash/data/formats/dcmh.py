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


def read_role(path: str | Path, role: str) -> tuple[np.ndarray, str]:
    """One of the three files as mmhash arrays, and its format (``mat-v5`` or ``mat-v7.3``).

    ``role`` is ``image`` or ``text`` (float64 (n, d)) or ``labels`` (uint8 (n, c) multi-hot);
    :class:`DataError` for a missing file, a missing variable or a non-numeric matrix. Also how
    ``synthetic-mirflickr`` reads the real ``YAll`` and ``LAll``.
    """
    path = Path(path)
    variable = FILES[role][1]
    array, fmt = _read_one(path, variable)
    if role == "labels":
        return multi_hot(array, variable, str(path)), fmt
    return as_features(array, variable, str(path)), fmt


def family_parts(n: int, query_rows: int = QUERY_ROWS,
                 train_rows: int = TRAIN_ROWS) -> tuple[dict[str, np.ndarray], str]:
    """The family's split of ``n`` aligned rows: ``query`` rows ``0..query_rows-1``,
    ``retrieval`` the rest, ``train`` the fixed draw of ``train_rows`` retrieval rows (int64).

    The standard 20,015 rows with the standard sizes get the stored draw
    (``mirflickr25k.npz``); any other shape gets :func:`training_draw`. Returns the parts and
    a note saying which.
    """
    retrieval = np.arange(query_rows, n, dtype=np.int64)
    if (n, query_rows, train_rows) == (STANDARD_ROWS, QUERY_ROWS, TRAIN_ROWS):
        from mmhash.data.splits import stored_split

        train, origin = np.asarray(stored_split(STORED_SPLIT).train), "stored"
    else:
        train = training_draw(retrieval, train_rows)
        origin = f"drawn (not the standard {STANDARD_ROWS:,} rows)"
    parts = {"query": np.arange(query_rows, dtype=np.int64), "retrieval": retrieval,
             "train": train}
    return parts, (f"{origin}: {train_rows} rows of the retrieval set, "
                   f"default_rng({TRAIN_SEED})")


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
    for role in FILES:
        arrays[role], formats[role] = read_role(paths[role], role)
    views = {role: arrays[role] for role in ("image", "text")}
    labels = arrays["labels"]
    n = check_rows(views, labels, f"the DCMH files beside {paths['image']}")
    if n <= QUERY_ROWS + TRAIN_ROWS:
        raise DataError(f"{paths['labels']}: {n} rows; the protocol needs more than "
                        f"{QUERY_ROWS} queries + {TRAIN_ROWS} training rows")
    parts, training_note = family_parts(n)
    notes = {"files": {role: str(p) for role, p in paths.items()}, "formats": formats,
             "training_draw": training_note}
    return RawData(views, labels, parts, list(paths.values()), "dcmh", notes)
