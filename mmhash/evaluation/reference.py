"""The reference evaluation engine: numpy, float matrix products, explicit per-block arrays.

This is the first implementation of :mod:`mmhash.evaluation`, kept unchanged in behaviour as the
test oracle of the fast engine (:mod:`mmhash.evaluation.engine`): every public function here has
the signature and conventions of the one of the same name in :mod:`mmhash.evaluation`, and the
tests require both to agree (counts exactly, metrics to 1e-12). It is slow -- a Q x N float
product per block and, for ``tie="index"``, a stable sort per query -- so library code does not
call it.

Distances come from one float32 matrix product: for codes in {-1, +1},
``hamming(q, x) = (n_bits - q . x) / 2``. Every partial sum is an integer of magnitude at most
``n_bits`` (< 2**24), so float32 BLAS is exact. Relevance (``Lq @ Lr.T > 0``) likewise. Queries
are processed in blocks of about ``mmhash.evaluation.hamming.BLOCK_ELEMENTS`` query-item pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from mmhash.evaluation import hamming
from mmhash.evaluation._validate import (
    check_code_pair,
    check_k,
    check_label_pair,
    check_rows,
    check_tie,
)
from mmhash.evaluation.measures import Metric, parse_metrics


def hamming_distance(query_codes, retrieval_codes) -> np.ndarray:
    """int32 (Q, N) Hamming distances; see :func:`mmhash.evaluation.hamming_distance`."""
    q, r = check_code_pair(query_codes, retrieval_codes)
    return _distances(q.astype(np.float32), r.astype(np.float32))


def relevance(query_labels, retrieval_labels) -> np.ndarray:
    """bool (Q, N) shared-label matrix; see :func:`mmhash.evaluation.relevance`."""
    lq, lr = check_label_pair(query_labels, retrieval_labels)
    return _relevance(lq.astype(np.float32), lr.astype(np.float32))


def _distances(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``q``: float32 (b, B), ``r``: float32 (N, B), both +-1 -> int32 (b, N)."""
    dots = q @ r.T
    return ((q.shape[1] - dots) * 0.5).astype(np.int32)


def _relevance(lq: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """``lq``: float32 0/1 (b, C), ``lr``: float32 0/1 (N, C) -> bool (b, N)."""
    return (lq @ lr.T) > 0


@dataclass(frozen=True)
class Prepared:
    """Validated evaluation inputs in the dtypes the block loop uses.

    ``query_codes`` float32 (Q, B), ``retrieval_codes`` float32 (N, B), ``query_labels`` float32
    (Q, C), ``retrieval_labels`` float32 (N, C) with 0/1 entries.
    """

    query_codes: np.ndarray
    retrieval_codes: np.ndarray
    query_labels: np.ndarray
    retrieval_labels: np.ndarray

    @property
    def n_bits(self) -> int:
        return self.query_codes.shape[1]

    @property
    def n_queries(self) -> int:
        return self.query_codes.shape[0]

    @property
    def n_items(self) -> int:
        return self.retrieval_codes.shape[0]


def prepare(query_codes, retrieval_codes, query_labels, retrieval_labels) -> Prepared:
    """Validate the four evaluation arrays together (see :mod:`mmhash.evaluation`)."""
    q, r = check_code_pair(query_codes, retrieval_codes)
    lq, lr = check_label_pair(query_labels, retrieval_labels)
    check_rows(q, lq, "query")
    check_rows(r, lr, "retrieval")
    return Prepared(
        q.astype(np.float32),
        r.astype(np.float32),
        lq.astype(np.float32),
        lr.astype(np.float32),
    )


def iter_blocks(data: Prepared) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield ``(rows, distances, relevant)`` for consecutive blocks of queries.

    ``distances`` is int32 (b, N), ``relevant`` bool (b, N), for the queries ``rows``.
    """
    step = max(1, hamming.BLOCK_ELEMENTS // data.n_items)
    for start in range(0, data.n_queries, step):
        rows = slice(start, min(start + step, data.n_queries))
        yield (
            rows,
            _distances(data.query_codes[rows], data.retrieval_codes),
            _relevance(data.query_labels[rows], data.retrieval_labels),
        )


def histograms(distances: np.ndarray, relevant: np.ndarray, n_bits: int):
    """Per-query counts of items and of relevant items at each distance.

    Parameters
    ----------
    distances : int (b, N) in ``0..n_bits``.
    relevant : bool (b, N).

    Returns
    -------
    ``(n, r)``: int64 (b, n_bits + 1) each; ``n[q, g]`` items at distance ``g``, ``r[q, g]`` of
    them relevant.
    """
    b = distances.shape[0]
    width = n_bits + 1
    # One bincount over the whole block: bin (row, distance, relevant) of each pair is
    # row * 2 * width + 2 * distance + relevant. intp input avoids a slow cast inside bincount.
    code = distances.astype(np.intp) * 2 + relevant
    code += (2 * width * np.arange(b, dtype=np.intp))[:, None]
    counts = np.bincount(code.ravel(), minlength=b * 2 * width).reshape(b, width, 2)
    return counts.sum(axis=2), counts[:, :, 1].copy()


def iter_histograms(data: Prepared) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield ``(rows, n, r)`` per block of queries (see :func:`histograms`)."""
    for rows, distances, relevant in iter_blocks(data):
        n, r = histograms(distances, relevant, data.n_bits)
        yield rows, n, r


def average_precision(
    query_codes, retrieval_codes, query_labels, retrieval_labels, *, tie="expected", topk=None
) -> np.ndarray:
    """float64 (Q,) AP per query; see :func:`mmhash.evaluation.average_precision`."""
    tie = check_tie(tie)
    spec = Metric("map", None if topk is None else check_k(topk, "topk"))
    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    return per_query(data, [spec], tie)[spec]


def mean_average_precision(
    query_codes, retrieval_codes, query_labels, retrieval_labels, *, tie="expected", topk=None
) -> float:
    """Mean of :func:`average_precision`; see :func:`mmhash.evaluation.mean_average_precision`."""
    ap = average_precision(
        query_codes, retrieval_codes, query_labels, retrieval_labels, tie=tie, topk=topk
    )
    return float(ap.mean())


def precision_at_k(
    query_codes, retrieval_codes, query_labels, retrieval_labels, ks, *, tie="expected"
) -> np.ndarray:
    """float64 (len(ks),) mean P@K; see :func:`mmhash.evaluation.precision_at_k`."""
    from mmhash.evaluation.metrics import _check_ks

    tie = check_tie(tie)
    k_list = _check_ks(ks)
    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    specs = [Metric("p", k) for k in k_list]
    values = per_query(data, specs, tie)
    return np.array([values[s].mean() for s in specs], dtype=np.float64)


def pr_curve(query_codes, retrieval_codes, query_labels, retrieval_labels):
    """PR curve by Hamming radius; see :func:`mmhash.evaluation.pr_curve`."""
    from mmhash.evaluation.metrics import pr_curve_from_histograms

    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    return pr_curve_from_histograms(iter_histograms(data), data.n_bits)


def evaluate(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    *,
    metrics: str | Iterable[str] = ("map",),
    tie: str = "expected",
) -> dict[str, float]:
    """dict token -> mean over queries; see :func:`mmhash.evaluation.evaluate`."""
    tie = check_tie(tie)
    specs = parse_metrics(metrics)
    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    values = per_query(data, specs, tie)
    return {spec.token: float(values[spec].mean()) for spec in specs}


def per_query(data: Prepared, specs: Sequence[Metric], tie: str) -> dict[Metric, np.ndarray]:
    """Every metric of ``specs`` for every query: dict spec -> float64 (Q,)."""
    out = {spec: np.empty(data.n_queries) for spec in specs}
    for rows, distances, relevant in iter_blocks(data):
        if tie == "index":
            values = _index_block(distances, relevant, specs)
        else:
            n, r = histograms(distances, relevant, data.n_bits)
            # the count formulas are shared with the engine (they are the definition); the
            # oracle's independence lies in how it counts and in the brute-force index walk
            values = {spec: spec.from_counts(n, r, tie) for spec in specs}
        for spec in specs:
            out[spec][rows] = values[spec]
    return out


def _index_block(distances: np.ndarray, relevant: np.ndarray, specs: Sequence[Metric]) -> dict:
    """Metrics of one block with ties broken by retrieval index (a stable sort by distance).

    ``distances``: int (b, N); ``relevant``: bool (b, N).
    """
    n_items = distances.shape[1]
    # numpy's stable sort of <= 16-bit integers is a radix sort: O(N) per query.
    key = distances.astype(np.int16) if distances.max() < 2**15 else distances
    order = np.argsort(key, axis=1, kind="stable")
    ranked = np.take_along_axis(relevant, order, axis=1)  # relevance in rank order
    hits = np.cumsum(ranked, axis=1)  # relevant items at or before each position
    precision_at_hit = np.where(ranked, hits / np.arange(1, n_items + 1), 0.0)
    total = hits[:, -1]
    values = {}
    for spec in specs:
        k_eff = n_items if spec.k is None else min(spec.k, n_items)
        if spec.kind == "map":
            found = total if spec.k is None else hits[:, k_eff - 1]
            sums = precision_at_hit[:, :k_eff].sum(axis=1)
            values[spec] = np.divide(sums, found, out=np.zeros(len(sums)), where=found > 0)
        else:
            values[spec] = hits[:, k_eff - 1] / k_eff
    return values
