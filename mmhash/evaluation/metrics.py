"""mAP, mAP@K, P@K and the PR curve by Hamming radius, on the packed engine.

The conventions are stated once, in the docstring of :mod:`mmhash.evaluation`. All metrics of one
call come from one pass of the engine (:mod:`mmhash.evaluation.engine`): per-query counts of
items and relevant items at each distance, from which :mod:`mmhash.evaluation.ties` computes the
count-based policies exactly; ``tie="index"`` adds one walk in index order per query that places
every relevant item in the stable ranking without sorting. The first, numpy implementation is
kept as the test oracle in :mod:`mmhash.evaluation.reference`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mmhash.errors import InvalidInputError, UnknownNameError
from mmhash.evaluation._validate import check_k, check_tie
from mmhash.evaluation.engine import PackedEval, index_metrics, iter_histograms, prepare
from mmhash.evaluation.ties import (
    average_precision_at_k_from_counts,
    average_precision_from_counts,
    relevant_in_top_k_from_counts,
)

# A metric of one query: ("map", None) full AP, ("map", K) AP@K, ("p", K) precision at K.
_Spec = tuple[str, "int | None"]

_METRIC_FORMS = ("map", "map@K", "p@K")
_METRIC_TOKEN = re.compile(r"^(map|p)@(\d+)$")


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall of Hamming-ball retrieval at every radius.

    Attributes
    ----------
    radius : int64 (n_bits + 1,): ``0..n_bits``; items with distance <= radius are retrieved.
    precision : float64 (n_bits + 1,): mean over the queries that retrieve at least one item at
        that radius of (relevant retrieved / retrieved); NaN if no query retrieves anything.
    recall : float64 (n_bits + 1,): mean over the queries with at least one relevant item of
        (relevant retrieved / relevant); NaN if no query has a relevant item.
    """

    radius: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def average_precision(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    *,
    tie: str = "expected",
    topk: int | None = None,
) -> np.ndarray:
    """Average precision of every query.

    Parameters
    ----------
    query_codes : (Q, n_bits) int array in {-1, +1}.
    retrieval_codes : (N, n_bits) int array in {-1, +1}.
    query_labels : (Q, C) 0/1 multi-hot, or (Q,) integer class ids.
    retrieval_labels : (N, C) 0/1 multi-hot, or (N,) integer class ids.
    tie : one of :data:`TIE_POLICIES`.
    topk : None for the whole ranking, or a positive int K: AP over the top K positions,
        normalised by the relevant items among them (K > N means N).

    Returns
    -------
    float64 (Q,); 0 for a query with no relevant item (in the top K).
    """
    tie = check_tie(tie)
    spec = ("map", None if topk is None else check_k(topk, "topk"))
    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    return _per_query(data, [spec], tie)[spec]


def mean_average_precision(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    *,
    tie: str = "expected",
    topk: int | None = None,
) -> float:
    """Mean over all queries of :func:`average_precision` (queries without relevant items count
    with AP 0). Arguments as there."""
    ap = average_precision(
        query_codes, retrieval_codes, query_labels, retrieval_labels, tie=tie, topk=topk
    )
    return float(ap.mean())


def precision_at_k(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    ks: int | Sequence[int],
    *,
    tie: str = "expected",
) -> np.ndarray:
    """Mean over queries of the fraction of relevant items among the first K positions.

    Parameters
    ----------
    query_codes, retrieval_codes, query_labels, retrieval_labels : as in
        :func:`average_precision`.
    ks : a positive int or a sequence of them; each K is clipped to N (the denominator is
        ``min(K, N)``).
    tie : one of :data:`TIE_POLICIES`.

    Returns
    -------
    float64 (len(ks),), in the order of ``ks``.
    """
    tie = check_tie(tie)
    k_list = _check_ks(ks)
    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    specs = [("p", k) for k in k_list]
    per_query = _per_query(data, specs, tie)
    return np.array([per_query[s].mean() for s in specs], dtype=np.float64)


def pr_curve(query_codes, retrieval_codes, query_labels, retrieval_labels) -> PRCurve:
    """Precision and recall of retrieving all items within Hamming radius r, for r = 0..n_bits.

    Whole distance groups are retrieved, so there is no tie policy. Arguments as in
    :func:`average_precision`; see :class:`PRCurve` for how queries are averaged.
    """
    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    return pr_curve_from_histograms(iter_histograms(data), data.n_bits)


def pr_curve_from_histograms(blocks, n_bits: int) -> PRCurve:
    """The PR curve from per-query histograms, blocks of ``(_, n, r)`` with ``n``, ``r`` of shape
    ``(block, n_bits + 1)``: items and relevant items at each distance. Shared by the engine and
    the reference oracle, which differ only in how they count."""
    width = n_bits + 1
    precision_sum = np.zeros(width)
    precision_count = np.zeros(width, dtype=np.int64)
    recall_sum = np.zeros(width)
    recall_count = 0
    for _, n, r in blocks:
        retrieved = np.cumsum(n, axis=1)
        hits = np.cumsum(r, axis=1)
        total = r.sum(axis=1)
        has_any = retrieved > 0
        precision_sum += np.divide(hits, retrieved, out=np.zeros(hits.shape), where=has_any).sum(0)
        precision_count += has_any.sum(axis=0)
        has_rel = total > 0
        recall_sum += (hits[has_rel] / total[has_rel, None]).sum(axis=0)
        recall_count += int(has_rel.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(precision_count > 0, precision_sum / precision_count, np.nan)
        recall = recall_sum / recall_count if recall_count else np.full(width, np.nan)
    return PRCurve(np.arange(width), precision, recall)


def evaluate(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    *,
    metrics: str | Iterable[str] = ("map",),
    tie: str = "expected",
) -> dict[str, float]:
    """Several metrics from one pass over the data.

    Parameters
    ----------
    query_codes, retrieval_codes, query_labels, retrieval_labels : as in
        :func:`average_precision`.
    metrics : tokens ``"map"``, ``"map@K"`` (e.g. ``"map@50"``) and ``"p@K"`` (e.g. ``"p@100"``),
        or one such token as a string.
    tie : one of :data:`TIE_POLICIES`.

    Returns
    -------
    dict token -> mean over queries (float), in the order the tokens were given.
    """
    tie = check_tie(tie)
    tokens = [metrics] if isinstance(metrics, str) else list(metrics)
    if not tokens:
        raise InvalidInputError("metrics must name at least one metric (e.g. 'map', 'p@100')")
    parsed = {token: _parse_metric(token) for token in tokens}
    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    per_query = _per_query(data, list(dict.fromkeys(parsed.values())), tie)
    return {token: float(per_query[spec].mean()) for token, spec in parsed.items()}


def _parse_metric(token) -> _Spec:
    if not isinstance(token, str):
        raise UnknownNameError("metric", repr(token), _METRIC_FORMS)
    if token == "map":
        return ("map", None)
    match = _METRIC_TOKEN.match(token)
    if match is None:
        raise UnknownNameError("metric", token, _METRIC_FORMS)
    k = int(match.group(2))
    if k < 1:
        raise InvalidInputError(f"metric {token!r}: K must be a positive integer, got {k}")
    return (match.group(1), k)


def _check_ks(ks) -> list[int]:
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, (bool, np.bool_)):
        ks = [ks]
    try:
        k_list = list(ks)
    except TypeError:
        raise InvalidInputError(
            f"ks must be a positive int or a sequence of them, got {ks!r}"
        ) from None
    if not k_list:
        raise InvalidInputError("ks must hold at least one K")
    return [check_k(k, "each K in ks") for k in k_list]


def _per_query(data: PackedEval, specs: list[_Spec], tie: str) -> dict[_Spec, np.ndarray]:
    """Every metric of ``specs`` for every query: dict spec -> float64 (Q,)."""
    if tie == "index":
        return _index_values(data, specs)
    out = {spec: np.empty(data.n_queries) for spec in specs}
    for rows, n, r in iter_histograms(data):
        values = _count_block(n, r, specs, tie)
        for spec in specs:
            out[spec][rows] = values[spec]
    return out


def _count_block(n: np.ndarray, r: np.ndarray, specs: list[_Spec], tie: str) -> dict:
    """Metrics of one block from its histograms ``n, r`` (int (b, n_bits+1))."""
    n_items = int(n[0].sum())
    values = {}
    for kind, k in specs:
        if kind == "map" and (k is None or k >= n_items):  # top N is the whole ranking
            values[(kind, k)] = average_precision_from_counts(n, r, tie)
        elif kind == "map":
            values[(kind, k)] = average_precision_at_k_from_counts(n, r, k, tie)
        else:
            k_eff = min(k, n_items)
            values[(kind, k)] = relevant_in_top_k_from_counts(n, r, k_eff, tie) / k_eff
    return values


def _index_values(data: PackedEval, specs: list[_Spec]) -> dict[_Spec, np.ndarray]:
    """Metrics with ties broken by retrieval index (the stable sort by distance)."""
    n_items = data.n_items
    cuts = [min(k, n_items) for _, k in specs if k is not None]
    found = index_metrics(data, cuts)
    values = {}
    for kind, k in specs:
        if k is None:
            values[(kind, k)] = found["ap"]
        elif kind == "map":
            values[(kind, k)] = found[("ap", min(k, n_items))]
        else:
            values[(kind, k)] = found[("hits", min(k, n_items))] / min(k, n_items)
    return values
