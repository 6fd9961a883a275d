"""UDCMH (a reconstruction): the signed neighbourhood graph, the objective, the least-squares
factors and the discrete code step against direct numpy / brute-force computations, the network
loss, training, refusals and determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep.udcmh import (  # noqa: E402
    UDCMH,
    initial_codes,
    neighbour_counts,
    network_loss,
    signed_affinity,
    udcmh_objective,
    update_codes,
    update_factors,
)

SMALL = {"hidden_width": 64, "n_epochs": 10, "batch_size": 64, "learning_rate": 3e-3,
         "n_threads": 1, "device": "cpu"}


def _loop_graph(views, near, far, far_weight):
    """The signed graph by loops: cosines, each row's `near` largest other entries get
    +1/near, its `far` smallest other entries -far_weight/far, then (A + A^T)/2, view mean."""
    n = len(views[0])
    S = np.zeros((n, n))
    for X in views:
        A = np.zeros((n, n))
        for i in range(n):
            cos = [X[i] @ X[j] / (np.linalg.norm(X[i]) * np.linalg.norm(X[j])) for j in range(n)]
            others = sorted((j for j in range(n) if j != i), key=lambda j: cos[j])
            for j in others[len(others) - near:]:
                A[i, j] = 1.0 / near
            for j in others[:far]:
                A[i, j] = -far_weight / far
        S += (A + A.T) / 2 / len(views)
    return S


def test_signed_graph_matches_loops():
    rng = np.random.default_rng(0)
    views = [rng.random((7, 5)), rng.standard_normal((7, 3))]  # distinct cosines (no ties)
    got = signed_affinity([torch.from_numpy(X) for X in views], n_neighbors=2, n_farthest=3,
                          far_weight=0.7).to_dense().numpy()
    np.testing.assert_allclose(got, _loop_graph(views, 2, 3, 0.7), atol=1e-12)
    np.testing.assert_allclose(got, got.T, atol=1e-12)
    assert np.all(np.diag(got) == 0)


def test_neighbour_counts_are_clipped_to_the_rows():
    assert neighbour_counts(100, 10, 10) == (10, 10)
    assert neighbour_counts(12, 10, 10) == (10, 1)  # 11 other rows: the sets never overlap
    assert neighbour_counts(2, 10, 10) == (1, 0)
    S = signed_affinity([torch.rand(3, 4, dtype=torch.float64)] * 2, n_neighbors=10,
                        n_farthest=10, far_weight=1.0).to_dense()
    # 3 rows: 2 nearest (+1/2 each), no farthest left; every row's weights sum to 1.
    assert S.shape == (3, 3) and float(S.sum()) == pytest.approx(3.0, rel=1e-12)
    assert float(S.min()) >= 0


def _problem(seed, n=6, k=3, views=2):
    rng = np.random.default_rng(seed)
    feats = [torch.from_numpy(np.tanh(rng.standard_normal((n, k)))) for _ in range(views)]
    B = torch.from_numpy(rng.choice([-1.0, 1.0], size=(n, k)))
    U = [torch.from_numpy(rng.standard_normal((k, k))) for _ in range(views)]
    W = rng.standard_normal((n, n))
    S = torch.from_numpy((W + W.T) / 2 * (1 - np.eye(n)))  # indefinite, like the signed graph
    return feats, B, U, S


def test_objective_matches_numpy_and_is_the_laplacian_form():
    feats, B, U, S = _problem(1)
    a, e, g = 0.7, 1.3, 2.1
    Fn, Bn, Un, Sn = ([f.numpy() for f in feats], B.numpy(), [u.numpy() for u in U], S.numpy())
    expected = (sum(a * np.sum((f - Bn @ u) ** 2) + e * np.sum((Bn - f) ** 2)
                    for f, u in zip(Fn, Un)) - g * np.trace(Bn.T @ Sn @ Bn))
    got = udcmh_objective(feats, B, U, S, mf_weight=a, fit_weight=e, graph_weight=g)
    assert got == pytest.approx(expected, rel=1e-12)
    assert udcmh_objective(feats, B, U, S.to_sparse(), mf_weight=a, fit_weight=e,
                           graph_weight=g) == pytest.approx(expected, rel=1e-12)

    # For binary codes -tr(B^T S B) = tr(B^T L B) - const, L = D - S: differences agree with
    # 1/2 sum_ij S_ij ||b_i - b_j||^2 between any two code matrices.
    def laplacian(Bm):
        n = len(Bm)
        return 0.5 * sum(Sn[i, j] * np.sum((Bm[i] - Bm[j]) ** 2)
                         for i in range(n) for j in range(n))

    B2 = -Bn.copy()
    B2[0] *= -1
    graph = [-np.trace(M.T @ Sn @ M) for M in (Bn, B2)]
    assert graph[0] - graph[1] == pytest.approx(laplacian(Bn) - laplacian(B2), rel=1e-10)


def test_factors_are_ridge_least_squares():
    feats, B, _, _ = _problem(2, n=9, k=4)
    ridge = 0.01
    for U, f in zip(update_factors(feats, B, ridge), feats):
        Bn = B.numpy()
        expected = np.linalg.solve(Bn.T @ Bn + ridge * 9 * np.eye(4), Bn.T @ f.numpy())
        np.testing.assert_allclose(U.numpy(), expected, atol=1e-12)


def test_code_step_with_one_bit_and_no_graph_is_the_exact_minimiser():
    """k = 1, gamma = 0: J is linear in the column, the step must reach the brute-force min."""
    feats, _, U, S = _problem(3, n=5, k=1)
    weights = {"mf_weight": 0.8, "fit_weight": 1.1, "graph_weight": 0.0}
    start = torch.ones(5, 1, dtype=torch.float64)
    got = update_codes(feats, start, U, S, **weights)
    best = min(udcmh_objective(feats, torch.tensor(b, dtype=torch.float64)[:, None], U, S,
                               **weights)
               for b in itertools.product([-1.0, 1.0], repeat=5))
    assert udcmh_objective(feats, got, U, S, **weights) == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_code_step_never_raises_the_objective(seed):
    feats, B, U, S = _problem(10 + seed, n=8, k=4)
    weights = {"mf_weight": 1.0, "fit_weight": 0.5, "graph_weight": 3.0}
    before = udcmh_objective(feats, B, U, S, **weights)
    after_B = update_codes(feats, B, U, S.to_sparse(), n_passes=2, **weights)
    assert set(after_B.unique().tolist()) <= {-1.0, 1.0}
    assert udcmh_objective(feats, after_B, U, S, **weights) <= before + 1e-9
    assert torch.equal(B, _problem(10 + seed, n=8, k=4)[1])  # the input is not modified


def test_network_loss_matches_numpy():
    feats, B, U, _ = _problem(4, n=5, k=3)
    loss, parts = network_loss(feats, B, U, mf_weight=0.6, fit_weight=1.4)
    Bn = B.numpy()
    factor = sum(np.sum((f.numpy() - Bn @ u.numpy()) ** 2) for f, u in zip(feats, U)) / 15
    fit = sum(np.sum((Bn - f.numpy()) ** 2) for f in feats) / 15
    assert parts == pytest.approx({"factor": factor, "fit": fit}, rel=1e-12)
    assert float(loss) == pytest.approx(0.6 * factor + 1.4 * fit, rel=1e-12)


def test_initial_codes_are_balanced_even_for_constant_outputs():
    nearly_constant = [0.3 + 1e-6 * torch.randn(10, 4, dtype=torch.float64)]
    B = initial_codes(nearly_constant)
    assert torch.equal(B.sum(0), torch.zeros(4, dtype=torch.float64))


def test_trains_and_beats_random_projection(data, cross_modal_maps, random_floor,
                                            training_state_left):
    train, _ = data.part("train")
    h = UDCMH(n_bits=16, **SMALL).fit(train)
    losses = [r["loss"] for r in h.history_]
    assert losses[-1] < 0.5 * losses[0], losses
    maps, rp = cross_modal_maps(h, data), random_floor(data)
    assert min(maps) > max(rp) + 0.05, (maps, rp)
    assert (h.n_neighbors_, h.n_farthest_) == (10, 10)
    # Training-only state (graph, codes, factors) does not outlive fit.
    assert not training_state_left(h), training_state_left(h)


def test_three_views_and_few_rows(data):
    train, _ = data.part("train")
    X = list(train.values())
    views = {"a": X[0], "b": X[1], "c": X[0][:, :7] + X[1][:, :7]}
    h = UDCMH(n_bits=8, **{**SMALL, "n_epochs": 2}).fit(views)
    assert h.encode(views["c"], "c").shape == (len(X[0]), 8)
    few = {m: V[:4] for m, V in train.items()}
    h = UDCMH(n_bits=8, **{**SMALL, "n_epochs": 2}).fit(few)
    assert (h.n_neighbors_, h.n_farthest_) == (3, 0)


def test_held_out_loss_and_determinism(data):
    train, _ = data.part("train")
    params = {**SMALL, "n_epochs": 3, "validation_fraction": 0.2}
    a, b = UDCMH(n_bits=8, **params).fit(train), UDCMH(n_bits=8, **params).fit(train)
    assert all("val_loss" in r for r in a.history_)
    # the kept epoch is the first with the lowest held-out loss (ties: the earlier)
    assert a.best_epoch_ == 1 + int(np.argmin([r["val_loss"] for r in a.history_]))
    for m, X in train.items():
        np.testing.assert_array_equal(a.encode(X, m), b.encode(X, m))
    c = UDCMH(n_bits=8, **{**params, "random_state": 1}).fit(train)
    assert any(not np.array_equal(a.encode(X, m), c.encode(X, m)) for m, X in train.items())


def test_refuses_bad_parameters(data, assert_refused):
    train, _ = data.part("train")
    for bad in ({"mf_weight": -1.0}, {"fit_weight": float("nan")}, {"graph_weight": -0.1},
                {"far_weight": -1}, {"ridge": 0.0}, {"n_neighbors": 0}, {"n_farthest": -1},
                {"n_bit_passes": 0}, {"hidden_width": 0}, {"n_hidden_layers": -1},
                {"standardize": "yes"}):
        assert_refused(UDCMH, train, **bad)
    assert_refused(UDCMH, train, mf_weight=0.0, fit_weight=0.0)
