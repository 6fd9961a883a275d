"""CMSSH: negative pairs, the relaxed weak learner, exact thresholds, AdaBoost reweighting."""

from __future__ import annotations

import numpy as np
import pytest
from mmhash_baselines.cmssh import (
    CMSSH,
    best_threshold,
    best_thresholds,
    negative_partners,
    top_singular_pair,
)


@pytest.fixture(scope="module")
def fitted(data):
    views, _ = data.part("train")
    return CMSSH(n_bits=16, n_negatives=3).fit(views)


def test_negative_partners_exclude_self_and_cover_the_rest():
    p = negative_partners(50, 400, random_state=1)
    assert p.shape == (50, 400) and p.dtype.kind == "i"
    assert np.all(p != np.arange(50)[:, None])
    assert p.min() == 0 and p.max() == 49
    # Uniform over the n - 1 others: every other index appears for item 0.
    assert set(np.unique(p[0]).tolist()) == set(range(1, 50))
    np.testing.assert_array_equal(p, negative_partners(50, 400, random_state=1))
    np.testing.assert_array_equal(negative_partners(2, 3, 0), [[1, 1, 1], [0, 0, 0]])


@pytest.mark.parametrize("shape", [(7, 4), (90, 80)])  # dense SVD and the ARPACK path
def test_weak_learner_projections_are_the_leading_singular_pair(shape):
    C = np.random.default_rng(0).standard_normal(shape)
    p, q = top_singular_pair(C)
    sigma = np.linalg.svd(C, compute_uv=False)[0]
    assert np.isclose(np.linalg.norm(p), 1) and np.isclose(np.linalg.norm(q), 1)
    # Stationarity of max p'Cq on the unit spheres: C q = sigma p, C' p = sigma q.
    np.testing.assert_allclose(C @ q, sigma * p, atol=1e-8)
    np.testing.assert_allclose(C.T @ p, sigma * q, atol=1e-8)
    assert p[np.argmax(np.abs(p))] > 0  # sign convention: deterministic across LAPACKs


def test_best_threshold_equals_brute_force():
    rng = np.random.default_rng(2)
    values = np.round(rng.standard_normal(40), 1)  # rounding makes ties
    coef = rng.standard_normal(40)
    t, r = best_threshold(values, coef)
    distinct = np.unique(values)
    cands = -0.5 * (distinct[1:] + distinct[:-1])
    brute = [np.sum(coef * np.where(values + c >= 0, 1, -1)) for c in cands]
    assert np.isclose(r, max(brute))
    assert np.isclose(np.sum(coef * np.where(values + t >= 0, 1, -1)), r)
    assert best_threshold(np.ones(5), np.ones(5)) == (0.0, 5.0)  # nothing to split


def test_alternating_thresholds_never_lower_the_correlation():
    rng = np.random.default_rng(3)
    u, v, ws = rng.standard_normal(200), rng.standard_normal(200), rng.standard_normal(200)
    start = np.sum(ws * np.where(u >= 0, 1, -1) * np.where(v >= 0, 1, -1))
    a, b, r = best_thresholds(u, v, ws, rounds=10)
    assert r >= start
    assert np.isclose(r, np.sum(ws * np.where(u + a >= 0, 1, -1) * np.where(v + b >= 0, 1, -1)))
    # At the end each threshold is the exact best given the other.
    assert np.isclose(best_threshold(u, ws * np.where(v + b >= 0, 1, -1))[1], r)


def test_replayed_boosting_matches_and_decorrelates_each_bit(fitted, data):
    """Replay AdaBoost with the learned bits: each reported r_i is the weighted correlation
    under the weights it was chosen with, and after the alpha_i update that bit's correlation
    is exactly zero (the defining property of AdaBoost's step size)."""
    views, _ = data.part("train")
    X, Y = views["image"], views["text"]
    n = len(X)
    partners = negative_partners(n, 3, 0)
    left = np.concatenate([np.arange(n)] * 4)
    right = np.concatenate([np.arange(n), *partners.T])
    s = np.concatenate([np.ones(n), -np.ones(3 * n)])
    w = np.where(s > 0, 0.5 / n, 0.5 / (3 * n))
    bx = (fitted.encode(X, "image").astype(float))[left]
    by = (fitted.encode(Y, "text").astype(float))[right]
    for i in range(16):
        agree = bx[:, i] * by[:, i]
        assert np.isclose(np.sum(w * s * agree), fitted.correlation_[i], atol=1e-10)
        w = w * np.exp(-fitted.alpha_[i] * s * agree)
        w /= w.sum()
        assert abs(np.sum(w * s * agree)) < 1e-10
    assert np.all(fitted.correlation_ > 0) and np.all(fitted.alpha_ > 0)


def test_first_bit_separates_true_pairs_from_random_ones(fitted, data):
    views, _ = data.part("train")
    bi = fitted.encode(views["image"], "image")[:, 0]
    bt = fitted.encode(views["text"], "text")[:, 0]
    perm = np.random.default_rng(0).permutation(len(bi))
    assert np.mean(bi == bt) > np.mean(bi == bt[perm]) + 0.2


def test_deterministic_and_seed_dependent(data):
    views, _ = data.part("train")
    a = CMSSH(n_bits=8, random_state=4).fit(views)
    b = CMSSH(n_bits=8, random_state=4).fit(views)
    c = CMSSH(n_bits=8, random_state=5).fit(views)
    np.testing.assert_array_equal(a.projection0_, b.projection0_)
    assert not np.array_equal(a.projection0_, c.projection0_)


@pytest.mark.parametrize("bad", [
    {"n_negatives": 0}, {"n_negatives": 2.0}, {"n_threshold_rounds": 0},
    {"random_state": True},
])
def test_bad_parameters_are_refused(data, bad, assert_refused):
    assert_refused(CMSSH, data.part("train")[0], **bad)


def test_two_samples_are_enough():
    views = {"image": np.array([[0.0, 1.0], [1.0, 0.0]]), "text": np.array([[1.0], [0.0]])}
    h = CMSSH(n_bits=8).fit(views)
    assert h.encode(views["image"], "image").shape == (2, 8)


def test_beats_random_projection_floor(data, fitted, cross_modal_maps, random_floor):
    assert np.mean(cross_modal_maps(fitted, data)) > np.mean(random_floor(data)) + 0.1
