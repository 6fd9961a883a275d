"""LSSH: exact sub-problem solvers, monotone objective, thresholds, refusals, accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from mmhash_baselines import lssh
from mmhash_baselines.lssh import LSSH, _dual_newton, _lasso, _lasso_gap, unit_ball_least_squares
from scipy.optimize import minimize
from sklearn.linear_model import Lasso

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


def _half_gaps(X, D, S, lam):
    """Per-row duality gap of 0.5 ||x - D s||^2 + (lam / 2) |s|_1, relative to ||x||^2."""
    Q = X @ D
    xx = (X**2).sum(axis=1)
    return _lasso_gap(xx, Q, S, Q - S @ D.T @ D, lam / 2) / xx


def _lasso_problem(seed, n=40, p=12, m=60):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((p, m))
    D /= np.linalg.norm(D, axis=0)
    X = rng.standard_normal((n, p))
    return X / np.linalg.norm(X, axis=1, keepdims=True), D


@pytest.mark.parametrize("warm", [False, True])
def test_sparse_codes_match_scikit_learn_lasso_within_its_tolerance(warm):
    # Reference: one scikit-learn Lasso per row at a far tighter tolerance. The batched solver
    # must end every row within Lasso's own duality-gap tolerance (1e-4 ||x||^2) of the optimum.
    X, D = _lasso_problem(2)
    lam = 0.2
    init = _lasso(X + 0.3 * np.roll(X, 1, axis=0), D, lam) if warm else None
    S = _lasso(X, D, lam, init=init)
    ref = np.array([Lasso(alpha=lam / (2 * D.shape[0]), fit_intercept=False, tol=1e-12,
                          max_iter=100000).fit(D, x).coef_ for x in X])

    def f(Z):
        return ((X - Z @ D.T) ** 2).sum(axis=1) + lam * np.abs(Z).sum(axis=1)

    assert np.all(_half_gaps(X, D, S, lam) <= 1e-4)
    # the half-objective gap bounds the suboptimality: f = 2 x half objective
    assert np.all(f(S) - f(ref) <= 2e-4 * (X**2).sum(axis=1))
    np.testing.assert_allclose(S, ref, atol=0.05)
    assert ((S != 0) == (ref != 0)).mean() > 0.95


def test_sparse_codes_grow_the_working_set_until_the_full_problem_is_solved(monkeypatch):
    # Working sets that start far too small (the first round sees almost no atom) must still
    # end within tolerance on the full problem: violating atoms are added round by round.
    X, D = _lasso_problem(3)
    monkeypatch.setattr(lssh, "_WORKING_SET", 50.0)
    monkeypatch.setattr(lssh, "_GROWTH", 1)
    S = _lasso(X, D, 0.1)
    assert (S != 0).sum(axis=1).max() > 3
    assert np.all(_half_gaps(X, D, S, 0.1) <= 1e-4)


def test_sparse_coding_lands_on_the_minimiser_instead_of_sweeping_towards_it():
    # Coordinate descent approaches a Lasso solution geometrically: scikit-learn's sweeps grow
    # with log(1 / tol). Jumping to the minimiser on a support whose signs a sweep kept lands
    # on the solution, so a tighter tolerance costs (almost) no more sweeps, and every row ends
    # at a duality gap of round-off. Pins the stopping rule and the jump of _lasso_rows.
    X, D = _lasso_problem(2)
    tau, p = 0.1, D.shape[0]
    G, Q, xx = D.T @ D, X @ D, (X**2).sum(axis=1)
    sweeps = {}
    for tol in (1e-8, 1e-12):
        S = np.zeros((len(X), D.shape[1]))
        sweeps[tol] = lssh._lasso_kernel()(G, Q, xx, S, tau, tol, 100000, 0.9, 16, 8)
        assert np.all(_lasso_gap(xx, Q, S, Q - S @ G, tau) <= tol * xx)
    assert sweeps[1e-12].sum() <= 1.05 * sweeps[1e-8].sum()
    reference = [Lasso(alpha=tau / p, fit_intercept=False, tol=1e-12, max_iter=100000,
                       precompute=G).fit(D, x).n_iter_ for x in X]
    assert sweeps[1e-12].sum() < 0.3 * sum(reference), (sweeps[1e-12].sum(), sum(reference))


def test_sparse_coding_kernel_computes_what_its_python_source_does():
    X, D = _lasso_problem(4, n=5, m=30)
    tau, G, Q, xx = 0.1, D.T @ D, X @ D, (X**2).sum(axis=1)
    init = _lasso(np.roll(X, 1, axis=0), D, 0.2)
    compiled, python = init.copy(), init.copy()
    a = lssh._lasso_kernel()(G, Q, xx, compiled, tau, 1e-4, 2000, 0.9, 16, 8)
    b = lssh._lasso_rows(G, Q, xx, python, tau, 1e-4, 2000, 0.9, 16, 8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(compiled, python, rtol=0, atol=1e-12)


def test_dictionary_dual_newton_matches_a_generic_bounded_solver():
    # Some atoms strictly inside the ball (multiplier at the floor), some on the sphere.
    rng = np.random.default_rng(5)
    d, m, n = 6, 20, 80
    S = rng.standard_normal((m, n)) * (rng.random(m) > 0.2)[:, None]
    S = S[np.einsum("ij,ij->i", S, S) > 0]
    X = rng.standard_normal((d, n)) * np.linspace(0.2, 4.0, d)[:, None]
    G, E = S @ S.T, X @ S.T
    floor = 1e-10 * np.trace(G) / len(G)
    nu, Z = _dual_newton(G, E, np.ones(len(G)), floor)

    def phi(v):
        M = G + np.diag(v)
        W = np.linalg.solve(M, E.T)
        return np.einsum("ij,ji->", E, W) + v.sum(), 1.0 - (W**2).sum(axis=1)

    ref = minimize(phi, np.ones(len(G)), jac=True, method="L-BFGS-B",
                   bounds=[(floor, None)] * len(G),
                   options={"maxiter": 10000, "ftol": 1e-15, "gtol": 1e-12}).x
    inside = nu <= 2 * floor
    assert inside.any() and (~inside).any(), "test needs both kinds of atoms"
    assert phi(nu)[0] <= phi(ref)[0] + 1e-9 * abs(phi(ref)[0])
    norms = np.linalg.norm(Z, axis=1)
    np.testing.assert_allclose(norms[~inside], 1.0, atol=1e-8)  # constraint active
    assert np.all(norms[inside] <= 1 + 1e-9)
    np.testing.assert_allclose(nu[~inside], ref[~inside], rtol=1e-4)


def test_same_seed_same_codes_bit_for_bit(data):
    views, _ = data.part("train")
    a = LSSH(n_bits=16, random_state=3, **FAST).fit(views)
    b = LSSH(n_bits=16, random_state=3, **FAST).fit(views)
    assert a.objective_ == b.objective_
    for m in views:
        np.testing.assert_array_equal(a.encode(views[m], m), b.encode(views[m], m))


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


# ---- unified database codes ------------------------------------------------------------------
def _pair_objective(x, y, s, a, B, U, R, lam, mu, gamma):
    """The LSSH objective of one pair (rows x (p,), y (d2,), s (m,), a (k,))."""
    return (((x - B @ s) ** 2).sum() + lam * np.abs(s).sum() + mu * ((y - U @ a) ** 2).sum()
            + gamma * ((a - R @ s) ** 2).sum())


@pytest.mark.parametrize("d2", [12, 3])  # 3 < k: U^T U is singular (a null space to skip)
def test_unified_latents_satisfy_the_joint_optimality_conditions(d2):
    rng = np.random.default_rng(7)
    p, m, k, n = 10, 30, 8, 6
    B = lssh._unit_columns(rng.standard_normal((p, m)))
    U = lssh._unit_columns(rng.standard_normal((d2, k)))
    R = lssh._unit_columns(rng.standard_normal((k, m)))
    X = lssh._unit_rows(rng.standard_normal((n, p)))
    Y = lssh._unit_rows(rng.standard_normal((n, d2)))
    lam, mu, gamma = 0.2, 0.5, 1.0
    S, A = lssh.unified_latents(X, Y, B, U, R, lam, mu, gamma)
    assert S.shape == (n, m) and A.shape == (n, k)
    # The objective is jointly convex in (s, a): its KKT conditions certify the minimiser.
    # a: the gradient mu U^T (U a - y) + gamma (a - R s) vanishes.
    np.testing.assert_allclose(mu * (A @ U.T - Y) @ U + gamma * (A - S @ R.T), 0.0, atol=1e-10)
    # s: the smooth part's gradient is -lam sign(s) on the support and within [-lam, lam] off it.
    grad = -2 * (X - S @ B.T) @ B - 2 * gamma * (A - S @ R.T) @ R
    on = S != 0
    assert on.any() and (~on).any()
    np.testing.assert_allclose(grad[on], -lam * np.sign(S[on]), atol=1e-3)
    assert np.all(np.abs(grad[~on]) <= lam + 1e-3)
    # A generic solver on the first pair does no better.
    def f(z):
        return _pair_objective(X[0], Y[0], z[:m], z[m:], B, U, R, lam, mu, gamma)

    ref = minimize(f, np.zeros(m + k), method="Powell",
                   options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 200000}).x
    assert f(np.concatenate([S[0], A[0]])) <= f(ref) + 1e-4


def test_unified_database_codes_are_deterministic_per_item_codes(data, fitted, tmp_path):
    h, _ = fitted
    views, _ = data.part("retrieval")
    codes = h.encode_database(views)
    assert codes.dtype == np.int8 and codes.shape == (len(views["image"]), 16)
    assert set(np.unique(codes)) <= {-1, 1}
    np.testing.assert_array_equal(h.encode_database(views), codes)
    rows = np.arange(3, len(codes), 7)  # a subset: each code depends on its own pair only
    np.testing.assert_array_equal(
        h.encode_database({m: X[rows] for m, X in views.items()}), codes[rows])
    np.testing.assert_array_equal(h.encode_database({m: X[5:6] for m, X in views.items()}),
                                  codes[5:6])
    h.save(tmp_path / "lssh.npz")
    np.testing.assert_array_equal(LSSH.load(tmp_path / "lssh.npz").encode_database(views), codes)


def test_unified_database_codes_are_the_pairs_minimisers(data, fitted):
    h, _ = fitted
    views, _ = data.part("query")
    X, Y = h._prep_image(views["image"][:5]), h._prep_text(views["text"][:5])
    args = (h.dictionary_, h.basis_, h.link_, h.sparsity, h.mu, h.gamma)
    S, A = lssh.unified_latents(X, Y, *args)
    np.testing.assert_array_equal(h._encode_database({m: V[:5] for m, V in views.items()}),
                                  A - h.thresh_unified_)
    # Never worse than the authors' shortcut (the image sparse-coded alone, then one A-step).
    B, U, R, lam, mu, gamma = args
    S0 = _lasso(X, B, lam)
    A0 = np.linalg.solve(mu * U.T @ U + gamma * np.eye(16), mu * U.T @ Y.T + gamma * R @ S0.T).T
    for i in range(5):
        assert (_pair_objective(X[i], Y[i], S[i], A[i], *args)
                <= _pair_objective(X[i], Y[i], S0[i], A0[i], *args) + 1e-9)


@pytest.mark.parametrize("rule", ["median", "zero"])
def test_unified_threshold_follows_the_rule_on_the_training_pairs(data, rule):
    views, _ = data.part("train")
    h = LSSH(n_bits=16, threshold=rule, **FAST).fit(views)
    if rule == "zero":
        np.testing.assert_array_equal(h.thresh_unified_, np.zeros(16))
        return
    latent = h._unified_latent(h._prep_image(views["image"]), h._prep_text(views["text"]))
    np.testing.assert_allclose(h.thresh_unified_, np.median(latent, axis=0))
    ones = (h.encode_database(views) == 1).mean(axis=0)
    assert np.all(np.abs(ones - 0.5) <= 0.01)


def test_unified_database_retrieval_beats_random_projection(data, fitted, unified_maps,
                                                           random_floor):
    got = unified_maps(fitted[0], data)
    rp = random_floor(data)
    assert min(got) > max(rp) + 0.05, (got, rp)


def test_dual_newton_with_every_atom_inside_the_ball():
    """Every multiplier at its floor with the gradient pushing outwards (all atoms strictly
    inside the unit ball, as tiny or all-zero data rows make them): the Newton block is empty.
    LAPACK refused the 0 x 0 system (``dposv``: shape(a,0)==shape(b,0) failed), which killed
    LSSH at 64 bits on real TF-IDF text with 13 all-zero rows."""
    from mmhash_baselines.lssh import _dual_newton

    G = 10.0 * np.eye(4)
    E = 1e-3 * np.ones((3, 4))  # D = E (G + diag nu)^-1: tiny columns, far inside the ball
    floor = 1e-10
    # a warm start just above the floor: every multiplier is "at its bound", none free
    nu, Z = _dual_newton(G, E, np.full(4, floor + 1e-5), floor)
    assert np.all(nu == floor)  # the constraint is inactive: multipliers at their floor
    np.testing.assert_allclose(Z.T, E @ np.linalg.inv(G + np.diag(nu)), rtol=1e-8)
