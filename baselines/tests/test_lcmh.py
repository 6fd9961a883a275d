"""LCMH: the anchor representation, the joint eigen-solution and its constraints, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from mmhash_baselines.lcmh import LCMH, anchor_representation, centred_gram

from mmhash.data.synthetic import make_synthetic
from mmhash.errors import InvalidInputError


@pytest.fixture(scope="module")
def views():
    return make_synthetic(n=400, dims=(20, 12), random_state=6).part("train")[0]


def test_anchor_representation_is_sparse_normalised_kernel_of_nearest_anchors():
    rng = np.random.default_rng(0)
    X, anchors = rng.standard_normal((50, 4)), rng.standard_normal((12, 4))
    Z, sigma = anchor_representation(X, anchors, 3)
    Z = Z.toarray()
    d2 = ((X[:, None, :] - anchors[None]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1)
    assert np.all((Z > 0).sum(axis=1) == 3)
    np.testing.assert_allclose(Z.sum(axis=1), 1.0)
    for i in range(len(X)):
        near = order[i, :3]
        assert set(np.flatnonzero(Z[i])) == set(near)
        w = np.exp(-d2[i, near] / (2 * sigma**2))
        np.testing.assert_allclose(Z[i, near], w / w.sum())
    # Default width: mean distance to the s-th nearest anchor.
    assert sigma == pytest.approx(np.sqrt(d2[np.arange(50), order[:, 2]]).mean())
    # Far-away items (all kernel values underflow) still get a proper distribution.
    Zfar, _ = anchor_representation(X + 1e3, anchors, 3, sigma=0.01)
    np.testing.assert_allclose(Zfar.toarray().sum(axis=1), 1.0)


def test_centred_gram_matches_dense_computation():
    rng = np.random.default_rng(1)
    A = scipy.sparse.random(40, 7, density=0.3, random_state=2, format="csr")
    B = scipy.sparse.csr_matrix(rng.random((40, 5)))
    ma, mb = np.asarray(A.mean(0)).ravel(), np.asarray(B.mean(0)).ravel()
    dense = (A.toarray() - ma).T @ (B.toarray() - mb) / 40
    np.testing.assert_allclose(centred_gram(A, B, ma, mb), dense, atol=1e-12)


def test_solution_satisfies_constraints_and_the_eigen_equation(views):
    h = LCMH(n_bits=16, n_anchors=40, gamma=1e-2, random_state=0).fit(views)
    Zs = [anchor_representation(X, getattr(h, f"anchors{m}_"), 3, getattr(h, f"sigma{m}_"))[0]
          .toarray() - getattr(h, f"zmean{m}_") for m, X in enumerate(views.values())]
    n = len(Zs[0])
    Cxx, Cyy, Cxy = (Zs[0].T @ Zs[0] / n, Zs[1].T @ Zs[1] / n, Zs[0].T @ Zs[1] / n)
    Rx = Cxx + 1e-2 * np.trace(Cxx) / 40 * np.eye(40)
    Ry = Cyy + 1e-2 * np.trace(Cyy) / 40 * np.eye(40)
    Wx, Wy, rho = h.proj0_, h.proj1_, h.correlations_
    # Uncorrelated unit-variance bits in each modality (the constraint) ...
    np.testing.assert_allclose(Wx.T @ Rx @ Wx, np.eye(16), atol=1e-9)
    np.testing.assert_allclose(Wy.T @ Ry @ Wy, np.eye(16), atol=1e-9)
    # ... the bit pairs are the canonical pairs: W_x^T C_xy W_y = diag(rho) ...
    np.testing.assert_allclose(Wx.T @ Cxy @ Wy, np.diag(rho), atol=1e-9)
    # ... i.e. [0 Cxy; Cyx 0] w = rho blockdiag(Rx, Ry) w, with the largest rho kept.
    np.testing.assert_allclose(Cxy @ Wy, Rx @ Wx * rho, atol=1e-9)
    np.testing.assert_allclose(Cxy.T @ Wx, Ry @ Wy * rho, atol=1e-9)
    Lx, Ly = np.linalg.cholesky(Rx), np.linalg.cholesky(Ry)
    all_rho = np.linalg.svd(np.linalg.solve(Lx, Cxy) @ np.linalg.inv(Ly).T, compute_uv=False)
    np.testing.assert_allclose(rho, all_rho[:16], atol=1e-9)
    # The inter-modal term at the solution: ||Zx Wx - Zy Wy||^2/n + ridge = 2 (r - sum rho).
    g = (1e-2 * np.trace(Cxx) / 40, 1e-2 * np.trace(Cyy) / 40)
    obj = (((Zs[0] @ Wx - Zs[1] @ Wy) ** 2).sum() / n + g[0] * (Wx**2).sum()
           + g[1] * (Wy**2).sum())
    assert obj == pytest.approx(2 * (16 - rho.sum()), rel=1e-9)
    # Training bits have zero mean: codes threshold the centred projections.
    assert np.abs(Zs[0] @ Wx).mean(axis=0).max() > 0
    np.testing.assert_allclose((Zs[0] @ Wx).mean(axis=0), 0.0, atol=1e-10)


def test_seed_drives_kmeans_and_the_codes(views):
    a = LCMH(n_bits=8, n_anchors=40, random_state=0).fit(views)
    b = LCMH(n_bits=8, n_anchors=40, random_state=0).fit(views)
    c = LCMH(n_bits=8, n_anchors=40, random_state=1).fit(views)
    np.testing.assert_array_equal(a.anchors0_, b.anchors0_)
    assert not np.array_equal(a.anchors0_, c.anchors0_)


def test_refuses_sizes_and_parameters_it_cannot_handle(views, assert_refused):
    with pytest.raises(InvalidInputError, match="lower n_anchors"):
        LCMH(n_bits=8, n_anchors=len(views["image"]) + 1).fit(views)
    with pytest.raises(InvalidInputError, match="raise n_anchors"):
        LCMH(n_bits=32, n_anchors=32).fit(views)
    with pytest.raises(InvalidInputError, match="max_anchors"):
        LCMH(n_bits=8, n_anchors=600, max_anchors=500).fit(views)
    for bad in (dict(n_nearest=0), dict(n_nearest=50, n_anchors=40), dict(gamma=0.0),
                dict(gamma=np.inf), dict(kmeans_n_init=0), dict(random_state=None)):
        assert_refused(LCMH, views, **bad)


def test_cross_modal_retrieval_beats_the_random_floor(wide_data, cross_modal_maps,
                                                       random_floor):
    train, _ = wide_data.part("train")
    got = np.mean(cross_modal_maps(LCMH(n_bits=16, n_anchors=100).fit(train), wide_data))
    floor = np.mean(random_floor(wide_data))
    assert got > floor + 0.05, (got, floor)
