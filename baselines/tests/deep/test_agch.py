"""AGCH (reconstruction): the aggregated similarity, the batch graph and the loss against direct
numpy computations, the alternating updates, out-of-sample encoding, training, refusals and
determinism."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep.agch import (  # noqa: E402
    AGCH,
    AGCHNet,
    agch_loss,
    agch_updates,
    aggregated_similarity,
    normalized_adjacency,
)

from mmhash.deep import make_optimizer, run_updates  # noqa: E402

SMALL = {"image_width": 64, "text_width": 64, "gcn_width1": 64, "gcn_width2": 32,
         "n_epochs": 8, "batch_size": 64, "learning_rate": 3e-3, "n_threads": 1,
         "device": "cpu"}
WEIGHTS = {"alpha": 0.4, "delta": 0.7, "fusion_weight": 5.0, "intra_weight": 0.3}


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_similarity_is_cosine_times_euclidean_kernel():
    rng = np.random.default_rng(0)
    Xi, Xt = rng.random((5, 7)), rng.random((5, 3))  # non-negative, like fc7 / bag of words
    gi, gt, rho = 1.0, 0.8, 4.0
    S0 = np.empty((5, 5))
    for i in range(5):
        for j in range(5):
            zi = np.concatenate([gi * _unit(Xi)[i], gt * _unit(Xt)[i]])
            zj = np.concatenate([gi * _unit(Xi)[j], gt * _unit(Xt)[j]])
            zi, zj = zi / np.linalg.norm(zi), zj / np.linalg.norm(zj)
            S0[i, j] = (zi @ zj) * np.exp(-np.sqrt(np.linalg.norm(zi - zj)) / rho)
    got0, got = aggregated_similarity(torch.from_numpy(Xi), torch.from_numpy(Xt),
                                      gamma_image=gi, gamma_text=gt, rho=rho)
    np.testing.assert_allclose(got0.numpy(), S0, atol=1e-7)
    np.testing.assert_allclose(got.numpy(), 2 * S0 - 1, atol=1e-7)
    np.testing.assert_allclose(np.diag(got.numpy()), 1.0, atol=1e-7)
    # The cosine is that of the gamma-weighted concatenation: gamma_v^2, gamma_t^2 shares.
    C = (gi**2 * _unit(Xi) @ _unit(Xi).T + gt**2 * _unit(Xt) @ _unit(Xt).T) / (gi**2 + gt**2)
    np.testing.assert_allclose(got0.numpy() <= C + 1e-12, True)


def test_similarity_of_an_all_zero_row_is_zero():
    rng = np.random.default_rng(1)
    Xi, Xt = rng.random((4, 6)), rng.random((4, 3))
    Xi[2], Xt[2] = 0.0, 0.0
    S0, S = aggregated_similarity(torch.from_numpy(Xi), torch.from_numpy(Xt), gamma_image=1.0,
                                  gamma_text=1.0, rho=4.0)
    assert torch.isfinite(S).all()
    np.testing.assert_allclose(S0.numpy()[2], 0.0, atol=1e-12)


def test_adjacency_is_symmetric_normalised_positive_part():
    rng = np.random.default_rng(2)
    S = rng.uniform(-1, 1, (5, 5))
    S = (S + S.T) / 2
    A = np.maximum(S, 0.0)
    np.fill_diagonal(A, 1.0)
    d = A.sum(axis=1)
    expected = np.array([[A[i, j] / np.sqrt(d[i] * d[j]) for j in range(5)] for i in range(5)])
    got = normalized_adjacency(torch.from_numpy(S)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def _cos(A, B):
    return _unit(A) @ _unit(B).T


def test_loss_matches_a_direct_computation():
    rng = np.random.default_rng(3)
    codes = {k: np.tanh(rng.standard_normal((5, 8))) for k in ("v", "t", "h", "gv", "gt")}
    S = rng.uniform(-1, 1, (5, 5))

    def mse_s(a, b):
        return np.mean([[(_cos(codes[a], codes[b])[i, j] - S[i, j]) ** 2 for j in range(5)]
                        for i in range(5)])

    def gap(a, b):
        return np.mean((codes[a] - codes[b]) ** 2)

    beta = WEIGHTS["intra_weight"]
    L1 = mse_s("v", "t") + mse_s("h", "h") + beta * (mse_s("v", "v") + mse_s("t", "t"))
    L2 = (mse_s("gv", "gt") + beta * (mse_s("gv", "gv") + mse_s("gt", "gt"))
          + gap("v", "gv") + gap("t", "gt"))
    L3 = gap("h", "v") + gap("h", "t")
    total, parts = agch_loss({k: torch.from_numpy(v) for k, v in codes.items()},
                             torch.from_numpy(S), **WEIGHTS)
    assert parts == pytest.approx({"reconstruction": L1, "gcn": L2, "fusion": L3}, rel=1e-12)
    expected = WEIGHTS["alpha"] * L1 + WEIGHTS["delta"] * L2 + WEIGHTS["fusion_weight"] * L3
    assert float(total) == pytest.approx(expected, rel=1e-12)


def _net(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AGCHNet([6, 4], 8, image_width=16, text_width=12, gcn_widths=(10, 6)).double()


def _batch(seed=4, m=7):
    rng = np.random.default_rng(seed)
    X = [torch.from_numpy(rng.random((m, 6))), torch.from_numpy(rng.random((m, 4)))]
    S0, S = aggregated_similarity(*X, gamma_image=1.0, gamma_text=0.8, rho=4.0)
    return X, S0, S


def test_graph_convolution_and_fusion_forward():
    net = _net()
    X, _, S = _batch()
    A_hat = normalized_adjacency(S)
    with torch.no_grad():
        codes = net(X, A_hat)
        f = [enc[:-1](x) for enc, x in zip(net.encoders, X)]
        branch = net.gcn[0]
        H = torch.relu(A_hat @ (f[0] @ branch.gc1.linear.weight.T + branch.gc1.linear.bias))
        H = torch.relu(A_hat @ (H @ branch.gc2.linear.weight.T + branch.gc2.linear.bias))
        gv = torch.tanh(H @ branch.fc.weight.T + branch.fc.bias)
        h = torch.tanh(torch.cat(f, dim=1) @ net.fusion.weight.T + net.fusion.bias)
    torch.testing.assert_close(codes["gv"], gv)
    torch.testing.assert_close(codes["h"], h)
    torch.testing.assert_close(codes["v"], torch.tanh(f[0]))
    torch.testing.assert_close(codes["v"], net.encoders[0](X[0]))  # the kept encoder alone


def _grads(loss, params):
    return torch.autograd.grad(loss, list(params), allow_unused=True)


def test_alternating_step_updates_each_part_with_the_whole_losss_gradient():
    X, _, S = _batch()
    ours, ref = _net(), _net()
    sgd = {"learning_rate": 0.1}
    optimizers = {p: make_optimizer("sgd", getattr(ours, p).parameters(), **sgd)
                  for p in ("encoders", "fusion", "gcn")}
    loss, (reported, parts) = run_updates(agch_updates(ours, X, S, **WEIGHTS), optimizers, {},
                                          name="AGCH")
    assert reported == loss and set(parts) == {"reconstruction", "gcn", "fusion"}
    # Replay: each part takes one SGD step along the gradient of the WHOLE loss, at the point
    # reached after the previous parts' steps; the other parts stay fixed.
    A_hat = normalized_adjacency(S)
    for part in ("encoders", "fusion", "gcn"):
        params = list(getattr(ref, part).parameters())
        loss, _ = agch_loss(ref(X, A_hat), S, **WEIGHTS)
        with torch.no_grad():
            for p, g in zip(params, _grads(loss, params)):
                p -= 0.1 * g
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12, msg=name)


def test_encoders_standardise_with_the_fit_rows(data):
    train, _ = data.part("train")
    h = AGCH(n_bits=8, **{**SMALL, "n_epochs": 1}).fit(train)
    for encoder, X in zip(h._encoders, train.values()):
        np.testing.assert_allclose(encoder[0].shift.numpy(), X.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(encoder[0].scale.numpy(), X.std(axis=0), rtol=1e-6)
    raw = AGCH(n_bits=8, standardize=False, **{**SMALL, "n_epochs": 1}).fit(train)
    assert not raw._encoders[0][0].shift.any() and (raw._encoders[0][0].scale == 1).all()


def test_trains_and_beats_random_projection(data, cross_modal_maps, random_floor):
    train, _ = data.part("train")
    h = AGCH(n_bits=16, **SMALL).fit(train)
    losses = [r["loss"] for r in h.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    maps, rp = cross_modal_maps(h, data), random_floor(data)
    assert min(maps) > max(rp) + 0.05, (maps, rp)
    # Out of sample: one item alone gets the code it gets inside a batch.
    query, _ = data.part("query")
    for m, X in query.items():
        np.testing.assert_array_equal(h.encode(X[3:4], m), h.encode(X, m)[3:4])


def test_held_out_loss_and_determinism(data, training_state_left):
    train, _ = data.part("train")
    params = {**SMALL, "n_epochs": 3, "validation_fraction": 0.2}
    a, b = AGCH(n_bits=8, **params).fit(train), AGCH(n_bits=8, **params).fit(train)
    assert all("val_loss" in r for r in a.history_)
    # the kept epoch is the first with the lowest held-out loss (ties: the earlier)
    assert a.best_epoch_ == 1 + int(np.argmin([r["val_loss"] for r in a.history_]))
    for m, X in train.items():
        np.testing.assert_array_equal(a.encode(X, m), b.encode(X, m))
    # training state (the similarity's column scales, the optimisers) is not kept on the hasher
    assert not training_state_left(a), training_state_left(a)


def test_refuses_bad_parameters(data, assert_refused):
    train, _ = data.part("train")
    for bad in ({"gamma_image": -1.0}, {"gamma_text": float("nan")}, {"rho": 0.0},
                {"alpha": -0.1}, {"delta": -1}, {"fusion_weight": -1.0},
                {"intra_weight": float("inf")}, {"image_width": 0}, {"text_width": 1.5},
                {"gcn_width1": 0}, {"gcn_width2": -3}, {"standardize": "yes"},
                {"batch_size": 1}):
        assert_refused(AGCH, train, **bad)
    with pytest.raises(Exception, match="gamma_image and gamma_text"):
        AGCH(n_bits=8, gamma_image=0.0, gamma_text=0.0).fit(train)
