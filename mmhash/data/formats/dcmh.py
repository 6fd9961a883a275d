"""Readers for the DCMH family's three aligned ``.mat`` files, and UCCH's VGG variant of them.

``<prefix>-iall.mat`` (``IAll``), ``<prefix>-yall.mat`` (``YAll``: binary tag vectors, 1,386-d
for MIRFlickr-25K, 1,000-d for NUS-WIDE) and ``<prefix>-lall.mat`` (``LAll``: multi-hot labels,
24 / 10), items as rows, rows aligned across the files: MIRFlickr-25K (``mirflickr25k-*``) and
NUS-WIDE 10 concepts (``nus-wide-tc10-*``) as DCMH (Jiang & Li, CVPR 2017) circulated them and
DJSRH, JDSH, DGCPN and UCCH load them. Two variants of ``IAll`` circulate under one name:

- the **raw images**, 4-D uint8, MATLAB v7.3: what DCMH's, DJSRH's and UCCH's loaders read and
  feed to a CNN (UCCH ``src/cmdataset.py:126-140``: h5py, ``transpose([0,3,2,1])`` to N x H x W
  x 3). Only their shape is read here: :func:`read_dcmh` refuses them in one line that gives the
  ``mmhash features`` command which turns them into a feature file;
- a 2-D feature matrix (e.g. 4,096-d VGG fc7, as NRCH ships it).

UCCH's feature files (penghu-cs/UCCH@0c20e62 ``src/cmdataset.py:162-164, 200-202``) replace the
image file by ``mirflickr25k-iall-vgg.mat`` / ``nus-wide-tc10-xall-vgg.mat`` (``XAll``, VGG-19
fc7) beside the same ``-yall`` and ``-lall`` files: :func:`read_ucch_vgg`.

MATLAB v5 or v7.3. Given any one of the files, the others are found beside it by the suffix.
Feature matrices are read as float32 items x features whichever way the file stores them
(DJSRH transposes NUS-WIDE's ``YAll`` read with h5py, ``datasets.py:201-202``): see
:mod:`mmhash.data.formats._items`. The split is a protocol's (:mod:`mmhash.data.protocols`);
the readers return none. ``family_parts`` is the ``dcmh`` protocol's rule.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmhash.data.formats._common import RawData, as_features, check_rows, collection_of
from mmhash.data.formats._items import item_labels, item_matrix
from mmhash.data.formats.matfile import open_keyed, require_file
from mmhash.errors import DataError

#: role -> (file suffix, variable) of the three files.
FILES = {"image": ("iall", "IAll"), "text": ("yall", "YAll"), "labels": ("lall", "LAll")}
#: UCCH's image feature files that stand in for ``-iall.mat``: suffix -> variable.
VGG_FILES = {"iall-vgg": "XAll", "xall-vgg": "XAll"}
_SUFFIX = re.compile(r"-(iall|yall|lall|iall-vgg|xall-vgg)$", re.IGNORECASE)
QUERY_ROWS = 2000
TRAIN_ROWS = 5000
TRAIN_SEED = 0
#: Rows of the standard release, whose training draw is stored with mmhash.
STANDARD_ROWS = 20015
STORED_SPLIT = "mirflickr25k.npz"


def _match(path: Path) -> re.Match | None:
    return _SUFFIX.search(path.stem) if path.suffix.lower() == ".mat" else None


def is_dcmh_path(path: str | Path) -> bool:
    """Whether ``path`` is named like one of the family's files (``<prefix>-iall.mat``,
    ``-yall.mat``, ``-lall.mat``, or UCCH's ``-iall-vgg.mat`` / ``-xall-vgg.mat``)."""
    return _match(Path(path)) is not None


def is_vgg_path(path: str | Path) -> bool:
    """Whether ``path`` is UCCH's image feature file (``-iall-vgg.mat``/``-xall-vgg.mat``), or
    a tag/label file with one beside it and no plain ``-iall.mat``."""
    paths = dcmh_paths(path)
    match = _match(Path(path))
    if match.group(1).lower() in VGG_FILES:
        return True
    return match.group(1).lower() != "iall" and not paths["image"].is_file() and any(
        p.is_file() for p in _vgg_candidates(path).values())


def dcmh_paths(path: str | Path) -> dict[str, Path]:
    """The three files of the set ``path`` belongs to: role -> path (they may not exist). The
    image file is ``path`` itself when it is UCCH's ``-iall-vgg``/``-xall-vgg`` file."""
    path = Path(path)
    match = _match(path)
    if match is None:
        raise DataError(f"{path}: expected a <prefix>-iall.mat, -yall.mat or -lall.mat file")
    prefix = path.stem[: match.start()]
    paths = {role: path.with_name(f"{prefix}-{suffix}{path.suffix}")
             for role, (suffix, _) in FILES.items()}
    if match.group(1).lower() in VGG_FILES:
        paths["image"] = path
    return paths


def _vgg_candidates(path: str | Path) -> dict[str, Path]:
    path = Path(path)
    match = _match(path)
    prefix = path.stem[: match.start()]
    return {suffix: path.with_name(f"{prefix}-{suffix}{path.suffix}") for suffix in VGG_FILES}


def training_draw(retrieval: np.ndarray, size: int = TRAIN_ROWS,
                  seed: int = TRAIN_SEED) -> np.ndarray:
    """The fixed training rows: ``size`` rows of ``retrieval`` drawn with
    ``numpy.random.default_rng(seed)`` without replacement, sorted (int64)."""
    if len(retrieval) < size:
        raise DataError(f"the retrieval set has {len(retrieval)} rows; the protocol draws "
                        f"{size} training rows from it")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(retrieval, size=size, replace=False)).astype(np.int64)


def _open_checked(path: Path, variable: str):
    f = open_keyed(require_file(path, f"{variable} file"))
    if variable not in f.keys():
        found = ", ".join(f.keys()) or "none"
        f.close()
        raise DataError(f"{path}: no variable {variable!r} (found: {found})")
    return f


def read_role(path: str | Path, role: str) -> tuple[np.ndarray, str]:
    """One of the three files as mmhash arrays, and its format (``mat-v5`` or ``mat-v7.3``).

    ``role`` is ``image`` or ``text`` (float64 (n, d)) or ``labels`` (uint8 (n, c) multi-hot);
    :class:`DataError` for a missing file, a missing variable or a non-numeric matrix. How
    ``synthetic-mirflickr`` reads the real ``YAll`` and ``LAll``.
    """
    path = Path(path)
    variable = FILES[role][1]
    with _open_checked(path, variable) as f:
        if role == "labels":
            return item_labels(f, variable, str(path)), f.format
        return as_features(f.read([variable])[variable], variable, str(path)), f.format


def raw_images_message(path: Path, shape: tuple[int, ...]) -> str:
    """The one line for an ``IAll`` that holds raw images, with the command that makes
    features of them."""
    out = path.with_name(path.stem + "-vgg19.npz")
    return (f"{path}: IAll holds raw images {shape}, not features; make a feature file first: "
            f"mmhash features {path} --extractor vgg19-fc7 -o {out} (or clip-vit-b32), then "
            f"name that file's features as the image view: mmhash bench --dataset {out}")


def _read_family(paths: dict[str, Path], image_variable: str, reader: str,
                 description: str) -> RawData:
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"the {description} set needs three files side by side; missing: "
                        f"{', '.join(missing)}")
    formats = {}
    with _open_checked(paths["labels"], "LAll") as f:
        formats["labels"] = f.format
        labels = item_labels(f, "LAll", str(paths["labels"]))
    n = labels.shape[0]
    views = {}
    for role, variable in (("image", image_variable), ("text", "YAll")):
        with _open_checked(paths[role], variable) as f:
            formats[role] = f.format
            shape = f.shape(variable)
            if len(shape) == 4 and role == "image":
                raise DataError(raw_images_message(paths[role], shape))
            views[role] = item_matrix(f, variable, n, str(paths[role]))
    check_rows(views, labels, f"the {description} files beside {paths['labels']}")
    collection = collection_of(paths["labels"].name)
    notes = {"files": {role: str(p) for role, p in paths.items()}, "formats": formats,
             "collection": collection}
    return RawData(views, labels, {}, list(paths.values()), reader, notes)


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
    """Read the three DCMH-family files of which ``path`` is one.

    Returns
    -------
    RawData with float32 views ``image`` (n, d_image) and ``text`` (n, d_text), uint8 labels
    (n, c), no parts (the ``dcmh`` protocol splits them), ``notes["collection"]`` from the file
    names (``mirflickr25k``, ``nuswide10``, or None). :class:`DataError` for a missing file or
    variable, a raw-image ``IAll`` (with the ``mmhash features`` command to run), files whose
    rows disagree, non-multi-hot labels and NaN.
    """
    paths = dcmh_paths(path)
    if Path(path) != paths["image"] and is_vgg_path(path):
        return read_ucch_vgg(path)
    return _read_family(paths, "IAll", "dcmh", "DCMH")


def read_ucch_vgg(path: str | Path) -> RawData:
    """Read UCCH's VGG feature file (``-iall-vgg.mat``/``-xall-vgg.mat``, ``XAll``) with the
    ``-yall.mat`` and ``-lall.mat`` files beside it; as :func:`read_dcmh` otherwise."""
    paths = dcmh_paths(path)
    if paths["image"].name.lower().endswith(tuple(f"-{s}.mat" for s in VGG_FILES)):
        image = paths["image"]
    else:
        present = [p for p in _vgg_candidates(path).values() if p.is_file()]
        image = present[0] if present else next(iter(_vgg_candidates(path).values()))
    return _read_family({**paths, "image": image}, "XAll", "ucch-vgg", "UCCH VGG")


def read_extracted(path: str | Path) -> RawData:
    """Read image features written by ``mmhash features`` from a DCMH-family ``IAll`` of raw
    images, with the ``-yall.mat`` and ``-lall.mat`` files of that set.

    The feature file's provenance names the ``IAll`` file it was made from
    (``mirflickr25k-iall.mat``); its tag and label files are looked up beside the feature file,
    then beside the ``IAll`` file where it was. The feature file itself is one of the source
    files, so its provenance (extractor, weights, preprocessing) is in the fingerprint: two
    feature sets of the same images are never confused. Returns RawData as :func:`read_dcmh`.
    """
    import json

    path = Path(path)
    with open_keyed(path) as f:
        f.require(["features", "provenance"])
        record = json.loads(str(f.read(["provenance"])["provenance"][()]))
        features = np.asarray(f.read(["features"])["features"])
    try:
        source = record["source"]["files"][0]
        source_path = Path(source["path"])
    except (KeyError, IndexError, TypeError):
        raise DataError(f"{path}: its provenance names no source file") from None
    if _match(Path(source["name"])) is None:
        raise DataError(f"{path}: features of {source['name']}, not of a DCMH-family "
                        f"<prefix>-iall.mat; mmhash pairs such features with that set's -yall.mat "
                        f"and -lall.mat files")
    here = dcmh_paths(path.parent / source["name"])
    there = dcmh_paths(source_path)
    paths = {role: here[role] if here[role].is_file() else there[role]
             for role in ("text", "labels")}
    missing = [f"{here[role]} (or {there[role]})" for role, p in paths.items()
               if not p.is_file()]
    if missing:
        raise DataError(f"{path}: the features need their set's tag and label files; missing: "
                        f"{', '.join(missing)}")
    with _open_checked(paths["labels"], "LAll") as f:
        labels = item_labels(f, "LAll", str(paths["labels"]))
    with _open_checked(paths["text"], "YAll") as f:
        text = item_matrix(f, "YAll", labels.shape[0], str(paths["text"]))
    if features.ndim != 2 or features.dtype != np.float32:
        raise DataError(f"{path}: features is {features.dtype} {features.shape}, expected "
                        f"float32 (n, d)")
    views = {"image": np.ascontiguousarray(features), "text": text}
    check_rows(views, labels, f"{path} with {paths['labels']}")
    notes = {"files": {"image": str(path), **{r: str(p) for r, p in paths.items()}},
             "image_features": {k: record.get(k) for k in ("extractor", "weights",
                                                           "preprocessing")},
             "collection": collection_of(source["name"])}
    return RawData(views, labels, {}, [path, paths["text"], paths["labels"]], "extracted", notes)
