"""Bootstrap intervals, the paired swap test and Holm's adjustment against brute force."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest
from scipy import stats

from mmhash.errors import InvalidInputError
from mmhash.evaluation import significance
from mmhash.evaluation.significance import (
    Comparison,
    Interval,
    bootstrap_interval,
    holm,
    paired_comparison,
)


def _stat(values: np.ndarray, statistic: str) -> float:
    per_row = values.mean(axis=1) if statistic == "mean" else np.median(values, axis=1)
    return float(per_row.mean())


def _loop_replicates(samples, paired_rows, statistic, draws):
    """Per replicate, build the resampled arrays by fancy indexing and take the statistic (or
    the difference of the two samples' statistics) directly."""
    out = []
    for rows, idx in draws:
        for b in range(idx.shape[0]):
            values = []
            for k, sample in enumerate(samples):
                r = rows[0 if paired_rows else k]
                chosen = sample if r is None else sample[r[b]]
                values.append(_stat(chosen[:, idx[b]], statistic))
            out.append(values[0] if len(values) == 1 else values[0] - values[1])
    return np.array(out)


def _binomial_bounds(n: int, p: float, coverage: float = 0.999) -> tuple[float, float]:
    tail = (1 - coverage) / 2
    return stats.binom.ppf(tail, n, p) / n, stats.binom.isf(tail, n, p) / n


# ---------------------------------------------------------------------------------------------
# bootstrap intervals


@pytest.mark.parametrize("statistic", ["mean", "median"])
@pytest.mark.parametrize("n_rows", [1, 3])
@pytest.mark.parametrize("n_queries", [7, 8])
def test_bootstrap_interval_matches_a_loop_over_the_same_draws(statistic, n_rows, n_queries,
                                                               monkeypatch):
    monkeypatch.setattr(significance, "CHUNK_ELEMENTS", 50)  # several chunks
    values = np.random.default_rng(n_rows).gamma(2.0, size=(n_rows, n_queries))
    got = bootstrap_interval(values, statistic=statistic, n_resamples=300, seed=4, level=0.9)
    draws = significance._resample_draws(np.random.default_rng(4), 300, (n_rows,), n_queries)
    replicates = _loop_replicates([values], True, statistic, draws)
    low, high = np.quantile(replicates, [0.05, 0.95])
    assert got.low == pytest.approx(low, abs=1e-12) and got.high == pytest.approx(high, abs=1e-12)
    assert got.estimate == pytest.approx(_stat(values, statistic), abs=1e-15)
    assert got.level == 0.9


@pytest.mark.parametrize("statistic", ["mean", "median"])
@pytest.mark.parametrize(("rows_a", "rows_b", "paired"), [(1, 1, None), (3, 3, True),
                                                           (3, 3, False), (2, 4, None)])
def test_difference_interval_matches_a_loop_over_the_same_draws(statistic, rows_a, rows_b,
                                                                paired, monkeypatch):
    monkeypatch.setattr(significance, "CHUNK_ELEMENTS", 40)
    rng = np.random.default_rng(rows_a + rows_b)
    a, b = rng.random((rows_a, 9)), rng.random((rows_b, 9))
    got = paired_comparison(a, b, statistic=statistic, n_resamples=200, seed=2,
                            seeds_paired=paired, n_permutations=10)
    joint = rows_a == rows_b > 1 if paired is None else paired
    assert got.seeds_paired == joint
    boot_seed = np.random.SeedSequence(2).spawn(2)[0]
    n_rows = (rows_a,) if joint else (rows_a, rows_b)
    draws = significance._resample_draws(np.random.default_rng(boot_seed), 200, n_rows, 9)
    replicates = _loop_replicates([a, b], joint, statistic, draws)
    low, high = np.quantile(replicates, [0.025, 0.975])
    assert got.low == pytest.approx(low, abs=1e-12) and got.high == pytest.approx(high, abs=1e-12)
    assert got.difference == pytest.approx(_stat(a, statistic) - _stat(b, statistic), abs=1e-15)


def test_bootstrap_interval_is_reproducible_contains_the_estimate_and_narrows():
    rng = np.random.default_rng(0)
    small, large = rng.random(40), rng.random(2000)
    first = bootstrap_interval(small, seed=7)
    assert first == bootstrap_interval(small, seed=7)
    assert first != bootstrap_interval(small, seed=8)
    assert isinstance(first, Interval)
    assert first.low < first.estimate < first.high
    assert first.scheme == "bootstrap over queries (2,000 resamples, seed 7)"
    wide = bootstrap_interval(large, seed=7)
    assert wide.high - wide.low < (first.high - first.low) / 3


def test_bootstrap_coverage_on_normal_data_is_near_the_level():
    rng = np.random.default_rng(1)
    reps = 200
    covered = 0
    for rep in range(reps):
        x = rng.normal(0.3, 1.0, size=60)
        interval = bootstrap_interval(x, n_resamples=400, seed=rep)
        covered += interval.low <= 0.3 <= interval.high
    low, high = _binomial_bounds(reps, 0.95)
    assert low <= covered / reps <= high


def test_two_stage_interval_carries_the_seed_to_seed_shift():
    rng = np.random.default_rng(2)
    base = rng.random(200)
    values = base + np.array([-0.1, -0.05, 0.0, 0.05, 0.1])[:, None]
    two_stage = bootstrap_interval(values, seed=0)
    queries_only = bootstrap_interval(values.mean(axis=0), seed=0)
    assert two_stage.estimate == pytest.approx(queries_only.estimate, abs=1e-12)
    assert two_stage.high - two_stage.low > 1.5 * (queries_only.high - queries_only.low)
    assert "two-stage bootstrap over seeds (5), then queries" in two_stage.scheme


def test_median_of_ranks_interval():
    ranks = np.array([1, 1, 2, 3, 3, 4, 10, 50, 2, 1], dtype=float)
    interval = bootstrap_interval(ranks, statistic="median", seed=0)
    assert interval.estimate == 2.5
    assert 1.0 <= interval.low <= 2.5 <= interval.high <= 10.0


def test_memory_stays_bounded_for_a_large_two_stage_bootstrap():
    values = np.random.default_rng(3).random((5, 5000))
    tracemalloc.start()
    try:
        bootstrap_interval(values, n_resamples=2000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20


# ---------------------------------------------------------------------------------------------
# the paired swap test


def _exact_p(a_bar: np.ndarray, b_bar: np.ndarray, statistic: str) -> float:
    """The swap test's p-value by enumerating all 2**Q swaps (the identity included)."""
    f = np.mean if statistic == "mean" else np.median
    observed = abs(f(a_bar) - f(b_bar))
    hits = 0
    swaps = list(itertools.product([False, True], repeat=len(a_bar)))
    for swap in swaps:
        s = np.array(swap)
        permuted = abs(f(np.where(s, b_bar, a_bar)) - f(np.where(s, a_bar, b_bar)))
        hits += permuted >= observed - 1e-12
    return hits / len(swaps)


@pytest.mark.parametrize("statistic", ["mean", "median"])
@pytest.mark.parametrize("case", range(3))
def test_permutation_p_value_matches_exact_enumeration(statistic, case):
    rng = np.random.default_rng(10 + case)
    n_queries = (8, 9, 10)[case]
    b = rng.random(n_queries)
    a = b + rng.normal((0.0, 0.1, 0.25)[case], 0.3, n_queries)
    exact = _exact_p(a, b, statistic)
    n = 20000
    got = paired_comparison(a, b, statistic=statistic, n_permutations=n, n_resamples=10, seed=case)
    expected = (1 + n * exact) / (1 + n)
    se = np.sqrt(exact * (1 - exact) / n)
    assert abs(got.p_value - expected) <= 3 * se + 1e-9


def test_permutation_test_uses_seed_averaged_values():
    rng = np.random.default_rng(5)
    a, b = rng.random((3, 9)), rng.random((3, 9)) - 0.1
    exact = _exact_p(a.mean(axis=0), b.mean(axis=0), "mean")
    n = 20000
    got = paired_comparison(a, b, n_permutations=n, n_resamples=10)
    assert abs(got.p_value - (1 + n * exact) / (1 + n)) <= 3 * np.sqrt(exact * (1 - exact) / n)
    assert "seed-averaged" in got.scheme


@pytest.mark.parametrize("shape", [(30,), (4, 30)])
@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_identical_inputs_give_p_one_and_a_zero_interval(shape, statistic):
    a = np.random.default_rng(0).random(shape)
    got = paired_comparison(a, a.copy(), statistic=statistic)
    assert got.p_value == 1.0 and got.difference == 0.0
    assert (got.low, got.high) == (0.0, 0.0)
    assert not got.significant()


def test_equal_seed_averages_give_p_one():
    x = np.random.default_rng(0).random((2, 20))
    got = paired_comparison(x, x[::-1], seeds_paired=True)
    assert got.p_value == 1.0 and got.difference == pytest.approx(0.0, abs=1e-15)


def test_comparison_is_reproducible_and_significant_uses_the_level():
    rng = np.random.default_rng(6)
    b = rng.random(50)
    a = b + rng.normal(0.02, 0.1, 50)
    got = paired_comparison(a, b, seed=3, level=0.9, n_permutations=999)
    assert got == paired_comparison(a, b, seed=3, level=0.9, n_permutations=999)
    assert isinstance(got, Comparison) and got.n_queries == 50
    assert got.significant() == (got.p_value < 0.1 - 1e-12)
    assert got.significant(alpha=1.0 - 1e-9)
    assert not got.significant(alpha=got.p_value)


def _coin_null(m1: np.ndarray, m2: np.ndarray, rng: np.random.Generator, p: float = 0.5):
    """Per query a coin (heads with probability p) gives a model 1's value and b model 2's,
    tails the reverse: at p = 1/2 the pair (a_q, b_q) is exchangeable."""
    heads = rng.random(len(m1)) < p
    return np.where(heads, m1, m2), np.where(heads, m2, m1)


def test_rejection_rate_under_the_coin_mixing_null_is_near_alpha():
    rng = np.random.default_rng(7)
    m1 = rng.beta(2, 5, 60)
    m2 = np.clip(m1 + rng.normal(0.05, 0.15, 60), 0, 1)
    reps = 300
    rejected = 0
    for rep in range(reps):
        a, b = _coin_null(m1, m2, rng)
        got = paired_comparison(a, b, n_permutations=499, n_resamples=1, seed=rep)
        rejected += got.significant(0.05)
    low, high = _binomial_bounds(reps, 0.05)
    assert low <= rejected / reps <= high


def test_power_is_high_for_a_clear_shift():
    rng = np.random.default_rng(8)
    m1 = rng.beta(2, 5, 60)
    m2 = np.clip(m1 - 0.08 + rng.normal(0, 0.05, 60), 0, 1)
    rejected = 0
    for rep in range(40):
        a, b = _coin_null(m1, m2, rng, p=0.95)
        rejected += paired_comparison(a, b, n_permutations=499, n_resamples=1,
                                      seed=rep).significant(0.05)
    assert rejected >= 38


# ---------------------------------------------------------------------------------------------
# Holm


def test_holm_against_hand_computed_values():
    # sorted: 0.005 (x5), 0.01 (x4), 0.03 (x3), 0.03 (x2), 0.04 (x1)
    got = holm([0.01, 0.04, 0.03, 0.005, 0.03])
    np.testing.assert_allclose(got, [0.04, 0.09, 0.09, 0.025, 0.09], rtol=0, atol=1e-15)
    assert got.dtype == np.float64


def test_holm_is_monotone_in_the_sorted_order_and_capped_at_one():
    # sorted 0.01, 0.02, 0.4, 0.9: 4 x 0.01, 3 x 0.02, 2 x 0.4, 1 x 0.9
    np.testing.assert_allclose(holm([0.9, 0.01, 0.4, 0.02]), [0.9, 0.04, 0.8, 0.06])
    # 3 x 0.01 = 0.03, then 2 x 0.011 = 0.022 is lifted to 0.03 (monotone), then 0.1
    np.testing.assert_allclose(holm([0.011, 0.1, 0.01]), [0.03, 0.1, 0.03])
    np.testing.assert_array_equal(holm([0.6, 0.5, 0.7]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(holm([0.2, 0.2, 0.2]), [0.6, 0.6, 0.6], rtol=0, atol=1e-15)  # ties
    assert holm([0.3]).tolist() == [0.3]
    empty = holm([])
    assert empty.shape == (0,) and empty.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# errors


X = np.random.default_rng(0).random((2, 5))

BAD_CALLS = {
    "different queries": (lambda: paired_comparison(X, X[:, :4]),
                          r"same queries .*\(2, 5\) and \(2, 4\)"),
    "3-D values": (lambda: bootstrap_interval(X[None]), r"values must be 1-D .* \(1, 2, 5\)"),
    "empty queries": (lambda: bootstrap_interval(X[:, :0]), r"values is empty"),
    "NaN": (lambda: bootstrap_interval(np.where(X > 0.5, np.nan, X)), r"values must be finite"),
    "inf in b": (lambda: paired_comparison(X, np.full((2, 5), np.inf)), r"b must be finite"),
    "strings": (lambda: bootstrap_interval(["a", "b"]), r"values must be a numeric array"),
    "level 1": (lambda: bootstrap_interval(X, level=1.0), r"level must be in \(0, 1\)"),
    "level 95": (lambda: paired_comparison(X, X, level=95), r"level must be in \(0, 1\)"),
    "level None": (lambda: bootstrap_interval(X, level=None), r"level must be a number"),
    "statistic": (lambda: bootstrap_interval(X, statistic="mena"),
                  r"unknown statistic 'mena' \(choose from: mean, median\)"),
    "statistic of comparison": (lambda: paired_comparison(X, X, statistic="max"),
                                r"choose from: mean, median"),
    "no resamples": (lambda: bootstrap_interval(X, n_resamples=0),
                     r"n_resamples must be a positive integer"),
    "no permutations": (lambda: paired_comparison(X, X, n_permutations=0),
                        r"n_permutations must be a positive integer"),
    "negative seed": (lambda: bootstrap_interval(X, seed=-1), r"seed must be a non-negative"),
    "paired unequal rows": (lambda: paired_comparison(X, X[:1], seeds_paired=True),
                            r"seeds_paired=True needs as many seed rows"),
    "seeds_paired string": (lambda: paired_comparison(X, X, seeds_paired="yes"),
                            r"seeds_paired must be True, False or None"),
    "alpha": (lambda: paired_comparison(X, X).significant(alpha=0.0),
              r"alpha must be in \(0, 1\)"),
    "holm NaN": (lambda: holm([0.1, np.nan]), r"p_values must lie in \[0, 1\]"),
    "holm above one": (lambda: holm([0.1, 1.5]), r"p_values must lie in \[0, 1\].*1\.5"),
    "holm 2-D": (lambda: holm([[0.1]]), r"p_values must be 1-D"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_raises_one_clear_line(name):
    call, pattern = BAD_CALLS[name]
    with pytest.raises(InvalidInputError, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)
