"""DGCPN: the global similarity and the loss against loops replaying the official code, the
three updates per batch, training, refusals, determinism."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep.dgcpn import (  # noqa: E402
    DGCPN,
    DGCPNNet,
    dgcpn_loss,
    dgcpn_similarity,
)

from mmhash.deep import TrainingState, run_updates  # noqa: E402
from mmhash.errors import InvalidInputError  # noqa: E402

SMALL = {"n_neighbors": 20, "scale": 40.0, "image_width": 64, "text_width": 64,
         "n_epochs": 6, "batch_size": 64, "learning_rate": 0.02, "n_threads": 1}


def _code_similarity(X_image, X_text, a1, a2, knn_number, scale):
    """train_div.py:78-103 with numpy and loops: zero the knn_number smallest entries of each
    row and then its largest, divide by the row sum, S = 2[(1-a2) S_pair + a2 scale P P^T] - 1."""
    def cos(X):
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        return Xn @ Xn.T

    S_pair = a1 * cos(X_text) + (1 - a1) * cos(X_image)
    n = len(S_pair)
    P = S_pair.copy()
    for i in range(n):
        order = np.argsort(P[i])
        P[i, order[:knn_number]] = 0.0
        P[i, order[-1]] = 0.0
        P[i] /= P[i].sum()
    G = np.array([[sum(P[i, m] * P[j, m] for m in range(n)) for j in range(n)]
                  for i in range(n)])
    return 2 * ((1 - a2) * S_pair + a2 * scale * G) - 1


def test_similarity_matches_the_official_construction():
    rng = np.random.default_rng(0)
    X_image, X_text = rng.random((6, 5)), rng.random((6, 4))  # non-negative, like VGG and BoW
    knn_number = 2  # the code's knob: n - knn_number = 4 = the paper's k
    expected = _code_similarity(X_image, X_text, 0.3, 0.4, knn_number, 5.0)
    got = dgcpn_similarity(torch.from_numpy(X_image), torch.from_numpy(X_text), text_weight=0.3,
                           neighbourhood_weight=0.4, n_neighbors=6 - knn_number, scale=5.0)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(got.numpy(), got.numpy().T, atol=1e-12)


def test_default_neighbour_count_is_the_codes_effective_value():
    # train.py:55-61: knn_number = 5000 - k on MIRFlickr; the code's default knn_number is 3000.
    from mmhash_baselines.deep._graph import neighbours_for

    assert DGCPN().n_neighbors is None and neighbours_for(5000, None) == 5000 - 3000
    assert DGCPN.patience == 11  # train.py:24-25: stop when num_epoch > 10


def test_loss_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    b, k = 5, 8
    cI, cT = rng.standard_normal((b, k)), rng.standard_normal((b, k))
    S = rng.uniform(-1, 1.5, (b, b))
    K, dw, cw = 1.5, 0.7, 1.3
    BI = cI / np.linalg.norm(cI, axis=1, keepdims=True)
    BT = cT / np.linalg.norm(cT, axis=1, keepdims=True)
    II, TT, IT = BI @ BI.T, BT @ BT.T, BI @ BT.T
    pair = np.mean([(IT[i, i] - K) ** 2 for i in range(b)])
    masked = sum(np.mean([[(0.0 if i == j else M[i, j] - S[i, j]) ** 2 for j in range(b)]
                          for i in range(b)]) for M in (TT, IT, II))
    cons = (np.mean((IT - II) ** 2) + np.mean((IT - TT) ** 2) + np.mean((II - TT) ** 2)
            + np.mean((IT - IT.T) ** 2))
    total, parts = dgcpn_loss(torch.from_numpy(cI), torch.from_numpy(cT), torch.from_numpy(S),
                              pair_target=K, similarity_weight=dw, consistency_weight=cw)
    assert float(total) == pytest.approx(pair + dw * masked + cw * cons, rel=1e-12)
    assert parts == pytest.approx({"pair": pair, "similarity": masked, "consistency": cons})


def _nets(seed=0):
    with torch.random.fork_rng(devices=[]):  # the same start for both, the caller's RNG intact
        torch.manual_seed(seed)
        return DGCPNNet([6, 4], 8, image_width=16, text_width=16, dropout=0.0,
                        text_init_std=0.3).double()


def test_step_is_the_codes_three_updates():
    """The declared step -- three (loss, part) updates of one SGD over both nets -- equals the
    code's two optimisers (train_div.py:149-172)."""
    rng = np.random.default_rng(2)
    X_I, X_T = torch.from_numpy(rng.random((7, 6))), torch.from_numpy(rng.random((7, 4)))
    S = torch.from_numpy(rng.uniform(-1, 1, (7, 7)))
    sgd = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}

    ours = _nets()
    image_net, text_net = ours.encoders
    stepped = []
    optimizer = torch.optim.SGD(ours.parameters(), **sgd)
    original_step = optimizer.step

    def recording_step():
        stepped.append((any(p.grad is not None for p in image_net.parameters()),
                        any(p.grad is not None for p in text_net.parameters())))
        return original_step()

    optimizer.step = recording_step
    state = TrainingState(ours, [], np.arange(7), np.arange(0), 0, torch.device("cpu"))
    state.S, state.optimizers = S, {"model": optimizer}
    batch = [X_I, X_T, torch.arange(7)]  # pair_block(S, all rows in order) is S itself
    for _ in range(2):  # twice: momentum buffers matter from the second batch on
        run_updates(DGCPN()._updates(state, batch), state.optimizers, {}, name="DGCPN")
    assert stepped == [(True, True), (True, False), (False, True)] * 2

    ref = _nets()
    ref_image, ref_text = ref.encoders
    opt_I = torch.optim.SGD(ref_image.parameters(), **sgd)
    opt_T = torch.optim.SGD(ref_text.parameters(), **sgd)
    for _ in range(2):
        loss, _ = dgcpn_loss(ref_image(X_I), ref_text(X_T), S)
        opt_I.zero_grad()
        opt_T.zero_grad()
        loss.backward(retain_graph=True)
        opt_I.step()
        opt_T.step()
        code_I, code_T = ref_image(X_I), ref_text(X_T)
        loss_i, _ = dgcpn_loss(code_I, code_T.sign().detach(), S)
        opt_I.zero_grad()
        loss_i.backward(retain_graph=True)
        opt_I.step()
        loss_t, _ = dgcpn_loss(code_I.sign().detach(), code_T, S)
        opt_T.zero_grad()
        loss_t.backward()
        opt_T.step()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12, msg=name)


def test_text_net_last_layer_initialisation():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = DGCPNNet([30, 20], 64, image_width=4096, text_width=4096, dropout=0.5,
                       text_init_std=0.3)
    image_last, text_last = (net.encoders[m][-2].weight.detach() for m in (0, 1))
    assert float(text_last.std()) == pytest.approx(0.3, rel=0.02)  # models.py:44
    assert float(image_last.std()) < 0.02  # PyTorch's default: U(+-1/sqrt(4096))


def test_trains_and_beats_random_projection(data, cross_modal_maps, random_floor):
    train, _ = data.part("train")
    h = DGCPN(n_bits=16, **SMALL).fit(train)
    losses = [r["loss"] for r in h.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    maps, rp = cross_modal_maps(h, data), random_floor(data)
    assert min(maps) > max(rp) + 0.05, (maps, rp)


def test_held_out_loss_and_determinism(data):
    train, _ = data.part("train")
    params = {**SMALL, "n_epochs": 3, "validation_fraction": 0.2}
    a, b = DGCPN(n_bits=8, **params).fit(train), DGCPN(n_bits=8, **params).fit(train)
    assert all("val_loss" in r for r in a.history_)
    # the kept epoch is the first with the lowest held-out loss (ties: the earlier)
    assert a.best_epoch_ == 1 + int(np.argmin([r["val_loss"] for r in a.history_]))
    for m, X in train.items():
        np.testing.assert_array_equal(a.encode(X, m), b.encode(X, m))


def test_refuses_bad_parameters(data, assert_refused):
    train, _ = data.part("train")
    for bad in ({"text_weight": 1.5}, {"neighbourhood_weight": -0.1}, {"n_neighbors": 1},
                {"scale": -1.0}, {"pair_target": float("nan")}, {"dropout": 1.0},
                {"text_init_std": 0.0}, {"image_width": 0}, {"max_samples": 0},
                {"similarity_weight": -1}):
        assert_refused(DGCPN, train, **bad)


def test_refuses_sizes_before_building(data):
    train, _ = data.part("train")
    with pytest.raises(InvalidInputError, match=r"max_samples=100.*GiB"):
        DGCPN(n_bits=8, max_samples=100, n_neighbors=20).fit(train)
    n = len(next(iter(train.values())))
    with pytest.raises(InvalidInputError, match=f"n_neighbors={n + 1} must be between"):
        DGCPN(n_bits=8, n_neighbors=n + 1, max_samples=n).fit(train)


def test_default_neighbours_are_the_codes_share_of_any_training_set():
    from mmhash_baselines.deep._graph import neighbours_for

    assert neighbours_for(5000, None) == 2000  # the official code's k at its n
    assert [neighbours_for(n, None) for n in (2173, 480)] == [869, 192]
    assert neighbours_for(480, 50) == 50
