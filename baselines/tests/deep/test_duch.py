"""DUCH: NT-Xent, gradient penalty, discriminator / adversarial / binarisation terms against direct
loops, the adversarial branch, augmentation, training, refusals, held-out selection."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep.duch import (  # noqa: E402
    DUCH,
    DUCHNet,
    adversarial_loss,
    augment_features,
    bit_balance_loss,
    discriminator_loss,
    duch_objective,
    gradient_penalty,
    nt_xent,
    quantization_loss,
)

from mmhash.deep import TrainingState  # noqa: E402

FAST = {"image_width": 64, "text_width": 64, "batch_size": 64, "learning_rate": 1e-3,
        "n_threads": 1, "device": "cpu"}
WEIGHTS = {"temperature": 1.0, "inter_weight": 1.0, "image_weight": 1.0, "text_weight": 1.0,
           "alpha": 0.01, "beta": 0.001, "gamma": 0.01}


def _t(X):
    return torch.from_numpy(np.asarray(X, dtype=np.float64))


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    return {k: np.tanh(rng.standard_normal((5, 8))) for k in ("v", "v2", "t", "t2", "x")}


@pytest.fixture
def critic():
    """A discriminator in eval mode (fixed batch-norm statistics: rows independent), float64."""
    torch.manual_seed(0)
    net = DUCHNet([3, 3], 8, image_width=4, text_width=4, discriminator_width=16).double()
    bn = net.discriminator[1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _critic_numpy(net, X):
    """D(x) by hand: Linear -> BatchNorm (running statistics) -> ReLU -> Linear."""
    lin1, bn, _, lin2 = net.discriminator
    p = {k: v.detach().numpy() for k, v in [("W1", lin1.weight), ("b1", lin1.bias),
                                             ("g", bn.weight), ("be", bn.bias),
                                             ("m", bn.running_mean), ("var", bn.running_var),
                                             ("W2", lin2.weight), ("b2", lin2.bias)]}
    z = X @ p["W1"].T + p["b1"]
    z = (z - p["m"]) / np.sqrt(p["var"] + bn.eps) * p["g"] + p["be"]
    return (np.maximum(z, 0) @ p["W2"].T + p["b2"])[:, 0]


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_nt_xent_equals_a_loop_over_the_anchors(tiny, tau):
    a, b = tiny["v"], tiny["t"]
    z = np.vstack([a, b])
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(a)
    expected = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        denominator = sum(np.exp(z[i] @ z[j] / tau) for j in range(2 * n) if j != i)
        expected += -np.log(np.exp(z[i] @ z[partner] / tau) / denominator)
    assert float(nt_xent(_t(a), _t(b), tau)) == pytest.approx(expected, abs=1e-10)
    if tau == 1.0:  # the code's form: row sums minus e (contrastive_loss.py:134-148)
        sim = np.exp(z @ z.T)
        neg = sim.sum(axis=1) - math.e
        pos = np.exp(np.sum(z[:n] * z[n:], axis=1))
        code = -np.log(np.concatenate([pos, pos]) / neg).sum()
        assert float(nt_xent(_t(a), _t(b), 1.0)) == pytest.approx(code, abs=1e-10)


def test_gradient_penalty_equals_a_per_row_gradient_loop(tiny, critic):
    real, fake, mix = _t(tiny["t"]), _t(tiny["v"]), _t(np.random.default_rng(1).random((5, 8)))
    expected = 0.0
    for i in range(5):
        x = (mix[i] * real[i] + (1 - mix[i]) * fake[i]).reshape(1, -1).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic.discriminate(x).sum(), x)
        expected += (float(grad.norm()) - 1) ** 2
    got = gradient_penalty(critic, real, fake, mix)
    assert float(got.detach()) == pytest.approx(expected / 5, abs=1e-10)
    # Differentiable in D's parameters (it trains the critic).
    got.backward()
    assert critic.discriminator[0].weight.grad is not None


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    net = DUCHNet([3, 3], 4, image_width=4, text_width=4, discriminator_width=2).double()
    net.discriminator = torch.nn.Sequential(torch.nn.Linear(4, 1)).double()
    w = net.discriminator[0].weight.detach().numpy()[0]
    X = _t(np.ones((3, 4)))
    got = gradient_penalty(net, X, -X, _t(np.full((3, 4), 0.3)))
    assert float(got.detach()) == pytest.approx((np.linalg.norm(w) - 1) ** 2, abs=1e-12)


def test_discriminator_loss_equals_the_log_losses_plus_penalty(tiny, critic):
    real, fake, mix = tiny["t"], tiny["v"], np.random.default_rng(2).random((5, 8))
    sig = lambda s: 1 / (1 + np.exp(-s))  # noqa: E731
    expected = (-np.log(sig(_critic_numpy(critic, real))).mean()
                - np.log(1 - sig(_critic_numpy(critic, fake))).mean()
                + 10 * float(gradient_penalty(critic, _t(real), _t(fake), _t(mix)).detach()))
    got = discriminator_loss(critic, _t(real), _t(fake), _t(mix), 10.0)
    assert float(got.detach()) == pytest.approx(expected, abs=1e-10)


def test_generator_terms_equal_their_sums(tiny, critic):
    critic.requires_grad_(False)  # values only
    sig = lambda s: 1 / (1 + np.exp(-s))  # noqa: E731
    codes = [tiny["v"], tiny["v2"], tiny["t"], tiny["t2"]]
    target = np.sign(tiny["x"])
    adv = sum(-np.log(sig(_critic_numpy(critic, h))).sum() for h in codes[:2])
    assert float(adversarial_loss(critic, [_t(h) for h in codes[:2]])) == pytest.approx(adv)
    quant = sum(((target - h) ** 2).sum() for h in codes)
    assert float(quantization_loss(_t(target), [_t(h) for h in codes])) == pytest.approx(quant)
    balance = sum(sum(h[i].sum() ** 2 for i in range(5)) for h in codes)
    assert float(bit_balance_loss([_t(h) for h in codes])) == pytest.approx(balance)
    total, parts = duch_objective(critic, *[_t(h) for h in codes], _t(target), **WEIGHTS)
    expected = (parts["inter"] + parts["intra_image"] + parts["intra_text"]
                + 0.01 * adv + 0.001 * quant + 0.01 * balance)
    assert float(total) == pytest.approx(expected)
    assert parts["intra_text"] == pytest.approx(float(nt_xent(_t(tiny["t"]), _t(tiny["t2"]))))


def test_adversarial_gradient_reaches_the_image_codes_only(tiny, critic):
    # Bug B2 fixed: the generator term acts on the image codes ("fake"), not the text codes.
    codes = [_t(tiny[k]).requires_grad_(True) for k in ("v", "v2", "t", "t2")]
    weights = {**WEIGHTS, "inter_weight": 0.0, "image_weight": 0.0, "text_weight": 0.0,
               "beta": 0.0, "gamma": 0.0}
    total, _ = duch_objective(critic, *codes, _t(np.sign(tiny["x"])), **weights)
    total.backward()
    assert codes[0].grad.abs().sum() > 0 and codes[1].grad.abs().sum() > 0
    # The text codes enter only terms weighted 0 here: their gradient is exactly zero.
    assert all(c.grad is None or not c.grad.any() for c in codes[2:])


def test_augmentation_is_seeded_and_shaped_by_its_parameters():
    X = torch.ones(2000, 4)
    scale = torch.tensor([1.0, 2.0, 0.0, 1.0])

    def draw(seed, **kw):
        return augment_features(X, scale, generator=torch.Generator().manual_seed(seed), **kw)

    assert torch.equal(draw(0, noise_std=0.0, feature_dropout=0.0), X)
    a = draw(0, noise_std=0.1, feature_dropout=0.25)
    assert torch.equal(a, draw(0, noise_std=0.1, feature_dropout=0.25))
    assert not torch.equal(a, draw(1, noise_std=0.1, feature_dropout=0.25))
    dropped = draw(0, noise_std=0.0, feature_dropout=0.25)
    np.testing.assert_allclose(dropped.unique().numpy(), [0.0, 1 / 0.75])  # inverted dropout
    assert abs(float((dropped == 0).float().mean()) - 0.25) < 0.03
    noisy = draw(0, noise_std=0.1, feature_dropout=0.0) - X
    np.testing.assert_allclose(noisy.std(dim=0).numpy(), [0.1, 0.2, 0.0, 0.1], atol=0.01)


@pytest.fixture(scope="module")
def fitted(data):
    views, _ = data.part("train")
    return DUCH(n_bits=16, n_epochs=8, **FAST).fit(views)


def test_training_loss_decreases(fitted):
    losses = [r["loss"] for r in fitted.history_]
    assert losses[-1] < losses[0] - 1.0, losses


def test_cross_modal_retrieval_beats_random_projection(data, fitted, cross_modal_maps,
                                                       random_floor):
    duch, rp = cross_modal_maps(fitted, data), random_floor(data)
    assert min(duch) > max(rp) + 0.05, (duch, rp)


def test_only_the_hash_networks_are_kept_and_optimised(fitted):
    h = DUCH(n_bits=16, **FAST)
    net = h._build_model([30, 20])
    assert len(net.encoders) == 2
    state = TrainingState(net, [], np.arange(0), np.arange(0), 0, torch.device("cpu"))
    parts = h._parts(state)
    assert list(parts) == ["hash", "discriminator"]
    main = {id(p) for p in parts["hash"].parameters}
    assert main == {id(p) for p in net.encoders.parameters()}
    assert not main & {id(p) for p in net.discriminator.parameters()}
    discriminator = parts["discriminator"].build({})  # its own Adam (controller_DUCH.py:55-58)
    assert isinstance(discriminator, torch.optim.Adam)
    assert discriminator.defaults["lr"] == h.discriminator_learning_rate
    widths = [[m.out_features for m in e if isinstance(m, torch.nn.Linear)]
              for e in DUCH(n_bits=16)._build_model([30, 20]).encoders]
    assert widths == [[4096, 16], [4096, 16]]  # models/DUCH.py:15-28
    assert net.discriminator[0].out_features == 32  # 2 n_bits (models/DUCH.py:31-36)
    # Saved state: the encoders only (discriminator dropped after fit).
    assert all(len(list(e.parameters())) == 6 for e in fitted._encoders)


def test_held_out_selection_and_determinism(data):
    views, _ = data.part("train")
    a = DUCH(n_bits=16, n_epochs=3, validation_fraction=0.2, **FAST).fit(views)
    b = DUCH(n_bits=16, n_epochs=3, validation_fraction=0.2, **FAST).fit(views)
    assert [r["val_loss"] for r in a.history_] == [r["val_loss"] for r in b.history_]
    assert a.best_epoch_ == min(a.history_, key=lambda r: r["val_loss"])["epoch"]
    for m in ("image", "text"):
        assert np.array_equal(a.encode(views[m], m), b.encode(views[m], m))
    c = DUCH(n_bits=16, n_epochs=3, validation_fraction=0.2, **{**FAST, "noise_std": 0.3})
    c.fit(views)
    assert c.history_[0]["loss"] != a.history_[0]["loss"]  # the augmentation is in use


def test_learning_rate_decays_like_the_code():
    h = DUCH(learning_rate=1e-4, lr_decay=0.8, lr_decay_every=50, random_state=0)
    w = torch.nn.Parameter(torch.zeros(1))
    state = TrainingState(None, [], np.arange(2), np.arange(0), 0, torch.device("cpu"),
                          data=[torch.tensor([0, 1])])
    state.optimizers = {"hash": torch.optim.Adam([w], lr=1e-4)}
    state.targets, state.outputs = torch.zeros(2, 1), torch.ones(2, 1)
    state.held_out_generator = torch.Generator()
    # 0-based epochs 0 and 50 (mmhash's 1 and 51) decay; others do not.
    for epoch, lr in [(1, 8e-5), (2, 8e-5), (50, 8e-5), (51, 6.4e-5)]:
        state.epoch = epoch
        h._end_epoch(state)
        assert state.optimizers["hash"].param_groups[0]["lr"] == pytest.approx(lr)
    assert state.targets.tolist() == [[1.0], [1.0]]  # B = sign(mean output)


@pytest.mark.parametrize("bad", [
    {"alpha": -1}, {"beta": -0.1}, {"gamma": -1}, {"inter_weight": -1}, {"temperature": 0},
    {"gp_weight": -1}, {"noise_std": -0.1}, {"feature_dropout": 1.0}, {"image_width": 0},
    {"text_width": 0}, {"discriminator_width": 0}, {"discriminator_learning_rate": 0},
    {"discriminator_weight_decay": -1}, {"lr_decay": 0}, {"lr_decay": 1.5},
    {"lr_decay_every": 0}, {"batch_size": 1},
])
def test_refuses_bad_parameters(data, assert_refused, bad):
    views, _ = data.part("train")
    assert_refused(DUCH, views, **bad)
