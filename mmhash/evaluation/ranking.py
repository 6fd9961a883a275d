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
from mmhash.evaluation._validate import check_tie
from mmhash.evaluation.engine import _run, kernels
from mmhash.evaluation.measures import Metric, parse_metrics
from mmhash.evaluation.metrics import TaskEvaluation, _check_ks
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
) -> TaskEvaluation:
    """Every metric under every tie policy, and the P@K curve, of a real-valued ranking.

    Parameters
    ----------
    distances : float (Q, N) distances (smaller is closer), or a function ``rows -> (b, N)``
        giving the distances of a slice of the queries (evaluated block by block).
    query_labels, retrieval_labels : as in :func:`mmhash.evaluation.average_precision` (multi-hot
        ``(n, C)`` or class ids ``(n,)``); they fix ``Q`` and ``N``.
    metrics, ties, pk_cutoffs : as in :func:`mmhash.evaluation.evaluate_task`.

    Returns
    -------
    :class:`TaskEvaluation` with ``pr=None``: the PR curve by Hamming radius has no meaning here.
    """
    tie_list = [ties] if isinstance(ties, str) else list(ties)
    if not tie_list:
        raise InvalidInputError("ties must name at least one tie policy (e.g. 'expected')")
    tie_list = list(dict.fromkeys(check_tie(t) for t in tie_list))
    specs = parse_metrics(metrics)
    k_list = _check_ks(pk_cutoffs) if len(pk_cutoffs) else []
    curve_specs = [Metric("p", k) for k in k_list]
    wanted = list(dict.fromkeys([*specs, *curve_specs]))
    labels = pack_label_pair(query_labels, retrieval_labels)
    n_queries, n_items = labels.query.shape[0], labels.retrieval_t.shape[1]
    rows_of = _distance_source(distances, n_queries, n_items)
    cuts = sorted({cut for spec in wanted if (cut := spec.cut(n_items)) is not None})
    per_query = {(spec, tie): np.empty(n_queries) for tie in tie_list for spec in wanted}
    step = max(1, BLOCK_PAIRS // max(n_items, 1))
    for start in range(0, n_queries, step):
        rows = slice(start, min(start + step, n_queries))
        block = _checked_block(rows_of(rows), rows, n_items)
        relevant = _run(kernels().relevance_matrix, block.size, labels.query[rows],
                        labels.retrieval_t, labels.ids)
        n, r, ranked = tie_groups(block, relevant)
        for tie in tie_list:
            if tie == "index":
                found = index_values(ranked, cuts)
                for spec in wanted:
                    per_query[(spec, tie)][rows] = spec.from_index_walk(found, n_items)
            else:
                for spec in wanted:
                    per_query[(spec, tie)][rows] = spec.from_counts(n, r, tie)
    values = {(spec.token, tie): float(per_query[(spec, tie)].mean())
              for tie in tie_list for spec in specs}
    curves = {tie: np.array([per_query[(s, tie)].mean() for s in curve_specs])
              for tie in tie_list} if curve_specs else {}
    return TaskEvaluation(values, None, np.array(k_list, dtype=np.int64), curves)


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
