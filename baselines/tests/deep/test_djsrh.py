"""DJSRH: the joint-semantics target and the loss against direct numpy computations, the
networks, the alpha schedule, the parameter groups, training, refusals and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep.djsrh import DJSRH, djsrh_loss, joint_semantics  # noqa: E402

from mmhash.deep import ScaledTanh, TrainingState  # noqa: E402
from mmhash.errors import InvalidInputError  # noqa: E402

FAST = dict(n_bits=16, text_width=64, n_epochs=6, batch_size=32, learning_rate=0.05,
            text_learning_rate=0.05, n_threads=1, device="cpu", random_state=0)


def _scos(X):
    """2 cos - 1 of the rows of X, by loops."""
    n = len(X)
    S = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            S[i, j] = 2 * X[i] @ X[j] / (np.linalg.norm(X[i]) * np.linalg.norm(X[j])) - 1
    return S


def _mse(A, B):
    return float(np.mean((A - B) ** 2))


def test_joint_semantics_is_the_codes_formula():
    rng = np.random.default_rng(0)
    Xi, Xt = rng.random((5, 7)), rng.random((5, 3))  # non-negative, like fc7 / bag of words
    beta, eta, mu, m = 0.3, 0.4, 1.5, 5
    St = beta * _scos(Xi) + (1 - beta) * _scos(Xt)
    second = np.array([[sum(St[i, k] * St[j, k] for k in range(m)) for j in range(m)]
                       for i in range(m)]) / m
    expected = mu * ((1 - eta) * St + eta * second)
    got = joint_semantics(torch.from_numpy(Xi), torch.from_numpy(Xt), beta=beta, eta=eta,
                          mu=mu).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, got.T, atol=1e-12)
    assert np.all(np.diag(got) > 1)  # mu = 1.5 scales the unit diagonal too, as the code


def test_loss_is_lambda1_ii_plus_it_plus_lambda2_tt():
    rng = np.random.default_rng(1)
    Xi, Xt = rng.random((5, 6)), rng.random((5, 4))
    h = DJSRH(n_bits=8, text_width=16, beta=0.6, lambda1=0.3, lambda2=0.2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = h._build_model([6, 4]).double()
    batch = [torch.from_numpy(Xi), torch.from_numpy(Xt)]
    loss, parts = djsrh_loss(net, batch, beta=0.6, eta=0.4, mu=1.5, lambda1=0.3, lambda2=0.2)
    with torch.no_grad():
        Zi, Zt = (E(X).numpy() for E, X in zip(net.encoders, batch))
    Bi = Zi / np.linalg.norm(Zi, axis=1, keepdims=True)
    Bt = Zt / np.linalg.norm(Zt, axis=1, keepdims=True)
    St = 0.6 * _scos(Xi) + 0.4 * _scos(Xt)
    S = 1.5 * (0.6 * St + 0.4 * St @ St.T / 5)
    ii, it, tt = _mse(Bi @ Bi.T, S), _mse(Bi @ Bt.T, S), _mse(Bt @ Bt.T, S)
    assert parts == pytest.approx({"ii": ii, "it": it, "tt": tt}, rel=1e-10)
    assert float(loss.detach()) == pytest.approx(0.3 * ii + it + 0.2 * tt, rel=1e-10)
    loss.backward()  # gradients reach both nets, none flows into the target
    assert all(p.grad is not None for p in net.parameters())


def test_networks_alpha_schedule_and_learning_rates():
    h = DJSRH(n_bits=16, text_width=32, learning_rate=0.001, text_learning_rate=0.01)
    net = h._build_model([12, 5])
    image, text = net.encoders
    # The official fc_encode on the features, and TxtNet d -> width -> ReLU -> k.
    assert [type(m).__name__ for m in image] == ["Linear", "ScaledTanh"]
    assert (image[0].in_features, image[0].out_features) == (12, 16)
    assert [type(m).__name__ for m in text] == ["Linear", "ReLU", "Linear", "ScaledTanh"]
    assert (text[0].in_features, text[0].out_features, text[2].out_features) == (5, 32, 16)
    wide = DJSRH(n_bits=16, image_width=20)._build_model([12, 5]).encoders[0]
    assert [type(m).__name__ for m in wide] == ["Linear", "ReLU", "Linear", "ScaledTanh"]
    # alpha = sqrt(epoch + 1) for the code's 0-based epochs = sqrt(epoch) from 1.
    state = TrainingState(net, [], np.arange(0), np.arange(0), 0, torch.device("cpu"))
    for epoch in (1, 4, 80):
        state.epoch = epoch
        h._begin_epoch(state)
        assert all(m.alpha == pytest.approx(math.sqrt(epoch))
                   for m in net.modules() if isinstance(m, ScaledTanh))
    (part,) = h._parts(state).values()
    groups = part.parameters
    optimizer = part.build({"optimizer": "sgd", "learning_rate": 0.001, "momentum": 0.9,
                            "weight_decay": 5e-4})
    assert [g["lr"] for g in optimizer.param_groups] == [0.001, 0.01]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in image.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in text.parameters()}


def test_defaults_are_the_codes_mirflickr_setting():
    h = DJSRH()
    assert (h.n_bits, h.beta, h.eta, h.mu, h.lambda1, h.lambda2) == (64, 0.9, 0.4, 1.5, 0.1, 0.1)
    assert (h.n_epochs, h.batch_size, h.optimizer, h.learning_rate, h.text_learning_rate,
            h.momentum, h.weight_decay) == (80, 32, "sgd", 0.001, 0.01, 0.9, 5e-4)
    assert (h.image_width, h.text_width, h.normalize_inputs, h.device) == (0, 4096, False, "auto")


def test_loss_decreases_and_beats_random_projection(data, cross_modal_maps, random_floor):
    train, _ = data.part("train")
    h = DJSRH(**FAST).fit(train)
    losses = [r["loss"] for r in h.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    got, rp = cross_modal_maps(h, data), random_floor(data)
    assert min(got) > max(rp) + 0.05, (got, rp)


def test_deterministic_under_random_state(data):
    train, _ = data.part("train")
    a = DJSRH(**{**FAST, "n_epochs": 2}).fit(train)
    b = DJSRH(**{**FAST, "n_epochs": 2}).fit(train)
    c = DJSRH(**{**FAST, "n_epochs": 2, "random_state": 1}).fit(train)
    X = train["text"]
    np.testing.assert_array_equal(a.encode(X, "text"), b.encode(X, "text"))
    assert not np.array_equal(a.encode(X, "text"), c.encode(X, "text"))


def test_held_out_epoch_selection(data):
    train, _ = data.part("train")
    h = DJSRH(**{**FAST, "n_epochs": 3, "validation_fraction": 0.2}).fit(train)
    assert all("val_loss" in r for r in h.history_)
    best = min(h.history_, key=lambda r: r["val_loss"])["epoch"]
    assert h.best_epoch_ == best


def test_bad_parameters_are_refused(data, assert_refused):
    train, _ = data.part("train")
    for bad in ({"beta": 1.5}, {"eta": -0.1}, {"mu": 0}, {"lambda1": -1}, {"lambda2": "x"},
                {"image_width": -1}, {"text_width": 0}, {"text_learning_rate": 0},
                {"normalize_inputs": "yes"}, {"batch_size": 1}):
        assert_refused(DJSRH, train, **bad)


def test_three_views_are_refused(data):
    train, _ = data.part("train")
    three = {**train, "tags": train["text"][:, :5]}
    with pytest.raises(InvalidInputError):
        DJSRH(**FAST).fit(three)
