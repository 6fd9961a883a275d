"""MGAH: the correlation graph, the generator's distribution, the multi-pathway triplet terms,
reward and policy gradient against direct loops; the two training stages; training, refusals,
held-out selection, determinism."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep.mgah import (  # noqa: E402
    MGAH,
    correlation_graph,
    discriminator_loss,
    generator_log_probs,
    generator_loss,
    nearest_neighbours,
    neighbour_mask,
    pathway_distances,
    rewards,
    sample_candidates,
    sample_positives,
)

from mmhash.deep import TrainingState  # noqa: E402

FAST = {"hidden_width": 64, "n_epochs": 8, "pretrain_epochs": 4, "batch_size": 64,
        "n_threads": 1, "device": "cpu"}


def _t(X, dtype=torch.float64):
    return torch.as_tensor(np.asarray(X), dtype=dtype)


def test_nearest_neighbours_match_a_loop_and_put_the_item_first():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 3))
    X[5] = X[2]  # a duplicate: the item itself must still come first
    got = nearest_neighbours(X, 3, chunk=2)
    for i in range(7):
        d = [float(np.sum((X[i] - X[j]) ** 2)) for j in range(7)]
        others = sorted((j for j in range(7) if j != i), key=lambda j: (d[j], j))
        assert got[i].tolist() == [i] + others[:2]
    assert nearest_neighbours(X, 50).shape == (7, 7)  # k capped at n


def test_correlation_graph_is_the_union_of_the_views_neighbours():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    neighbours, counts = correlation_graph([A, B], 2)
    kA, kB = nearest_neighbours(A, 2), nearest_neighbours(B, 2)
    for i in range(6):
        expected = sorted(set(kA[i]) | set(kB[i]))
        assert neighbours[i, :counts[i]].tolist() == expected
        assert set(neighbours[i, counts[i]:].tolist()) <= {i}  # padding repeats the item
        assert i in expected


def test_neighbour_mask_and_positive_draws():
    neighbours = torch.tensor([[0, 2, 0], [1, 3, 4], [0, 2, 2], [3, 3, 3], [1, 4, 4]])
    counts = torch.tensor([2, 3, 2, 1, 2])
    rows = torch.tensor([4, 0, 3, 1])
    mask = neighbour_mask(neighbours, rows)
    for i, r in enumerate(rows.tolist()):
        for j, c in enumerate(rows.tolist()):
            assert bool(mask[i, j]) == (c in neighbours[r, :counts[r]].tolist())
    gen = torch.Generator().manual_seed(0)
    pos = sample_positives(neighbours, counts, rows, 200, gen)
    for i, r in enumerate(rows.tolist()):
        allowed = set(neighbours[r, :counts[r]].tolist())
        assert set(pos[i].tolist()) == allowed  # uniform over N(i): every member drawn


def test_generator_distribution_is_a_masked_softmax_of_squared_distances():
    rng = np.random.default_rng(2)
    gq, gc = rng.random((3, 4)), rng.random((5, 4))
    excluded = np.zeros((3, 5), dtype=bool)
    excluded[0, [1, 3]] = True
    excluded[2] = True  # no candidate left
    got = generator_log_probs(_t(gq), _t(gc), torch.from_numpy(excluded)).numpy()
    for i in range(2):
        s = np.array([-np.sum((gq[i] - gc[j]) ** 2) for j in range(5)])
        keep = ~excluded[i]
        p = np.exp(s[keep]) / np.exp(s[keep]).sum()
        np.testing.assert_allclose(np.exp(got[i, keep]), p, rtol=1e-12)
        assert np.all(np.isneginf(got[i, ~keep]))
    assert np.all(np.isneginf(got[2]))
    picks, valid = sample_candidates(_t(got), 50, torch.Generator().manual_seed(1))
    assert valid.tolist() == [True, True, False]
    assert not set(picks[0].tolist()) & {1, 3}  # excluded candidates are never drawn


def _loops(h, h_pos, neg, margin):
    """Direct computation of the triplet terms, reward and losses for any number of views."""
    M, (b, s) = len(h), neg[(0, 1)].shape
    d_pos = np.zeros((M, b, s))
    d_neg = np.zeros((M, b, s))
    for a in range(M):
        for i in range(b):
            for t in range(s):
                for m in range(M):
                    if m != a:
                        d_pos[a, i, t] += np.sum((h[a][i] - h_pos[(a, m)][i, t]) ** 2)
                        d_neg[a, i, t] += np.sum((h[a][i] - h[m][neg[(a, m)][i, t]]) ** 2)
    hinge = np.maximum(0.0, margin + d_pos - d_neg)
    return d_pos, d_neg, hinge, 1 / (1 + np.exp(-hinge))


@pytest.mark.parametrize("n_views", [2, 3])
def test_multi_pathway_terms_equal_loops(n_views):
    rng = np.random.default_rng(3)
    b, s, k, margin = 5, 2, 6, 0.75
    h = [rng.random((b, k)) for _ in range(n_views)]
    pairs = [(a, m) for a in range(n_views) for m in range(n_views) if a != m]
    h_pos = {p: rng.random((b, s, k)) for p in pairs}
    neg = {p: rng.integers(0, b, (b, s)) for p in pairs}
    d_pos, d_neg, hinge, reward = _loops(h, h_pos, neg, margin)
    got_pos, got_neg = pathway_distances([_t(x) for x in h], {p: _t(x) for p, x in h_pos.items()},
                                         {p: torch.from_numpy(x) for p, x in neg.items()})
    for a in range(n_views):
        np.testing.assert_allclose(got_pos[a].numpy(), d_pos[a], rtol=1e-12)
        np.testing.assert_allclose(got_neg[a].numpy(), d_neg[a], rtol=1e-12)
        np.testing.assert_allclose(rewards(got_pos[a], got_neg[a], margin).numpy(), reward[a],
                                   rtol=1e-12)
    valid = [torch.ones(b, dtype=torch.bool) for _ in range(n_views)]
    valid[0] = torch.tensor([True, False, True, True, True])
    expected = sum(hinge[a][valid[a].numpy()].mean() for a in range(n_views))
    assert float(discriminator_loss(got_pos, got_neg, valid, margin)) == pytest.approx(
        expected, rel=1e-12)

    # The policy gradient: the reward-weighted log-probabilities of the drawn candidates.
    logits = {p: rng.standard_normal((b, b)) for p in pairs}
    log_probs = {p: torch.log_softmax(_t(x), dim=1) for p, x in logits.items()}
    r = [_t(reward[a]) for a in range(n_views)]
    for objective in ("softmax", "sampled"):
        total = 0.0
        for a in range(n_views):
            rows = [i for i in range(b) if bool(valid[a][i])]
            terms = []
            for i in rows:
                for t in range(s):
                    lp = 0.0
                    for m in range(n_views):
                        if m == a:
                            continue
                        x = logits[(a, m)][i]
                        if objective == "softmax":
                            lp += x[neg[(a, m)][i, t]] - np.log(np.exp(x).sum())
                        else:  # renormalised over the row's drawn samples only (the codes')
                            drawn = x[neg[(a, m)][i]]
                            lp += drawn[t] - np.log(np.exp(drawn).sum())
                    terms.append(reward[a][i, t] * lp)
            total -= np.mean(terms)
        got = generator_loss(log_probs, {p: torch.from_numpy(x) for p, x in neg.items()}, r,
                             valid, objective=objective)
        assert float(got) == pytest.approx(total, rel=1e-12), objective


@pytest.fixture(scope="module")
def fitted(data):
    train, _ = data.part("train")
    return MGAH(n_bits=16, random_state=0, **FAST).fit(train)


def test_pretraining_loss_decreases(fitted):
    losses = [r["loss"] for r in fitted.history_]
    # Epochs 1-4 train the discriminators against uniform negatives.
    assert losses[3] < 0.8 * losses[0], losses


def test_beats_random_projection(data, fitted, cross_modal_maps, random_floor):
    maps, rp = cross_modal_maps(fitted, data), random_floor(data)
    assert min(maps) > max(rp) + 0.05, (maps, rp)


def test_two_stages_and_only_the_hash_networks_kept(data, monkeypatch):
    import mmhash_baselines.deep.mgah as module

    train, _ = data.part("train")
    calls = []
    original = module.generator_loss
    monkeypatch.setattr(module, "generator_loss",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    h = MGAH(n_bits=8, **{**FAST, "n_epochs": 3, "pretrain_epochs": 2,
                          "generator_steps": 2}).fit(train)
    batches = -(-len(train["image"]) // FAST["batch_size"])
    assert len(calls) == 2 * batches  # the generators train in the adversarial epoch only
    assert len(h._encoders) == 2 and not hasattr(h._encoders, "generators")
    assert h._encoders[0][0].out_features == FAST["hidden_width"]
    calls.clear()
    MGAH(n_bits=8, **{**FAST, "n_epochs": 2, "pretrain_epochs": 2}).fit(train)
    assert not calls  # pretrain_epochs = n_epochs: the discriminators alone


def test_held_out_selection_and_determinism(data, training_state_left):
    train, _ = data.part("train")
    params = {**FAST, "n_epochs": 4, "pretrain_epochs": 2, "validation_fraction": 0.2}
    a, b = MGAH(n_bits=8, **params).fit(train), MGAH(n_bits=8, **params).fit(train)
    assert all("val_loss" in r for r in a.history_)
    # the kept epoch is the first with the lowest held-out loss (ties: the earlier)
    assert a.best_epoch_ == 1 + int(np.argmin([r["val_loss"] for r in a.history_]))
    for m, X in train.items():
        np.testing.assert_array_equal(a.encode(X, m), b.encode(X, m))
    # training state (graph, views, streams, optimisers) is not kept on the hasher
    assert not training_state_left(a), training_state_left(a)


def test_parts_and_the_adversarial_learning_rate_drop():
    h = MGAH(n_bits=8, hidden_width=4, pretrain_epochs=2, learning_rate=1e-2,
             generator_learning_rate=3e-3, weight_decay=5e-4)
    model = h._build_model([3, 2])
    state = TrainingState(model, [np.zeros((4, 3)), np.zeros((4, 2))], np.arange(4),
                          np.empty(0, dtype=np.int64), 0, torch.device("cpu"))
    parts = h._parts(state)
    assert list(parts) == ["discriminator", "generator"]
    defaults = {"optimizer": h.optimizer, "learning_rate": h.learning_rate,
                "momentum": h.momentum, "weight_decay": h.weight_decay}
    state.optimizers = {name: part.build(defaults) for name, part in parts.items()}
    d, g = state.optimizers["discriminator"], state.optimizers["generator"]
    # the discriminators are the kept hash networks, the generators are trained apart
    assert [p for group in d.param_groups for p in group["params"]] == \
        list(model.encoders.parameters())
    assert [p for group in g.param_groups for p in group["params"]] == \
        list(model.generators.parameters())
    assert g.param_groups[0]["weight_decay"] == 5e-4
    # UGACH: the discriminators' rate drops to a tenth once the adversarial epochs start
    for epoch, lr in [(1, 1e-2), (2, 1e-2), (3, 1e-3), (4, 1e-3)]:
        state.epoch = epoch
        h._begin_epoch(state)
        assert d.param_groups[0]["lr"] == pytest.approx(lr)
        assert g.param_groups[0]["lr"] == pytest.approx(3e-3)


@pytest.mark.parametrize("bad", [
    {"n_neighbors": 0}, {"n_samples": 0}, {"margin": 0.0}, {"hidden_width": 0},
    {"pretrain_epochs": -1}, {"pretrain_epochs": 36}, {"generator_steps": -1},
    {"generator_learning_rate": 0.0}, {"adversarial_learning_rate": -1.0},
    {"generator_objective": "gumbel"}, {"standardize": "yes"},
])
def test_refuses_bad_parameters(data, assert_refused, bad):
    train, _ = data.part("train")
    assert_refused(MGAH, train, **bad)
