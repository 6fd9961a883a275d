"""Readers for UCCH's one-file feature sets: MS-COCO (``XAll``/``YAll``/``LAll``) and IAPR TC-12
(database and test parts).

UCCH (Hu et al., TPAMI 2023; penghu-cs/UCCH@0c20e62 ``src/cmdataset.py``) ships, besides the
DCMH-style MIRFlickr and NUS-WIDE files (:mod:`mmhash.data.formats.dcmh`):

- ``MSCOCO_deep_doc2vec_data_rand.h5py`` (lines 213-217): a plain HDF5 file with ``XAll``
  (VGG-19 fc7, 4,096-d), ``YAll`` (Doc2Vec, 300-d) and ``LAll`` (80 labels), stored items first
  and read with h5py without a transpose: :func:`read_xyl` (any ``.h5py``/``.h5``/``.mat``
  holding those three keys);
- ``iapr-tc12-rand.mat`` (lines 176-187): ``VDatabase``, ``YDatabase``, ``databaseL``,
  ``VTest``, ``YTest``, ``testL``, stacked database first, then test: :func:`read_dbtest`.

Both are read as float32 items x features (:mod:`mmhash.data.formats._items`); the split is a
protocol's (``ucch`` by default: the last 5,000 / 2,000 rows are the queries).
"""

from __future__ import annotations

from pathlib import Path

from mmhash.data.formats._common import RawData, check_rows, collection_of, stack_parts
from mmhash.data.formats._items import item_labels, item_matrix
from mmhash.data.formats.matfile import open_keyed

XYL_KEYS = ("XAll", "YAll", "LAll")
#: part -> (image key, text key, label key), in the order UCCH stacks them.
DBTEST_KEYS = {"database": ("VDatabase", "YDatabase", "databaseL"),
               "test": ("VTest", "YTest", "testL")}


def read_xyl(path: str | Path) -> RawData:
    """Read a file holding ``XAll`` (image), ``YAll`` (text) and ``LAll`` (labels).

    Returns RawData with float32 views ``image``/``text``, uint8 labels, no parts, and
    ``notes["collection"]`` from the file name (``mscoco`` for UCCH's file).
    """
    path = Path(path)
    with open_keyed(path) as f:
        f.require(XYL_KEYS)
        labels = item_labels(f, "LAll", str(path))
        n = labels.shape[0]
        views = {"image": item_matrix(f, "XAll", n, str(path)),
                 "text": item_matrix(f, "YAll", n, str(path))}
        fmt = f.format
    check_rows(views, labels, str(path))
    notes = {"keys": dict(zip(("image", "text", "labels"), XYL_KEYS)), "format": fmt,
             "collection": collection_of(path.name)}
    return RawData(views, labels, {}, [path], "xyl", notes)


def read_dbtest(path: str | Path) -> RawData:
    """Read IAPR TC-12 as UCCH ships it: database rows first, then the test rows.

    Returns RawData with float32 views, uint8 labels, ``parts`` ``database`` and ``test`` (the
    file's own split; the ``ucch`` protocol takes the last 2,000 rows, which are the test rows
    of the standard file), ``notes["collection"]`` from the file name.
    """
    path = Path(path)
    blocks = {}
    with open_keyed(path) as f:
        f.require([k for keys in DBTEST_KEYS.values() for k in keys])
        for part, (image, text, label) in DBTEST_KEYS.items():
            labels = item_labels(f, label, str(path))
            n = labels.shape[0]
            blocks[part] = ({"image": item_matrix(f, image, n, str(path)),
                             "text": item_matrix(f, text, n, str(path))}, labels)
            check_rows(blocks[part][0], labels, f"{path} ({part} part)")
        fmt = f.format
    views, labels, parts = stack_parts(blocks, str(path))
    notes = {"keys": DBTEST_KEYS, "format": fmt, "collection": collection_of(path.name)}
    return RawData(views, labels, parts, [path], "dbtest", notes)
