"""The ranking metrics, each defined once: its token, parser, caption name and formula.

A metric is named by a token everywhere -- on the command line, in suites, in the store, in
exports and in regression references: ``map`` (AP over the whole ranking), ``map@K`` (AP over the
top K, normalised by the relevant items within them) and ``p@K`` (precision of the top K). This
module is the only place that parses a token, names it for a caption and maps it to the formula
that computes it from the engine's per-query counts (or from the ``index`` walk); the
conventions themselves are stated in :mod:`mmhash.evaluation`.
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
METRIC_FORMS = ("map", "map@K", "p@K")

_TOKEN = re.compile(r"^(map|p)@(\d+)$")


@dataclass(frozen=True)
class Metric:
    """One metric of one query's ranking.

    ``kind`` is ``"map"`` (average precision) or ``"p"`` (precision); ``k`` is the cut-off in
    positions, ``None`` for the whole ranking (``map`` only).
    """

    kind: str
    k: int | None = None

    @property
    def token(self) -> str:
        """The name stored and typed: ``map``, ``map@50``, ``p@100``."""
        return "map" if self.k is None else f"{self.kind}@{self.k}"

    @property
    def title(self) -> str:
        """The name in captions and headers: ``mAP@all``, ``mAP@50``, ``P@100``."""
        if self.k is None:
            return "mAP@all"
        return f"mAP@{self.k}" if self.kind == "map" else f"P@{self.k}"

    def cut(self, n_items: int) -> int | None:
        """The effective cut-off for ``n_items`` retrieval items: ``None`` when the metric covers
        the whole ranking (``map``, or ``map@K`` with K >= N), else ``min(K, N)``."""
        if self.kind == "map" and (self.k is None or self.k >= n_items):
            return None
        return min(int(self.k), n_items)  # type: ignore[arg-type]

    def from_counts(self, n: np.ndarray, r: np.ndarray, tie: str) -> np.ndarray:
        """Per-query values from the histograms of a block of queries.

        ``n``, ``r``: int64 (b, n_bits + 1), items and relevant items at each Hamming distance;
        ``tie``: a count-based policy (``expected``, ``optimistic``, ``pessimistic``).
        Returns float64 (b,).
        """
        cut = self.cut(int(n[0].sum()))
        if cut is None:
            return average_precision_from_counts(n, r, tie)
        if self.kind == "map":
            return average_precision_at_k_from_counts(n, r, cut, tie)
        return relevant_in_top_k_from_counts(n, r, cut, tie) / cut

    def from_index_walk(self, found: dict, n_items: int) -> np.ndarray:
        """Per-query values under ``index`` ties from the walk's output (see
        :func:`mmhash.evaluation.engine.index_metrics`, called with :meth:`cut` of every metric).
        """
        cut = self.cut(n_items)
        if cut is None:
            return found["ap"]
        if self.kind == "map":
            return found[("ap", cut)]
        return found[("hits", cut)] / cut


def parse_metric(token) -> Metric:
    """The :class:`Metric` named by ``token`` (``map``, ``map@K``, ``p@K`` with K >= 1)."""
    if not isinstance(token, str):
        raise UnknownNameError("metric", repr(token), METRIC_FORMS)
    if token == "map":
        return Metric("map")
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
