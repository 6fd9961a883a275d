"""IMH: the eigen-solution of the paper's relaxed problem, its eliminations, refusals, accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from mmhash_baselines.imh import IMH, inter_media_matrix, knn_affinity, relaxed_codes, ridge_hat

from mmhash.data.synthetic import make_synthetic
from mmhash.errors import InvalidInputError

PARAMS = dict(k=5, lam=1.0, beta=1.0, mu=50.0)


@pytest.fixture(scope="module")
def small():
    views, _ = make_synthetic(n=150, dims=(12, 7), random_state=4).part("train")
    X1, X2 = (V - V.mean(axis=0) for V in views.values())
    return X1, X2


def _laplacian(X, k):
    """Heat-kernel kNN Laplacian by brute force (independent of the implementation)."""
    dist = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    nn = np.argsort(dist, axis=1, kind="stable")[:, :k]
    sigma = np.take_along_axis(dist, nn, axis=1).mean()
    A = np.zeros_like(dist)
    rows = np.repeat(np.arange(len(X)), k)
    A[rows, nn.ravel()] = np.exp(-(dist[rows, nn.ravel()] / sigma) ** 2)
    A = (A + A.T) / 2
    return np.diag(A.sum(1)) - A


def _K(X, k, lam, beta):
    B = np.eye(len(X)) - X @ np.linalg.inv(X.T @ X + beta * np.eye(X.shape[1])) @ X.T
    return B + lam * _laplacian(X, k)


def _J(F1, F2, K1, K2, mu):
    """The paper's objective with W eliminated: intra + regression terms and inter-media term."""
    return np.trace(F1.T @ K1 @ F1) + np.trace(F2.T @ K2 @ F2) + mu * ((F1 - F2) ** 2).sum()


def test_relaxed_codes_are_the_smallest_nontrivial_eigenvectors(small):
    X1, X2 = small
    r, mu = 8, PARAMS["mu"]
    F1, F2, vals, _ = relaxed_codes(X1, X2, n_bits=r, **PARAMS)
    K1, K2 = _K(X1, 5, 1.0, 1.0), _K(X2, 5, 1.0, 1.0)
    n = len(X1)
    # D after eliminating F2: K1 + mu I - mu^2 (K2 + mu I)^{-1}.
    D = K1 + mu * np.eye(n) - mu**2 * np.linalg.inv(K2 + mu * np.eye(n))
    np.testing.assert_allclose(D @ F1, F1 * vals, atol=1e-8)
    np.testing.assert_allclose(F1.T @ F1, np.eye(r), atol=1e-10)  # constraint F1^T F1 = I
    np.testing.assert_allclose(F1.sum(axis=0), 0.0, atol=1e-10)  # trivial constant excluded
    # The constant vector is an eigenvector (eigenvalue 1 + mu/(1+mu)); the solution holds the
    # r smallest of the others.
    one = np.ones(n) / np.sqrt(n)
    np.testing.assert_allclose(D @ one, (1 + mu / (1 + mu)) * one, atol=1e-8)
    P = np.eye(n) - np.outer(one, one)
    rest = np.linalg.eigvalsh(P @ D @ P + 1e6 * np.outer(one, one))
    np.testing.assert_allclose(vals, rest[:r], atol=1e-8)


@pytest.mark.parametrize("mu", [50.0, 1e4])
def test_inter_media_matrix_from_the_inverse_and_k2s_parts(small, mu):
    # D = K1 + mu K2 (K2 + mu I)^-1, by a Cholesky solve or from the Cholesky inverse with
    # K2's product taken from its parts (identity - rank-d2 ridge term + sparse Laplacian),
    # equals the dense formula; a large mu must not cost digits to cancellation.
    X1, X2 = small
    K1, K2 = _K(X1, 5, 1.0, 1.0), _K(X2, 5, 1.0, 1.0)
    n = len(X1)
    A, _ = knn_affinity(X2, 5)
    degree, P = np.asarray(A.sum(axis=1)).ravel(), ridge_hat(X2, 1.0)

    def K2_times(V):
        return V - 0.5 * (X2 @ (P @ V) + P.T @ (X2.T @ V)) + degree[:, None] * V - A @ V

    inverse_ref = np.linalg.inv(K2 + mu * np.eye(n))
    ref = K1 + mu * K2 @ inverse_ref
    for times in (None, K2_times):
        D, solve = inter_media_matrix(K1, K2, mu, times)
        np.testing.assert_allclose(solve(np.eye(n)), inverse_ref, rtol=1e-10, atol=1e-14 / mu)
        np.testing.assert_array_equal(D, D.T)
        np.testing.assert_allclose(D, (ref + ref.T) / 2, rtol=0, atol=1e-11)


def test_f2_is_the_exact_minimiser_given_f1(small):
    X1, X2 = small
    F1, F2, vals, _ = relaxed_codes(X1, X2, n_bits=8, **PARAMS)
    K1, K2 = _K(X1, 5, 1.0, 1.0), _K(X2, 5, 1.0, 1.0)
    mu = PARAMS["mu"]
    # Stationarity of the inter-media objective in F2 ...
    np.testing.assert_allclose(K2 @ F2 + mu * (F2 - F1), 0.0, atol=1e-8)
    # ... the eliminated objective equals the full one at the solution ...
    assert _J(F1, F2, K1, K2, mu) == pytest.approx(vals.sum(), rel=1e-9)
    # ... and moving F2 away from it only raises it (strictly convex in F2).
    rng = np.random.default_rng(0)
    for _ in range(5):
        E = 1e-3 * rng.standard_normal(F2.shape)
        assert _J(F1, F2 + E, K1, K2, mu) > _J(F1, F2, K1, K2, mu)


def test_hash_functions_are_the_ridge_regression_of_the_relaxed_codes(small):
    views, _ = make_synthetic(n=150, dims=(12, 7), random_state=4).part("train")
    h = IMH(n_bits=8, normalize=False, threshold="zero", **PARAMS).fit(views)
    X1, X2 = small
    F1, F2, vals, _ = relaxed_codes(X1, X2, n_bits=8, **PARAMS)
    for X, F, W in ((X1, F1, h.proj0_), (X2, F2, h.proj1_)):
        # Gradient of ||X W - F||^2 + beta ||W||^2 vanishes.
        np.testing.assert_allclose(X.T @ (X @ W - F) + 1.0 * W, 0.0, atol=1e-9)
    np.testing.assert_allclose(h.eigenvalues_, vals)
    # threshold="zero": codes are the signs of the centred projections.
    codes = h.encode(views["image"], "image")
    np.testing.assert_array_equal(codes, np.where(X1 @ h.proj0_ >= 0, 1, -1))


def test_median_threshold_balances_training_bits():
    views, _ = make_synthetic(n=300, dims=(20, 10), random_state=5).part("train")
    h = IMH(n_bits=16).fit(views)
    for m, X in views.items():
        ones = (h.encode(X, m) == 1).sum(axis=0)
        assert np.all(np.abs(ones - len(X) / 2) <= 1)


def test_refuses_sizes_and_parameters_it_cannot_handle(assert_refused):
    views, _ = make_synthetic(n=120, dims=(10, 6), random_state=1).part("train")
    with pytest.raises(InvalidInputError, match="max_samples=50"):
        IMH(n_bits=8, max_samples=50).fit(views)
    with pytest.raises(InvalidInputError, match="lower k"):
        IMH(n_bits=8, k=len(views["image"])).fit(views)
    for bad in (dict(k=0), dict(beta=0.0), dict(mu=-1.0), dict(lam=np.nan),
                dict(affinity="cosine"), dict(threshold="mean"), dict(sigma=0.0)):
        assert_refused(IMH, views, **bad)


def test_binary_affinity_and_deterministic_codes():
    views, _ = make_synthetic(n=200, dims=(16, 8), random_state=2).part("train")
    a = IMH(n_bits=8, affinity="binary").fit(views)
    b = IMH(n_bits=8, affinity="binary").fit(views)
    np.testing.assert_array_equal(a.encode(views["text"], "text"), b.encode(views["text"], "text"))
    assert a.sigma0_ == 1.0


def test_cross_modal_retrieval_beats_the_random_floor(wide_data, cross_modal_maps,
                                                       random_floor):
    train, _ = wide_data.part("train")
    got = np.mean(cross_modal_maps(IMH(n_bits=16).fit(train), wide_data))
    floor = np.mean(random_floor(wide_data))
    assert got > floor + 0.05, (got, floor)


# ---- unified database codes ------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(wide_data):
    train, _ = wide_data.part("train")
    return IMH(n_bits=16).fit(train)


def test_unified_database_codes_are_deterministic_per_item_codes(wide_data, fitted, tmp_path):
    views, _ = wide_data.part("retrieval")
    codes = fitted.encode_database(views)
    assert codes.dtype == np.int8 and codes.shape == (len(views["image"]), 16)
    assert set(np.unique(codes)) <= {-1, 1}
    np.testing.assert_array_equal(fitted.encode_database(views), codes)
    rows = np.arange(3, len(codes), 7)  # a subset: each code depends on its own item only
    np.testing.assert_array_equal(
        fitted.encode_database({m: X[rows] for m, X in views.items()}), codes[rows])
    np.testing.assert_array_equal(
        fitted.encode_database({m: X[5:6] for m, X in views.items()}), codes[5:6])
    fitted.save(tmp_path / "imh.npz")
    np.testing.assert_array_equal(IMH.load(tmp_path / "imh.npz").encode_database(views), codes)


def test_unified_code_minimises_the_hash_function_term_of_the_item(wide_data, fitted):
    from scipy.optimize import minimize

    h = fitted
    views, _ = wide_data.part("query")
    c1 = (views["image"][0] - h.mean0_) / h.scale0_
    c2 = (views["text"][0] - h.mean1_) / h.scale1_

    def term(y):  # sum_g ||W_g^T c_g - y||^2, the W_g fixed
        return ((c1 @ h.proj0_ - y) ** 2).sum() + ((c2 @ h.proj1_ - y) ** 2).sum()

    y = h._encode_database({m: X[:1] for m, X in views.items()})[0] + h.thresh_unified_
    ref = minimize(term, np.zeros(16), method="BFGS", options={"gtol": 1e-12}).x
    np.testing.assert_allclose(y, ref, atol=1e-7)


@pytest.mark.parametrize("rule", ["median", "zero"])
def test_unified_threshold_follows_the_rule(wide_data, rule):
    train, _ = wide_data.part("train")
    h = IMH(n_bits=16, threshold=rule).fit(train)
    codes = h.encode_database(train)
    if rule == "zero":
        np.testing.assert_array_equal(h.thresh_unified_, np.zeros(16))
        scores = h._encode_database(train)
        np.testing.assert_array_equal(codes, np.where(scores >= 0, 1, -1))
    else:  # median thresholds balance every bit on the training items
        ones = (codes == 1).sum(axis=0)
        assert np.all(np.abs(ones - len(codes) / 2) <= 1)


def test_unified_codes_need_their_threshold(wide_data, fitted):
    views, _ = wide_data.part("query")
    # A hasher restored from a file saved before unified codes existed lacks the threshold.
    h = IMH(**fitted.get_params())
    h._set_state(*fitted._get_state())
    del h.thresh_unified_
    with pytest.raises(InvalidInputError, match="refit"):
        h.encode_database(views)


def test_unified_database_retrieval_beats_the_random_floor(wide_data, fitted, unified_maps,
                                                           random_floor):
    got = np.mean(unified_maps(fitted, wide_data))
    floor = np.mean(random_floor(wide_data))
    assert got > floor + 0.05, (got, floor)
