"""Reader for the SVCL Wikipedia release (Rasiwasia et al., ACM MM 2010).

The release has the features in ``raw_features.mat`` (``I_tr``/``I_te`` SIFT BoVW 128-d,
``T_tr``/``T_te`` LDA 10-d, ``T_tfidf_tr``/``T_tfidf_te`` TF-IDF 1000-d) and the labels only in
the two list files ``trainset_txt_img_cat.list`` and ``testset_txt_img_cat.list``: one line per
row of the matrices, ``text_id<TAB>image_id<TAB>category`` with categories 1..10.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmhash.data.formats._common import RawData, as_features, consecutive_parts, one_hot
from mmhash.data.formats.matfile import open_keyed, require_file
from mmhash.errors import DataError, UnknownNameError

VIEW_KEYS = {"image": "I", "text": "T", "tfidf": "T_tfidf"}
LIST_NAMES = {"train": "trainset_txt_img_cat.list", "test": "testset_txt_img_cat.list"}


def read_list(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse a ``*_txt_img_cat.list`` file.

    Returns text ids, image ids (lists of str) and categories (int64 (n,), as written: 1..10).
    """
    path = require_file(Path(path), "list file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: not a readable text list ({type(e).__name__})") from e
    text_ids, image_ids, cats = [], [], []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.strip().split("\t")
        if len(fields) != 3 or not fields[2].strip().isdigit():
            raise DataError(
                f"{path}, line {i}: expected 'text_id<TAB>image_id<TAB>category', got {line!r}"
            )
        text_ids.append(fields[0])
        image_ids.append(fields[1])
        cats.append(int(fields[2]))
    if not cats:
        raise DataError(f"{path}: the list is empty")
    return text_ids, image_ids, np.asarray(cats, dtype=np.int64)


def read_svcl(
    features: str | Path,
    train_list: str | Path | None = None,
    test_list: str | Path | None = None,
    *,
    views: Sequence[str] | None = None,
) -> RawData:
    """Read ``raw_features.mat`` and the two ``.list`` files of the SVCL Wikipedia release.

    Parameters
    ----------
    features : path of ``raw_features.mat`` (MATLAB v5 or v7.3).
    train_list, test_list : the list files; default: the standard names next to ``features``.
    views : which of ``image`` (``I_*``), ``text`` (``T_*``) and ``tfidf`` (``T_tfidf_*``) to
        read, in that order; default all three that the file holds.

    Returns
    -------
    RawData: rows = the 2,173 training rows then the 693 test rows; float64 views, uint8 one-hot
    labels (n, 10) from the list files; ``parts`` = ``{"train", "test"}``. The text and image ids
    of each row are in the list files (:func:`read_list`).
    """
    features = Path(features)
    lists = {
        "train": Path(train_list) if train_list else features.with_name(LIST_NAMES["train"]),
        "test": Path(test_list) if test_list else features.with_name(LIST_NAMES["test"]),
    }
    for part, p in lists.items():
        require_file(p, f"{part} list file of the SVCL Wikipedia release")
    with open_keyed(features) as f:
        if views is None:
            views = [v for v, k in VIEW_KEYS.items() if f"{k}_tr" in f.keys()]
            views = views if {"image", "text"} <= set(views) else ["image", "text"]
        for v in views:
            if v not in VIEW_KEYS:
                raise UnknownNameError("Wikipedia view", v, VIEW_KEYS)
        keys = [f"{VIEW_KEYS[v]}_{s}" for s in ("tr", "te") for v in views]
        arrays = f.read(keys)

    cats, sizes = [], []
    out = {v: [] for v in views}
    for part, suffix in (("train", "tr"), ("test", "te")):
        _, _, c = read_list(lists[part])
        for v in views:
            key = f"{VIEW_KEYS[v]}_{suffix}"
            X = as_features(arrays[key], key, str(features))
            if X.shape[0] != len(c):
                raise DataError(
                    f"{features}: {key} has {X.shape[0]} rows but {lists[part]} lists "
                    f"{len(c)} items; the list must have one line per row"
                )
            out[v].append(X)
        cats.append(c)
        sizes.append((part, len(c)))
    ids = np.concatenate(cats)
    if ids.min() < 1:
        raise DataError(
            f"{lists['train']}: categories must be 1-based class ids, found {ids.min()}"
        )
    labels, _ = one_hot(ids)
    return RawData(
        {v: np.vstack(b) for v, b in out.items()},
        labels,
        consecutive_parts(sizes),
        [features, lists["train"], lists["test"]],
        "svcl",
        {
            "keys": {v: VIEW_KEYS[v] for v in views},
            "label_format": "class ids",
            "first_class_id": 1,
        },
    )
