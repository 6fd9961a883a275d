"""CIRH: the global similarity, the neighbour mixing, the joint graph convolution and both losses
against direct computations replaying the official code; stage 2's targets by row id (the fixed
bug); the two stages in training; refusals, determinism."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep import cirh as cirh_module  # noqa: E402
from mmhash_baselines.deep.cirh import (  # noqa: E402
    CIRH,
    cirh_graph_loss,
    cirh_hash_loss,
    cirh_similarity,
    hash_network_updates,
    joint_propagation,
    neighbour_mix,
)

from mmhash.deep import run_updates  # noqa: E402
from mmhash.errors import InvalidInputError  # noqa: E402

SMALL = {"n_neighbors": 40, "graph_width": 32, "image_width": 64, "n_epochs": 8,
         "batch_size": 100, "graph_learning_rate": 1e-2, "learning_rate": 3e-3, "n_threads": 1}


def _cos(X):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    return Xn @ Xn.T


def _mse(a, b):
    return float(np.mean((np.asarray(a) - np.asarray(b)) ** 2))


def test_similarity_matches_the_official_construction():
    """my_opt.py:189-208 with numpy and loops."""
    rng = np.random.default_rng(0)
    X_image, X_text = rng.random((6, 5)), rng.random((6, 4))
    a1, a2, K = 0.6, 0.3, 2  # K: the code's count of zeroed entries per row
    S1 = a1 * _cos(X_image) + (1 - a1) * _cos(X_text)
    for i in range(6):
        S1[i, np.argsort(S1[i])[:K]] = 0.0
    S2 = 2.0 / (1 + np.exp(-S1)) - 1 + np.eye(6)
    S2 = (S2 + S2.T) / 2
    expected = a2 * S1 + (1 - a2) * S2
    got = cirh_similarity(torch.from_numpy(X_image), torch.from_numpy(X_text), image_weight=a1,
                          cosine_weight=a2, n_neighbors=6 - K)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    from mmhash_baselines.deep._graph import neighbours_for

    # main_mir.py:68, K = 3000 at n = 5000: the default keeps that share of any training set
    assert CIRH().n_neighbors is None and neighbours_for(5000, None) == 5000 - 3000


def test_neighbour_mix_uses_the_3rd_and_4th_ranked_rows():
    """my_opt.py:62-68 and NN_select (:181-187): sort ascending, columns -4 and -3."""
    rng = np.random.default_rng(1)
    A = rng.random((6, 6)) + 2 * np.eye(6)
    X = rng.standard_normal((6, 3))
    n1 = np.argsort(A, axis=1)
    ind1, ind2 = n1[:, -4:-1][:, 0], n1[:, -4:-1][:, 1]
    expected = 0.7 * X + 0.2 * X[ind2] + 0.1 * X[ind1]
    got = neighbour_mix(torch.from_numpy(X), torch.from_numpy(A))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    # Fewer than four rows: the ranks stop at the last one instead of failing.
    assert neighbour_mix(torch.ones(3, 2), torch.eye(3)).shape == (3, 2)


def test_joint_propagation_is_the_block_graph():
    """models.py:93-98: S_cma = [[A, I], [I, A]] times the stacked image and text nodes."""
    rng = np.random.default_rng(2)
    A, U = rng.random((5, 5)), rng.standard_normal((10, 7))
    S_cma = np.block([[A, np.eye(5)], [np.eye(5), A]])
    got = joint_propagation(torch.from_numpy(A), torch.from_numpy(U))
    np.testing.assert_allclose(got.numpy(), S_cma @ U, atol=1e-12)


def test_losses_match_direct_computations():
    rng = np.random.default_rng(3)
    b, k, d1, d2 = 5, 8, 4, 3
    HI, HT, H0 = (rng.standard_normal((b, k)) for _ in range(3))
    H = np.tanh(H0)
    DeI, XI = rng.standard_normal((b, d1)), rng.standard_normal((b, d1))
    DeT, XT = rng.standard_normal((b, d2)), rng.standard_normal((b, d2))
    A = rng.random((b, b))
    lam1, lam2 = 10.0, 0.5
    expected = (lam1 * (_mse(DeI, XI) + _mse(DeT, XT))
                + lam2 * sum(_mse(A, _cos(M)) for M in (HI, HT, H)) + _mse(H, np.sign(H)))
    t = torch.from_numpy
    total, parts = cirh_graph_loss(t(HI), t(HT), t(H), t(DeI), t(DeT), t(XI), t(XT), t(A),
                                   reconstruction_weight=lam1, similarity_weight=lam2)
    assert float(total) == pytest.approx(expected, rel=1e-12)
    assert set(parts) == {"reconstruction", "similarity", "quantization"}

    hI, hT = np.tanh(rng.standard_normal((b, k))), np.tanh(rng.standard_normal((b, k)))
    B = np.sign(rng.standard_normal((b, k)))
    cross = (_cos(np.vstack([hI, hT]))[:b, b:])
    expected = (_mse(hI, B) + _mse(hT, B) + _mse(hI, hT)
                + 0.01 * (_mse(cross, A) + _mse(_cos(hI), A) + _mse(_cos(hT), A)))
    got = cirh_hash_loss(t(hI), t(hT), t(B), t(A), beta=0.01)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_stage_two_targets_are_indexed_by_row_ids(monkeypatch):
    """The official stage 2 slices S by batch position (my_opt.py:120-121); the fix takes
    S[rows][:, rows] of the shuffled rows, as stage 1 does."""
    n, b, k = 12, 4, 8
    S = torch.arange(n * n, dtype=torch.float64).reshape(n, n)
    order = torch.from_numpy(np.random.default_rng(4).permutation(n))
    batches = [(torch.rand(b, 5, dtype=torch.float64), torch.rand(b, 3, dtype=torch.float64),
                order[i:i + b], torch.ones(b, k, dtype=torch.float64)) for i in range(0, n, b)]
    seen = []

    def spy(h_image, h_text, B, S_b, *, beta):
        seen.append(S_b.clone())
        return cirh_hash_loss(h_image, h_text, B, S_b, beta=beta)

    monkeypatch.setattr(cirh_module, "cirh_hash_loss", spy)
    nets = [torch.nn.Linear(5, k).double(), torch.nn.Linear(3, k).double()]
    optimizer = torch.optim.Adam([p for net in nets for p in net.parameters()], lr=1e-3)
    before = [p.clone() for net in nets for p in net.parameters()]
    run_updates(hash_network_updates(*nets, batches, S, beta=0.01), {"hash": optimizer}, {},
                name="CIRH")
    assert all(not torch.equal(p, q) for p, q in
               zip(before, [p for net in nets for p in net.parameters()])), "every net updated"
    assert len(seen) == len(batches)
    for (_, _, rows, _), S_b, kk in zip(batches, seen, range(len(batches))):
        torch.testing.assert_close(S_b, S[rows][:, rows])
        assert not torch.equal(S_b, S[kk * b:(kk + 1) * b, kk * b:(kk + 1) * b])  # the bug's


def test_two_stages_train_and_only_hash_nets_encode(data, cross_modal_maps, random_floor,
                                                     monkeypatch, tmp_path):
    train, _ = data.part("train")
    n = len(train["image"])
    recorded = []
    original = cirh_module.hash_network_updates

    def spy(image_net, text_net, batches, S, *, beta):
        recorded.append([(rows.clone(), B.clone()) for _, _, rows, B in batches])
        return (yield from original(image_net, text_net, batches, S, beta=beta))

    monkeypatch.setattr(cirh_module, "hash_network_updates", spy)
    h = CIRH(n_bits=16, **SMALL).fit(train)
    # Stage 2 of every epoch gets one stage-1 code per training row, in stage 1's batches.
    assert len(recorded) == SMALL["n_epochs"]
    for epoch in recorded:
        rows = torch.cat([r for r, _ in epoch]).numpy()
        assert sorted(rows.tolist()) == list(range(n))
        assert all(set(torch.unique(B).tolist()) <= {-1.0, 1.0} for _, B in epoch)
    assert not np.array_equal(torch.cat([r for r, _ in recorded[0]]).numpy(), np.arange(n))
    history = h.history_
    for key in ("loss", "stage2_loss", "stage1_seconds", "stage2_seconds"):
        assert all(key in r for r in history), key
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["stage2_loss"] < history[0]["stage2_loss"]
    # Only the stage-2 hash networks are kept and saved: no graph-model tensor in the file.
    h.save(tmp_path / "cirh.npz")
    keys = [key for key in np.load(tmp_path / "cirh.npz").files if "torch__" in key]
    assert keys and all(key.startswith("state__torch__encoders.") for key in keys), keys
    assert not any("graph" in key for key in keys)
    maps, rp = cross_modal_maps(h, data), random_floor(data)
    assert min(maps) > max(rp) + 0.05, (maps, rp)


def test_held_out_selection_and_determinism(data):
    train, _ = data.part("train")
    params = {**SMALL, "n_epochs": 3, "validation_fraction": 0.2}
    a, b = CIRH(n_bits=8, **params).fit(train), CIRH(n_bits=8, **params).fit(train)
    assert all("val_loss" in r for r in a.history_) and len(a.history_) == 3
    for m, X in train.items():
        np.testing.assert_array_equal(a.encode(X, m), b.encode(X, m))


def test_refuses_bad_parameters(data, assert_refused):
    train, _ = data.part("train")
    for bad in ({"image_weight": 1.2}, {"cosine_weight": -0.1}, {"n_neighbors": 0},
                {"mix_own": -1}, {"reconstruction_weight": float("inf")},
                {"hash_similarity_weight": -0.01}, {"graph_width": 0}, {"text_width": 0},
                {"dropout": 1.0}, {"init_std": 0.0}, {"graph_learning_rate": 0.0},
                {"max_samples": 0}):
        assert_refused(CIRH, train, **bad)


def test_refuses_sizes_before_building(data):
    train, _ = data.part("train")
    with pytest.raises(InvalidInputError, match=r"max_samples=100.*GiB"):
        CIRH(n_bits=8, max_samples=100, n_neighbors=20).fit(train)
    n = len(next(iter(train.values())))
    with pytest.raises(InvalidInputError, match=f"n_neighbors={n + 1} must be between"):
        CIRH(n_bits=8, n_neighbors=n + 1, max_samples=n).fit(train)


def test_default_neighbours_are_the_codes_share_of_any_training_set():
    from mmhash_baselines.deep._graph import neighbours_for

    assert neighbours_for(5000, None) == 2000  # the official code's k at its n
    assert [neighbours_for(n, None) for n in (2173, 480)] == [869, 192]
    assert neighbours_for(480, 50) == 50
