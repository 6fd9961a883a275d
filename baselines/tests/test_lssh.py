"""LSSH: exact sub-problem solvers, monotone objective, thresholds, refusals, accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from mmhash_baselines.lssh import LSSH, _lasso, unit_ball_least_squares
from scipy.optimize import minimize

from mmhash.errors import InvalidInputError

FAST = {"dict_size": 48, "max_iter": 6}


@pytest.fixture(scope="module")
def fitted(data):
    views, _ = data.part("train")
    return LSSH(n_bits=16, random_state=1, **FAST).fit(views), views


def test_unit_ball_least_squares_equals_constrained_minimiser():
    rng = np.random.default_rng(0)
    d, m, n = 3, 4, 6
    X = 3.0 * rng.standard_normal((d, n))  # large targets: some constraints are active
    S = rng.standard_normal((m, n))
    S[2] = 0.0  # an unused atom keeps its previous value
    D0 = np.full((d, m), 0.1)
    D = unit_ball_least_squares(X, S, D0)

    def f(z):
        Z = z.reshape(d, m)
        return float(((X - Z @ S) ** 2).sum())

    cons = [{"type": "ineq", "fun": (lambda z, j=j: 1.0 - (z.reshape(d, m)[:, j] ** 2).sum())}
            for j in range(m)]
    ref = minimize(f, D0.ravel(), constraints=cons, method="SLSQP",
                   options={"ftol": 1e-14, "maxiter": 1000}).x.reshape(d, m)
    norms = np.linalg.norm(D, axis=0)
    assert np.all(norms <= 1 + 1e-12)
    assert np.isclose(norms[[0, 1, 3]], 1.0, atol=1e-6).any(), "test needs an active constraint"
    assert f(D.ravel()) <= f(ref.ravel()) + 1e-6
    np.testing.assert_allclose(D[:, [0, 1, 3]], ref[:, [0, 1, 3]], atol=1e-4)
    np.testing.assert_array_equal(D[:, 2], D0[:, 2])


def test_sparse_codes_satisfy_lasso_optimality():
    rng = np.random.default_rng(1)
    D = rng.standard_normal((10, 25))
    D /= np.linalg.norm(D, axis=0)
    X = rng.standard_normal((5, 10))
    lam = 0.3
    S = _lasso(X, D, lam)
    # KKT of min ||x - D s||^2 + lam |s|_1: 2 D^T (x - D s) = lam sign(s) on the support and
    # lies in [-lam, lam] off it.
    grad = 2 * (X - S @ D.T) @ D
    on = S != 0
    assert on.any() and (~on).any()
    np.testing.assert_allclose(grad[on], lam * np.sign(S[on]), atol=1e-3)
    assert np.all(np.abs(grad[~on]) <= lam + 1e-3)


def test_objective_never_increases(fitted):
    h, _ = fitted
    obj = np.asarray(h.objective_)
    assert len(obj) == FAST["max_iter"] == h.n_iter_
    assert np.all(np.diff(obj) <= 1e-9 * obj[:-1]), np.diff(obj).max()
    assert obj[-1] < obj[0]


def test_learned_factors_respect_the_unit_ball(fitted):
    h, _ = fitted
    for M in (h.dictionary_, h.basis_, h.link_):
        assert np.all(np.linalg.norm(M, axis=0) <= 1 + 1e-9)


@pytest.mark.parametrize("rule", ["mean", "median", "zero"])
def test_thresholds_are_per_bit_constants_from_training(data, rule):
    views, _ = data.part("train")
    h = LSSH(n_bits=16, threshold=rule, **FAST).fit(views)
    latent = h._prep_text(views["text"]) @ h.text_map_
    expected = {"mean": latent.mean(axis=0), "median": np.median(latent, axis=0),
                "zero": np.zeros(16)}[rule]
    np.testing.assert_allclose(h.thresh1_, expected)
    codes = h.encode(views["text"], "text")
    if rule == "median":  # median thresholds balance every bit on the training set
        assert np.all(np.abs((codes == 1).mean(axis=0) - 0.5) <= 0.01)


def test_refuses_bad_parameters_and_sizes(data):
    views, _ = data.part("train")
    with pytest.raises(InvalidInputError, match="max_samples=100"):
        LSSH(n_bits=16, max_samples=100, **FAST).fit(views)
    with pytest.raises(InvalidInputError, match="mean, median, zero"):
        LSSH(n_bits=16, threshold="avg", **FAST).fit(views)
    with pytest.raises(InvalidInputError, match="sparsity"):
        LSSH(n_bits=16, sparsity=-1.0, **FAST).fit(views)
    with pytest.raises(InvalidInputError, match="dict_size"):
        LSSH(n_bits=16, dict_size=0).fit(views)


def test_cross_modal_retrieval_beats_random_projection(data, fitted, cross_modal_maps,
                                                        random_floor):
    lssh = cross_modal_maps(fitted[0], data)
    rp = random_floor(data)
    assert min(lssh) > max(rp) + 0.05, (lssh, rp)
