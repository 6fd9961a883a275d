"""RFDH: monotone objectives, exact closed-form steps, balanced discrete codes, accuracy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from mmhash_baselines.rfdh import RFDH, _dcc_bits, balanced_bit, view_weights
from scipy.optimize import minimize_scalar

from mmhash.data.synthetic import make_synthetic


@pytest.fixture(scope="module")
def fitted(data):
    views, _ = data.part("train")
    return RFDH(n_bits=16, n_iter=12).fit(views)


def test_objectives_never_increase(fitted):
    # Stage 1: every step minimises a majoriser of the l2,1 objective; stage 2: exact blocks.
    for obj in (fitted.objective_, fitted.hash_objective_):
        assert np.all(np.isfinite(obj))
        assert np.all(np.diff(obj) <= 1e-9 * np.abs(obj[:-1])), obj
    assert fitted.objective_[-1] < fitted.objective_[0]
    assert fitted.objective_.shape == (12,) and fitted.hash_objective_.shape == (5,)


def test_training_codes_are_discrete_and_balanced(fitted, data):
    n = len(data.part("train")[1])
    codes = fitted.codes_
    assert codes.shape == (n, 16) and set(np.unique(codes).tolist()) == {-1, 1}
    # The balance constraint Z 1 = ceil(n/2) holds exactly for every bit.
    np.testing.assert_array_equal((codes > 0).sum(axis=0), np.full(16, (n + 1) // 2))


@pytest.mark.parametrize("r", [1.5, 3.0, 8.0])
def test_view_weights_are_the_simplex_minimiser(r):
    h = np.array([4.0, 1.5])
    lam = view_weights(h, r)
    best = minimize_scalar(lambda a: a**r * h[0] + (1 - a) ** r * h[1], bounds=(0, 1),
                           method="bounded", options={"xatol": 1e-12})
    np.testing.assert_allclose(lam, [best.x, 1 - best.x], atol=1e-6)
    # Flexible: the better-reconstructed view (smaller loss) gets the larger weight.
    assert lam[1] > lam[0]
    three = view_weights(np.array([1.0, 2.0, 1e-300]), r)  # log space: no overflow
    assert np.isclose(three.sum(), 1.0) and np.all(np.isfinite(three))


def test_balanced_bit_is_the_exact_constrained_minimiser():
    rng = np.random.default_rng(0)
    n, ones = 8, 4
    for cost in (rng.standard_normal(n), np.array([1.0, 0, 0, 2, 0, 3, 0, 1])):  # with ties
        z = balanced_bit(cost, ones)
        assert z.sum() == ones and set(np.unique(z)) <= {0.0, 1.0}
        brute = min(cost[list(idx)].sum() for idx in itertools.combinations(range(n), ones))
        assert np.isclose(cost @ z, brute)
    # Ties at the cut-off go to the lowest indices: deterministic.
    np.testing.assert_array_equal(balanced_bit(np.zeros(5), 2), [1, 1, 0, 0, 0])


def test_dcc_fixed_point_is_optimal_bit_by_bit():
    """After DCC stops changing, each bit is the brute-force best balanced row given the others,
    for the reweighted surrogate sum_t w_t sum_i D_ti ||x_ti - F_t z_i||^2."""
    rng = np.random.default_rng(1)
    n, k, ones = 8, 3, 4
    Xs = [rng.standard_normal((5, n)), rng.standard_normal((3, n))]
    F = [rng.standard_normal((5, k)), rng.standard_normal((3, k))]
    D = [rng.uniform(0.2, 2.0, n), rng.uniform(0.2, 2.0, n)]
    w = np.array([0.7, 0.2])
    Z = _dcc_bits(Xs, F, D, w, (rng.random((k, n)) > 0.5).astype(float), ones, n_sweeps=100)

    def surrogate(Z):
        return sum(w_t * np.sum(D_t * np.sum((X - F_t @ Z) ** 2, axis=0))
                   for X, F_t, D_t, w_t in zip(Xs, F, D, w))

    for j in range(k):
        best = np.inf
        for idx in itertools.combinations(range(n), ones):
            trial = Z.copy()
            trial[j] = 0.0
            trial[j, list(idx)] = 1.0
            best = min(best, surrogate(trial))
        assert surrogate(Z) <= best + 1e-10


def test_hash_functions_are_linear_and_batch_free(fitted, data):
    (q, _) = data.part("query")
    X = q["image"]
    latent = X @ fitted.projection0_.T - fitted.offset0_
    np.testing.assert_array_equal(fitted.encode(X, "image"),
                                  np.where(latent @ fitted.rotation_.T >= 0, 1, -1))
    assert np.isclose(fitted.view_weights_.sum(), 1.0)


def test_three_views_get_three_weights():
    ds = make_synthetic(n=300, dims=(20, 12, 8), random_state=2)
    views, _ = ds.part("train")
    h = RFDH(n_bits=8, n_iter=4).fit(views)
    assert h.view_weights_.shape == (3,) and np.isclose(h.view_weights_.sum(), 1.0)
    assert np.all(np.diff(h.objective_) <= 1e-9 * np.abs(h.objective_[:-1]))
    assert h.encode(ds.part("query")[0]["view2"], "view2").shape == (30, 8)


def test_deterministic_under_seed(data):
    views, _ = data.part("train")
    a = RFDH(n_bits=8, n_iter=3, random_state=5).fit(views)
    b = RFDH(n_bits=8, n_iter=3, random_state=5).fit(views)
    c = RFDH(n_bits=8, n_iter=3, random_state=6).fit(views)
    np.testing.assert_array_equal(a.codes_, b.codes_)
    assert not np.array_equal(a.codes_, c.codes_)


@pytest.mark.parametrize("bad", [
    {"weight_exponent": 1.0}, {"weight_exponent": float("nan")}, {"gamma": 0.0},
    {"eta": -1.0}, {"n_iter": 0}, {"n_sweeps": 1.5}, {"n_hash_iter": True},
    {"random_state": -1},
])
def test_bad_parameters_are_refused(data, bad, assert_refused):
    assert_refused(RFDH, data.part("train")[0], **bad)


def test_beats_random_projection_floor(data, fitted, cross_modal_maps, random_floor):
    assert np.mean(cross_modal_maps(fitted, data)) > np.mean(random_floor(data)) + 0.1
