"""mAP, mAP@K, P@K and the PR curve by Hamming radius, on the packed engine.

The conventions are stated once, in the docstring of :mod:`mmhash.evaluation`. All metrics of one
call come from one pass of the engine (:mod:`mmhash.evaluation.engine`): per-query counts of
items and relevant items at each distance, from which :mod:`mmhash.evaluation.ties` computes the
count-based policies exactly; ``tie="index"`` adds one walk in index order per query that places
every relevant item in the stable ranking without sorting. The first, numpy implementation is
kept as the test oracle in :mod:`mmhash.evaluation.reference`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmhash.errors import InvalidInputError
from mmhash.evaluation._validate import check_k, check_tie
from mmhash.evaluation.engine import PackedEval, index_walk, iter_histograms, prepare
from mmhash.evaluation.measures import Metric, parse_metrics


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
    spec = Metric("map", None if topk is None else check_k(topk, "topk"))
    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    return _one_pass(data, [spec], [tie])[(spec, tie)]


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
    specs = list(dict.fromkeys(Metric("p", k) for k in k_list))
    per_query = _one_pass(data, specs, [tie])
    return np.array([per_query[(Metric("p", k), tie)].mean() for k in k_list], dtype=np.float64)


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
    sums = _PRSums(n_bits)
    for _, n, r in blocks:
        sums.add(n, r)
    return sums.curve()


class _PRSums:
    """Running sums of the PR curve over blocks of queries (see :class:`PRCurve`)."""

    def __init__(self, n_bits: int):
        width = n_bits + 1
        self.precision_sum = np.zeros(width)
        self.precision_count = np.zeros(width, dtype=np.int64)
        self.recall_sum = np.zeros(width)
        self.recall_count = 0

    def add(self, n: np.ndarray, r: np.ndarray) -> None:
        retrieved = np.cumsum(n, axis=1)
        hits = np.cumsum(r, axis=1)
        total = r.sum(axis=1)
        has_any = retrieved > 0
        self.precision_sum += np.divide(hits, retrieved, out=np.zeros(hits.shape),
                                        where=has_any).sum(0)
        self.precision_count += has_any.sum(axis=0)
        has_rel = total > 0
        self.recall_sum += (hits[has_rel] / total[has_rel, None]).sum(axis=0)
        self.recall_count += int(has_rel.sum())

    def curve(self) -> PRCurve:
        width = len(self.precision_sum)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(self.precision_count > 0,
                                 self.precision_sum / self.precision_count, np.nan)
            recall = (self.recall_sum / self.recall_count if self.recall_count
                      else np.full(width, np.nan))
        return PRCurve(np.arange(width), precision, recall)


def evaluate(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    *,
    metrics: str | Iterable[str] = ("map",),
    tie: str = "expected",
    pair_codes=None,
) -> dict[str, float]:
    """Several metrics from one pass over the data.

    Parameters
    ----------
    query_codes, retrieval_codes, query_labels, retrieval_labels : as in
        :func:`average_precision`.
    metrics : tokens (:data:`~mmhash.evaluation.METRIC_FORMS`: ``"map"``, ``"map@50"``,
        ``"p@100"``, ``"recall@5"``, ``"medr"``, ``"ndcg@100"``, ``"acg@100"``), or one token.
    tie : one of :data:`TIE_POLICIES`.
    pair_codes : (Q, n_bits) int array in {-1, +1}, row q the code of query q's own pair in the
        retrieval view; needed by the instance-level tokens ``recall@K`` and ``medr`` only.

    Returns
    -------
    dict token -> the metric (mean over queries; median for ``medr``), in the order given.
    """
    found = evaluate_task(query_codes, retrieval_codes, query_labels, retrieval_labels,
                          metrics=metrics, ties=tie, pr=False, pair_codes=pair_codes)
    return {token: value for (token, _), value in found.values.items()}


@dataclass(frozen=True)
class TaskEvaluation:
    """Everything the bench keeps of one retrieval task, from one pass over the data.

    Attributes
    ----------
    values : dict (metric token, tie policy) -> the metric (mean over queries; median for
        ``medr``).
    pr : the :class:`PRCurve` (no tie policy), or None when not asked for.
    cutoffs : int (n_k,) the K of the P@K curve (may be empty).
    precision_at_k : dict tie policy -> float64 (n_k,) mean P@K at ``cutoffs``.
    per_query : dict (metric token, tie policy) -> float64 (Q,) the value of every query, in
        query order (the rank of the pair for ``medr``); filled only when asked for.
    """

    values: dict[tuple[str, str], float]
    pr: PRCurve | None
    cutoffs: np.ndarray
    precision_at_k: dict[str, np.ndarray] = field(default_factory=dict)
    per_query: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)


def evaluate_task(
    query_codes,
    retrieval_codes,
    query_labels,
    retrieval_labels,
    *,
    metrics: str | Iterable[str] = ("map",),
    ties: str | Iterable[str] = ("expected",),
    pk_cutoffs: Sequence[int] = (),
    pr: bool = True,
    pair_codes=None,
    per_query: bool = False,
) -> TaskEvaluation:
    """Every metric under every tie policy, the PR curve and the P@K curve, in one pass.

    The histograms of each block of queries are computed once and every count-based policy,
    the PR sums and the ``index`` walk (which needs them) are taken from them, so the cost is
    one histogram pass (plus one index walk when ``index`` is among ``ties``) however many
    label-relevance metrics and policies are asked for. Graded metrics (``ndcg@K``, ``acg@K``)
    add one pass over the same data; instance-level ones (``recall@K``, ``medr``) one pass of
    the queries against ``pair_codes``. Values are bit-identical to :func:`evaluate`,
    :func:`precision_at_k` and :func:`pr_curve` called one by one.

    Parameters
    ----------
    query_codes, retrieval_codes, query_labels, retrieval_labels : as in
        :func:`average_precision`.
    metrics : tokens as in :func:`evaluate`.
    ties : tie policies (one or several of :data:`TIE_POLICIES`).
    pk_cutoffs : the K of the P@K curve (positive ints; clipped to N as in
        :func:`precision_at_k`); empty for no curve.
    pr : also compute the PR curve.
    pair_codes : as in :func:`evaluate`; needed only by ``recall@K`` and ``medr``.
    per_query : also return every query's value of every metric (``TaskEvaluation.per_query``).
    """
    tie_list = check_ties(ties)
    specs = parse_metrics(metrics)
    k_list = _check_ks(pk_cutoffs) if len(pk_cutoffs) else []
    curve_specs = [Metric("p", k) for k in k_list]
    data = prepare(query_codes, retrieval_codes, query_labels, retrieval_labels)
    pair_data = _pair_data(query_codes, pair_codes, specs, data.n_queries)
    sums = _PRSums(data.n_bits) if pr else None
    found = _one_pass(data, list(dict.fromkeys([*specs, *curve_specs])), tie_list, sums,
                      pair_data)
    return task_evaluation(found, specs, curve_specs, tie_list,
                           sums.curve() if sums is not None else None, per_query)


def check_ties(ties) -> list[str]:
    """One tie policy or several, checked, duplicates dropped; at least one is needed."""
    tie_list = [ties] if isinstance(ties, str) or not isinstance(ties, Iterable) else list(ties)
    if not tie_list:
        raise InvalidInputError("ties must name at least one tie policy (e.g. 'expected')")
    return list(dict.fromkeys(check_tie(t) for t in tie_list))


def task_evaluation(found: dict, specs: list[Metric], curve_specs: list[Metric],
                    ties: list[str], pr: PRCurve | None, per_query: bool) -> TaskEvaluation:
    """A :class:`TaskEvaluation` from per-query values ``found`` (dict (metric, tie) -> float64
    (Q,)): each metric aggregated over queries, the P@K curve of ``curve_specs``."""
    values = {(spec.token, tie): spec.aggregate(found[(spec, tie)])
              for tie in ties for spec in specs}
    curves = {tie: np.array([found[(s, tie)].mean() for s in curve_specs], dtype=np.float64)
              for tie in ties} if curve_specs else {}
    kept = ({(spec.token, tie): found[(spec, tie)] for tie in ties for spec in specs}
            if per_query else {})
    return TaskEvaluation(values, pr, np.array([s.k for s in curve_specs], dtype=np.int64),
                          curves, kept)


def _pair_data(query_codes, pair_codes, specs: list[Metric], n_queries: int
               ) -> PackedEval | None:
    """The packed instance-level task -- each query against the pairs of all queries, its own
    the single relevant one -- when a ``pair`` metric is asked for (else None)."""
    wanted = [spec.token for spec in specs if spec.relevance == "pair"]
    if not wanted:
        return None
    if pair_codes is None:
        raise InvalidInputError(
            f"{', '.join(wanted)} rank each query's own pair: pass pair_codes, the (Q, n_bits) "
            "codes of the query items in the retrieval view")
    n_pairs = np.shape(pair_codes)[0] if np.ndim(pair_codes) == 2 else None
    if n_pairs != n_queries:
        raise InvalidInputError(
            f"pair_codes must have one row per query ({n_queries}), got shape "
            f"{np.shape(pair_codes)}")
    ids = np.arange(n_queries)
    return prepare(query_codes, pair_codes, ids, ids)


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


def _one_pass(data: PackedEval, specs: list[Metric], ties: list[str],
              pr_sums: _PRSums | None = None, pair_data: PackedEval | None = None
              ) -> dict[tuple[Metric, str], np.ndarray]:
    """Per-query values of every metric under every tie policy: dict (metric, tie) -> float64
    (Q,). Label-relevance metrics come from one histogram pass (and one index walk when
    ``index`` is among ``ties``), whose histograms also feed the PR sums when given; graded
    metrics from one pass of :mod:`mmhash.evaluation.graded`; ``pair`` metrics from the same
    histogram pass over ``pair_data``."""
    by_relevance: dict[str, list[Metric]] = {"labels": [], "pair": [], "graded": []}
    for spec in specs:
        by_relevance[spec.relevance].append(spec)
    out = _count_pass(data, by_relevance["labels"], ties, pr_sums)
    if by_relevance["pair"]:
        out.update(_count_pass(pair_data, by_relevance["pair"], ties))
    if by_relevance["graded"]:
        from mmhash.evaluation.graded import graded_per_query

        found = graded_per_query(data, [(s.kind, s.k) for s in by_relevance["graded"]], ties)
        out.update({(s, tie): found[(s.kind, s.k, tie)]
                    for s in by_relevance["graded"] for tie in ties})
    return out


def _count_pass(data: PackedEval, specs: list[Metric], ties: list[str],
                pr_sums: _PRSums | None = None) -> dict[tuple[Metric, str], np.ndarray]:
    """:func:`_one_pass` for metrics computed from the binary histograms (``labels`` and
    ``pair`` relevance)."""
    out = {(spec, tie): np.empty(data.n_queries) for tie in ties for spec in specs}
    if not specs and pr_sums is None:
        return out
    count_ties = [tie for tie in ties if tie != "index"]
    cuts = sorted({cut for spec in specs if (cut := spec.cut(data.n_items)) is not None})
    # precision sums only where an AP@K needs them (P@K needs counts only)
    ap_cuts = sorted({spec.cut(data.n_items) for spec in specs
                      if spec.kind == "map" and spec.cut(data.n_items) is not None})
    for rows, n, r in iter_histograms(data):
        for tie in count_ties:
            for spec in specs:
                out[(spec, tie)][rows] = spec.from_counts(n, r, tie)
        if "index" in ties and specs:
            found = index_walk(data, rows, n, r, cuts, ap_cuts)
            for spec in specs:
                out[(spec, "index")][rows] = spec.from_index_walk(found, data.n_items)
        if pr_sums is not None:
            pr_sums.add(n, r)
    return out
