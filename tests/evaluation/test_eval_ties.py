"""The count-based closed forms of mmhash.evaluation.ties: exactness and floating-point accuracy.

Correctness against explicit rankings is tested in test_eval_reference.py on small cases; here
the closed forms are checked at realistic sizes (up to 10**6 items) against per-position sums
added with ``math.fsum`` (correctly rounded), which is where a careless harmonic-number
difference would lose digits.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from mmhash.evaluation.ties import (
    average_precision_at_k_from_counts,
    average_precision_from_counts,
    group_precision_sums,
    harmonic_diff,
    relevant_in_top_k_from_counts,
)


@pytest.mark.parametrize("a", [0, 1, 5, 62, 63, 64, 65, 1000, 12_345, 10**6, 10**7])
def test_harmonic_diff_has_full_relative_precision(a):
    ns = np.array([0, 1, 2, 3, 10, 62, 63, 64, 100, 1000, 100_000])
    got = harmonic_diff(a, ns)
    assert got[0] == 0.0
    for n, value in zip(ns[1:], got[1:]):
        want = math.fsum(1.0 / k for k in range(a + 1, a + n + 1))
        assert abs(value - want) <= 1e-15 * want, (a, n, value, want)


def test_harmonic_diff_small_arguments_are_exact_fractions():
    for a in range(0, 70, 7):
        for n in range(0, 70, 5):
            exact = sum((Fraction(1, k) for k in range(a + 1, a + n + 1)), Fraction(0))
            assert harmonic_diff(a, n) == pytest.approx(
                float(exact), rel=1e-15, abs=0
            )  # a few ulps


def _expected_group_sum_fsum(n, r, R_b, N_b):
    """sum_{i=1..n} (r/n)(R_b + 1 + (i-1)(r-1)/(n-1)) / (N_b + i), term by term."""
    if r == 0:
        return 0.0
    c = (r - 1) / (n - 1) if n > 1 else 0.0
    return math.fsum((r / n) * (R_b + 1 + (i - 1) * c) / (N_b + i) for i in range(1, n + 1))


def _run_sum_fsum(r, R_b, M):
    """sum_{j=1..r} (R_b + j) / (M + j): relevant items at positions M+1..M+r."""
    return math.fsum((R_b + j) / (M + j) for j in range(1, r + 1))


# Realistic large histogram (n_bits = 8): a million items, groups from 1 to ~400k items.
N_LARGE = np.array([[0, 1, 3, 40, 2_000, 50_000, 400_000, 397_956, 150_000]])
R_LARGE = np.array([[0, 1, 0, 7, 1_500, 2, 399_000, 1, 75_000]])


@pytest.mark.parametrize("tie", ["expected", "optimistic", "pessimistic"])
def test_group_sums_at_a_million_items(tie):
    n, r = N_LARGE[0], R_LARGE[0]
    N_b = np.cumsum(n) - n
    R_b = np.cumsum(r) - r
    got = group_precision_sums(N_LARGE, R_LARGE, tie)[0]
    for g in range(len(n)):
        if tie == "expected":
            want = _expected_group_sum_fsum(n[g], r[g], R_b[g], N_b[g])
        elif tie == "optimistic":
            want = _run_sum_fsum(r[g], R_b[g], N_b[g])
        else:
            want = _run_sum_fsum(r[g], R_b[g], N_b[g] + n[g] - r[g])
        assert got[g] == pytest.approx(want, rel=1e-13, abs=1e-15), (g, got[g], want)
    ap = average_precision_from_counts(N_LARGE, R_LARGE, tie)[0]
    assert ap == pytest.approx(got.sum() / r.sum(), rel=1e-15)


def test_relevant_in_top_k_from_counts():
    n, r = np.array([[2, 3, 5]]), np.array([[1, 2, 1]])
    # top 4: the first group (1 relevant) and 2 of the second group (3 items, 2 relevant)
    assert relevant_in_top_k_from_counts(n, r, 4, "expected")[0] == pytest.approx(1 + 2 * 2 / 3)
    assert relevant_in_top_k_from_counts(n, r, 4, "optimistic")[0] == 3
    assert relevant_in_top_k_from_counts(n, r, 4, "pessimistic")[0] == 2
    assert relevant_in_top_k_from_counts(n, r, 10, "expected")[0] == 4


def test_expected_ap_at_k_conditions_on_the_boundary_group_exactly():
    # group 0: 2 items, 1 relevant; group 1: 4 items, 2 relevant; top 4 takes 2 of group 1.
    n, r = np.array([[2, 4]]), np.array([[1, 2]])
    # Exact by enumeration with fractions: orders of group 0 (R I / I R) x the 6 placements
    # of group 1's relevant pair among its 4 positions, each pair of orders equally likely.
    total = Fraction(0)
    for first in ([1, 0], [0, 1]):
        for pair in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]:
            ranked = first + [1 if i in pair else 0 for i in range(4)]
            hits, s = 0, Fraction(0)
            for pos, rel in enumerate(ranked[:4], start=1):
                if rel:
                    hits += 1
                    s += Fraction(hits, pos)
            total += s / hits
    exact = total / 12
    got = average_precision_at_k_from_counts(n, r, 4, "expected")[0]
    assert got == pytest.approx(float(exact), rel=1e-15)


def test_expected_ap_at_k_at_scale_matches_explicit_conditioning():
    # Check the vectorised hypergeometric sum on a big boundary group against a plain loop.
    from scipy.stats import hypergeom

    n, r, k = np.array([[30, 5_000, 20_000]]), np.array([[10, 900, 300]]), 2_030
    got = average_precision_at_k_from_counts(n, r, k, "expected")[0]
    S_b = _expected_group_sum_fsum(30, 10, 0, 0)
    m = k - 30
    want = 0.0
    for j in range(0, min(m, 900) + 1):
        cond = _expected_group_sum_fsum(m, j, 10, 30)
        want += hypergeom.pmf(j, 5_000, 900, m) * (S_b + cond) / (10 + j)
    assert got == pytest.approx(want, rel=1e-12)


def test_expected_ap_at_k_matches_high_precision_arithmetic():
    # The same conditioning done in 30-digit arithmetic with exact binomial weights: checks the
    # float pipeline (harmonic differences, hypergeometric weights) to ~1e-15.
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    n, r, k = np.array([[10, 600, 300]]), np.array([[3, 230, 10]]), 10 + 250

    def esum(size, rel, R_b, N_b):
        if rel == 0:
            return mpmath.mpf(0)
        c = mpmath.mpf(rel - 1) / (size - 1) if size > 1 else 0
        terms = (
            mpmath.mpf(rel) / size * (R_b + 1 + (i - 1) * c) / (N_b + i) for i in range(1, size + 1)
        )
        return mpmath.fsum(terms)

    S_b, m = esum(10, 3, 0, 0), 250
    want = mpmath.fsum(
        mpmath.binomial(230, j)
        * mpmath.binomial(370, m - j)
        / mpmath.binomial(600, m)
        * (S_b + esum(m, j, 3, 10))
        / (3 + j)
        for j in range(0, 231)
    )
    got = average_precision_at_k_from_counts(n, r, k, "expected")[0]
    assert got == pytest.approx(float(want), rel=1e-14)
