"""The shared PyTorch machinery: seeding, threads, batching, the loop, state without pickle."""

from __future__ import annotations

import contextlib
import logging
import re
import resource

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mmhash.deep.training as training  # noqa: E402
from mmhash.deep.training import (  # noqa: E402
    arrays_to_module,
    check_seed,
    holdout_split,
    iter_batches,
    make_optimizer,
    module_to_arrays,
    resolve_device,
    reused_memory,
    torch_session,
    train_loop,
    update,
)
from mmhash.errors import DataError, InvalidInputError, UnknownNameError  # noqa: E402


def test_session_seeds_forked_rng_and_restores_global_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with torch_session(7, n_threads=1):
        a = torch.rand(4)
    after = torch.rand(3)
    assert torch.equal(after, expected), "the session changed the caller's torch RNG stream"
    with torch_session(7, n_threads=1):
        b = torch.rand(4)
    with torch_session(8, n_threads=1):
        c = torch.rand(4)
    assert torch.equal(a, b), "same seed, different numbers"
    assert not torch.equal(a, c), "different seeds, same numbers"


def test_session_sets_and_restores_thread_count():
    before = torch.get_num_threads()
    with torch_session(0, n_threads=1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(InvalidInputError, match="n_threads"):
        with torch_session(0, n_threads=0):
            pass
    with pytest.raises(InvalidInputError, match="random_state"):
        with torch_session(-1):
            pass


def test_device_names_are_checked_against_this_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("gpu", "", 3, None):
        with pytest.raises(InvalidInputError, match="device"):
            resolve_device(bad)
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(InvalidInputError, match=f"has {cuda_count} usable CUDA"):
        resolve_device(f"cuda:{cuda_count}")


@pytest.mark.parametrize("name", ["ujsah", "umha"])
def test_deep_hashers_refuse_a_missing_accelerator_before_training(name):
    from mmhash.data.synthetic import make_synthetic
    from mmhash.registry import get_hasher

    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    hasher = get_hasher(name, n_bits=8, device=f"cuda:{cuda_count}")
    views = make_synthetic(n=60, random_state=0).part("train")[0]
    with pytest.raises(InvalidInputError, match="usable CUDA device"):
        hasher.fit(views)


def test_batches_cover_every_row_once_and_merge_a_single_leftover():
    rng = np.random.default_rng(0)
    batches = iter_batches(65, 32, rng)
    assert [len(b) for b in batches] == [32, 33], "a 1-row batch must be merged"
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(65))
    again = iter_batches(65, 32, np.random.default_rng(0))
    assert all(np.array_equal(x, y) for x, y in zip(batches, again)), "shuffle not seeded"
    fixed = iter_batches(10, 4, None)
    assert np.array_equal(np.concatenate(fixed), np.arange(10)), "rng=None must keep order"


def test_holdout_split_is_seeded_disjoint_and_validated():
    fit, val = holdout_split(100, 0.2, np.random.default_rng(3))
    assert len(val) == 20 and len(fit) == 80
    assert not np.intersect1d(fit, val).size
    assert np.array_equal(np.sort(np.concatenate([fit, val])), np.arange(100))
    fit2, val2 = holdout_split(100, 0.2, np.random.default_rng(3))
    assert np.array_equal(val, val2)
    fit0, val0 = holdout_split(10, 0.0, np.random.default_rng(0))
    assert len(val0) == 0 and np.array_equal(fit0, np.arange(10))
    for bad in (1.0, -0.1, "0.2", True):
        with pytest.raises(InvalidInputError, match="validation_fraction"):
            holdout_split(100, bad, np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="leaves 1 of 5 rows"):
        holdout_split(5, 0.8, np.random.default_rng(0))


@pytest.mark.parametrize(("fraction", "twin"), [
    (np.float64(0.2), 0.2), (np.float32(0.25), 0.25), (np.int64(0), 0),
])
def test_holdout_split_takes_numpy_fractions_like_python_ones(fraction, twin):
    fit, val = holdout_split(100, fraction, np.random.default_rng(3))
    fit2, val2 = holdout_split(100, twin, np.random.default_rng(3))
    assert np.array_equal(fit, fit2) and np.array_equal(val, val2)


# {!r} is the value given: numpy's repr of its scalars changed in numpy 2.
@pytest.mark.parametrize(("fraction", "message"), [
    (np.float64(1.0), "validation_fraction must be a finite number < 1, got {!r}"),
    (np.nan, "validation_fraction must be a finite number >= 0, got {!r}"),
    (np.bool_(False), "validation_fraction must be a finite number >= 0, got {!r}"),
])
def test_holdout_split_names_the_broken_bound(fraction, message):
    with pytest.raises(InvalidInputError, match=re.escape(message.format(fraction))):
        holdout_split(100, fraction, np.random.default_rng(0))


def test_seed_takes_numpy_integers_and_nothing_else():
    assert check_seed(np.int64(3)) == 3 and type(check_seed(np.int64(3))) is int
    for bad in (np.float64(3.0), True, -1, None):
        with pytest.raises(InvalidInputError, match="random_state must be an integer >= 0"):
            check_seed(bad)


def test_make_optimizer_by_name():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer("sgd", params, learning_rate=0.1, momentum=0.9),
                      torch.optim.SGD)
    assert isinstance(make_optimizer("adam", params, learning_rate=0.1), torch.optim.Adam)
    with pytest.raises(UnknownNameError, match="adam, sgd"):
        make_optimizer("rmsprop", params, learning_rate=0.1)


class _Scalar(torch.nn.Module):
    """One parameter w; loss = mean((w - x)^2) over a batch of scalars x."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def loss(self, batch):
        value = ((self.w - batch[0][:, 0]) ** 2).mean()
        return value, {"mse": float(value.detach())}


def test_loop_reports_progress_logs_and_lowers_the_loss(caplog):
    model = _Scalar()
    data = [torch.full((20, 1), 3.0)]
    calls = []
    opt = make_optimizer("sgd", model.parameters(), learning_rate=0.05)
    with caplog.at_level(logging.INFO, logger="mmhash.deep.training"):
        result = train_loop(model, model.loss, data, opt, n_epochs=4, batch_size=8,
                            rng=np.random.default_rng(0),
                            progress=lambda e, n, m: calls.append((e, n, dict(m))), name="toy")
    assert [(e, n) for e, n, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(set(m) == {"loss"} for _, _, m in calls)
    losses = [m["loss"] for _, _, m in calls]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] / 2
    assert [r["loss"] for r in result.history] == losses
    assert result.best_epoch == 4, "without held-out rows the last epoch is kept"
    assert sum("toy epoch" in r.getMessage() for r in caplog.records) == 4


def test_loop_keeps_the_epoch_with_the_lowest_held_out_loss():
    # Training pulls w from 0 towards 5; the held-out rows sit at 1, so the held-out loss falls,
    # then rises once w passes 1: the loop must hand back w from the best epoch, not the last.
    model = _Scalar()
    seen = []
    opt = make_optimizer("sgd", model.parameters(), learning_rate=0.005)
    result = train_loop(model, model.loss, [torch.full((16, 1), 5.0)], opt, n_epochs=12,
                        batch_size=4, rng=np.random.default_rng(0),
                        validation=[torch.full((6, 1), 1.0)],
                        progress=lambda e, n, m: seen.append(model.w.item()))
    val = [r["val_loss"] for r in result.history]
    best = int(np.argmin(val)) + 1
    assert 1 < best < 12, f"the held-out minimum should be inside the run, got epoch {best}"
    assert result.best_epoch == best
    assert model.w.item() == pytest.approx(seen[best - 1]), "parameters of the best epoch"
    assert model.w.item() != pytest.approx(seen[-1])


def test_loop_stops_early_after_patience_epochs_without_a_better_held_out_loss():
    model = _Scalar()
    opt = make_optimizer("sgd", model.parameters(), learning_rate=0.005)
    result = train_loop(model, model.loss, [torch.full((16, 1), 5.0)], opt, n_epochs=40,
                        batch_size=4, rng=np.random.default_rng(0),
                        validation=[torch.full((6, 1), 1.0)], patience=3)
    assert len(result.history) == result.best_epoch + 3 < 40


def test_loop_takes_a_whole_step_and_epoch_hooks():
    """Methods with several updates per batch hand the loop a step; hooks frame each epoch."""
    model = _Scalar()
    opt = make_optimizer("sgd", model.parameters(), learning_rate=0.1)
    events = []

    def step(batch):
        for _ in range(2):  # two updates per batch
            loss, parts = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        events.append("step")
        return float(loss.detach()), parts

    train_loop(model, model.loss, [torch.full((8, 1), 2.0)], None, n_epochs=2, batch_size=4,
               rng=np.random.default_rng(0), step=step,
               on_epoch_start=lambda e: events.append(f"start {e}"),
               on_epoch_end=lambda e: events.append(f"end {e}"))
    assert events == ["start 1", "step", "step", "end 1", "start 2", "step", "step", "end 2"]
    with pytest.raises(ValueError, match="optimizer or a step"):
        train_loop(model, model.loss, [torch.ones(4, 1)], None, n_epochs=1, batch_size=2,
                   rng=np.random.default_rng(0))


def test_update_clips_the_global_gradient_norm_and_refuses_divergence():
    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([w], lr=1.0)
    update((w * torch.tensor([30.0, 40.0, 0.0])).sum(), opt, parameters=[w], clip_norm=1.0)
    np.testing.assert_allclose(w.detach().numpy(), [-0.6, -0.8, 0.0], atol=1e-6)
    update((w * torch.tensor([3.0, 4.0, 0.0])).sum(), opt, clip_norm=1.0)  # the optimiser's
    np.testing.assert_allclose(w.detach().numpy(), [-1.2, -1.6, 0.0], atol=1e-6)
    with pytest.raises(InvalidInputError, match="m training diverged"):
        update(w.sum() * float("nan"), opt, name="m")


def test_optimizer_takes_parameter_groups_with_their_own_rates():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    opt = make_optimizer("sgd", [{"params": a.parameters(), "lr": 0.01},
                                 {"params": b.parameters()}], learning_rate=0.5, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.5]
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)


def test_loop_stops_with_a_clear_error_when_the_loss_diverges():
    model = _Scalar()
    data = [torch.full((8, 1), float("nan"))]
    opt = make_optimizer("sgd", model.parameters(), learning_rate=0.1)
    with pytest.raises(InvalidInputError, match="diverged at epoch 1.*learning_rate"):
        train_loop(model, model.loss, data, opt, n_epochs=2, batch_size=4,
                   rng=np.random.default_rng(0))


def test_module_state_round_trips_through_numpy_arrays():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    arrays = module_to_arrays(net, "p__")
    assert set(arrays) == {"p__0.weight", "p__0.bias", "p__2.weight", "p__2.bias"}
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    with torch.device("meta"):
        fresh = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    arrays_to_module(fresh, arrays, "p__")
    x = torch.randn(6, 5)
    assert torch.equal(fresh(x), net(x))
    with pytest.raises(DataError, match="missing"):
        arrays_to_module(fresh, {k: v for k, v in arrays.items() if "2.bias" not in k}, "p__")
    bad = dict(arrays, **{"p__0.bias": np.zeros(7, dtype=np.float32)})
    with pytest.raises(DataError, match="shape"):
        arrays_to_module(fresh, bad, "p__")


# ---- memory reuse ------------------------------------------------------------------------------
_BIG = 16 * 2**20  # floats: 64 MiB, above glibc's largest mmap threshold (32 MiB)


def _faults_of_a_fresh_big_tensor() -> int:
    """Minor page faults while a 64 MiB tensor is allocated, written and freed."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(_BIG)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(training._glibc() is None, reason="memory reuse acts on glibc only")
def test_memory_freed_inside_reused_memory_is_reused_without_page_faults():
    pages = _BIG * 4 // 4096
    with reused_memory():
        # The heap grows to hold the block (in one or two steps, depending on what the process
        # holds already); from then on the block is reused.
        for _ in range(3):
            _faults_of_a_fresh_big_tensor()
        with reused_memory():  # blocks nest: the inner exit must not restore
            pass
        assert _faults_of_a_fresh_big_tensor() < pages // 10
    assert training._reuse_depth == 0
    # Outside, glibc maps such a block afresh every time (the 4 KiB pages are faulted in again;
    # fewer where the kernel backs it with huge pages).
    _faults_of_a_fresh_big_tensor()
    assert _faults_of_a_fresh_big_tensor() > 0


def test_reused_memory_does_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(training, "_glibc", lambda: None)
    with reused_memory():
        assert training._reuse_depth == 0


def test_memory_reuse_changes_no_trained_parameter(monkeypatch):
    """The loop trains bit for bit alike with and without reused memory, with gradients large
    enough (a 32 MiB and a 64 MiB weight) that glibc would map them afresh every step."""

    def trained():
        with torch_session(5, n_threads=1):
            model = torch.nn.Sequential(torch.nn.Linear(16, 2048), torch.nn.ReLU(),
                                        torch.nn.Linear(2048, 4096), torch.nn.Tanh(),
                                        torch.nn.Linear(4096, 1))
            data = [torch.randn(64, 16), torch.randn(64, 1)]
            opt = make_optimizer("adam", model.parameters(), learning_rate=1e-3,
                                 weight_decay=5e-4)

            def loss(batch):
                value = torch.nn.functional.mse_loss(model(batch[0]), batch[1])
                return value, {}

            train_loop(model, loss, data, opt, n_epochs=2, batch_size=16,
                       rng=np.random.default_rng(0))
            return [p.detach().clone() for p in model.parameters()]

    kept = trained()
    monkeypatch.setattr(training, "reused_memory", contextlib.nullcontext)
    fresh = trained()
    assert all(torch.equal(a, b) for a, b in zip(kept, fresh))
