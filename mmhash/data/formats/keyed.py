"""Readers for files that name their arrays ``<view>_<part>``: wikiData.mat, BMC-SDNU, triples.

Conventions (MATLAB hashing code since CVH/CMFH): ``I_*`` holds image features, ``T_*`` text
features and ``L_*`` labels; the suffix names the part: ``_tr`` training, ``_te`` test/query,
``_db`` retrieval database. Labels are either a class-id column (n x 1, as wikiData.mat's
``L_tr``) or a one-hot / multi-hot matrix (n x c); ``L_train``/``L_test``/``L_database`` are
accepted when the short keys are absent. Other complete numeric groups (``T_tfidf_tr``/``_te``)
become extra views: ``T_tfidf`` -> ``tfidf``, any other prefix -> its lower-case name.

Rows of the parts are stacked in the order the parts are listed, and :attr:`RawData.parts`
records which rows came from which part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mmhash.data.formats._common import (
    RawData,
    as_features,
    check_rows,
    consecutive_parts,
    label_rows,
    labels_from_parts,
    where,
)
from mmhash.data.formats.matfile import KeyedFile, open_keyed, require_file
from mmhash.errors import DataError

REQUIRED_VIEWS = {"image": "I", "text": "T"}
KNOWN_EXTRA = {"T_tfidf": "tfidf"}
LABEL_PREFIXES = ("L", "Y")  # never views: labels (L) and one-hot copies (Y_tr in some .npz)
LABEL_ALIASES = {"tr": "L_train", "te": "L_test", "db": "L_database"}


def label_key(keys: Sequence[str], suffix: str) -> str | None:
    """The label key for a part suffix (``L_tr``, else ``L_train``), or None."""
    for key in (f"L_{suffix}", LABEL_ALIASES.get(suffix, "")):
        if key in keys:
            return key
    return None


def _extra_prefixes(sources: Sequence[tuple[KeyedFile, str, str]]) -> list[str]:
    """Prefixes (besides I, T, L, Y) present with every source's suffix, in first-file order."""
    found: list[str] | None = None
    for f, suffix, _ in sources:
        pattern = re.compile(rf"^(.+)_{suffix}$")
        here = [m.group(1) for k in f.keys() if (m := pattern.match(k))]
        here = [p for p in here if p not in LABEL_PREFIXES and p not in REQUIRED_VIEWS.values()]
        found = here if found is None else [p for p in found if p in here]
    return found or []


def read_parts(
    sources: Sequence[tuple[KeyedFile, str, str]],
    reader: str,
    views: Mapping[str, str] | None = None,
) -> RawData:
    """Read ``<prefix>_<suffix>`` arrays from one or more open files and stack the parts.

    Parameters
    ----------
    sources : [(open file, suffix, part name), ...]
        e.g. ``[(f, "tr", "train"), (f, "te", "test")]`` for wikiData.mat.
    reader : registry name recorded in the result.
    views : view name -> key prefix, e.g. ``{"image": "I", "text": "T"}``. ``None``: image and
        text are required and every other complete numeric prefix group is added as a view.

    Returns
    -------
    RawData with float64 views, uint8 labels and ``parts`` mapping each part name to its rows.
    """
    files = list(dict.fromkeys(f.path for f, _, _ in sources))
    source = where(files)
    wanted = dict(REQUIRED_VIEWS if views is None else views)
    extras = [] if views is not None else _extra_prefixes(sources)

    missing, label_keys = [], []
    for f, suffix, _ in sources:
        keys = f.keys()
        missing += [f"{p}_{suffix}" for p in wanted.values() if f"{p}_{suffix}" not in keys]
        lk = label_key(keys, suffix)
        if lk is None:
            missing.append(f"L_{suffix}")
        label_keys.append(lk)
    if missing:
        expected = [f"{p}_{s}" for _, s, _ in sources for p in [*wanted.values(), "L"]]
        found = sorted({k for f, _, _ in sources for k in f.keys()})
        raise DataError(
            f"{source}: missing key(s) {', '.join(missing)}; expected {', '.join(expected)}; "
            f"found {', '.join(found) or '(none)'}"
        )

    blocks: dict[str, list[np.ndarray]] = {v: [] for v in wanted}
    extra_blocks: dict[str, list[np.ndarray]] = {p: [] for p in extras}
    label_blocks, sizes, ignored = [], [], set()
    for (f, suffix, part), lk in zip(sources, label_keys):
        arrays = f.read([f"{p}_{suffix}" for p in [*wanted.values(), *extras]] + [lk])
        part_views = {
            v: as_features(arrays[f"{p}_{suffix}"], f"{p}_{suffix}", str(f.path))
            for v, p in wanted.items()
        }
        for p in extras:
            try:  # extra groups are optional: a string id list (txt_id_tr) is not a view
                extra_blocks[p].append(as_features(arrays[f"{p}_{suffix}"], p, str(f.path)))
            except DataError:
                ignored.add(p)
        n_label_rows = label_rows(arrays[lk])
        counts = {f"{p}_{suffix}": X.shape[0] for p, X in zip(wanted.values(), part_views.values())}
        counts[lk] = n_label_rows
        if len(set(counts.values())) != 1:
            listed = ", ".join(f"{k}: {c} rows" for k, c in counts.items())
            raise DataError(f"{f.path}: part {part!r} has mismatched row counts ({listed})")
        for v, X in part_views.items():
            blocks[v].append(X)
        label_blocks.append((lk, arrays[lk]))
        sizes.append((part, n_label_rows))

    all_views = {v: np.vstack(b) for v, b in blocks.items()}
    for p in extras:
        b = extra_blocks[p]
        if p in ignored or len(b) != len(sources) or any(
            X.shape[0] != n for X, (_, n) in zip(b, sizes)
        ):
            ignored.add(p)
            continue
        all_views[KNOWN_EXTRA.get(p, p.lower())] = np.vstack(b)
    labels, label_notes = labels_from_parts(label_blocks, source)
    check_rows(all_views, labels, source)
    notes = {
        "keys": {v: p for v, p in wanted.items()},
        "label_keys": [k for k, _ in label_blocks],
        **label_notes,
    }
    if ignored:
        notes["ignored_key_groups"] = sorted(ignored)
    return RawData(all_views, labels, consecutive_parts(sizes), files, reader, notes)


def read_wikidata(path: str | Path, *, views: Mapping[str, str] | None = None) -> RawData:
    """Read a wikiData.mat-style file: ``I_tr, T_tr, L_tr, I_te, T_te, L_te``.

    Works for MATLAB v5 and v7.3 files and for ``.npz`` files with the same keys. Rows: the
    training part, then the test part; ``parts`` = ``{"train", "test"}`` (test = queries).
    ``L_*`` may be class ids (n x 1) or one-hot/multi-hot (n x c).
    """
    with open_keyed(Path(path)) as f:
        return read_parts([(f, "tr", "train"), (f, "te", "test")], "wikidata", views)


def read_cnn(path: str | Path, *, views: Mapping[str, str] | None = None) -> RawData:
    """Read a BMC-SDNU ``*_cnn.mat`` file (``mir_cnn.mat``, ``nus_cnn.mat``, ``coco_cnn.mat``).

    Keys, as used by the loaders in github.com/BMC-SDNU/Cross-Modal-Hashing-Retrieval
    (e.g. ``CMFH/code/demo_CMFH.m``, ``DCMH/load_data.py``): ``I_tr, T_tr, L_tr`` (training),
    ``I_te, T_te, L_te`` (queries) and ``I_db, T_db, L_db`` (retrieval database), with CNN image
    features, bag-of-words text and multi-hot labels (n x c). The files are usually MATLAB v7.3.
    Rows: train, query, database (the database usually repeats training items as its own rows);
    ``parts`` = ``{"train", "query", "database"}``.
    """
    with open_keyed(Path(path)) as f:
        return read_parts(
            [(f, "tr", "train"), (f, "te", "query"), (f, "db", "database")], "cnn", views
        )


TRIPLE_PARTS = (("train", "tr"), ("query", "te"), ("database", "db"))


def triple_paths(path: str | Path) -> dict[str, Path]:
    """The three files of a CIRH/UJSAH triple, from any one of them or from the common prefix.

    ``data/mir_train.mat``, ``data/mir_query.mat``, ``data/mir_database.mat`` all give
    ``{"train": .../mir_train.mat, "query": ..., "database": ...}``.
    """
    path = Path(path)
    stem, suffix = path.stem, path.suffix or ".mat"
    prefix = stem
    for part, _ in TRIPLE_PARTS:
        if stem.endswith(f"_{part}"):
            prefix = stem[: -len(part) - 1]
            break
    return {part: path.with_name(f"{prefix}_{part}{suffix}") for part, _ in TRIPLE_PARTS}


def read_triple(path: str | Path, *, views: Mapping[str, str] | None = None) -> RawData:
    """Read a CIRH/UJSAH triple: ``<prefix>_train.mat``, ``_query.mat``, ``_database.mat``.

    Keys: ``I_tr, T_tr, L_tr`` in the train file, ``I_te, T_te, L_te`` in the query file and
    ``I_db, T_db, L_db`` in the database file; labels multi-hot (n x c). ``path`` is any of the
    three files or the prefix. Rows: train, query, database, stacked (the database may hold the
    same items as the training file; they stay separate rows). ``parts`` = ``{"train", "query",
    "database"}``.
    """
    paths = triple_paths(path)
    for part, p in paths.items():
        require_file(p, f"{part} file of the triple")
    opened: list[KeyedFile] = []
    try:
        for part, _ in TRIPLE_PARTS:
            opened.append(open_keyed(paths[part]))
        sources = [(f, s, part) for f, (part, s) in zip(opened, TRIPLE_PARTS)]
        return read_parts(sources, "triple", views)
    finally:
        for f in opened:
            f.close()
