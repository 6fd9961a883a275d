"""Using a method's codes: fit and keep a model, encode a feature file, index and search it.

What ``mmhash fit``, ``mmhash encode``, ``mmhash index build`` and ``mmhash search`` do, without
printing (the CLI prints). Files: models are :meth:`mmhash.base.BaseHasher.save` files, codes and
indexes are :mod:`mmhash.codefiles` files, features are read by :mod:`mmhash.features`.

Search is exact: the ``k`` nearest database codes of each query by Hamming distance, ties by
database row (a stable sort), from :class:`mmhash.evaluation.HammingIndex`; with a radius, every
code within it (ascending, ties by row), at most ``k``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmhash.codefiles import (
    PACKINGS,
    CodesFile,
    check_output_path,
    pack_rows,
    read_codes,
    read_index,
    row_names,
    write_codes,
    write_index,
)
from mmhash.errors import DataError, InvalidInputError, UnknownNameError
from mmhash.features import open_features

#: Which rows of a dataset ``mmhash fit`` trains on.
FIT_SPLITS = ("train", "all")
#: The columns of a search result, in order.
HIT_COLUMNS = ("query", "rank", "item", "distance")


def fit_model(method: str, dataset: str, *, bits: int, params: Mapping[str, Any], seed: int,
              split: str, views: list[str] | None, output: str | os.PathLike,
              data_dir: str | None = None,
              on_epoch: Callable[[int, int, dict], None] | None = None):
    """Fit ``method`` on a dataset's training split (or every row with ``split="all"``) and save
    it to ``output`` atomically. Returns the fitted hasher."""
    from mmhash import load_dataset
    from mmhash.codefiles import atomic_output
    from mmhash.registry import check_method_params, get_hasher

    if split not in FIT_SPLITS:
        raise UnknownNameError("split", split, FIT_SPLITS)
    check_method_params(method, {"n_bits": bits, "random_state": seed, **dict(params)})
    hasher = get_hasher(method, n_bits=bits, random_state=seed, **dict(params))
    if getattr(hasher, "reference", False):
        raise InvalidInputError(f"{method} is a reference ranking with no codes; fit a hasher")
    data = load_dataset(dataset, data_dir=data_dir)
    chosen = views or list(data.views)
    unknown = [v for v in chosen if v not in data.views]
    if unknown:
        raise UnknownNameError("view", unknown[0], list(data.views))
    train = ({v: data.views[v] for v in chosen} if split == "all"
             else {v: data.views[v][data.split.train] for v in chosen})
    with atomic_output(output) as temporary:  # checks the folder before a long fit
        hasher.fit(train, progress=on_epoch)
        hasher.save(temporary)
    return hasher


def load_model(path: str | os.PathLike):
    """A saved model, with one clear error for anything that is not one."""
    from mmhash.registry import load_hasher

    return load_hasher(path)


@dataclass(frozen=True)
class Encoded:
    """What :func:`encode_file` wrote: rows, bits, view, path."""

    n_rows: int
    n_bits: int
    view: str
    path: str


def _model_codes(model, view: str, features) -> Iterator[np.ndarray]:
    """int8 ±1 codes of a feature file's rows, chunk by chunk, after checking the view and the
    dimension against the model up front (before any row is encoded)."""
    if view not in model.modalities_:
        raise UnknownNameError(f"view of this {model.name} model", view, model.modalities_)
    want = model.n_features_[view]
    if features.n_features != want:
        raise InvalidInputError(
            f"{features.path} has {features.n_features} features per row, but the model's "
            f"{view!r} view was fitted on {want}")
    for block in features.chunks():
        yield model.encode(block, view)


def encode_file(model_path, view: str, features_path, output, *, key: str | None = None,
                packing: str = "packed") -> Encoded:
    """Codes of every row of a feature file, written as a codes file (see
    :mod:`mmhash.codefiles`). Rows are read and encoded in chunks; only the packed codes of all
    rows are held (8 bytes a row at 64 bits)."""
    if packing not in PACKINGS:
        raise UnknownNameError("code format", packing, PACKINGS)
    check_output_path(output)
    model = load_model(model_path)
    features = open_features(features_path, key)
    blocks = [pack_rows(c) if packing == "packed" else c
              for c in _model_codes(model, view, features)]
    write_codes(output, np.concatenate(blocks), features.ids, n_bits=model.n_bits,
                view=view, method=model.name, model=os.fspath(model_path), packing=packing)
    return Encoded(features.n_rows, int(model.n_bits), view, os.fspath(output))


def build_index(codes_path, output, *, backend: str = "numba") -> CodesFile:
    """A :class:`HammingIndex` of a codes file's codes, written with their row ids."""
    from mmhash.evaluation import HammingIndex

    check_output_path(output)
    codes = read_codes(codes_path)
    index = HammingIndex(codes.n_bits, backend=backend)
    index.add(codes.codes)
    write_index(output, index, codes.ids, codes)
    return codes


@dataclass(frozen=True)
class Hits:
    """Search results: one row per (query, rank) in :data:`HIT_COLUMNS` order."""

    query: np.ndarray  # (M,) query ids (str), or query rows (int) when the file has no ids
    rank: np.ndarray  # int64 (M,), from 1
    item: np.ndarray  # (M,) database ids (str), or database rows (int)
    distance: np.ndarray  # int32 (M,)

    def rows(self) -> Iterator[tuple]:
        return zip(self.query.tolist(), self.rank.tolist(), self.item.tolist(),
                   self.distance.tolist())


def search(index_path, queries_path, *, k: int = 10, radius: int | None = None,
           model_path=None, view: str | None = None, key: str | None = None) -> Hits:
    """Search an index with queries: a codes file, or a feature file encoded by ``model_path``
    through ``view``. Returns every hit (see the module docstring for the order)."""
    from mmhash.evaluation._validate import check_k

    k = check_k(k, "k")
    index, item_ids, _ = read_index(index_path)
    if model_path is None:
        if view is not None:
            raise InvalidInputError("--view needs --model: encoded query codes carry their view")
        found = _read_query_codes(queries_path)
        codes, query_ids = found.codes, found.ids
    else:
        if view is None:
            raise InvalidInputError("--model needs --view: which of the model's views the "
                                    "queries are")
        model = load_model(model_path)
        if int(model.n_bits) != index.n_bits:
            raise InvalidInputError(f"the model makes {model.n_bits}-bit codes but the index "
                                    f"holds {index.n_bits}-bit codes")
        features = open_features(queries_path, key)
        codes = np.concatenate(list(_model_codes(model, view, features)))
        query_ids = features.ids
    if radius is None:
        distances, items = index.search(codes, k)
        width = distances.shape[1]
        query_rows = np.repeat(np.arange(len(codes)), width)
        ranks = np.tile(np.arange(1, width + 1), len(codes))
        distances, items = distances.ravel(), items.ravel()
    else:
        offsets, distances, items = index.radius_search(codes, radius)
        counts = np.diff(offsets)
        query_rows = np.repeat(np.arange(len(codes)), counts)
        ranks = np.arange(len(items)) - np.repeat(offsets[:-1], counts) + 1
        keep = ranks <= k
        query_rows, ranks, distances, items = (a[keep] for a in (query_rows, ranks, distances,
                                                                 items))
    return Hits(row_names(query_ids, query_rows), ranks.astype(np.int64),
                row_names(item_ids, items),
                distances.astype(np.int32))


def _read_query_codes(path) -> CodesFile:
    try:
        return read_codes(path)
    except DataError as exc:
        raise DataError(f"{exc}; to search with raw features, give --model and --view") from None


def write_hits(hits: Hits, output) -> None:
    """Hits as CSV (any name) or JSON (``.json``: a list of objects), written atomically."""
    import json

    from mmhash.codefiles import atomic_output

    with atomic_output(output) as temporary, open(temporary, "w", newline="") as fh:
        if str(output).lower().endswith(".json"):
            json.dump([dict(zip(HIT_COLUMNS, row)) for row in hits.rows()], fh)
        else:
            write_hits_csv(hits, fh)


def write_hits_csv(hits: Hits, fh) -> None:
    import csv

    writer = csv.writer(fh)
    writer.writerow(HIT_COLUMNS)
    writer.writerows(hits.rows())
