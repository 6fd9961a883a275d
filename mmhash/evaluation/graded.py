"""Graded-relevance metrics NDCG@K and ACG@K, exact under every tie policy.

Definitions
    The *gain* of retrieval item ``x`` for query ``q`` is the number of labels they share: the
    popcount of the AND of their multi-hot rows; for 1-D class-id labels, 1 if the ids are equal
    and 0 otherwise. Items take positions ``p = 1..N`` by ascending distance; ``K_eff = min(K, N)``.

    ``DCG@K = sum_{p=1}^{K_eff} gain_p / log2(p + 1)``. ``IDCG@K`` is the same sum with all ``N``
    items' gains sorted in descending order (it does not depend on the codes).
    ``NDCG@K = DCG@K / IDCG@K``, and 0 for a query with no item of positive gain (IDCG = 0); such
    a query still counts in the mean, as for AP.

    ``ACG@K = (1 / K_eff) * sum_{p=1}^{K_eff} gain_p`` (average cumulative gain).

Tie policies (see :mod:`mmhash.evaluation`)
    ``expected``
        The exact expectation when each group of equal distance is put in a uniformly random
        order. DCG and ACG are linear in the gains and every position of a group of ``m`` items
        with total gain ``G`` holds expected gain ``G / m``, so a group contributes
        ``(G / m) * (sum of the discounts of its positions within the top K)``: a closed form,
        exact. (IDCG does not depend on the order, so E[NDCG] = E[DCG] / IDCG.)
    ``optimistic`` / ``pessimistic``
        Inside every tie group the highest / lowest gains first. Since the discounts do not
        increase with the position, these bound ``expected`` from above / below.
    ``index``
        Ties broken by position in the retrieval set (a stable sort by distance).

Computation
    Hamming codes (:func:`graded_per_query`): one fused kernel pass per block of queries gives,
    per query, the histogram ``h[d, g]`` of items at distance ``d`` with gain ``g``
    (:func:`mmhash.evaluation.kernels.gain_histograms`), shared by every request and every
    count-based tie policy. Ordering the ``(distance, gain)`` bins by distance, then gain
    (descending for optimistic, ascending for pessimistic), a bin of ``c`` items at positions
    ``start + 1 .. end`` contributes ``gain * (P[min(end, K)] - P[min(start, K)])`` with ``P`` the
    prefix sums of the discounts (``P[x] = x`` for ACG); ``expected`` uses whole distance groups
    and their mean gain (:func:`graded_from_histograms`). ``index`` needs the retrieval order: a
    second kernel walks the items in index order and places each one
    (:func:`mmhash.evaluation.kernels.index_gain_sums`). Memory is bounded by the query block
    (``engine.QUERY_BLOCK``): O(n_bits * max_gain) per query, no Q x N matrix.

    Real-valued rankings (:func:`graded_from_ranking`): tie groups are runs of equal distance
    (as in :mod:`mmhash.evaluation.ranking`); the gains are put in each policy's order (or
    replaced by their group means for ``expected``) and summed position by position.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mmhash.errors import InvalidInputError, UnknownNameError
from mmhash.evaluation import engine
from mmhash.evaluation._validate import check_k, check_tie
from mmhash.evaluation.engine import PackedEval, _run, kernels
from mmhash.evaluation.packing import PackedLabels

#: The graded metrics: normalised discounted cumulative gain and average cumulative gain.
GRADED_KINDS = ("ndcg", "acg")

_COUNT_TIES = ("expected", "optimistic", "pessimistic")


def max_gain(labels: PackedLabels) -> int:
    """The largest gain any item can have: the most labels on one query row (1 for class ids;
    0 when no query has a label)."""
    if labels.ids:
        return 1
    query = np.ascontiguousarray(labels.query)
    if query.size == 0:
        return 0
    # popcount of every row without np.bitwise_count (numpy >= 2 only)
    bits = np.unpackbits(query.view(np.uint8), axis=1)
    return int(bits.sum(axis=1, dtype=np.int64).max())


def gains_block(labels: PackedLabels, rows: slice | None = None) -> np.ndarray:
    """Gains of every retrieval item for the query rows ``rows`` (default: all).

    ``labels``: packed labels of both sides (:func:`mmhash.evaluation.packing.pack_label_pair`).
    Returns int32 (b, N): labels shared by query and item (class ids: 1 if equal, else 0).
    """
    query = labels.query if rows is None else labels.query[rows]
    n_pairs = len(query) * labels.retrieval_t.shape[1]
    return _run(kernels().gain_matrix, n_pairs, query, labels.retrieval_t, labels.ids)


def _check_requests(requests: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    out = []
    for request in requests:
        try:
            kind, k = request
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"a graded request is a (kind, K) pair, got {request!r}") from None
        if kind not in GRADED_KINDS:
            raise UnknownNameError("graded metric", str(kind), GRADED_KINDS)
        out.append((kind, check_k(k, f"K of {kind}")))
    return list(dict.fromkeys(out))


def _check_ties(ties: Iterable[str]) -> list[str]:
    tie_list = [ties] if isinstance(ties, str) else list(ties)
    if not tie_list:
        raise InvalidInputError("ties must name at least one tie policy (e.g. 'expected')")
    return list(dict.fromkeys(check_tie(t) for t in tie_list))


def discounts(n: int) -> np.ndarray:
    """float64 (n,): the DCG discount ``1 / log2(p + 1)`` of positions ``p = 1..n``."""
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def _prefix(kind: str, k_eff: int) -> np.ndarray:
    """float64 (k_eff + 1,): ``P[x]``, the summed weights of positions ``1..x`` (DCG discounts
    for ndcg, 1 per position for acg)."""
    if kind == "acg":
        return np.arange(k_eff + 1, dtype=np.float64)
    out = np.zeros(k_eff + 1)
    np.cumsum(discounts(k_eff), out=out[1:])
    return out


def _bin_sum(counts: np.ndarray, values: np.ndarray, prefix: np.ndarray) -> np.ndarray:
    """Sum over consecutive bins of ``value * (P[min(end, K)] - P[min(start, K)])``.

    ``counts``: int (b, M) items per bin in ranked order; ``values``: float (b, M) or (M,), the
    (mean) gain of each bin's items; ``prefix``: float64 (K + 1,). Returns float64 (b,).
    """
    k = len(prefix) - 1
    end = np.cumsum(counts, axis=1)
    start = end - counts
    span = prefix[np.minimum(end, k)] - prefix[np.minimum(start, k)]
    return (span * values).sum(axis=1)


def _dcg(h: np.ndarray, tie: str, prefix: np.ndarray) -> np.ndarray:
    """Weighted gain sum of the top ``len(prefix) - 1`` positions under a count-based tie
    policy, from int (b, D, G + 1) histograms. Returns float64 (b,)."""
    b, n_dist, n_gain = h.shape
    if tie == "expected":
        n = h.sum(axis=2)
        total = h @ np.arange(n_gain, dtype=np.int64)
        mean = np.divide(total, n, out=np.zeros(n.shape), where=n > 0)
        return _bin_sum(n, mean, prefix)
    if tie == "optimistic":
        counts, gain = h[:, :, ::-1], np.arange(n_gain - 1, -1, -1, dtype=np.float64)
    elif tie == "pessimistic":
        counts, gain = h, np.arange(n_gain, dtype=np.float64)
    else:
        raise ValueError(f"graded values from histograms need a count-based policy, not {tie!r}")
    return _bin_sum(counts.reshape(b, n_dist * n_gain), np.tile(gain, n_dist), prefix)


def _ideal(h: np.ndarray, prefix: np.ndarray) -> np.ndarray:
    """IDCG: the weighted gain sum with all items' gains in descending order. float64 (b,)."""
    per_gain = h.sum(axis=1)[:, ::-1]
    return _bin_sum(per_gain, np.arange(h.shape[2] - 1, -1, -1, dtype=np.float64), prefix)


def _normalise(kind: str, value: np.ndarray, ideal: np.ndarray | None, k_eff: int) -> np.ndarray:
    if kind == "acg":
        return value / k_eff
    return np.divide(value, ideal, out=np.zeros(len(value)), where=ideal > 0)


def graded_from_histograms(h: np.ndarray, kind: str, k: int, tie: str) -> np.ndarray:
    """NDCG@K or ACG@K of each query from its (distance, gain) histogram.

    Parameters
    ----------
    h : int64 (b, D, G + 1): ``h[q, d, g]`` items in the ``d``-th group of equal distance
        (groups in ascending distance; empty groups allowed) with gain ``g``.
    kind : "ndcg" or "acg".
    k : cut-off K >= 1 (clipped to N, the items of each query).
    tie : "expected", "optimistic" or "pessimistic".

    Returns
    -------
    float64 (b,).
    """
    (kind, k), = _check_requests([(kind, k)])
    h = np.asarray(h)
    k_eff = min(k, int(h[0].sum())) if len(h) else k
    prefix = _prefix(kind, k_eff)
    ideal = _ideal(h, prefix) if kind == "ndcg" else None
    return _normalise(kind, _dcg(h, tie, prefix), ideal, k_eff)


def graded_per_query(data: PackedEval, requests: list[tuple[str, int]], ties: list[str]
                     ) -> dict[tuple[str, int, str], np.ndarray]:
    """Per-query NDCG@K / ACG@K of Hamming retrieval under each tie policy.

    Parameters
    ----------
    data : packed inputs (:func:`mmhash.evaluation.engine.prepare`).
    requests : ``(kind, K)`` pairs, kind in :data:`GRADED_KINDS`, K >= 1 (K > N means N).
    ties : tie policies (:data:`mmhash.evaluation.TIE_POLICIES`).

    Returns
    -------
    dict ``(kind, K, tie)`` -> float64 (Q,), for every request and tie policy.

    Queries go to the kernels in blocks of ``engine.QUERY_BLOCK``: one histogram pass per block
    serves every request and every count-based policy; ``index`` adds one walk per block.
    """
    reqs = _check_requests(requests)
    tie_list = _check_ties(ties)
    n_queries, n_items = data.n_queries, data.n_items
    out = {(kind, k, tie): np.empty(n_queries) for kind, k in reqs for tie in tie_list}
    if not reqs:
        return out
    kern = kernels()
    gain_max = max_gain(data.labels)
    cuts = sorted({min(k, n_items) for _, k in reqs})
    prefixes = {(kind, c): _prefix(kind, c) for kind, k in reqs for c in [min(k, n_items)]}
    disc = discounts(cuts[-1])
    for rows in engine._blocks(n_queries):
        pairs, qc, rct, ql, rlt, ids, n_bits, qb = engine._block_args(data, rows)
        h = _run(kern.gain_histograms, pairs, qc, rct, ql, rlt, ids, n_bits, gain_max, qb)
        ideal = {c: _ideal(h, prefixes[("ndcg", c)])
                 for kind, k in reqs if kind == "ndcg" for c in [min(k, n_items)]}
        for tie in tie_list:
            if tie == "index":
                continue
            for kind, k in reqs:
                c = min(k, n_items)
                value = _dcg(h, tie, prefixes[(kind, c)])
                out[(kind, k, tie)][rows] = _normalise(kind, value, ideal.get(c), c)
        if "index" in tie_list:
            n = h.sum(axis=2)
            n_before = np.cumsum(n, axis=1) - n
            dcg, total = _run(kern.index_gain_sums, pairs, qc, rct, ql, rlt, ids, n_bits, qb,
                              n_before, np.array(cuts, dtype=np.int64), disc)
            for kind, k in reqs:
                c = min(k, n_items)
                col = cuts.index(c)
                value = dcg[:, col] if kind == "ndcg" else total[:, col].astype(np.float64)
                out[(kind, k, "index")][rows] = _normalise(kind, value, ideal.get(c), c)
    return out


def graded_from_ranking(distances: np.ndarray, gains: np.ndarray,
                        requests: list[tuple[str, int]], ties: list[str]
                        ) -> dict[tuple[str, int, str], np.ndarray]:
    """Per-query NDCG@K / ACG@K of a ranking by real-valued distances.

    Parameters
    ----------
    distances : float (b, N), finite; smaller is closer, equal values are ties.
    gains : int (b, N), non-negative: each item's gain for the query (:func:`gains_block`).
    requests, ties : as in :func:`graded_per_query`.

    Returns
    -------
    dict ``(kind, K, tie)`` -> float64 (b,).

    Cost: one stable sort of the distances, and for optimistic / pessimistic one integer sort
    of (tie group, gain) keys.
    """
    reqs = _check_requests(requests)
    tie_list = _check_ties(ties)
    distances = np.asarray(distances, dtype=np.float64)
    gains = np.asarray(gains)
    if distances.ndim != 2 or gains.shape != distances.shape:
        raise InvalidInputError(
            f"distances and gains must be (b, N) arrays of one shape, got {distances.shape} "
            f"and {gains.shape}")
    gains = gains.astype(np.int64, copy=False)
    b, n_items = distances.shape
    order = np.argsort(distances, axis=1, kind="stable")
    ordered = np.take_along_axis(distances, order, axis=1)
    ranked = np.take_along_axis(gains, order, axis=1)  # the index policy's order
    starts = np.ones((b, n_items), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(starts, axis=1) - 1  # each position's tie group, 0-based per query
    top = int(ranked.max(initial=0))

    def in_group_order(key: np.ndarray) -> np.ndarray:
        # gains reordered inside each tie group by ascending key (a stable integer sort)
        within = np.argsort(group * (top + 1) + key, axis=1, kind="stable")
        return np.take_along_axis(ranked, within, axis=1).astype(np.float64)

    def expected() -> np.ndarray:
        flat = (group + (np.arange(b, dtype=np.int64) * n_items)[:, None]).ravel()
        total = np.bincount(flat, weights=ranked.ravel(), minlength=b * n_items)
        count = np.bincount(flat, minlength=b * n_items)
        return (total[flat] / count[flat]).reshape(b, n_items)

    position_gains = {
        "index": lambda: ranked.astype(np.float64),
        "optimistic": lambda: in_group_order(top - ranked),
        "pessimistic": lambda: in_group_order(ranked),
        "expected": expected,
    }
    cuts = sorted({min(k, n_items) for _, k in reqs})
    disc = discounts(cuts[-1]) if cuts else np.zeros(0)
    ideal_order = -np.sort(-gains, axis=1)[:, : cuts[-1] if cuts else 0].astype(np.float64)
    ideal = {c: ideal_order[:, :c] @ disc[:c] for c in cuts}
    out = {}
    for tie in tie_list:
        at = position_gains[tie]()
        for kind, k in reqs:
            c = min(k, n_items)
            value = at[:, :c] @ disc[:c] if kind == "ndcg" else at[:, :c].sum(axis=1)
            out[(kind, k, tie)] = _normalise(kind, value, ideal[c], c)
    return out


__all__ = [
    "GRADED_KINDS",
    "discounts",
    "gains_block",
    "graded_from_histograms",
    "graded_from_ranking",
    "graded_per_query",
    "max_gain",
]
