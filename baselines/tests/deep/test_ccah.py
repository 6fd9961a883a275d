"""CCAH: the text graph and the GAT layer against direct transcriptions of the official code,
the loss against a numpy transcription of train.py, the per-item encoding against the code's
batch-dependent one, training, refusals, held-out selection, optimiser settings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep.ccah import (  # noqa: E402
    CCAH,
    GraphAttentionLayer,
    TextGAT,
    ccah_loss,
    official_adjacency,
    official_batched_text_codes,
    text_graph,
)

from mmhash.errors import InvalidInputError  # noqa: E402

FAST = {"image_width": 64, "gat_width": 16, "n_heads": 2, "decoder_width": 32,
        "batch_size": 32, "n_threads": 1, "device": "cpu"}
WEIGHTS = {"mu": 1.5, "image_weight": 0.9, "eta": 0.1}


def _t(X):
    return torch.from_numpy(np.asarray(X, dtype=np.float64))


def _bow(rng, n, d, density=0.08):
    """Binary bag-of-words rows (a few all-zero), like MIRFlickr's tags."""
    return (rng.random((n, d)) < density).astype(np.float64)


@pytest.fixture(scope="module")
def bow_data(data):
    """The shared synthetic set with its text view turned into binary 'words' (the tanh
    features above 0.5): non-negative, sparse, structured like the labels."""
    views = dict(data.views)
    views["text"] = (views["text"] > 0.5).astype(np.float64)
    return dataclasses.replace(data, views=views)


# ---- graph and layer against the code --------------------------------------------------------
def test_official_adjacency_is_normalize_adj_of_the_sign_graph():
    rng = np.random.default_rng(0)
    T = _bow(rng, 9, 12, density=0.15)
    T[3] = 0.0  # a textless item
    A = np.sign(T @ T.T)
    r = A.sum(1)
    expected = np.zeros_like(A)
    for i in range(9):  # normalize_adj: mx.dot(D^-1/2).T.dot(D^-1/2), isinf -> 0
        for j in range(9):
            ri = 0.0 if r[i] == 0 else r[i] ** -0.5
            rj = 0.0 if r[j] == 0 else r[j] ** -0.5
            expected[i, j] = A[j, i] * ri * rj
    np.testing.assert_allclose(official_adjacency(T), expected, atol=1e-15)


def test_text_graph_is_the_codes_links_plus_self_loops():
    rng = np.random.default_rng(1)
    T = _bow(rng, 12, 10, density=0.12)
    T[[2, 7]] = 0.0
    got = text_graph(_t(T)).numpy()
    official = official_adjacency(T) > 0
    # the same links, but the textless items keep their self-loop (the fixed bug)
    assert not official[2, 2] and not official[7, 7]
    np.testing.assert_array_equal(got, official | np.eye(12, dtype=bool))
    assert got[2].sum() == 1 and got[7].sum() == 1


def _gat_layer_numpy(layer, h, graph, concat):
    """pygat/layers.py:26-50 by hand, eval mode."""
    W, a = layer.W.detach().numpy(), layer.a.detach().numpy()[:, 0]
    d = W.shape[1]
    Wh = h @ W
    out = np.empty_like(Wh)
    for i in range(len(h)):
        e = np.array([Wh[i] @ a[:d] + Wh[j] @ a[d:] for j in range(len(h))])
        e = np.where(e > 0, e, 0.2 * e)
        e = np.where(graph[i] > 0, e, -9e15)
        att = np.exp(e - e.max())
        att /= att.sum()
        out[i] = att @ Wh
    return np.where(out > 0, out, np.expm1(out)) if concat else out


@pytest.mark.parametrize("concat", [True, False])
def test_gat_layer_equals_the_pygat_formula(concat):
    torch.manual_seed(0)
    layer = GraphAttentionLayer(6, 5, dropout=0.6, slope=0.2, concat=concat).double().eval()
    rng = np.random.default_rng(2)
    h = rng.standard_normal((7, 6))
    adj = official_adjacency(_bow(rng, 7, 8, density=0.3))
    adj[0] = 0.0  # a row without links: the code's uniform attention over the batch
    got = layer(_t(h), torch.from_numpy(adj > 0)).detach().numpy()
    np.testing.assert_allclose(got, _gat_layer_numpy(layer, h, adj, concat), atol=1e-10)


def test_one_node_graphs_are_the_per_item_encoder():
    torch.manual_seed(0)
    net = TextGAT(8, 16, width=6, n_heads=3, dropout=0.6, slope=0.2).double().eval()
    X = _t(np.random.default_rng(3).random((5, 8)))
    alone = torch.cat([net(X[i:i + 1], torch.ones(1, 1, dtype=torch.bool)) for i in range(5)])
    eye = net(X, torch.eye(5, dtype=torch.bool))
    torch.testing.assert_close(net(X), alone, atol=1e-12, rtol=0)
    torch.testing.assert_close(net(X), eye, atol=1e-12, rtol=0)
    # an item without words (no self-loop in the code) is still its own graph
    z = torch.zeros(1, 8, dtype=torch.float64)
    torch.testing.assert_close(net(z), net(z, torch.zeros(1, 1, dtype=torch.bool)))


# ---- the loss against train.py ---------------------------------------------------------------
def _ccah_loss_numpy(Fi, Ft, code_I, code_T, dec_t, dec_i, K, ALPHA, ETA):
    """train.py:97-135 in numpy, entry by entry where the code uses matrices."""
    def norm(X):
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)

    def mse(A, B):
        return float(np.mean((A - B) ** 2))

    F_I, F_T = norm(Fi), norm(Ft)
    B_F_I, B_F_T = F_I @ F_I.T, F_T @ F_T.T
    S_I, S_T = B_F_I * 2 - 1, B_F_T * 2 - 1
    di, dt = norm(dec_i), norm(dec_t)
    B_I, B_T = norm(code_I), norm(code_T)
    m = len(Fi)
    BI_BT = np.array([[B_I[i] @ B_T[j] for j in range(m)] for i in range(m)])
    S = K * (ALPHA * S_I + (1 - ALPHA) * S_T)
    terms = {
        "tt": mse(B_T @ B_T.T, S), "it": mse(BI_BT, S), "ii": mse(B_I @ B_I.T, S),
        "ii_image": mse(B_I @ B_I.T, K * S_I), "tt_text": mse(B_T @ B_T.T, K * S_T),
        "pair": mse(np.diag(BI_BT), K * np.ones(m)),
        "dec_image": mse(di @ di.T, B_F_I), "dec_text": mse(dt @ dt.T, B_F_T),
        "sym": mse(BI_BT, BI_BT.T),
    }
    total = (terms["tt"] + terms["it"] + terms["ii"] + terms["pair"] + terms["dec_image"]
             + terms["dec_text"] + 2 * terms["sym"] + ETA * (terms["ii_image"]
                                                            + terms["tt_text"]))
    return total, terms


def test_loss_equals_a_transcription_of_train_py():
    h = CCAH(n_bits=16, **FAST)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = h._build_model([10, 12]).double().eval()
    net.encoders[0][-1].alpha = net.encoders[1].tanh.alpha = 2.0  # epoch 3's sqrt(3 + 1)
    rng = np.random.default_rng(4)
    Xi, Xt = np.abs(rng.standard_normal((9, 10))), _bow(rng, 9, 12, density=0.25)
    graph = text_graph(_t(Xt))
    total, terms = ccah_loss(net, _t(Xi), _t(Xt), graph, **WEIGHTS)
    with torch.no_grad():
        code_I = net.encoders[0](_t(Xi))
        code_T = net.encoders[1](_t(Xt), graph)
        dec_t = torch.sigmoid(net.image_decoder(code_I)).numpy()
        dec_i = torch.sigmoid(net.text_decoder(code_T)).numpy()
    exp_total, exp_terms = _ccah_loss_numpy(Xi, Xt, code_I.numpy(), code_T.numpy(), dec_t, dec_i,
                                            1.5, 0.9, 0.1)
    assert float(total.detach()) == pytest.approx(exp_total, abs=1e-10)
    for k, v in exp_terms.items():
        assert terms[k] == pytest.approx(v, abs=1e-10), k
    assert terms["sym"] > 0  # the I x T block is not symmetric: loss7 is exercised
    # The targets carry no gradient; every trained part gets one.
    total.backward()
    assert all(p.grad is not None for p in net.parameters())


# ---- encoding per item against the code's batched evaluation ----------------------------------
@pytest.fixture(scope="module")
def fitted(bow_data):
    views, _ = bow_data.part("train")
    return CCAH(n_bits=16, n_epochs=10, learning_rate=0.01, text_learning_rate=0.01,
                **FAST).fit(views)


def test_official_batched_codes_depend_on_the_batch_and_encode_does_not(bow_data, fitted):
    views, _ = bow_data.part("train")
    T = views["text"]
    shares = (T @ T.T) > 0
    # an item with words, batched once with items it shares words with, once with none
    item = next(i for i in range(len(T)) if T[i].any() and shares[i].sum() > 8
                and (~shares[i]).sum() > 8)
    friends = [j for j in np.flatnonzero(shares[item]) if j != item][:7]
    strangers = list(np.flatnonzero(~shares[item])[:7])
    together = official_batched_text_codes(fitted, T[[item, *friends]], batch_size=8)[0]
    apart = official_batched_text_codes(fitted, T[[item, *strangers]], batch_size=8)[0]
    per_item = fitted.encode(T[[item]], "text")[0]
    assert (together != apart).any(), "the code's batch graph changed nothing for this item"
    # alone in its graph, the code's evaluation gives the per-item code
    np.testing.assert_array_equal(apart, per_item)
    for batch in (T[[item, *friends]], T[[item, *strangers]]):
        np.testing.assert_array_equal(fitted.encode(batch, "text")[0], per_item)
    # over the whole set, in the code's batches of 16: a share of the bits differ
    official = official_batched_text_codes(fitted, T, batch_size=16)
    ours = fitted.encode(T, "text")
    assert 0 < np.mean(official != ours) < 0.5


def test_training_beats_random_projection(bow_data, fitted, cross_modal_maps, random_floor):
    ccah, rp = cross_modal_maps(fitted, bow_data), random_floor(bow_data)
    assert min(ccah) > max(rp) + 0.05, (ccah, rp)
    losses = [r["loss"] for r in fitted.history_]
    assert losses[-1] < losses[0], losses


def test_real_valued_text_with_allow_negative_text(data, cross_modal_maps, random_floor):
    views, _ = data.part("train")
    h = CCAH(n_bits=16, n_epochs=10, allow_negative_text=True, **FAST).fit(views)
    ccah, rp = cross_modal_maps(h, data), random_floor(data)
    assert min(ccah) > max(rp) + 0.05, (ccah, rp)


@pytest.mark.filterwarnings("ignore:.*constant bits")
def test_negative_text_is_refused_with_one_line(data):
    views, _ = data.part("train")
    with pytest.raises(InvalidInputError, match="text view 'text' has negative entries") as err:
        CCAH(n_bits=16, **FAST).fit(views)
    assert "non-negative" in str(err.value) and "allow_negative_text" in str(err.value)
    assert "\n" not in str(err.value)
    # negative image features are fine (the graph reads the text only)
    ok = {"image": views["image"], "text": np.abs(views["text"])}
    CCAH(n_bits=16, n_epochs=1, **FAST).fit(ok)


def test_held_out_selection_determinism_and_no_state_left(bow_data, training_state_left):
    views, _ = bow_data.part("train")
    a = CCAH(n_bits=16, n_epochs=3, validation_fraction=0.2, **FAST).fit(views)
    b = CCAH(n_bits=16, n_epochs=3, validation_fraction=0.2, **FAST).fit(views)
    assert all("val_loss" in r for r in a.history_)
    assert a.best_epoch_ == min(a.history_, key=lambda r: r["val_loss"])["epoch"]
    for m in ("image", "text"):
        assert np.array_equal(a.encode(views[m], m), b.encode(views[m], m))
    assert not training_state_left(a), training_state_left(a)


def test_text_scaling_keeps_the_graph_and_is_applied_at_encoding(bow_data):
    views, _ = bow_data.part("train")
    scales = 10.0 ** (np.arange(views["text"].shape[1]) % 8 - 2)
    wide = {"image": views["image"], "text": views["text"] * scales}
    h = CCAH(n_bits=16, n_epochs=2, **FAST).fit(wide)
    assert (h.input_scale0_ == 1).all() and not (h.input_scale1_ == 1).all()
    assert not h.input_shift1_.any()  # the text view is never centred
    rescaled = wide["text"] / h.input_scale1_
    assert (rescaled >= 0).all()
    np.testing.assert_array_equal(text_graph(_t(rescaled)).numpy(),
                                  text_graph(_t(views["text"])).numpy())
    raw = CCAH(n_bits=16, n_epochs=2, standardize=False, **FAST).fit(wide)
    assert (raw.input_scale1_ == 1).all()
    np.testing.assert_array_equal(h.encode(wide["text"], "text"),
                                  official_batched_text_codes(h, wide["text"], 1))


def test_optimiser_is_nesterov_sgd_with_two_learning_rates():
    h = CCAH(n_bits=16, learning_rate=0.005, text_learning_rate=0.002, **{
        k: v for k, v in FAST.items() if k != "batch_size"})
    net = h._build_model([10, 12])
    from mmhash.deep import TrainingState

    state = TrainingState(net, [np.zeros((4, 10)), np.zeros((4, 12))], np.arange(4),
                          np.empty(0, dtype=np.int64), 0, torch.device("cpu"))
    part = h._parts(state)["model"]
    opt = part.build({"optimizer": "sgd", "learning_rate": 0.005, "momentum": 0.7,
                      "weight_decay": 5e-4})
    image, text = opt.param_groups
    assert isinstance(opt, torch.optim.SGD)
    assert (image["lr"], text["lr"]) == (0.005, 0.002)
    assert all(g["nesterov"] and g["momentum"] == 0.7 and g["weight_decay"] == 5e-4
               for g in opt.param_groups)
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert ids == {id(p) for p in net.parameters()}  # decoders and attention vectors too
    assert {id(p) for p in net.image_decoder.parameters()} <= {id(p) for p in image["params"]}


def test_default_networks_are_the_codes():
    net = CCAH()._build_model([512, 1386])
    image, text = net.encoders
    assert [m.out_features for m in image if isinstance(m, torch.nn.Linear)] == [1024, 128]
    assert len(text.heads) == 8 and tuple(text.heads[0].W.shape) == (1386, 1024)
    assert tuple(text.out.W.shape) == (8192, 128) and tuple(text.out.a.shape) == (256, 1)
    assert net.image_decoder.out_features == 1386 and net.text_decoder.out_features == 1024
    assert text.dropout == 0.6 and text.heads[0].slope == 0.2


@pytest.mark.parametrize("bad", [
    {"mu": 0}, {"image_weight": 1.5}, {"eta": -1}, {"pair_weight": -1},
    {"decoder_weight": -0.5}, {"symmetry_weight": -2}, {"image_width": 0}, {"gat_width": 0},
    {"n_heads": 0}, {"dropout": 1.0}, {"leaky_slope": -0.1}, {"decoder_width": 0},
    {"allow_negative_text": "yes"}, {"standardize": "always"},
    {"text_learning_rate": 0}, {"validation_fraction": 1.0}, {"n_epochs": 0},
])
def test_refuses_bad_parameters(bow_data, assert_refused, bad):
    views, _ = bow_data.part("train")
    assert_refused(CCAH, views, **bad)
