"""Exact evaluation of a ranking by real-valued distances (quantisers, reference rows).

The Hamming engine gets each query's ranking as counts of items and relevant items at each of
``n_bits + 1`` distances. A real-valued distance has no such small alphabet, but the same
description holds per query: sort the query's distances, cut the sorted list into *groups of equal
value* -- equal distances are ties, exactly as equal Hamming distances are -- and count items and
relevant items per group. Those counts, padded with empty groups to the block's width, go through
the very formulas of :mod:`mmhash.evaluation.ties`, so ``expected`` / ``optimistic`` /
``pessimistic`` mean here what they mean for codes, and a distance matrix holding Hamming
distances gives the Hamming engine's values to 1e-12 (tested). ``index`` breaks ties by position
in the retrieval set: a stable sort by distance.

Distances arrive in blocks of queries (a ``(Q, N)`` array, or a function returning the rows of a
block), so a quantiser's asymmetric distances need never exist for all queries at once. Cost per
block: one sort of ``b x N`` distances. Only finite distances are accepted: NaN or infinity in a
ranking is a bug upstream, not a tie.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from mmhash.errors import InvalidInputError
from mmhash.evaluation.engine import _run, kernels
from mmhash.evaluation.measures import Metric, parse_metrics
from mmhash.evaluation.metrics import TaskEvaluation, _check_ks, check_ties, task_evaluation
from mmhash.evaluation.packing import pack_label_pair

#: Query-item pairs per block: the sort and the group counts hold a few arrays of this many
#: 8-byte values (~16 MB each).
BLOCK_PAIRS = 1 << 21

#: A block of distances: ``distance_rows(rows)`` -> float ``(len(rows), N)`` for a slice of
#: query rows.
DistanceRows = Callable[[slice], np.ndarray]


def tie_groups(distances: np.ndarray, relevant: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-query counts over groups of equal distance, in ascending order of distance.

    Parameters
    ----------
    distances : float (b, N), finite.
    relevant : bool (b, N).

    Returns
    -------
    ``(n, r, sorted_relevant)``: int64 (b, N) items and relevant items of each query's ``g``-th
    group of equal distance (groups past the query's last are empty: 0), and bool (b, N) the
    relevance in the stable order by distance (ties by retrieval index).
    """
    b, N = distances.shape
    order = np.argsort(distances, axis=1, kind="stable")
    ordered = np.take_along_axis(distances, order, axis=1)
    ranked_relevant = np.take_along_axis(relevant, order, axis=1)
    starts = np.ones((b, N), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(starts, axis=1) - 1  # each position's group, 0-based per query
    flat = (group + (np.arange(b, dtype=np.int64) * N)[:, None]).ravel()
    n = np.bincount(flat, minlength=b * N).reshape(b, N)
    r = np.bincount(flat[ranked_relevant.ravel()], minlength=b * N).reshape(b, N)
    return n, r, ranked_relevant


def index_values(ranked_relevant: np.ndarray, cuts: Sequence[int]) -> dict:
    """What :meth:`Metric.from_index_walk` reads, from the stable order: ``"ap"`` and, per cut
    ``K``, ``("ap", K)`` (AP@K over the relevant items in the top K) and ``("hits", K)``; each
    float64 (b,). ``ranked_relevant``: bool (b, N) in ranked order."""
    hits = np.cumsum(ranked_relevant, axis=1)
    positions = np.arange(1, ranked_relevant.shape[1] + 1)
    precision = np.where(ranked_relevant, hits / positions, 0.0)
    prefix = np.cumsum(precision, axis=1)
    total = hits[:, -1]
    out = {"ap": np.divide(prefix[:, -1], total, out=np.zeros(len(total)), where=total > 0)}
    for cut in cuts:
        got = hits[:, cut - 1]
        out[("hits", cut)] = got.astype(np.float64)
        out[("ap", cut)] = np.divide(prefix[:, cut - 1], got, out=np.zeros(len(got)),
                                     where=got > 0)
    return out


def evaluate_ranking(
    distances: np.ndarray | DistanceRows,
    query_labels,
    retrieval_labels,
    *,
    metrics: str | Iterable[str] = ("map",),
    ties: str | Iterable[str] = ("expected",),
    pk_cutoffs: Sequence[int] = (),
    pair_distances: np.ndarray | DistanceRows | None = None,
    per_query: bool = False,
) -> TaskEvaluation:
    """Every metric under every tie policy, and the P@K curve, of a real-valued ranking.

    Parameters
    ----------
    distances : float (Q, N) distances (smaller is closer), or a function ``rows -> (b, N)``
        giving the distances of a slice of the queries (evaluated block by block).
    query_labels, retrieval_labels : as in :func:`mmhash.evaluation.average_precision` (multi-hot
        ``(n, C)`` or class ids ``(n,)``); they fix ``Q`` and ``N``.
    metrics, ties, pk_cutoffs, per_query : as in :func:`mmhash.evaluation.evaluate_task`.
    pair_distances : float (Q, Q), or a function ``rows -> (b, Q)``: the distances of each
        query to the paired items of all queries (column q: query q's own pair); needed by the
        instance-level tokens ``recall@K`` and ``medr`` only.

    Returns
    -------
    :class:`TaskEvaluation` with ``pr=None``: the PR curve by Hamming radius has no meaning here.
    """
    tie_list = check_ties(ties)
    specs = parse_metrics(metrics)
    k_list = _check_ks(pk_cutoffs) if len(pk_cutoffs) else []
    curve_specs = [Metric("p", k) for k in k_list]
    wanted = list(dict.fromkeys([*specs, *curve_specs]))
    labels = pack_label_pair(query_labels, retrieval_labels)
    n_queries, n_items = labels.query.shape[0], labels.retrieval_t.shape[1]
    by_relevance: dict[str, list[Metric]] = {"labels": [], "pair": [], "graded": []}
    for spec in wanted:
        by_relevance[spec.relevance].append(spec)
    found: dict = {}
    if by_relevance["labels"] or by_relevance["graded"]:
        rows_of = _distance_source(distances, n_queries, n_items)
        found.update(_ranking_pass(rows_of, n_queries, n_items, tie_list, by_relevance,
                                   lambda rows, block: _run(
                                       kernels().relevance_matrix, block.size,
                                       labels.query[rows], labels.retrieval_t, labels.ids),
                                   labels))
    if by_relevance["pair"]:
        if pair_distances is None:
            raise InvalidInputError(
                f"{', '.join(s.token for s in by_relevance['pair'])} rank each query's own "
                "pair: pass pair_distances, the (Q, Q) distances of the queries to their pairs")
        pair_rows = _distance_source(pair_distances, n_queries, n_queries)
        found.update(_ranking_pass(pair_rows, n_queries, n_queries, tie_list,
                                   {"labels": by_relevance["pair"], "graded": []},
                                   _identity_relevance, None))
    return task_evaluation(found, specs, curve_specs, tie_list, None, per_query)


def _identity_relevance(rows: slice, block: np.ndarray) -> np.ndarray:
    """bool (b, Q): query ``rows.start + i`` is relevant to its own pair only."""
    relevant = np.zeros(block.shape, dtype=bool)
    relevant[np.arange(block.shape[0]), np.arange(rows.start, rows.stop)] = True
    return relevant


def _ranking_pass(rows_of: DistanceRows, n_queries: int, n_items: int, ties: list[str],
                  by_relevance: dict, relevance_of, labels) -> dict:
    """Per-query values (dict (metric, tie) -> float64 (Q,)) of the binary-relevance metrics
    ``by_relevance["labels"]`` and the graded ones ``by_relevance["graded"]``, block by block:
    ``relevance_of(rows, block)`` gives the bool relevance of a block's distances."""
    binary, graded = by_relevance["labels"], by_relevance["graded"]
    cuts = sorted({cut for spec in binary if (cut := spec.cut(n_items)) is not None})
    per_query = {(spec, tie): np.empty(n_queries) for tie in ties for spec in [*binary, *graded]}
    step = max(1, BLOCK_PAIRS // max(n_items, 1))
    for start in range(0, n_queries, step):
        rows = slice(start, min(start + step, n_queries))
        block = _checked_block(rows_of(rows), rows, n_items)
        if graded:
            from mmhash.evaluation.graded import gains_block, graded_from_ranking

            values = graded_from_ranking(block, gains_block(labels, rows),
                                         [(s.kind, s.k) for s in graded], ties)
            for spec in graded:
                for tie in ties:
                    per_query[(spec, tie)][rows] = values[(spec.kind, spec.k, tie)]
        if not binary:
            continue
        n, r, ranked = tie_groups(block, relevance_of(rows, block))
        for tie in ties:
            if tie == "index":
                found = index_values(ranked, cuts)
                for spec in binary:
                    per_query[(spec, tie)][rows] = spec.from_index_walk(found, n_items)
            else:
                for spec in binary:
                    per_query[(spec, tie)][rows] = spec.from_counts(n, r, tie)
    return per_query


def _distance_source(distances, n_queries: int, n_items: int) -> DistanceRows:
    if callable(distances):
        return distances
    matrix = np.asarray(distances)
    if matrix.ndim != 2 or matrix.shape != (n_queries, n_items):
        raise InvalidInputError(
            f"distances must be a (queries, items) = ({n_queries}, {n_items}) matrix matching "
            f"the labels, got shape {matrix.shape}")
    return lambda rows: matrix[rows]


def _checked_block(block, rows: slice, n_items: int) -> np.ndarray:
    block = np.asarray(block)
    want = (rows.stop - rows.start, n_items)
    if block.shape != want:
        raise InvalidInputError(f"distances of queries {rows.start}..{rows.stop - 1} have shape "
                                f"{block.shape}, expected {want}")
    if not np.issubdtype(block.dtype, np.number) or np.issubdtype(block.dtype, np.complexfloating):
        raise InvalidInputError(f"distances must be real numbers, got dtype {block.dtype}")
    block = block.astype(np.float64, copy=False)
    if not np.isfinite(block).all():
        raise InvalidInputError(
            f"distances of queries {rows.start}..{rows.stop - 1} hold NaN or infinite values; "
            "a ranking needs finite distances")
    return block
