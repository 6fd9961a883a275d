"""UCCH: bank logits, contrastive and ranking losses against direct loops, bank update, training,
refusals, held-out selection, learning-rate schedule."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep._contrastive import derived_seed  # noqa: E402
from mmhash_baselines.deep.ucch import (  # noqa: E402
    UCCH,
    bank_logits,
    in_batch_contrastive_loss,
    init_bank,
    memory_contrastive_loss,
    ranking_loss,
    sample_negatives,
    update_bank,
)

from mmhash.deep import TrainingState  # noqa: E402

FAST = {"image_width": 64, "text_width": 64, "n_negatives": 256, "batch_size": 64,
        "learning_rate": 1e-3, "n_threads": 1, "device": "cpu"}


def _unit(rng, n, k):
    X = rng.standard_normal((n, k))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _t(X):
    return torch.from_numpy(np.asarray(X, dtype=np.float64))


def _log_softmax_first(logits):
    """-log softmax(row)[0], row by row."""
    return np.array([np.log(np.exp(row).sum()) - row[0] for row in logits])


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    return {"hx": _unit(rng, 5, 8), "hy": _unit(rng, 5, 8), "bank": _unit(rng, 9, 8),
            "idx": rng.integers(0, 9, size=(5, 7))}


def test_bank_logits_equal_a_loop_over_the_sampled_keys(tiny):
    h, bank, idx, T = tiny["hx"], tiny["bank"], tiny["idx"], 0.9
    expected = np.empty(idx.shape)
    for i in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            expected[i, j] = np.sign(bank[idx[i, j]]) @ h[i] / (T * np.sqrt(8))
    for mode in ("full", "gather", "auto"):
        got = bank_logits(_t(h), _t(bank), torch.from_numpy(idx), T, mode=mode).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_memory_contrastive_loss_is_the_mean_cross_entropy_of_the_positive(tiny):
    hx, hy, bank, idx, T = tiny["hx"], tiny["hy"], tiny["bank"], tiny["idx"], 0.9
    expected = 0.0
    for h in (hx, hy):
        logits = np.array([[np.sign(bank[j]) @ h[i] / (T * np.sqrt(8)) for j in idx[i]]
                           for i in range(5)])
        expected += _log_softmax_first(logits).mean()
    got = memory_contrastive_loss(_t(hx), _t(hy), _t(bank), torch.from_numpy(idx), T)
    assert float(got) == pytest.approx(expected, abs=1e-12)


def test_in_batch_loss_equals_the_codes_reordered_keys(tiny):
    # NCEAverage.py:46-50: row i's keys are [own, the others in order], all sign((hx + hy)/2).
    hx, hy, T = tiny["hx"], tiny["hy"], 0.9
    keys = np.sign((hx + hy) / 2)
    expected = 0.0
    for h in (hx, hy):
        logits = np.array([[keys[j] @ h[i] / (T * np.sqrt(8))
                            for j in [i] + [j for j in range(5) if j != i]] for i in range(5)])
        expected += _log_softmax_first(logits).mean()
    assert float(in_batch_contrastive_loss(_t(hx), _t(hy), T)) == pytest.approx(expected,
                                                                                 abs=1e-12)


@pytest.mark.parametrize(("margin", "shift", "kappa"), [(0.2, 0.1, 1.0), (0.5, 1.0, 0.5),
                                                         (0.0, 2.0, 1.0)])
def test_ranking_loss_equals_the_shifted_log_sum_exp_loop(tiny, margin, shift, kappa):
    hx, hy = tiny["hx"], tiny["hy"]
    M = hx @ hy.T
    i2t = t2i = 0.0
    for i in range(5):
        row = [M[i, j] if M[i, j] >= M[i, i] - margin else M[i, j] - shift for j in range(5)]
        i2t += margin + kappa * np.log(sum(np.exp(s / kappa) for s in row)) - row[i]
        col = [M[j, i] if M[j, i] >= M[i, i] - margin else M[j, i] - shift for j in range(5)]
        t2i += margin + kappa * np.log(sum(np.exp(s / kappa) for s in col)) - col[i]
    expected = i2t / 5 + t2i / 5
    got = ranking_loss(_t(hx), _t(hy), margin, shift, kappa)
    assert float(got) == pytest.approx(expected, abs=1e-12)
    # Some pairs really were shifted (the test exercises both branches).
    assert shift == 0 or np.any(M < M.diagonal()[:, None] - margin)


def test_ranking_mask_carries_no_gradient(tiny):
    hx, hy = _t(tiny["hx"]).requires_grad_(True), _t(tiny["hy"])
    ranking_loss(hx, hy, 0.2, 0.5).backward()
    # The same loss with the masks frozen by hand: the shift is a constant where applied.
    M = hx.detach() @ hy.T
    d = M.diagonal()
    keep_r, keep_c = M >= d[:, None] - 0.2, M >= d[None, :] - 0.2
    hx2 = _t(tiny["hx"]).requires_grad_(True)
    M2 = hx2 @ hy.T
    Sr, Sc = torch.where(keep_r, M2, M2 - 0.5), torch.where(keep_c, M2, M2 - 0.5)
    loss = ((torch.logsumexp(Sr, 1) - Sr.diagonal()).mean()
            + (torch.logsumexp(Sc, 0) - Sc.diagonal()).mean())
    loss.backward()
    np.testing.assert_allclose(hx.grad.numpy(), hx2.grad.numpy(), atol=1e-12)


def test_bank_update_is_the_renormalised_momentum_average(tiny):
    bank = _t(tiny["bank"]).clone()
    rows = torch.tensor([4, 0, 7, 2, 8])
    hx, hy, delta = tiny["hx"], tiny["hy"], 0.4
    expected = tiny["bank"].copy()
    for b, r in enumerate(rows.tolist()):
        u = (hx[b] + hy[b]) / 2
        u /= np.linalg.norm(u)
        v = delta * expected[r] + (1 - delta) * u
        expected[r] = v / np.linalg.norm(v)
    update_bank(bank, rows, _t(hx), _t(hy), delta)
    np.testing.assert_allclose(bank.numpy(), expected, atol=1e-12)
    update_bank(bank, rows, _t(hx), _t(hy), 0.0)  # warm-up: overwritten
    u = (hx + hy) / 2
    np.testing.assert_allclose(bank.numpy()[rows.numpy()],
                               u / np.linalg.norm(u, axis=1, keepdims=True), atol=1e-12)


def test_sampling_and_initial_bank_are_seeded():
    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        return (init_bank(50, 16, g),
                sample_negatives(torch.tensor([3, 7]), torch.arange(10, 40), 100, g))

    (bank, idx), (bank2, idx2) = draw(1), draw(1)
    assert torch.equal(bank, bank2) and torch.equal(idx, idx2)
    assert not torch.equal(idx, draw(2)[1])
    assert idx.shape == (2, 101) and idx[:, 0].tolist() == [3, 7]
    assert idx[:, 1:].min() >= 10 and idx[:, 1:].max() < 40
    np.testing.assert_allclose(bank.abs().numpy(), 0.25)  # +-1/sqrt(16): unit binary rows
    # The code's draw sign(2 s g - s) is +1 with probability P(g > 1/2) = 0.31.
    assert 0.2 < float((bank > 0).float().mean()) < 0.4


def test_random_streams_are_independent_and_repeatable():
    # the clipped update UCCH uses is mmhash.deep.update (tested in tests/deep/test_training.py)
    assert derived_seed(0, 1) != derived_seed(0, 2) and derived_seed(0, 1) == derived_seed(0, 1)


@pytest.fixture(scope="module")
def fitted(data):
    views, _ = data.part("train")
    return UCCH(n_bits=16, n_epochs=10, **FAST).fit(views)


def test_training_loss_decreases_after_the_warm_up(fitted):
    losses = [r["loss"] for r in fitted.history_]
    # Epoch 1 scores against 63 in-batch keys, later epochs against 256 bank keys: compare
    # from epoch 2 on.
    assert losses[-1] < losses[1] - 0.1, losses
    assert all(r["seconds"] > 0 for r in fitted.history_)


def test_cross_modal_retrieval_beats_random_projection(data, fitted, cross_modal_maps,
                                                       random_floor):
    ucch, rp = cross_modal_maps(fitted, data), random_floor(data)
    assert min(ucch) > max(rp) + 0.05, (ucch, rp)


def test_without_warm_up_the_bank_is_used_from_the_start(data):
    views, _ = data.part("train")
    h = UCCH(n_bits=16, n_epochs=3, warmup_epochs=0, **FAST).fit(views)
    losses = [r["loss"] for r in h.history_]
    assert losses[2] < losses[0], losses


def test_held_out_selection_and_determinism(data, training_state_left):
    views, _ = data.part("train")
    a = UCCH(n_bits=16, n_epochs=3, validation_fraction=0.2, **FAST).fit(views)
    b = UCCH(n_bits=16, n_epochs=3, validation_fraction=0.2, **FAST).fit(views)
    assert all("val_loss" in r for r in a.history_)
    best = min(a.history_, key=lambda r: r["val_loss"])["epoch"]
    assert a.best_epoch_ == best
    for m in ("image", "text"):
        assert np.array_equal(a.encode(views[m], m), b.encode(views[m], m))
    # training state (bank, sampling stream, optimiser) is not kept on the hasher
    assert not hasattr(a, "_bank") and not training_state_left(a), training_state_left(a)


def test_learning_rate_follows_the_codes_multistep_schedule():
    h = UCCH(learning_rate=1e-4, lr_step=30, lr_gamma=0.1)
    w = torch.nn.Parameter(torch.zeros(1))
    state = TrainingState(torch.nn.Linear(1, 1), [np.zeros((4, 1))] * 2, np.arange(4),
                          np.empty(0, dtype=np.int64), 0, torch.device("cpu"))
    # one part over every parameter, clipped on every step (clip_norm, code only)
    parts = h._parts(state)
    assert list(parts) == ["model"] and parts["model"].clip_norm == 1.0
    state.optimizers = {"model": torch.optim.Adam([w], lr=1e-4)}
    # MultiStepLR.step(e) after 0-based epoch e: decayed once e >= 30, i.e. after epoch 31.
    for epoch, lr in [(30, 1e-4), (31, 1e-5), (61, 1e-6)]:
        state.epoch = epoch
        h._end_epoch(state)
        assert state.optimizers["model"].param_groups[0]["lr"] == pytest.approx(lr)


@pytest.mark.parametrize("bad", [
    {"alpha": 1.5}, {"margin": -0.1}, {"shift": -1}, {"kappa": 0}, {"temperature": 0},
    {"n_negatives": 0}, {"bank_momentum": 1.0}, {"warmup_epochs": -1}, {"image_width": 0},
    {"image_layers": 0}, {"text_layers": 0}, {"clip_norm": -1}, {"lr_step": 0},
    {"lr_gamma": 0}, {"validation_fraction": 1.0}, {"n_epochs": 0},
])
def test_refuses_bad_parameters(data, assert_refused, bad):
    views, _ = data.part("train")
    assert_refused(UCCH, views, **bad)


def test_one_layer_heads_and_default_widths_build():
    h = UCCH(n_bits=16, image_layers=1, text_layers=1)
    net = h._build_model([30, 20])
    assert [m.out_features for m in net.encoders[0] if isinstance(m, torch.nn.Linear)] == [16]
    default = UCCH(n_bits=16)._build_model([30, 20])
    widths = [[m.out_features for m in e if isinstance(m, torch.nn.Linear)]
              for e in default.encoders]
    assert widths == [[8192, 8192, 16], [8192, 16]]  # nets/ImageNet.py, TextNet.py
