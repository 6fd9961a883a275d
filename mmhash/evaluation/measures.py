"""The ranking metrics, each defined once: its token, parser, caption name and formula.

A metric is named by a token everywhere -- on the command line, in suites, in the store, in
exports and in regression references. This module is the only place that parses a token, names
it for a caption, says which relevance it is judged by and how per-query values are aggregated,
and maps the label-relevance metrics to the formulas that compute them from the engine's
per-query counts (or from the ``index`` walk); the conventions themselves are stated in
:mod:`mmhash.evaluation`.

Three kinds of relevance (:attr:`Metric.relevance`):

``labels`` -- ``map``, ``map@K``, ``p@K``
    an item is relevant when it shares a label with the query (binary).
``pair`` -- ``recall@K``, ``medr`` (instance-level retrieval)
    the single relevant item is the query's own pair: the same row seen through the task's
    retrieval view, ranked among the paired items of all queries (the query split's items in
    the retrieval view; :mod:`mmhash.evaluation.instance`).
``graded`` -- ``ndcg@K``, ``acg@K``
    the gain of an item is the number of labels it shares with the query
    (:mod:`mmhash.evaluation.graded`).

Every metric is a mean over queries except ``medr``, the median over queries of the (expected)
rank of the pair, for which lower is better (:attr:`Metric.higher_is_better`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mmhash.errors import InvalidInputError, UnknownNameError
from mmhash.evaluation.ties import (
    average_precision_at_k_from_counts,
    average_precision_from_counts,
    relevant_in_top_k_from_counts,
)

#: The forms a metric token takes (for error messages and help texts).
METRIC_FORMS = ("map", "map@K", "p@K", "recall@K", "medr", "ndcg@K", "acg@K")

#: kind -> (caption name, relevance): one entry per kind of metric.
_KINDS = {
    "map": ("mAP", "labels"),
    "p": ("P", "labels"),
    "recall": ("Recall", "pair"),
    "medr": ("MedR", "pair"),
    "ndcg": ("NDCG", "graded"),
    "acg": ("ACG", "graded"),
}
#: The kinds written without a cut-off (``map`` also takes one).
_WHOLE_RANKING = ("map", "medr")

_TOKEN = re.compile(r"^(map|p|recall|ndcg|acg)@(\d+)$")


@dataclass(frozen=True)
class Metric:
    """One metric of one query's ranking.

    ``kind`` is one of ``map`` (average precision), ``p`` (precision), ``recall`` (the pair
    within the top K), ``medr`` (rank of the pair), ``ndcg`` and ``acg`` (graded gain); ``k`` is
    the cut-off in positions, ``None`` for the whole ranking (``map`` and ``medr`` only).
    """

    kind: str
    k: int | None = None

    @property
    def token(self) -> str:
        """The name stored and typed: ``map``, ``map@50``, ``p@100``, ``recall@5``, ``medr``."""
        return self.kind if self.k is None else f"{self.kind}@{self.k}"

    @property
    def title(self) -> str:
        """The name in captions and headers: ``mAP@all``, ``mAP@50``, ``P@100``, ``Recall@5``,
        ``MedR``, ``NDCG@100``."""
        name = _KINDS[self.kind][0]
        if self.k is None:
            return "mAP@all" if self.kind == "map" else name
        return f"{name}@{self.k}"

    @property
    def relevance(self) -> str:
        """What makes an item relevant: ``labels``, ``pair`` or ``graded`` (module docstring)."""
        return _KINDS[self.kind][1]

    @property
    def higher_is_better(self) -> bool:
        """False only for ``medr`` (a rank)."""
        return self.kind != "medr"

    @property
    def statistic(self) -> str:
        """How per-query values make the metric: ``mean``, or ``median`` for ``medr``."""
        return "median" if self.kind == "medr" else "mean"

    def aggregate(self, per_query: np.ndarray) -> float:
        """The metric from its per-query values (float64 (Q,)): their mean, or median."""
        if self.statistic == "median":
            return float(np.median(per_query))
        return float(per_query.mean())

    def cut(self, n_items: int) -> int | None:
        """The effective cut-off for ``n_items`` ranked items: ``None`` when the metric covers
        the whole ranking (``map``, ``medr``, or ``map@K`` with K >= N), else ``min(K, N)``."""
        if self.k is None or (self.kind == "map" and self.k >= n_items):
            return None
        return min(int(self.k), n_items)

    def from_counts(self, n: np.ndarray, r: np.ndarray, tie: str) -> np.ndarray:
        """Per-query values of a ``labels`` or ``pair`` metric from the histograms of a block.

        ``n``, ``r``: int64 (b, G), items and relevant items in each group of equal distance
        (ascending); ``tie``: a count-based policy (``expected``, ``optimistic``,
        ``pessimistic``). For ``pair`` metrics each query has exactly one relevant item.
        Returns float64 (b,).
        """
        if self.kind == "medr":
            return pair_rank_from_counts(n, r, tie)
        cut = self.cut(int(n[0].sum()))
        if cut is None:
            return average_precision_from_counts(n, r, tie)
        if self.kind == "map":
            return average_precision_at_k_from_counts(n, r, cut, tie)
        hits = relevant_in_top_k_from_counts(n, r, cut, tie)
        return hits if self.kind == "recall" else hits / cut

    def from_index_walk(self, found: dict, n_items: int) -> np.ndarray:
        """Per-query values under ``index`` ties from the walk's output (see
        :func:`mmhash.evaluation.engine.index_metrics`, called with :meth:`cut` of every metric).

        For ``medr`` the single relevant item's AP is 1 / its rank, so the rank is read back
        from ``"ap"`` (rounded: it is an integer).
        """
        cut = self.cut(n_items)
        if self.kind == "medr":
            ap = found["ap"]
            return np.rint(np.divide(1.0, ap, out=np.full(len(ap), np.inf), where=ap > 0))
        if cut is None:
            return found["ap"]
        if self.kind == "map":
            return found[("ap", cut)]
        return found[("hits", cut)] if self.kind == "recall" else found[("hits", cut)] / cut


def pair_rank_from_counts(n: np.ndarray, r: np.ndarray, tie: str) -> np.ndarray:
    """Rank (1-based) of each query's single relevant item, from per-group counts.

    ``n``, ``r``: int64 (b, G) with exactly one relevant item per row. With ``before`` items in
    closer groups and ``m`` items in the pair's own group: ``expected`` -- the expected rank
    when that group is in uniformly random order, ``before + (m + 1) / 2``; ``optimistic`` --
    ``before + 1``; ``pessimistic`` -- ``before + m``. Returns float64 (b,).
    """
    rows = np.arange(len(n))
    group = np.argmax(r > 0, axis=1)
    before = (np.cumsum(n, axis=1) - n)[rows, group].astype(np.float64)
    m = n[rows, group].astype(np.float64)
    if tie == "expected":
        return before + (m + 1) / 2
    if tie == "optimistic":
        return before + 1
    if tie == "pessimistic":
        return before + m
    raise ValueError(f"pair_rank_from_counts handles count-based policies, not {tie!r}")


def parse_metric(token) -> Metric:
    """The :class:`Metric` named by ``token`` (one of :data:`METRIC_FORMS`, K >= 1)."""
    if not isinstance(token, str):
        raise UnknownNameError("metric", repr(token), METRIC_FORMS)
    if token in _WHOLE_RANKING:
        return Metric(token)
    match = _TOKEN.match(token)
    if match is None:
        raise UnknownNameError("metric", token, METRIC_FORMS)
    k = int(match.group(2))
    if k < 1:
        raise InvalidInputError(f"metric {token!r}: K must be a positive integer, got {k}")
    return Metric(match.group(1), k)


def parse_metrics(tokens: str | Iterable[str]) -> list[Metric]:
    """Parse one token or several (duplicates kept once, in order); at least one is needed."""
    items = [tokens] if isinstance(tokens, str) else list(tokens)
    if not items:
        raise InvalidInputError("metrics must name at least one metric (e.g. 'map', 'p@100')")
    return list(dict.fromkeys(parse_metric(t) for t in items))


def metric_title(token: str) -> str:
    """Caption name of a stored token (``map`` -> ``mAP@all``); unknown tokens unchanged."""
    try:
        return parse_metric(token).title
    except (UnknownNameError, InvalidInputError):
        return token
