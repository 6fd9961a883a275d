"""UMHA: the auxiliary similarity matrix, the attention hash networks, the objective, the
collaborative update of the matrix from the codes, the ablation variants, determinism,
persistence, M views, epoch selection and the hooks UMHA adds to the shared training loop."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash.base import read_saved  # noqa: E402
from mmhash.data.synthetic import make_synthetic  # noqa: E402
from mmhash.deep import TrainingState, make_optimizer, train_loop  # noqa: E402
from mmhash.deep import hasher as deep_hasher  # noqa: E402
from mmhash.errors import InvalidInputError  # noqa: E402
from mmhash.hashers.umha import (  # noqa: E402
    UMHA,
    VARIANTS,
    UMHANet,
    auxiliary_similarity,
    code_similarity,
    collaborative_update,
    knn_agreement,
    umha_loss,
)
from mmhash.registry import load_hasher  # noqa: E402

TINY = dict(n_bits=16, n_tokens=4, token_dim=8, n_heads=2, n_layers=1, ff_width=16,
            n_neighbors=8, n_epochs=2, batch_size=50, learning_rate=3e-3, n_threads=1,
            random_state=0)
NET = dict(n_tokens=3, token_dim=8, n_heads=2, n_layers=2, ff_width=12)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Torch work outside a hasher's session runs on one thread (tiny tensors on a shared machine
    are far slower with more); the caller's setting comes back afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(dims=(24, 16)):
    ds = make_synthetic(n=200, dims=dims, n_labels=5, latent_dim=8, n_query=40, random_state=3)
    return ds.part("train")[0], ds.part("query")[0]


def _cos(X):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    return Xn @ Xn.T


def _knn(S, k):
    """Reference kNN indicator of one similarity matrix, symmetrised (loops, no torch)."""
    n = len(S)
    K = np.zeros((n, n))
    for i in range(n):
        others = [j for j in np.argsort(-S[i], kind="stable") if j != i]
        K[i, others[:k]] = 1
    return np.maximum(K, K.T)


# ---- the auxiliary similarity matrix -----------------------------------------------------------
def test_knn_agreement_is_the_share_of_views_where_two_rows_are_neighbours():
    # Rows 0,1 are close in view a only; rows 2,3 in both views; k = 1.
    a = torch.tensor([[1.0, .9, .1, .2], [.9, 1.0, .3, .1], [.1, .3, 1.0, .8], [.2, .1, .8, 1.0]])
    b = torch.tensor([[1.0, .1, .7, .2], [.1, 1.0, .2, .6], [.7, .2, 1.0, .9], [.2, .6, .9, 1.0]])
    G = knn_agreement([a, b], 1).numpy()
    assert G[0, 1] == G[1, 0] == 0.5, "neighbours in one view of two"
    assert G[2, 3] == G[3, 2] == 1.0, "neighbours in both views"
    assert G[0, 2] == 0.5, "view b: 2's nearest is 3, but 0's nearest is 2 (either direction)"
    assert G[0, 3] == 0.0
    assert np.all(np.diag(G) == 1.0)


@pytest.mark.parametrize("n_views", [2, 3])
def test_auxiliary_matrix_follows_the_documented_construction(n_views):
    rng = np.random.default_rng(0)
    Xs = [rng.random((12, d)) for d in (6, 4, 5)[:n_views]]  # non-negative, like BoVW / LDA
    weights = [0.5, 0.5] if n_views == 2 else [0.4, 0.35, 0.25]
    eta, k, lam, n = 0.3, 3, 0.4, 12
    C = [2 * _cos(X) - 1 for X in Xs]
    pairs = [(u, w) for u in range(n_views) for w in range(u + 1, n_views)]
    J = ((1 - eta) * sum(w * c for w, c in zip(weights, C))
         + eta / (len(pairs) * n) * sum(C[u] @ C[w].T for u, w in pairs))
    G = sum(_knn(c, k) for c in C) / n_views
    np.fill_diagonal(G, 1)
    expected = (1 - lam) * J + lam * (2 * G - 1)
    np.fill_diagonal(expected, 1)
    views = [torch.from_numpy(X) for X in Xs]
    kw = dict(weights=weights, eta=eta, n_neighbors=k, neighbour_weight=lam)
    got = auxiliary_similarity(views, **kw).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # UMHA-1 drops the kNN term, UMHA-2 the cross-modal second-order term.
    no_knn = auxiliary_similarity(views, **kw, neighbourhoods=False).numpy()
    np.fill_diagonal(J, 1)
    np.testing.assert_allclose(no_knn, J, rtol=1e-12, atol=1e-12)
    fused = sum(w * c for w, c in zip(weights, C))
    first_order = (1 - lam) * fused + lam * (2 * G - 1)
    np.fill_diagonal(first_order, 1)
    np.testing.assert_allclose(auxiliary_similarity(views, **kw, second_order=False).numpy(),
                               first_order, rtol=1e-12, atol=1e-12)


def test_collaborative_update_is_the_closed_form_a_step():
    rng = np.random.default_rng(1)
    B = [torch.from_numpy(np.where(rng.random((7, 16)) < .5, -1.0, 1.0)) for _ in range(2)]
    H = code_similarity(B)
    mean = (B[0] + B[1]) / 2
    np.testing.assert_allclose(H.numpy(), (mean @ mean.T / 16).numpy(), rtol=1e-12)
    # The mean over all ordered view pairs of B^u B^w^T / k.
    np.testing.assert_allclose(H.numpy(), sum(Bu @ Bw.T for Bu in B for Bw in B) / (4 * 16),
                               rtol=1e-12)
    A0 = torch.from_numpy(rng.uniform(-1, 1, (7, 7)))
    rho = 0.3
    A = collaborative_update(A0, H, rho)
    # Off the diagonal, A minimises ||A - A0||^2 + rho / (1 - rho) ||A - H||^2: zero gradient.
    grad = 2 * (A - A0) + 2 * rho / (1 - rho) * (A - H)
    off = ~torch.eye(7, dtype=torch.bool)
    assert grad[off].abs().max() < 1e-12
    assert torch.all(torch.diagonal(A) == 1)


# ---- the network and the objective -------------------------------------------------------------
def test_self_attention_runs_over_the_tokens_of_each_item():
    torch.manual_seed(0)
    net = UMHANet([6, 5], 8, **NET)
    attention = [m for m in net.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    assert len(attention) == 2 * NET["n_layers"], "one attention layer per block per view"
    seen = []
    handle = attention[0].register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    out = net.encoders[0](torch.rand(10, 6))
    handle.remove()
    assert seen == [torch.Size([10, NET["n_tokens"], NET["token_dim"]])], (
        "queries must be (items, tokens, width): attention among one item's tokens")
    assert out.shape == (10, 8) and out.abs().max() < 1
    ablated = UMHANet([6, 5], 8, **NET, attention=False)
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in ablated.modules())


def _net_batch(seed=0):
    torch.manual_seed(seed)
    net = UMHANet([6, 5], 8, **NET)
    views = [torch.rand(10, 6), torch.rand(10, 5)]
    A = torch.rand(10, 10) * 2 - 1
    return net, views, A


def test_loss_is_the_documented_objective():
    net, views, A = _net_batch()
    total, parts = umha_loss(net, views, A, alpha=0.7, beta=1.3, gamma=0.2, tau=0.5)
    with torch.no_grad():
        Zv, Zt = (torch.nn.functional.normalize(E(X), dim=1) for E, X in zip(net.encoders, views))
        mean = lambda M: float((M ** 2).mean())  # noqa: E731
        assert parts["cross"] == pytest.approx(mean(A - Zv @ Zt.T), rel=1e-5)
        assert parts["intra"] == pytest.approx(mean(A - Zv @ Zv.T) + mean(A - Zt @ Zt.T),
                                               rel=1e-5)
        # Symmetric InfoNCE: item i's image code must pick out item i's text code, and back.
        P = torch.log_softmax(Zv @ Zt.T / 0.5, dim=1)
        Q = torch.log_softmax(Zt @ Zv.T / 0.5, dim=1)
        nce = -(torch.diagonal(P).mean() + torch.diagonal(Q).mean()) / 2
        assert parts["instance"] == pytest.approx(float(nce), rel=1e-5)
    weighted = 0.7 * parts["cross"] + 1.3 * parts["intra"] + 0.2 * parts["instance"]
    assert total.item() == pytest.approx(weighted, rel=1e-5)
    _, off = umha_loss(net, views, A, alpha=0.7, beta=1.3, gamma=0.0, tau=0.5)
    assert off["instance"] == 0.0


def test_instance_term_pulls_pairs_together_and_pushes_other_items_apart():
    net, views, A = _net_batch()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def gap():
        with torch.no_grad():
            Zv, Zt = (torch.nn.functional.normalize(E(X), dim=1)
                      for E, X in zip(net.encoders, views))
            S = Zv @ Zt.T
            return float(torch.diagonal(S).mean() - S[~torch.eye(10, dtype=torch.bool)].mean())

    before = gap()
    for _ in range(30):  # the instance term alone
        loss, _ = umha_loss(net, views, A, alpha=0.0, beta=0.0, gamma=1.0, tau=0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert gap() > before + 0.5, "paired codes did not separate from the other items' codes"


# ---- training: row ids, the collaborative update, variants -----------------------------------
class _Recording(UMHA):
    """UMHA that records the batches its loss sees (tests only; not registered)."""

    name = "umha-recording"

    def _loss(self, state, batch):
        if state.model.training:
            self.batches_seen.append([t.clone() for t in batch])
        return super()._loss(state, batch)


def test_batches_carry_row_ids_and_the_loss_uses_their_block_of_the_matrix():
    train, _ = _data()
    h = _Recording(**{**TINY, "n_epochs": 1})
    h.batches_seen = []
    h.fit(train)
    X = [train["image"], train["text"]]
    for *views, rows in h.batches_seen:
        assert rows.dtype == torch.int64
        for V, full in zip(views, X):
            assert np.array_equal(V.numpy(), full[rows.numpy()].astype(np.float32))
    rows = torch.cat([b[-1] for b in h.batches_seen])
    assert sorted(rows.tolist()) == list(range(len(X[0]))), "every row once per epoch"
    assert not [k for k, v in vars(h).items() if isinstance(v, torch.Tensor)], \
        "training-only tensors (the N x N matrices) must not outlive fit"


def test_networks_standardise_their_input_with_the_fit_rows_statistics():
    train, _ = _data()
    h = _Recording(**{**TINY, "n_epochs": 1, "validation_fraction": 0.25})
    h.batches_seen = []
    h.fit(train)
    fit_rows = np.sort(torch.cat([b[-1] for b in h.batches_seen]).numpy())
    assert len(fit_rows) == 120, "the held-out quarter of the 160 rows must not be trained on"
    for encoder, X in zip(h._encoders, train.values()):
        np.testing.assert_allclose(encoder.shift.numpy(), X[fit_rows].mean(0), rtol=1e-6)
        np.testing.assert_allclose(encoder.scale.numpy(), X[fit_rows].std(0), rtol=1e-6)
    raw = UMHA(**{**TINY, "n_epochs": 1, "standardize": False}).fit(train)
    assert all(torch.all(e.shift == 0) and torch.all(e.scale == 1) for e in raw._encoders)


def test_collaborative_update_after_each_epoch_from_the_fit_rows_codes():
    train, _ = _data()
    X = [train["image"], train["text"]]
    n = len(X[0])
    h = UMHA(**TINY, rho=0.4)
    h._check_params()
    torch.manual_seed(0)
    model = h._build_model([x.shape[1] for x in X])
    state = TrainingState(model, X, np.arange(n), np.arange(0), 0, torch.device("cpu"))
    h._begin_training(state)
    A0 = state.aux0.clone()
    fit_rows = torch.arange(0, n, 2)  # half of the rows are fit rows, the rest "held out"
    state.data = [torch.from_numpy(x.astype(np.float32))[fit_rows] for x in X] + [fit_rows]
    data = state.data
    model.train()
    h._end_epoch(state)
    assert model.training, "the hook must hand the model back in train mode"
    with torch.no_grad():
        model.eval()
        codes = [torch.where(E(V) >= 0, 1.0, -1.0) for E, V in zip(model.encoders, data[:2])]
    block = (fit_rows[:, None], fit_rows[None, :])
    expected = collaborative_update(A0[block], code_similarity(codes), 0.4)
    np.testing.assert_allclose(state.aux[block].numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
    held = torch.arange(1, n, 2)
    assert torch.equal(state.aux[held[:, None], held[None, :]], A0[held[:, None], held[None, :]]), (
        "held-out rows keep A0: the selection criterion's target must not move")
    assert h.aux_shift_ == [pytest.approx(float((expected - A0[block]).abs().mean()))]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_fits_and_removes_its_component(variant):
    train, query = _data()
    h = UMHA(**TINY, variant=variant).fit(train)
    for m, X in query.items():
        assert len(np.unique(h.encode(X, m), axis=0)) > 1, f"{variant}: one code for all items"
    has_attention = any(isinstance(m, torch.nn.MultiheadAttention) for m in h._encoders.modules())
    assert has_attention == (variant != "umha-3")
    assert len(h.aux_shift_) == (0 if variant == "umha-4" else TINY["n_epochs"])
    assert all(s > 0 for s in h.aux_shift_)


def test_variants_change_the_codes_and_equal_their_switched_off_weights():
    train, query = _data()
    X = query["text"]
    full = UMHA(**TINY).fit(train).encode(X, "text")
    for variant, same in [("umha-1", {"neighbour_weight": 0.0}), ("umha-2", {"eta": 0.0}),
                          ("umha-4", {"rho": 0.0}), ("umha-5", {"gamma": 0.0})]:
        ablated = UMHA(**TINY, variant=variant).fit(train).encode(X, "text")
        assert not np.array_equal(ablated, full), f"{variant} gave the full model's codes"
        weight_zero = UMHA(**TINY, **same).fit(train).encode(X, "text")
        assert np.array_equal(ablated, weight_zero), f"{variant} is not the same as {same}"


# ---- determinism, persistence, views, selection ------------------------------------------------
def test_progress_per_epoch_and_thread_count_restored_after_fit_and_encode():
    train, query = _data()
    seen = []
    torch.set_num_threads(2)  # the caller's setting, which n_threads=1 must override
    before = torch.get_num_threads()
    h = UMHA(**{**TINY, "n_epochs": 3}).fit(
        train, progress=lambda e, n, m: seen.append((e, n, torch.get_num_threads())))
    assert seen == [(1, 3, 1), (2, 3, 1), (3, 3, 1)]
    assert torch.get_num_threads() == before
    inside = []
    handle = h._scorers[0].register_forward_hook(
        lambda *a: inside.append(torch.get_num_threads()))
    h.encode(query["image"], "image")
    handle.remove()
    assert inside == [1], "encode must run with n_threads threads"
    assert torch.get_num_threads() == before


def test_same_seed_same_codes_other_seed_other_codes():
    train, query = _data()
    a, b = UMHA(**TINY).fit(train), UMHA(**TINY).fit(train)
    c = UMHA(**{**TINY, "random_state": 1}).fit(train)
    for m, X in query.items():
        assert np.array_equal(a.encode(X, m), b.encode(X, m))
    assert not np.array_equal(a.encode(query["text"], "text"), c.encode(query["text"], "text"))


def test_save_load_keeps_encoders_only_and_gives_identical_codes(tmp_path):
    train, query = _data()
    h = UMHA(**TINY, variant="umha-3").fit(train)
    h.save(tmp_path / "umha.npz")
    meta, arrays = read_saved(tmp_path / "umha.npz")
    assert meta["name"] == "umha" and meta["params"]["variant"] == "umha-3"
    assert arrays and all(k.startswith("torch__encoders.") for k in arrays), (
        "the N x N training matrices must not be saved")
    loaded = load_hasher(tmp_path / "umha.npz")
    assert type(loaded) is UMHA and loaded.aux_shift_ == h.aux_shift_
    for m, X in query.items():
        assert np.array_equal(loaded.encode(X, m), h.encode(X, m))


def test_codes_do_not_depend_on_the_batch_with_dropout_in_training():
    train, query = _data()
    h = UMHA(**TINY, dropout=0.3).fit(train)
    for m, X in query.items():
        full = h.encode(X, m)
        for i in range(0, len(X), 7):
            assert np.array_equal(full[i], h.encode(X[i:i + 1], m)[0]), f"{m} row {i}"
        assert np.array_equal(full[::-1], h.encode(X[::-1], m))


def test_three_views():
    train, query = _data(dims=(24, 16, 10))
    h = UMHA(**TINY, mu=[0.4, 0.3, 0.3]).fit(train)
    assert h.modalities_ == ["view0", "view1", "view2"]
    for m, X in query.items():
        codes = h.encode(X, m)
        assert codes.shape == (len(X), 16) and len(np.unique(codes, axis=0)) > 1
    with pytest.raises(InvalidInputError, match="2 weights for 3 views"):
        UMHA(**TINY, mu=[0.5, 0.5]).fit(train)


def test_epoch_selection_on_held_out_rows():
    train, _ = _data()
    params = {**TINY, "n_epochs": 4, "validation_fraction": 0.25}
    h = UMHA(**params).fit(train)
    val = [r["val_loss"] for r in h.history_]
    assert h.best_epoch_ == int(np.argmin(val)) + 1
    assert [r["val_loss"] for r in UMHA(**params).fit(train).history_] == val


def test_epoch_end_hook_runs_after_the_steps_and_before_the_held_out_loss():
    model = torch.nn.Linear(1, 1, bias=False)
    events = []

    def loss_fn(batch):
        events.append("eval" if not model.training else "step")
        return ((model(batch[0]) - 1) ** 2).mean(), {}

    opt = make_optimizer("sgd", model.parameters(), learning_rate=0.1)
    train_loop(model, loss_fn, [torch.ones(4, 1)], opt, n_epochs=2, batch_size=2,
               rng=np.random.default_rng(0), validation=[torch.ones(2, 1)],
               on_epoch_end=lambda epoch: events.append(f"end{epoch}"))
    assert events == ["step", "step", "end1", "eval", "step", "step", "end2", "eval"]


@pytest.mark.parametrize(("param", "value", "error", "match"), [
    ("variant", "umha-6", InvalidInputError, "variant must be one of full, umha-1, umha-2"),
    ("token_dim", 9, InvalidInputError, "token_dim=9 must be divisible by n_heads=2"),
    ("n_neighbors", 200, InvalidInputError, "n_neighbors=200 must be smaller than the 160"),
    ("max_samples", 100, InvalidInputError, "160 training rows exceed max_samples=100"),
    ("tau", 0.0, InvalidInputError, "tau must be a finite number > 0, got 0.0"),
    ("rho", 1.0, InvalidInputError, "rho must be a finite number < 1, got 1.0"),
    ("neighbour_weight", -0.1, InvalidInputError, "neighbour_weight must lie between 0 and 1"),
    ("n_heads", 0, InvalidInputError, "n_heads must be an integer >= 1, got 0"),
    ("rescale_similarity", "yes", InvalidInputError, "rescale_similarity must be"),
    ("optimizer", "rmsprop", InvalidInputError, "optimizer must be one of adam, sgd"),
])
def test_bad_parameters_raise_clear_errors(param, value, error, match):
    train, _ = _data()
    with pytest.raises(error, match=match):
        UMHA(**{**TINY, param: value}).fit(train)


def _as_python(value):
    """The Python equivalent of a numpy scalar (or of a list of them)."""
    if isinstance(value, list):
        return [_as_python(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


# One tiny epoch: the point is that the values are accepted and used as their Python twins.
ONE_EPOCH = {**TINY, "n_epochs": 1}


@pytest.mark.parametrize(("param", "value"), [
    ("alpha", np.int64(1)), ("beta", np.float64(0.5)), ("gamma", np.int64(2)),
    ("tau", np.float64(0.5)), ("tau", np.int64(1)), ("eta", np.float64(0.3)),
    ("mu", np.float64(0.6)), ("mu", [np.float64(0.25), np.float64(0.75)]),
    ("n_neighbors", np.int64(8)), ("neighbour_weight", np.int64(1)), ("rho", np.float64(0.5)),
    ("rho", np.int64(0)), ("n_tokens", np.int64(4)), ("token_dim", np.int64(8)),
    ("n_heads", np.int64(2)), ("n_layers", np.int64(1)), ("ff_width", np.int64(16)),
    ("dropout", np.float64(0.1)), ("max_samples", np.int64(500)), ("n_epochs", np.int64(1)),
    ("batch_size", np.int64(50)), ("learning_rate", np.float64(3e-3)),
    ("momentum", np.float64(0.9)), ("weight_decay", np.float64(1e-4)),
    ("validation_fraction", np.float64(0.25)), ("n_threads", np.int64(1)),
    ("random_state", np.int64(0)), ("n_bits", np.int64(16)), ("standardize", np.bool_(False)),
])
def test_numpy_scalars_are_accepted_like_python_numbers(param, value):
    train, query = _data()
    params = {**ONE_EPOCH, param: value}
    if param == "momentum":
        params["optimizer"] = "sgd"  # momentum is only used by SGD
    h = UMHA(**params).fit(train)
    assert h.get_params()[param] is value, "parameters are stored as given"
    twin = UMHA(**{**params, param: _as_python(value)}).fit(train)
    for m in ("image", "text"):
        assert np.array_equal(h.encode(query[m], m), twin.encode(query[m], m))


# {!r} is the value given: numpy's repr of its scalars changed in numpy 2.
@pytest.mark.parametrize(("param", "value", "message"), [
    ("alpha", True, "alpha must be a finite number >= 0, got {!r}"),
    ("beta", np.float64(-1.0), "beta must be a finite number >= 0, got {!r}"),
    ("gamma", np.nan, "gamma must be a finite number >= 0, got {!r}"),
    ("tau", np.int64(0), "tau must be a finite number > 0, got {!r}"),
    ("tau", np.inf, "tau must be a finite number > 0, got {!r}"),
    ("eta", "0.3", "eta must lie between 0 and 1 (inclusive), got {!r}"),
    ("neighbour_weight", 1.5, "neighbour_weight must lie between 0 and 1 (inclusive), got {!r}"),
    ("rho", -0.1, "rho must be a finite number >= 0, got {!r}"),
    ("dropout", 1, "dropout must be a finite number < 1, got {!r}"),
    ("mu", False, "mu must be a number in [0, 1] or a list of one weight per view, got {!r}"),
    ("mu", [0.5, True], "mu[1] must be a finite number >= 0, got True"),
    ("n_neighbors", 8.0, "n_neighbors must be an integer >= 1, got {!r}"),
    ("n_tokens", np.int64(0), "n_tokens must be an integer >= 1, got {!r}"),
    ("n_layers", True, "n_layers must be an integer >= 1, got {!r}"),
    ("ff_width", None, "ff_width must be an integer >= 1, got {!r}"),
    ("max_samples", -1, "max_samples must be an integer >= 1, got {!r}"),
    ("standardize", 0, "standardize must be True or False, got {!r}"),
    ("variant", "umha1",
     "variant must be one of full, umha-1, umha-2, umha-3, umha-4, umha-5; got {!r}"),
    ("optimizer", "SGD", "optimizer must be one of adam, sgd; got {!r}"),
    ("n_epochs", 0, "n_epochs must be an integer >= 1, got {!r}"),
    ("batch_size", np.float64(50.0), "batch_size must be an integer >= 2, got {!r}"),
    ("learning_rate", -1e-3, "learning_rate must be a finite number > 0, got {!r}"),
    ("momentum", 1.0, "momentum must be a finite number < 1, got {!r}"),
    ("weight_decay", False, "weight_decay must be a finite number >= 0, got {!r}"),
    ("validation_fraction", -0.25, "validation_fraction must be a finite number >= 0, got {!r}"),
    ("random_state", np.float64(0.0), "random_state must be an integer >= 0, got {!r}"),
])
def test_bad_values_are_refused_by_name_before_training(param, value, message, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(deep_hasher, "train_loop", no_training)
    train, _ = _data()
    with pytest.raises(InvalidInputError, match=re.escape(message.format(value))):
        UMHA(**{**ONE_EPOCH, param: value}).fit(train)


def test_import_without_torch_names_the_extra_to_install():
    code = """
        import sys
        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("No module named 'torch'")
        sys.meta_path.insert(0, NoTorch())
        try:
            import mmhash.hashers.umha
        except ImportError as exc:
            print(exc)
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "UMHA needs PyTorch, which is not installed: pip install 'mmhash[deep]'")
