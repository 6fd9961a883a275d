"""Uncertainty of per-query retrieval metrics: bootstrap intervals, paired tests, Holm's step-down.

Every function takes per-query values of one metric (AP per query, a rank per query, ...) as a
float array ``(S, Q)``: row ``s`` holds one seed's (one fitted model's) values over the same
``Q`` queries in the same order; a 1-D ``(Q,)`` array is one seed. The *statistic* of such an
array is the mean over its rows of a per-row statistic over queries:

``mean``
    mean over seeds of the mean over queries (the grand mean: mAP when the values are AP);
``median``
    mean over seeds of each seed's median over queries (for median rank: the values are ranks).

Intervals (:func:`bootstrap_interval`)
    Percentile bootstrap. With one seed it resamples queries with replacement. With several it is
    two-stage: each replicate resamples the seed rows with replacement, then the queries with
    replacement (one query resample per replicate, applied to every chosen row), and takes the
    statistic above. The first stage carries seed-to-seed variation into the interval, the
    second the sampling of queries from their population.

Comparisons (:func:`paired_comparison`)
    ``a`` and ``b`` must hold values over the same queries in the same order. The interval is the
    percentile bootstrap interval of ``statistic(a*) - statistic(b*)``, with the same query
    resample for both (the queries are paired); seed rows are resampled jointly when ``a`` and
    ``b`` come from the same seeds (row ``s`` of each from seed ``s``), independently otherwise.

    The p-value is a two-sided Monte-Carlo paired randomisation test over queries, the test
    Smucker, Allan & Carterette (CIKM 2007) recommend for retrieval evaluation. Per query it
    takes the seed-averaged values ``ā_q`` and ``b̄_q``; under the null hypothesis the two labels
    are exchangeable within each query, so each permutation swaps ``ā_q`` and ``b̄_q``
    independently with probability 1/2, and the test statistic is
    ``|statistic(ā') - statistic(b̄')|`` (for ``mean``: the absolute mean of the signed per-query
    differences; for ``median`` with several seeds: the medians of the seed-averaged values).
    ``p = (1 + #{permuted >= observed}) / (1 + n_permutations)``, a valid p-value for any number
    of permutations (Phipson & Smyth, 2010); "``>=``" allows a relative round-off of 1e-12.

    The test is *conditional on the fitted models given*: it answers "do these models, as
    fitted, differ on this population of queries?". Seed-to-seed variation of the training
    does not enter the test (the seeds are averaged first); it enters the interval, through its
    first stage, when several seeds are given. Report the interval beside the p-value when
    seeds differ much.

Multiple comparisons (:func:`holm`)
    Holm's (1979) step-down adjustment, which controls the family-wise error rate under any
    dependence between the tests.

Every random draw comes from ``numpy.random.default_rng`` seeded by ``seed``: the same inputs and
seed give identical results. Memory stays bounded: replicates and permutations are processed in
chunks of about :data:`CHUNK_ELEMENTS` query draws, and the mean's resamples are reduced to
counts, so no ``(B, S, Q)`` array is built.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmhash.errors import InvalidInputError
from mmhash.evaluation._validate import _numeric, check_k

#: The statistics over queries that the functions accept.
STATISTICS = ("mean", "median")

#: About how many per-query draws (replicates x queries) one chunk holds: 2**20 int64 indices
#: plus their counts are ~16 MB, whatever Q and the number of replicates.
CHUNK_ELEMENTS = 1 << 20

# Relative slack of "permuted >= observed": a permutation that reproduces the observed split
# must count even when its sum is accumulated in another order.
_TIE_SLACK = 1e-12


@dataclass(frozen=True)
class Interval:
    """A statistic and its bootstrap interval.

    Attributes
    ----------
    estimate : the statistic on the data as given.
    low, high : the percentile interval's bounds.
    level : its nominal coverage, e.g. 0.95.
    scheme : one line saying what was resampled (and how many times, with which seed).
    """

    estimate: float
    low: float
    high: float
    level: float
    scheme: str


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two sets of per-query values.

    Attributes
    ----------
    difference : ``statistic(a) - statistic(b)``.
    low, high : the paired bootstrap interval of the difference at ``level``.
    p_value : two-sided paired randomisation (sign-flip) test over queries.
    level : the interval's nominal coverage; ``1 - level`` is the default test level.
    n_queries : Q.
    seeds_paired : whether seed rows were resampled jointly (row s of a and b: one seed).
    scheme : one line: what the interval resampled and what the test permuted.
    """

    difference: float
    low: float
    high: float
    p_value: float
    level: float
    n_queries: int
    seeds_paired: bool
    scheme: str

    def significant(self, alpha: float | None = None) -> bool:
        """Whether ``p_value < alpha`` (``alpha`` defaults to ``1 - level``)."""
        alpha = 1.0 - self.level if alpha is None else _check_unit(alpha, "alpha")
        return bool(self.p_value < alpha)


# ---------------------------------------------------------------------------------------------
# validation


def _check_values(x: Any, name: str) -> np.ndarray:
    arr = _numeric(x, name)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must be 1-D (n_queries,) or 2-D (n_seeds, n_queries), got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(
            f"{name} is empty (shape {arr.shape}); it needs at least one seed and one query"
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise InvalidInputError(f"{name} must be finite; found {bad} NaN or infinite values")
    return arr


def _check_unit(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise InvalidInputError(f"{name} must be a number in (0, 1), got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise InvalidInputError(f"{name} must be in (0, 1) (e.g. 0.95), got {value!r}")
    return float(value)


def _check_statistic(statistic: Any) -> str:
    if not isinstance(statistic, str) or statistic not in STATISTICS:
        raise InvalidInputError(
            f"unknown statistic {statistic!r} (choose from: {', '.join(STATISTICS)})"
        )
    return statistic


def _check_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


# ---------------------------------------------------------------------------------------------
# statistics


def _row_statistic(values: np.ndarray, statistic: str) -> np.ndarray:
    """(S, Q) -> (S,): the statistic of every row over its queries."""
    return values.mean(axis=1) if statistic == "mean" else np.median(values, axis=1)


def statistic_of(values: np.ndarray, statistic: str) -> float:
    """(S, Q) -> the mean over rows (seeds) of the per-row statistic over queries: the value a
    table shows for per-query values ``values``."""
    return float(_row_statistic(values, statistic).mean())


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, k) indices in [0, n) -> (B, n) float64 counts of each index per row."""
    flat = (idx + n * np.arange(idx.shape[0])[:, None]).ravel()
    return np.bincount(flat, minlength=idx.shape[0] * n).reshape(idx.shape[0], n).astype(float)


class _Resampled:
    """The per-row statistic of resampled queries, from the query counts of each replicate.

    Both statistics depend on a resample only through how often each query was drawn, so a
    chunk of replicates is one (B, Q) count matrix: the mean is a matrix product; the median is
    read off the cumulated counts in each row's sorted order (the k-th order statistic is the
    first sorted value whose cumulated count reaches k).
    """

    def __init__(self, values: np.ndarray, statistic: str):
        self.values, self.statistic = values, statistic
        if statistic == "median":
            self.order = np.argsort(values, axis=1, kind="stable")
            self.sorted = np.take_along_axis(values, self.order, axis=1)

    def rows(self, counts: np.ndarray) -> np.ndarray:
        """(B, Q) query counts -> (B, S) statistic of every row on every replicate."""
        q = self.values.shape[1]
        if self.statistic == "mean":
            return counts @ self.values.T / q
        # Order statistics k1 <= k2 (1-based): the middle one, or the two middle ones.
        k1, k2 = (q + 1) // 2, q // 2 + 1
        out = np.empty((counts.shape[0], self.values.shape[0]))
        for s in range(self.values.shape[0]):
            cum = np.cumsum(counts[:, self.order[s]], axis=1)
            lo = self.sorted[s, (cum < k1).sum(axis=1)]
            hi = lo if k1 == k2 else self.sorted[s, (cum < k2).sum(axis=1)]
            out[:, s] = (lo + hi) / 2
        return out


def _weighted(row_stats: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """(B, S) per-row statistics, (B, S) resampled row indices or None (every row once) ->
    (B,) the mean over the resampled rows."""
    if rows is None:
        return row_stats.mean(axis=1)
    return (_counts(rows, row_stats.shape[1]) * row_stats).sum(axis=1) / rows.shape[1]


def _resample_draws(
    rng: np.random.Generator, n_resamples: int, n_rows: tuple[int, ...], n_queries: int
) -> Iterator[tuple[list[np.ndarray | None], np.ndarray]]:
    """The bootstrap's draws, chunk by chunk: ``([rows per sample], query indices)``.

    The row indices of every sample with more than one row are drawn first for all replicates,
    ``(n_resamples, S)`` each (None for one row: nothing to resample); then, per chunk of
    replicates, the query indices ``(chunk, Q)`` int64, shared by all samples (queries paired).
    """
    rows = [rng.integers(0, s, (n_resamples, s)) if s > 1 else None for s in n_rows]
    chunk = max(1, CHUNK_ELEMENTS // n_queries)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n_queries, (stop - start, n_queries))
        yield [None if r is None else r[start:stop] for r in rows], idx


def _percentile(replicates: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _resample_words(n_rows: int, n_resamples: int, seed: int) -> str:
    stage = (f"two-stage bootstrap over seeds ({n_rows}), then queries"
             if n_rows > 1 else "bootstrap over queries")
    return f"{stage} ({n_resamples:,} resamples, seed {seed})"


# ---------------------------------------------------------------------------------------------
# public functions


def bootstrap_interval(
    values,
    *,
    level: float = 0.95,
    statistic: str = "mean",
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of the statistic of per-query values.

    Parameters
    ----------
    values : float (S, Q) array, row s = one seed's values over the same Q queries; or (Q,)
        for one seed.
    level : nominal coverage in (0, 1).
    statistic : ``"mean"`` or ``"median"``: the per-seed statistic over queries, averaged over
        seeds.
    n_resamples : number of bootstrap replicates B (>= 1).
    seed : non-negative int seeding ``numpy.random.default_rng``.

    Returns
    -------
    :class:`Interval`. With S = 1 the queries are resampled; with S > 1 each replicate
    resamples the seed rows, then the queries (see the module docstring).
    """
    values = _check_values(values, "values")
    level = _check_unit(level, "level")
    statistic = _check_statistic(statistic)
    n_resamples = check_k(n_resamples, "n_resamples")
    seed = _check_seed(seed)
    n_rows, n_queries = values.shape
    resampled = _Resampled(values, statistic)
    replicates = np.empty(n_resamples)
    at = 0
    rng = np.random.default_rng(seed)
    for (rows,), idx in _resample_draws(rng, n_resamples, (n_rows,), n_queries):
        stats = _weighted(resampled.rows(_counts(idx, n_queries)), rows)
        replicates[at : at + len(stats)] = stats
        at += len(stats)
    low, high = _percentile(replicates, level)
    return Interval(statistic_of(values, statistic), low, high, level,
                    _resample_words(n_rows, n_resamples, seed))


def paired_comparison(
    a,
    b,
    *,
    level: float = 0.95,
    statistic: str = "mean",
    n_resamples: int = 2000,
    n_permutations: int = 10000,
    seed: int = 0,
    seeds_paired: bool | None = None,
) -> Comparison:
    """Compare two sets of per-query values over the same queries: interval and p-value.

    Parameters
    ----------
    a : float (Sa, Q) array (or (Q,)): method A's values, one row per seed.
    b : float (Sb, Q) array (or (Q,)): method B's values over the same queries in the same order.
    level : nominal coverage of the interval in (0, 1); ``1 - level`` is the default test level
        of :meth:`Comparison.significant`.
    statistic : ``"mean"`` or ``"median"`` (see the module docstring).
    n_resamples : bootstrap replicates of the interval (>= 1).
    n_permutations : random label swaps of the test (>= 1).
    seed : non-negative int seeding the draws (the bootstrap and the test draw from two
        independent streams spawned from it, so changing one count leaves the other's draws).
    seeds_paired : True when row s of ``a`` and row s of ``b`` come from the same seed (then
        Sa == Sb is required), False when the rows are unrelated; None: paired when
        Sa == Sb > 1.

    Returns
    -------
    :class:`Comparison`. When ``a`` and ``b`` are identical arrays the difference is 0, the
    interval [0, 0] and the p-value 1.0; when only their seed-averaged values are equal per
    query the p-value is 1.0.
    """
    a = _check_values(a, "a")
    b = _check_values(b, "b")
    if a.shape[1] != b.shape[1]:
        raise InvalidInputError(
            f"a and b must hold values over the same queries (same last axis), got shapes "
            f"{a.shape} and {b.shape}"
        )
    level = _check_unit(level, "level")
    statistic = _check_statistic(statistic)
    n_resamples = check_k(n_resamples, "n_resamples")
    n_permutations = check_k(n_permutations, "n_permutations")
    seed = _check_seed(seed)
    if seeds_paired is None:
        paired = a.shape[0] == b.shape[0] > 1
    elif isinstance(seeds_paired, (bool, np.bool_)):
        paired = bool(seeds_paired)
        if paired and a.shape[0] != b.shape[0]:
            raise InvalidInputError(
                f"seeds_paired=True needs as many seed rows in a as in b, got shapes {a.shape} "
                f"and {b.shape}"
            )
    else:
        raise InvalidInputError(f"seeds_paired must be True, False or None, got {seeds_paired!r}")
    n_queries = a.shape[1]
    difference = statistic_of(a, statistic) - statistic_of(b, statistic)

    boot_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    if a.shape == b.shape and np.array_equal(a, b):
        low = high = 0.0
    else:
        low, high = _difference_interval(a, b, statistic, level, n_resamples, paired, boot_seed)
    a_bar, b_bar = a.mean(axis=0), b.mean(axis=0)
    if np.array_equal(a_bar, b_bar):
        p_value = 1.0
    else:
        p_value = _permutation_p(a_bar, b_bar, statistic, n_permutations, test_seed)

    counts = f"{n_resamples:,} resamples, seed {seed}"
    if max(a.shape[0], b.shape[0]) == 1:
        interval, averaged = f"paired bootstrap over queries ({counts})", ""
    elif paired:
        interval = (f"two-stage bootstrap over seeds ({a.shape[0]}, rows of a and b paired), "
                    f"then queries, paired ({counts})")
        averaged = " on seed-averaged values"
    else:
        interval = (f"two-stage bootstrap over seeds ({a.shape[0]} and {b.shape[0]}, "
                    f"independently), then queries, paired ({counts})")
        averaged = " on seed-averaged values"
    scheme = (f"{interval}; test: a and b swapped at random per query{averaged} "
              f"({n_permutations:,} permutations)")
    return Comparison(difference, low, high, p_value, level, n_queries, paired, scheme)


def _difference_interval(a: np.ndarray, b: np.ndarray, statistic: str, level: float,
                         n_resamples: int, paired: bool, seed: np.random.SeedSequence
                         ) -> tuple[float, float]:
    """Percentile interval of statistic(a*) - statistic(b*): queries resampled jointly, rows
    jointly (``paired``) or independently."""
    n_queries = a.shape[1]
    rs_a, rs_b = _Resampled(a, statistic), _Resampled(b, statistic)
    n_rows = (a.shape[0],) if paired else (a.shape[0], b.shape[0])
    replicates = np.empty(n_resamples)
    at = 0
    rng = np.random.default_rng(seed)
    for rows, idx in _resample_draws(rng, n_resamples, n_rows, n_queries):
        counts = _counts(idx, n_queries)
        rows_a, rows_b = (rows[0], rows[0]) if paired else rows
        stats = _weighted(rs_a.rows(counts), rows_a) - _weighted(rs_b.rows(counts), rows_b)
        replicates[at : at + len(stats)] = stats
        at += len(stats)
    return _percentile(replicates, level)


def _swap_draws(rng: np.random.Generator, n_permutations: int, n_queries: int
                ) -> Iterator[np.ndarray]:
    """Random swaps, chunk by chunk: (chunk, Q) uint8 in {0, 1}, 1 = swap a and b at a query.

    Fair bits are unpacked from random bytes: eight swaps per 8-bit draw.
    """
    chunk = max(1, CHUNK_ELEMENTS // n_queries)
    n_bytes = math.ceil(n_queries / 8)
    for start in range(0, n_permutations, chunk):
        stop = min(start + chunk, n_permutations)
        raw = rng.integers(0, 256, (stop - start, n_bytes), dtype=np.uint8)
        yield np.unpackbits(raw, axis=1, count=n_queries)


def _permutation_p(a_bar: np.ndarray, b_bar: np.ndarray, statistic: str, n_permutations: int,
                   seed: np.random.SeedSequence) -> float:
    """Two-sided Monte-Carlo p-value of the paired swap test on (Q,) seed-averaged values."""
    n_queries = len(a_bar)
    diff = a_bar - b_bar
    if statistic == "mean":
        total = diff.sum()
        observed = abs(total) / n_queries
    else:
        observed = abs(float(np.median(a_bar)) - float(np.median(b_bar)))
    scale = max(float(np.abs(a_bar).max()), float(np.abs(b_bar).max()))
    threshold = observed - _TIE_SLACK * scale
    hits = 0
    rng = np.random.default_rng(seed)
    for swaps in _swap_draws(rng, n_permutations, n_queries):
        if statistic == "mean":
            # A swap negates that query's difference: sum(d) - 2 * sum over swapped d.
            permuted = np.abs(total - 2.0 * (swaps @ diff)) / n_queries
        else:
            swap = swaps.astype(bool)
            permuted = np.abs(np.median(np.where(swap, b_bar, a_bar), axis=1)
                              - np.median(np.where(swap, a_bar, b_bar), axis=1))
        hits += int((permuted >= threshold).sum())
    return (1 + hits) / (1 + n_permutations)


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values.

    Parameters
    ----------
    p_values : (m,) p-values in [0, 1].

    Returns
    -------
    float64 (m,) in the order given: with the p-values sorted ascending,
    ``adjusted_(i) = max over j <= i of min(1, (m - j + 1) * p_(j))`` (1-based), so the
    adjusted values are monotone in that order and capped at 1; tied p-values get equal
    adjusted values. Reject hypothesis i at family-wise level alpha iff ``adjusted[i] <= alpha``.
    """
    p = _numeric(p_values, "p_values").astype(np.float64)
    if p.ndim != 1:
        raise InvalidInputError(f"p_values must be 1-D, got shape {p.shape}")
    if p.size == 0:
        return np.empty(0)
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        raise InvalidInputError(f"p_values must lie in [0, 1]; found {p[bad][:10].tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


__all__ = [
    "CHUNK_ELEMENTS",
    "STATISTICS",
    "Comparison",
    "Interval",
    "bootstrap_interval",
    "holm",
    "paired_comparison",
]
