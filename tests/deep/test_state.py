"""The per-fit training state, declared parts and yielded updates of mmhash.deep."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mmhash.deep import (  # noqa: E402
    DeepHasher,
    Diverged,
    Part,
    TrainingState,
    frozen,
    run_updates,
)


class _TwoPart(DeepHasher):
    """A tiny GAN-shaped hasher: encoders and a critic, each its own part (tests only)."""

    name = "two-part-test"

    def __init__(self, *, n_bits=8, n_epochs=2, batch_size=16, optimizer="sgd",
                 learning_rate=0.01, momentum=0.0, weight_decay=0.0, validation_fraction=0.0,
                 n_threads=1, device="cpu", random_state=0):
        self.n_bits, self.n_epochs, self.batch_size = n_bits, n_epochs, batch_size
        self.optimizer, self.learning_rate, self.momentum = optimizer, learning_rate, momentum
        self.weight_decay, self.validation_fraction = weight_decay, validation_fraction
        self.n_threads, self.device, self.random_state = n_threads, device, random_state

    def _build_model(self, dims):
        model = nn.Module()
        model.encoders = nn.ModuleList(nn.Linear(d, self.n_bits) for d in dims)
        model.critic = nn.Linear(self.n_bits, 1)
        return model

    def _begin_training(self, state):
        state.seen = []  # training-only: must not outlive the fit
        state.steps_per_epoch = 0

    def _parts(self, state):
        return {"encoders": Part(state.model.encoders.parameters()),
                "critic": Part(state.model.critic.parameters(), learning_rate=0.5)}

    def _loss(self, state, batch):
        h = [E(X) for E, X in zip(state.model.encoders, batch)]
        return ((h[0] - h[1]) ** 2).mean(), {}

    def _updates(self, state, batch):
        h = [torch.tanh(E(X)) for E, X in zip(state.model.encoders, batch)]
        critic_loss = state.model.critic(h[0].detach()).mean()
        yield critic_loss, "critic"
        with frozen(state.model.critic):
            state.seen.append(all(not p.requires_grad for p in state.model.critic.parameters()))
            loss = ((h[0] - h[1]) ** 2).mean() - state.model.critic(h[0]).mean()
            yield loss, "encoders"
        state.steps_per_epoch += 1
        return float(loss.detach()), {"critic": float(critic_loss.detach())}

    def _epoch_updates(self, state):
        state.epochs_seen = getattr(state, "epochs_seen", 0) + 1
        return {"steps": state.steps_per_epoch}
        yield  # no updates


def _views(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.standard_normal((n, 6)), "text": rng.standard_normal((n, 5))}


def test_parts_get_their_own_optimisers_and_updates_run_in_order():
    h = _TwoPart().fit(_views())
    # The step's report is the generator's return value; epoch updates add to the record.
    assert [r["steps"] for r in h.history_] == [4, 8]  # 64 rows / 16 per batch, accumulated
    assert all(np.isfinite(r["loss"]) for r in h.history_)
    # Nothing of the fit's state is left on the hasher.
    assert not [k for k, v in vars(h).items()
                if isinstance(v, (torch.Tensor, torch.optim.Optimizer, TrainingState))]


def test_part_settings_default_to_the_hasher_and_override_per_part():
    model = _TwoPart()._build_model([6, 5])
    defaults = {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9,
                "weight_decay": 1e-4}
    critic = Part(model.critic.parameters(), learning_rate=0.5).build(defaults)
    assert isinstance(critic, torch.optim.SGD)
    assert critic.param_groups[0]["lr"] == 0.5
    assert critic.param_groups[0]["momentum"] == 0.9
    assert critic.param_groups[0]["weight_decay"] == 1e-4
    adam = Part(model.critic.parameters(), optimizer="adam").build(defaults)
    assert isinstance(adam, torch.optim.Adam)
    custom = Part(model.critic.parameters(),
                  optimizer=lambda p: torch.optim.Adam(p, lr=0.3, betas=(0.5, 0.9)))
    assert custom.build(defaults).param_groups[0]["betas"] == (0.5, 0.9)


def _state():
    model = _TwoPart()._build_model([3, 3])
    state = TrainingState(model, [], np.arange(4), np.arange(0), 0, torch.device("cpu"))
    state.optimizers = {"encoders": torch.optim.SGD(model.encoders.parameters(), lr=0.1),
                        "critic": torch.optim.SGD(model.critic.parameters(), lr=0.1)}
    return state


def test_each_update_is_made_before_the_generator_goes_on():
    state = _state()
    weight = state.model.critic.weight
    observed = []

    def updates():
        before = weight.detach().clone()
        yield state.model.critic(torch.ones(2, 8)).sum(), "critic"
        observed.append(not torch.equal(before, weight.detach()))
        return 7.0, {"x": 1.0}

    with torch.no_grad():
        expected = float(state.model.critic(torch.ones(2, 8)).sum())
    first, report = run_updates(updates(), state.optimizers, {}, name="T")
    assert observed == [True], "the critic must be stepped before the generator resumes"
    assert first == pytest.approx(expected), "first: the first update's loss, before its step"
    assert report == (7.0, {"x": 1.0})


def test_an_undeclared_part_is_the_methods_bug_named_in_one_line():
    state = _state()

    def updates():
        yield state.model.critic(torch.ones(1, 8)).sum(), "decoder"

    with pytest.raises(ValueError, match="undeclared part 'decoder'; declared: encoders, critic"):
        run_updates(updates(), state.optimizers, {}, name="T")


def test_a_diverged_update_names_the_part_and_unwinds_the_generator():
    state = _state()
    critic = state.model.critic

    def updates():
        with frozen(critic):
            yield torch.tensor(float("nan"), requires_grad=True), "encoders"

    with pytest.raises(Diverged, match="T encoders training diverged"):
        run_updates(updates(), state.optimizers, {}, name="T")
    assert all(p.requires_grad for p in critic.parameters()), "frozen() must be undone"


def test_clipping_is_declared_per_part():
    state = _state()
    encoder = state.model.encoders[0]

    def updates():
        yield 1e6 * encoder(torch.ones(1, 3)).sum(), "encoders"

    before = encoder.weight.detach().clone()
    run_updates(updates(), state.optimizers, {"encoders": 1.0}, name="T")
    # lr 0.1 times a gradient of global norm <= 1 (the part's parameters clipped together)
    assert float((encoder.weight.detach() - before).norm()) <= 0.1 + 1e-6


def test_the_default_step_refuses_several_parts_without_updates():
    class NoUpdates(_TwoPart):
        name = "no-updates-test"
        _updates = DeepHasher._updates

    with pytest.raises(ValueError, match="declares several parts; its _updates must say"):
        NoUpdates().fit(_views())
