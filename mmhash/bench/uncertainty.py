"""Intervals and significance for report tables, from the per-query values of stored codes.

A table cell is a mean over seeds of a mean over queries (a median for ``medr``). Given every
seed's per-query values (:func:`mmhash.bench.recompute.recompute` with ``per_query=True``),
:func:`annotate` adds to each :class:`~mmhash.bench.report.Table`:

* an interval per cell: a bootstrap over the queries, and over the seeds first when a cell has
  several (:func:`mmhash.evaluation.significance.bootstrap_interval`);
* a test per column of its best row against the runner-up: the paired permutation test over
  the same queries, with the paired bootstrap interval of the difference (seeds paired when
  both rows hold the same seeds), :func:`mmhash.evaluation.significance.paired_comparison`.
  The p-values of all the columns of all the tables annotated together are Holm-adjusted as one
  family. A difference is called significant when the adjusted p is below ``1 - level`` *and*
  the interval of the difference excludes 0: the test conditions on the fitted models (the
  seeds given), the interval also resamples the seeds where a row has several, so a difference
  that seed-to-seed variation could explain is not called significant (:func:`significant`).

The resampling seed is fixed (``seed``): the same store and options give the same report.
Reads and computes; prints nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmhash.bench.report import ROW_FIELDS, Table
from mmhash.errors import InvalidInputError
from mmhash.evaluation.measures import parse_metric
from mmhash.evaluation.significance import (
    Comparison,
    Interval,
    bootstrap_interval,
    holm,
    paired_comparison,
    statistic_of,
)

#: Bootstrap resamples per interval and permutations per test: the Monte-Carlo error of a
#: 95% bound is then well under the third decimal the tables show, and of p = 0.05 about 0.002.
N_RESAMPLES = 2000
N_PERMUTATIONS = 10000


def significant(comparison: Comparison, p_adjusted: float, alpha: float) -> bool:
    """The verdict: the adjusted p-value is below ``alpha`` and the interval of the difference
    excludes 0 (see the module docstring)."""
    return p_adjusted < alpha and (comparison.low > 0 or comparison.high < 0)


def verdict_word(comparison: Comparison, p_adjusted: float, alpha: float) -> str:
    """``significant`` or ``not significant``, saying why when the two criteria disagree."""
    if significant(comparison, p_adjusted, alpha):
        return "significant"
    if p_adjusted < alpha:
        return "not significant (p is below the level, but the interval of the difference, " \
               "which resamples the seeds too, includes 0)"
    return "not significant"


@dataclass(frozen=True)
class ColumnTest:
    """The best row of one column tested against the runner-up.

    ``comparison`` is best minus runner-up (for ``medr``, where lower is better, the difference
    is negative when the best is better); ``p_adjusted`` the Holm-adjusted p-value over every
    test of the report; ``significant``: ``p_adjusted < alpha``.
    """

    best: str
    runner_up: str
    comparison: Comparison
    p_adjusted: float
    alpha: float

    @property
    def significant(self) -> bool:
        return significant(self.comparison, self.p_adjusted, self.alpha)


@dataclass(frozen=True)
class Uncertainty:
    """What :func:`annotate` adds to one table."""

    level: float
    seed: int
    #: (row label, task, bits) -> the interval of that cell
    intervals: dict[tuple[str, str, int], Interval]
    #: (task, bits) -> the test of the column's best row against its runner-up
    tests: dict[tuple[str, int], ColumnTest]
    #: how many tests the Holm adjustment covered (all the tables annotated together)
    family: int


def check_level(level: Any) -> float:
    """A confidence level given in percent (``95``) or as a fraction (``0.95``) -> fraction."""
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = float("nan")
    fraction = value / 100 if value > 1 else value
    if not 0.5 <= fraction < 1:
        raise InvalidInputError(f"--ci must be a confidence level between 50 and 100 percent "
                                f"(e.g. 95 or 0.95), got {level!r}")
    return fraction


def _value_key(row: dict[str, Any]) -> tuple:
    """What one table value is of: ``(dataset, fingerprint or "", method, params, views,
    database, task, metric, tie, bits)`` -- a series of cells, all seeds together."""
    return (row["dataset"], row.get("fingerprint") or "", *(row[f] for f in ROW_FIELDS),
            row["task"], row["metric"], row["tie"], int(row["bits"]))


def per_query_lookup(rows: Sequence[dict[str, Any]]) -> dict[tuple, dict[int, np.ndarray]]:
    """``(dataset, fingerprint or "", method, params, views, database, task, metric, tie,
    bits)`` -> {seed: float64 (Q,) per-query values}, from rows that carry ``per_query``."""
    out: dict[tuple, dict[int, np.ndarray]] = {}
    for r in rows:
        if r.get("per_query") is None:
            continue
        values = np.asarray(r["per_query"], dtype=np.float64)
        out.setdefault(_value_key(r), {})[int(r["seed"])] = values
    return out


def annotate(shown: Sequence[Table], rows: Sequence[dict[str, Any]], *, level: float = 0.95,
             seed: int = 0) -> None:
    """Set ``table.uncertainty`` on every table of ``shown`` from the per-query values in
    ``rows`` (see the module docstring). Cells without per-query values get no interval, and a
    column whose best or runner-up has none gets no test."""
    lookup = per_query_lookup(rows)
    alpha = 1 - level
    pending: list[tuple[Table, tuple[str, int], str, str, Comparison]] = []
    intervals: dict[int, dict] = {}
    for table in shown:
        metric = parse_metric(table.metric)
        found = {}
        for (label, task, bits) in table.cells:
            values = _matrix(lookup, table, label, task, bits)
            if values is not None:
                found[(label, task, bits)] = bootstrap_interval(
                    values[1], level=level, statistic=metric.statistic,
                    n_resamples=N_RESAMPLES, seed=seed)
        intervals[id(table)] = found
        for task in table.tasks:
            for bits in table.bits:
                ranked = table.ranked(task, bits)
                if len(ranked) < 2:
                    continue
                best, runner_up = ranked[:2]
                a = _matrix(lookup, table, best, task, bits)
                b = _matrix(lookup, table, runner_up, task, bits)
                if a is None or b is None or a[1].shape[1] != b[1].shape[1]:
                    continue
                comparison = paired_comparison(
                    a[1], b[1], level=level, statistic=metric.statistic,
                    n_resamples=N_RESAMPLES, n_permutations=N_PERMUTATIONS, seed=seed,
                    seeds_paired=a[0] == b[0] and len(a[0]) > 1)
                pending.append((table, (task, bits), best, runner_up, comparison))
    adjusted = holm([c.p_value for *_, c in pending])
    tests: dict[int, dict] = {id(t): {} for t in shown}
    for (table, column, best, runner_up, comparison), p in zip(pending, adjusted):
        tests[id(table)][column] = ColumnTest(best, runner_up, comparison, float(p), alpha)
    for table in shown:
        # the values now carry intervals instead of the std
        table.caption = table.caption.replace("mean ± std over", "mean over")
        table.uncertainty = Uncertainty(level, seed, intervals[id(table)], tests[id(table)],
                                        len(pending))


def _matrix(lookup, table: Table, label: str, task: str, bits: int
            ) -> tuple[tuple[int, ...], np.ndarray] | None:
    """``(seeds, float64 (S, Q))``: the per-query values of one table cell, seeds ascending
    (None when they are not known)."""
    series = table.series.get(label)
    if series is None:
        return None
    by_seed = lookup.get((table.dataset, table.fingerprint, *series, task, table.metric,
                          table.tie, bits))
    if not by_seed:
        return None
    seeds = tuple(sorted(by_seed))
    return seeds, np.stack([by_seed[s] for s in seeds])


def interval_columns(rows: Sequence[dict[str, Any]], *, level: float, seed: int = 0
                     ) -> list[dict[str, Any]]:
    """``rows`` with ``ci_low``, ``ci_high`` and ``ci_level`` added: the interval of the series
    (all seeds) a row belongs to, the same for each of its seeds -- for CSV and JSON exports."""
    lookup = per_query_lookup(rows)
    bounds: dict[tuple, Interval] = {}
    out = []
    for r in rows:
        key = _value_key(r)
        if key in lookup and key not in bounds:
            by_seed = lookup[key]
            bounds[key] = bootstrap_interval(
                np.stack([by_seed[s] for s in sorted(by_seed)]), level=level,
                statistic=parse_metric(r["metric"]).statistic, n_resamples=N_RESAMPLES,
                seed=seed)
        found = bounds.get(key)
        out.append({**r, "ci_low": None if found is None else found.low,
                    "ci_high": None if found is None else found.high,
                    "ci_level": None if found is None else level})
    return out




@dataclass(frozen=True)
class MethodComparison:
    """One task of ``mmhash compare A B``: the two rows' values and their paired test."""

    dataset: str
    task: str
    metric: str
    tie: str
    bits: int
    a: str
    b: str
    seeds_a: tuple[int, ...]
    seeds_b: tuple[int, ...]
    value_a: float
    value_b: float
    comparison: Comparison
    p_adjusted: float
    alpha: float

    @property
    def significant(self) -> bool:
        return significant(self.comparison, self.p_adjusted, self.alpha)

    def verdict(self) -> str:
        """One line: the task, ``A - B = d [low, high]``, p (raw and Holm), the verdict."""
        c = self.comparison
        word = verdict_word(c, self.p_adjusted, self.alpha).replace(
            "significant", f"significant at {self.alpha:g}", 1)
        return (f"{self.dataset} {self.task} {self.bits} bits {self.metric} ({self.tie}): "
                f"{self.a} - {self.b} = {c.difference:+.4f} [{c.low:+.4f}, {c.high:+.4f}], "
                f"p = {c.p_value:.4f}, Holm {self.p_adjusted:.4f}: {word}")


def compare_methods(rows: Sequence[dict[str, Any]], a: str, b: str, *, level: float = 0.95,
                    seed: int = 0) -> list[MethodComparison]:
    """Every (dataset, task, metric, tie, bits) where both methods ``a`` and ``b`` have
    per-query values in ``rows``, tested as in :func:`annotate` (paired over queries, seeds
    paired when both hold the same ones), the p-values Holm-adjusted together.

    A method with several series (settings, views, database protocols) on one task is
    ambiguous: an error names them.
    """
    lookup = per_query_lookup(rows)
    found: dict[tuple, dict[str, tuple]] = {}
    for key, by_seed in lookup.items():
        dataset, fingerprint, method, params, views, database, *rest = key
        if method not in (a, b):
            continue
        place = (dataset, fingerprint, *rest)
        side = found.setdefault(place, {})
        if method in side:
            raise InvalidInputError(
                f"{method} has several settings on {dataset} {rest[0]} {rest[-1]} bits "
                f"({side[method][0]} and {params}, views {views}, database {database}): "
                "narrow the store with --run or --dataset")
        side[method] = (params, by_seed)
    pending = []
    for (dataset, _, task, metric, tie, bits), side in found.items():
        if a not in side or b not in side:
            continue
        (_, by_a), (_, by_b) = side[a], side[b]
        seeds_a, seeds_b = tuple(sorted(by_a)), tuple(sorted(by_b))
        values_a = np.stack([by_a[s] for s in seeds_a])
        values_b = np.stack([by_b[s] for s in seeds_b])
        statistic = parse_metric(metric).statistic
        comparison = paired_comparison(
            values_a, values_b, level=level, statistic=statistic, n_resamples=N_RESAMPLES,
            n_permutations=N_PERMUTATIONS, seed=seed,
            seeds_paired=seeds_a == seeds_b and len(seeds_a) > 1)
        pending.append((dataset, task, metric, tie, bits, seeds_a, seeds_b,
                        statistic_of(values_a, statistic), statistic_of(values_b, statistic),
                        comparison))
    adjusted = holm([item[-1].p_value for item in pending])
    return [MethodComparison(dataset, task, metric, tie, bits, a, b, seeds_a, seeds_b,
                             value_a, value_b, comparison, float(p), 1 - level)
            for (dataset, task, metric, tie, bits, seeds_a, seeds_b, value_a, value_b,
                 comparison), p in zip(pending, adjusted)]


__all__ = ["N_PERMUTATIONS", "N_RESAMPLES", "ColumnTest", "MethodComparison", "Uncertainty",
           "annotate", "check_level", "compare_methods", "interval_columns", "per_query_lookup",
           "significant", "verdict_word"]
