"""DBRC: the adaptive tanh, the standardisation and the loss against direct numpy computations,
the codes of one modality alone, the slopes' optimiser group and projection, training, refusals,
determinism, M views."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep.dbrc import (  # noqa: E402
    ALPHA_FLOOR,
    DBRC,
    ATanh,
    Standardize,
    dbrc_loss,
)

from mmhash.deep import TrainingState, run_updates  # noqa: E402

FAST = dict(n_bits=16, hidden_width=32, n_epochs=15, batch_size=32, learning_rate=3e-3,
            n_threads=1, device="cpu", random_state=0)


def _mlp_np(seq, X):
    """A flat Linear/ReLU nn.Sequential applied with numpy (float64)."""
    for layer in seq:
        if isinstance(layer, torch.nn.Linear):
            X = X @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
        else:
            X = np.maximum(X, 0.0)
    return X


def _state(net, arrays, fit_rows=None):
    """A fit's TrainingState by hand: every row trained on, on the CPU, seed 0."""
    rows = np.arange(len(arrays[0])) if fit_rows is None else np.asarray(fit_rows)
    return TrainingState(net, arrays, rows, np.empty(0, dtype=np.int64), 0, torch.device("cpu"))


def _small_net(h, dims, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return h._build_model(dims).double()


def test_atanh_and_its_penalty():
    layer = ATanh(3, alpha_init=1.0).double()
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.5, 2.0, 4.0]))
    z = np.array([[0.3, -1.0, 0.05], [-2.0, 0.1, -0.4]])
    got = layer(torch.from_numpy(z)).detach().numpy()
    expected = np.array([[np.tanh(a * v) for a, v in zip([0.5, 2.0, 4.0], row)] for row in z])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert float(layer.penalty().detach()) == pytest.approx((4.0 + 0.25 + 0.0625) / 3, rel=1e-12)
    # The penalty's gradient raises every slope: d/d alpha (1 / alpha^2) = -2 / alpha^3 < 0.
    layer.penalty().backward()
    np.testing.assert_allclose(layer.alpha.grad.numpy(),
                               -2 / np.array([0.5, 2.0, 4.0]) ** 3 / 3, rtol=1e-12)


def test_standardize_uses_fit_statistics_and_keeps_constant_columns():
    X = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]])
    layer = Standardize(3).double()
    with torch.no_grad():
        layer.fit(X)
    got = layer(torch.from_numpy(X)).numpy()
    std = X.std(axis=0)
    expected = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.all(got[:, 1] == 0.0)  # the constant column stays constant, no division by 0
    # standardize=False: the hasher never fits the layers, which stay the identity.
    h = DBRC(**{**FAST, "n_epochs": 1}, standardize=False)
    net = h._build_model([3, 3])
    h._begin_training(_state(net, [X, X]))
    for encoder in net.encoders:
        np.testing.assert_array_equal(encoder[0].double()(torch.from_numpy(X)).numpy(), X)
    # standardize=True: the fit rows' statistics only (held-out rows stay unseen).
    net = DBRC(**{**FAST, "n_epochs": 1})._build_model([3, 3])
    DBRC(**{**FAST, "n_epochs": 1})._begin_training(_state(net, [X, X], fit_rows=[0, 2]))
    fit = X[[0, 2]]
    std = fit.std(axis=0)
    for encoder in net.encoders:
        np.testing.assert_allclose(encoder[0].double()(torch.from_numpy(X)).numpy(),
                                   (X - fit.mean(axis=0)) / np.where(std > 0, std, 1.0),
                                   rtol=1e-6, atol=1e-6)


def test_loss_is_joint_plus_single_modality_reconstructions_plus_penalty():
    rng = np.random.default_rng(1)
    Xi, Xt = rng.random((5, 6)), rng.random((5, 4))
    h = DBRC(n_bits=8, hidden_width=7)
    net = _small_net(h, [6, 4])
    with torch.no_grad():
        for encoder, X in zip(net.encoders, (Xi, Xt)):
            encoder[0].fit(X)
        net.hash_layer.alpha.copy_(torch.linspace(0.5, 3.0, 8, dtype=torch.float64))
    alpha = net.hash_layer.alpha.detach().numpy()
    loss, parts = dbrc_loss(net, [torch.from_numpy(Xi), torch.from_numpy(Xt)],
                            unimodal_weight=0.7, alpha_penalty=0.3)
    # The same by hand: standardise, encode, average, adaptive tanh, decode, per-entry MSE.
    S = [(X - X.mean(0)) / X.std(0) for X in (Xi, Xt)]
    a = [_mlp_np(enc[1], s) for enc, s in zip(net.encoders, S)]

    def rec(z):
        b = np.tanh(alpha * z)
        return sum(np.mean((_mlp_np(dec, b) - s) ** 2) for dec, s in zip(net.decoders, S))

    joint, single0, single1 = rec((a[0] + a[1]) / 2), rec(a[0]), rec(a[1])
    penalty = np.mean(1 / alpha ** 2)
    assert parts["joint"] == pytest.approx(joint, rel=1e-10)
    assert parts["single0"] == pytest.approx(single0, rel=1e-10)
    assert parts["single1"] == pytest.approx(single1, rel=1e-10)
    assert parts["penalty"] == pytest.approx(penalty, rel=1e-10)
    assert float(loss.detach()) == pytest.approx(
        joint + 0.7 * (single0 + single1) + 0.3 * penalty, rel=1e-10)
    loss.backward()  # every encoder, decoder and the slopes get a gradient
    assert all(p.grad is not None for p in net.parameters())
    # Without the single-modality terms only the pair's code is reconstructed.
    _, joint_only = dbrc_loss(net, [torch.from_numpy(Xi), torch.from_numpy(Xt)],
                              unimodal_weight=0.0, alpha_penalty=0.3)
    assert "single0" not in joint_only and joint_only["joint"] == pytest.approx(joint)


def test_architecture_groups_and_projection():
    h = DBRC(n_bits=16, hidden_width=20, learning_rate=1e-3, alpha_learning_rate=0.1,
             weight_decay=1e-4)
    net = h._build_model([12, 5])
    image = net.encoders[0]
    assert type(image[0]).__name__ == "Standardize"
    assert [type(m).__name__ for m in image[1]] == ["Linear", "ReLU", "Linear"]
    assert (image[1][0].in_features, image[1][0].out_features, image[1][2].out_features) == (
        12, 20, 16)
    assert [(d[0].in_features, d[2].out_features) for d in net.decoders] == [(16, 12), (16, 5)]
    linear = DBRC(n_bits=16, hidden_width=0)._build_model([12, 5])
    assert [type(m).__name__ for m in linear.encoders[1][1]] == ["Linear"]
    # One part, one optimiser, two parameter groups: the slopes at their own rate, no decay.
    state = _state(net, [np.zeros((6, 12)), np.zeros((6, 5))])
    parts = h._parts(state)
    assert list(parts) == ["model"]
    part = parts["model"]
    assert (part.optimizer, part.learning_rate, part.weight_decay, part.clip_norm) == (
        None, None, None, 0.0)  # the hasher's settings
    groups = part.parameters
    assert len(groups) == 2
    assert groups[1]["params"] == [net.hash_layer.alpha]
    assert groups[1]["lr"] == 0.1 and groups[1]["weight_decay"] == 0.0
    others = {id(p) for p in groups[0]["params"]}
    assert others == {id(p) for p in net.parameters()} - {id(net.hash_layer.alpha)}
    optimizer = part.build({"optimizer": "sgd", "learning_rate": 1e-3, "momentum": 0.0,
                            "weight_decay": 1e-4})
    assert [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [
        (1e-3, 1e-4), (0.1, 0.0)]
    # The step is one update on the loss, then the projection of the slopes back to
    # alpha >= ALPHA_FLOOR (the codes are sign(z) only for a positive slope).
    state.optimizers = {"model": optimizer}
    with torch.no_grad():
        net.hash_layer.alpha.fill_(-1.0)
    batch = [torch.randn(6, 12), torch.randn(6, 5)]
    before = [p.detach().clone() for p in groups[0]["params"]]
    first, (loss, report) = run_updates(h._updates(state, batch), state.optimizers, {},
                                        name="DBRC")
    assert loss == first and report["alpha"] == pytest.approx(-1.0)  # the loss before the step
    assert any(not torch.equal(b, p) for b, p in zip(before, groups[0]["params"]))
    assert torch.all(net.hash_layer.alpha == torch.tensor(ALPHA_FLOOR))  # float32 floor


def test_loss_decreases_and_beats_random_projection(data, cross_modal_maps, random_floor,
                                                     training_state_left):
    train, _ = data.part("train")
    h = DBRC(**FAST).fit(train)
    losses = [r["loss"] for r in h.history_]
    assert losses[-1] < 0.7 * losses[0], losses
    got, rp = cross_modal_maps(h, data), random_floor(data)
    assert min(got) > max(rp) + 0.05, (got, rp)
    # Only the encoders are kept; a modality's code is the sign of its contribution.
    X = train["image"][:7]
    with torch.no_grad():
        a = h._encoders[0](torch.from_numpy(X.astype(np.float32))).numpy()
    np.testing.assert_array_equal(h.encode(X, "image"), np.where(a >= 0, 1, -1)
                                  .astype(h.encode(X, "image").dtype))
    # Training-only state does not outlive fit.
    assert not training_state_left(h), training_state_left(h)


def test_deterministic_under_random_state(data):
    train, _ = data.part("train")
    a = DBRC(**{**FAST, "n_epochs": 2}).fit(train)
    b = DBRC(**{**FAST, "n_epochs": 2}).fit(train)
    c = DBRC(**{**FAST, "n_epochs": 2, "random_state": 1}).fit(train)
    X = train["text"]
    np.testing.assert_array_equal(a.encode(X, "text"), b.encode(X, "text"))
    assert not np.array_equal(a.encode(X, "text"), c.encode(X, "text"))


def test_held_out_epoch_selection_and_three_views(data):
    train, _ = data.part("train")
    h = DBRC(**{**FAST, "n_epochs": 3, "validation_fraction": 0.2}).fit(train)
    best = min(h.history_, key=lambda r: r["val_loss"])["epoch"]
    assert h.best_epoch_ == best
    three = {**train, "tags": train["text"][:, :5]}
    t = DBRC(**{**FAST, "n_epochs": 2}).fit(three)
    assert t.encode(three["tags"], "tags").shape == (len(three["tags"]), 16)


def test_bad_parameters_are_refused(data, assert_refused):
    train, _ = data.part("train")
    for bad in ({"hidden_width": -1}, {"alpha_init": 0}, {"alpha_penalty": -1},
                {"alpha_learning_rate": 0}, {"unimodal_weight": "x"}, {"standardize": "yes"},
                {"batch_size": 1}, {"learning_rate": 0}):
        assert_refused(DBRC, train, **bad)
