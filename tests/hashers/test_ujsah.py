"""UJSAH: the joint-semantics matrix (Eq. 2 and its M-view form), the objective's switches,
determinism, persistence, batch independence, M views, and the lazy torch import."""

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
from mmhash.deep import hasher as deep_hasher  # noqa: E402
from mmhash.errors import InvalidInputError  # noqa: E402
from mmhash.hashers.ujsah import (  # noqa: E402
    UJSAH,
    UJSAHNet,
    joint_semantics,
    similarity_matrices,
    ujsah_loss,
    view_weights,
)
from mmhash.registry import load_hasher  # noqa: E402

TINY = dict(n_bits=16, image_width=32, text_width=24, predictor_width=16,
            image_decoder_depth=2, text_decoder_depth=1, n_epochs=3, batch_size=40,
            optimizer="adam", learning_rate=3e-3, n_threads=1, random_state=0)


def _data(dims=(24, 16)):
    ds = make_synthetic(n=200, dims=dims, n_labels=5, latent_dim=8, n_query=40, random_state=3)
    return ds.part("train")[0], ds.part("query")[0]


def _cos(X):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    return Xn @ Xn.T


# ---- the similarity ----------------------------------------------------------------------------
@pytest.mark.parametrize("rescale", [True, False])
def test_two_view_joint_semantics_is_eq2_literally(rescale):
    rng = np.random.default_rng(0)
    Xv, Xt = rng.random((9, 6)), rng.random((9, 4))  # non-negative, like BoVW / topic features
    mu, eta, n = 0.7, 0.35, 9
    Sv, St = _cos(Xv), _cos(Xt)
    if rescale:
        Sv, St = 2 * Sv - 1, 2 * St - 1
    s_tilde = mu * Sv + (1 - mu) * St                   # Eq. 1
    expected = (1 - eta) * s_tilde + eta * Sv @ St.T / n  # Eq. 2
    sims = similarity_matrices([torch.from_numpy(Xv), torch.from_numpy(Xt)], rescale=rescale)
    got = joint_semantics(sims, view_weights(mu, 2), eta).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(got, got.T), "Eq. 2's S^v S^t^T term is not symmetric; keep it so"
    only_eq1 = joint_semantics(sims, view_weights(mu, 2), eta, joint=False).numpy()
    np.testing.assert_allclose(only_eq1, s_tilde, rtol=1e-12, atol=1e-12)


def test_m_view_joint_semantics_follows_the_documented_form():
    rng = np.random.default_rng(1)
    Xs = [rng.random((7, d)) for d in (5, 3, 4)]
    weights, eta, n = [0.5, 0.2, 0.3], 0.4, 7
    S = [2 * _cos(X) - 1 for X in Xs]
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = ((1 - eta) * sum(w * s for w, s in zip(weights, S))
                + eta / (len(pairs) * n) * sum(S[u] @ S[w].T for u, w in pairs))
    got = joint_semantics(similarity_matrices([torch.from_numpy(X) for X in Xs]), weights, eta)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_view_weights_reduce_to_mu_one_minus_mu_and_are_validated():
    assert view_weights(0.8, 2) == pytest.approx([0.8, 0.2])
    assert view_weights(0.4, 3) == pytest.approx([0.4, 0.3, 0.3])
    assert view_weights([0.2, 0.3, 0.5], 3) == [0.2, 0.3, 0.5]
    with pytest.raises(InvalidInputError, match="2 weights for 3 views"):
        view_weights([0.5, 0.5], 3)
    with pytest.raises(InvalidInputError, match="sum to 1"):
        view_weights([0.5, 0.6], 2)
    with pytest.raises(InvalidInputError,
                       match=r"mu must lie between 0 and 1 \(inclusive\), got 1.5"):
        view_weights(1.5, 2)
    with pytest.raises(InvalidInputError, match=r"mu\[1\] must be a finite number >= 0, got -0.1"):
        view_weights([1.1, -0.1], 2)
    assert view_weights(np.float64(0.8), 2) == view_weights(0.8, 2)
    assert view_weights(np.array([0.2, 0.3, 0.5]), 3) == [0.2, 0.3, 0.5]


# ---- the objective and its ablation switches ---------------------------------------------------
def _net_and_batch(n_views=2, seed=0):
    torch.manual_seed(seed)
    dims = (6, 5, 4)[:n_views]
    net = UJSAHNet(dims, 8, image_width=12, text_width=10, predictor_width=6,
                   image_decoder_depth=2, text_decoder_depth=1)
    batch = [torch.rand(10, d) for d in dims]
    return net, batch


def _capture(modules, what):
    store, handles = {}, []
    for i, module in enumerate(modules):
        def hook(mod, args, out, i=i):
            store[i] = (args[0] if what == "input" else out).detach().clone()
        handles.append(module.register_forward_hook(hook))
    return store, handles


LOSS_KW = dict(alpha=0.08, beta=18.0, gamma=200.0, delta=0.12, weights=[0.8, 0.2], eta=0.3)


def test_decoders_receive_the_predicted_codes_cross_modally():
    net, batch = _net_and_batch()
    enc_out, h1 = _capture(net.encoders, "output")
    pred_in, h2 = _capture(net.predictors, "input")
    pred_out, h3 = _capture(net.predictors, "output")
    dec_in, h4 = _capture(net.decoders, "input")
    ujsah_loss(net, batch, decode_from="predicted", **LOSS_KW)
    for h in h1 + h2 + h3 + h4:
        h.remove()
    # Eq. 4: the image code is predicted from the text code and vice versa ...
    assert torch.equal(pred_in[0], enc_out[1]) and torch.equal(pred_in[1], enc_out[0])
    # ... and Eq. 5: each decoder reconstructs its view from the predicted code.
    assert torch.equal(dec_in[0], pred_out[0]) and torch.equal(dec_in[1], pred_out[1])


def test_ujsah2_feeds_the_decoders_the_encoders_own_codes():
    net, batch = _net_and_batch()
    enc_out, h1 = _capture(net.encoders, "output")
    pred_out, h2 = _capture(net.predictors, "output")
    dec_in, h3 = _capture(net.decoders, "input")
    ujsah_loss(net, batch, decode_from="own", **LOSS_KW)
    for h in h1 + h2 + h3:
        h.remove()
    assert torch.equal(dec_in[0], enc_out[0]) and torch.equal(dec_in[1], enc_out[1])
    assert pred_out == {}, "UJSAH-2 must not run the prediction networks"


def test_m_view_predictor_input_is_the_mean_of_the_other_codes():
    net, batch = _net_and_batch(n_views=3)
    enc_out, h1 = _capture(net.encoders, "output")
    pred_in, h2 = _capture(net.predictors, "input")
    ujsah_loss(net, batch, **{**LOSS_KW, "weights": [0.4, 0.3, 0.3]})
    for h in h1 + h2:
        h.remove()
    torch.testing.assert_close(pred_in[1], (enc_out[0] + enc_out[2]) / 2)


def test_loss_is_eq8_with_entry_means():
    net, batch = _net_and_batch()
    total, parts = ujsah_loss(net, batch, **LOSS_KW)
    with torch.no_grad():
        Sv, St = similarity_matrices(batch)
        S = 0.7 * (0.8 * Sv + 0.2 * St) + 0.3 * Sv @ St.T / 10
        Zv, Zt = (torch.nn.functional.normalize(E(X), dim=1)
                  for E, X in zip(net.encoders, batch))
        mean = lambda A: float((A ** 2).mean())  # noqa: E731
        assert parts["cross"] == pytest.approx(mean(S - Zv @ Zt.T), rel=1e-5)
        assert parts["intra"] == pytest.approx(mean(S - Zv @ Zv.T) + mean(S - Zt @ Zt.T), rel=1e-5)
        assert parts["consistency"] == pytest.approx(mean(Zv - Zt), rel=1e-5)
    weighted = (0.08 * parts["cross"] + 18 * parts["intra"] + 200 * parts["consistency"]
                + 0.12 * parts["reconstruction"])
    assert total.item() == pytest.approx(weighted, rel=1e-5)


@pytest.mark.parametrize("n_views", [2, 3])
def test_alpha_weighs_only_the_cross_view_terms_and_beta_only_the_within_view_ones(n_views):
    """Eq. 8's placement, which mmhash keeps whatever the default values (issue 16: the
    authors' script has the two the other way round): alpha alone leaves the cross-view terms
    ||S - Zn^u Zn^w^T||, beta alone the within-view ones ||S - Zn^m Zn^m^T||."""
    net, batch = _net_and_batch(n_views)
    weights = [1.0 / n_views] * n_views
    off = dict(gamma=0.0, delta=0.0, weights=weights, eta=0.3)
    total_a, parts = ujsah_loss(net, batch, alpha=1.0, beta=0.0, **off)
    total_b, _ = ujsah_loss(net, batch, alpha=0.0, beta=1.0, **off)
    with torch.no_grad():
        S = joint_semantics(similarity_matrices(batch), weights, 0.3, True)
        Z = [torch.nn.functional.normalize(E(X), dim=1) for E, X in zip(net.encoders, batch)]
        mean = lambda A: float((A ** 2).mean())  # noqa: E731
        cross = sum(mean(S - Z[u] @ Z[w].T) for u in range(n_views) for w in range(u + 1, n_views))
        within = sum(mean(S - Zm @ Zm.T) for Zm in Z)
    assert total_a.item() == pytest.approx(cross, rel=1e-5) == pytest.approx(parts["cross"])
    assert total_b.item() == pytest.approx(within, rel=1e-5) == pytest.approx(parts["intra"])


def test_ujsah1_switch_means_eq1_only():
    train, query = _data()
    off = UJSAH(**TINY, joint_semantics=False, eta=0.3).fit(train)
    eta0 = UJSAH(**TINY, joint_semantics=True, eta=0.0).fit(train)
    full = UJSAH(**TINY, joint_semantics=True, eta=0.3).fit(train)
    X = query["image"]
    assert np.array_equal(off.encode(X, "image"), eta0.encode(X, "image")), (
        "joint_semantics=False must train on S~ exactly (same as eta=0)")
    assert not np.array_equal(off.encode(X, "image"), full.encode(X, "image"))


# ---- training, determinism, persistence --------------------------------------------------------
def test_loss_decreases_and_progress_runs_inside_the_thread_setting():
    train, _ = _data()
    seen = []
    before_threads = torch.get_num_threads()
    h = UJSAH(**{**TINY, "n_epochs": 6}).fit(
        train, progress=lambda e, n, m: seen.append((e, n, m["loss"], torch.get_num_threads())))
    assert [(e, n) for e, n, _, _ in seen] == [(i, 6) for i in range(1, 7)]
    assert all(t == 1 for *_, t in seen), "training must run with n_threads threads"
    assert torch.get_num_threads() == before_threads
    losses = [r["loss"] for r in h.history_]
    assert losses[-1] < 0.7 * losses[0], f"loss did not decrease: {losses}"
    assert h.best_epoch_ == 6


def test_same_seed_same_codes_other_seed_other_codes_and_global_rng_untouched():
    train, query = _data()
    torch.manual_seed(99)
    expected_next = torch.rand(2)
    torch.manual_seed(99)
    a = UJSAH(**TINY).fit(train)
    assert torch.equal(torch.rand(2), expected_next), "fit changed the global torch RNG"
    b = UJSAH(**TINY).fit(train)
    c = UJSAH(**{**TINY, "random_state": 1}).fit(train)
    for m, X in query.items():
        assert np.array_equal(a.encode(X, m), b.encode(X, m))
    assert not np.array_equal(a.encode(query["text"], "text"), c.encode(query["text"], "text"))


def test_save_load_gives_identical_codes_and_keeps_only_encoders(tmp_path):
    train, query = _data()
    h = UJSAH(**TINY).fit(train)
    path = tmp_path / "ujsah.npz"
    h.save(path)
    meta, arrays = read_saved(path)  # allow_pickle=False inside
    assert meta["name"] == "ujsah"
    assert arrays and all(k.startswith("torch__encoders.") for k in arrays)
    loaded = load_hasher(path)
    assert type(loaded) is UJSAH and loaded.get_params() == h.get_params()
    assert loaded.history_ == h.history_
    for m, X in query.items():
        assert np.array_equal(loaded.encode(X, m), h.encode(X, m))


def test_codes_do_not_depend_on_the_batch():
    train, query = _data()
    h = UJSAH(**TINY, dropout=0.3).fit(train)  # dropout must be off at encode
    for m, X in query.items():
        full = h.encode(X, m)
        assert np.array_equal(full, h.encode(X, m)), "encode is not repeatable"
        for i in range(len(X)):
            assert np.array_equal(full[i], h.encode(X[i:i + 1], m)[0]), f"{m} row {i}"
        assert np.array_equal(full[::-1], h.encode(X[::-1], m))


def test_three_views_fit_and_encode_every_view():
    train, query = _data(dims=(24, 16, 10))
    h = UJSAH(**{**TINY, "mu": [0.4, 0.3, 0.3]}).fit(train)
    assert list(train) == ["view0", "view1", "view2"] == h.modalities_
    for m, X in query.items():
        codes = h.encode(X, m)
        assert codes.shape == (len(X), 16) and codes.dtype == np.int8
        assert len(np.unique(codes, axis=0)) > 1, f"{m}: every item got the same code"
    with pytest.raises(InvalidInputError, match="2 weights for 3 views"):
        UJSAH(**{**TINY, "mu": [0.5, 0.5]}).fit(train)


def test_normalize_inputs_makes_the_hash_function_scale_free():
    train, query = _data()
    h = UJSAH(**TINY).fit(train)
    raw = UJSAH(**TINY, normalize_inputs=False).fit(train)
    X = query["image"]
    assert np.array_equal(h.encode(3.0 * X, "image"), h.encode(X, "image"))
    assert not np.array_equal(raw.encode(X, "image"), h.encode(X, "image"))
    assert not np.array_equal(raw.encode(30.0 * X, "image"), raw.encode(X, "image"))


def test_epoch_selection_on_held_out_training_rows():
    train, _ = _data()
    h = UJSAH(**{**TINY, "n_epochs": 4, "validation_fraction": 0.25}).fit(train)
    val = [r["val_loss"] for r in h.history_]
    assert h.best_epoch_ == int(np.argmin(val)) + 1
    again = UJSAH(**{**TINY, "n_epochs": 4, "validation_fraction": 0.25}).fit(train)
    assert [r["val_loss"] for r in again.history_] == val, "held-out rows must be seeded"


@pytest.mark.parametrize(("param", "value", "error", "match"), [
    ("decode_from", "decoded", InvalidInputError, "decode_from must be one of own, predicted"),
    ("optimizer", "rmsprop", InvalidInputError, "optimizer must be one of adam, sgd"),
    ("alpha", -1.0, InvalidInputError, "alpha must be"),
    ("eta", 1.5, InvalidInputError, "eta must lie between 0 and 1"),
    ("dropout", 1.0, InvalidInputError, "dropout must be"),
    ("batch_size", 1, InvalidInputError, "batch_size must be"),
    ("image_width", 0, InvalidInputError, "image_width must be"),
    ("learning_rate", 0.0, InvalidInputError, "learning_rate must be"),
    ("joint_semantics", "yes", InvalidInputError, "joint_semantics must be"),
    ("random_state", None, InvalidInputError, "random_state must be"),
])
def test_bad_parameters_raise_clear_errors(param, value, error, match):
    train, _ = _data()
    with pytest.raises(error, match=match):
        UJSAH(**{**TINY, param: value}).fit(train)


def _as_python(value):
    """The Python equivalent of a numpy scalar (or of a list of them)."""
    if isinstance(value, list):
        return [_as_python(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


# One tiny epoch: the point is that the values are accepted and used as their Python twins.
ONE_EPOCH = {**TINY, "n_epochs": 1}


@pytest.mark.parametrize(("param", "value"), [
    ("alpha", np.int64(1)), ("beta", np.float64(18.0)), ("gamma", np.int64(200)),
    ("delta", np.float64(0.12)), ("eta", np.float64(0.3)), ("eta", np.int64(1)),
    ("mu", np.float64(0.8)), ("mu", np.int64(1)), ("mu", [np.float64(0.5), np.float64(0.5)]),
    ("dropout", np.float64(0.2)), ("image_width", np.int64(32)), ("text_width", np.int64(24)),
    ("predictor_width", np.int64(16)), ("image_decoder_depth", np.int64(2)),
    ("text_decoder_depth", np.int64(1)), ("n_epochs", np.int64(1)), ("batch_size", np.int64(40)),
    ("learning_rate", np.float64(3e-3)), ("momentum", np.float64(0.9)),
    ("weight_decay", np.int64(0)), ("validation_fraction", np.float64(0.25)),
    ("n_threads", np.int64(1)), ("random_state", np.int64(0)), ("n_bits", np.int64(16)),
    ("joint_semantics", np.bool_(False)),
])
def test_numpy_scalars_are_accepted_like_python_numbers(param, value):
    train, query = _data()
    params = {**ONE_EPOCH, param: value}
    if param == "momentum":
        params["optimizer"] = "sgd"  # momentum is only used by SGD
    h = UJSAH(**params).fit(train)
    assert h.get_params()[param] is value, "parameters are stored as given"
    twin = UJSAH(**{**params, param: _as_python(value)}).fit(train)
    for m in ("image", "text"):
        assert np.array_equal(h.encode(query[m], m), twin.encode(query[m], m))


# {!r} is the value given: numpy's repr of its scalars changed in numpy 2.
@pytest.mark.parametrize(("param", "value", "message"), [
    ("alpha", True, "alpha must be a finite number >= 0, got {!r}"),
    ("beta", -1.0, "beta must be a finite number >= 0, got {!r}"),
    ("gamma", np.nan, "gamma must be a finite number >= 0, got {!r}"),
    ("delta", "0.12", "delta must be a finite number >= 0, got {!r}"),
    ("eta", np.float64(1.5), "eta must lie between 0 and 1 (inclusive), got {!r}"),
    ("dropout", 1, "dropout must be a finite number < 1, got {!r}"),
    ("mu", np.nan, "mu must lie between 0 and 1 (inclusive), got {!r}"),
    ("mu", True, "mu must be a number in [0, 1] or a list of one weight per view, got {!r}"),
    ("mu", [0.5, "0.5"], "mu[1] must be a finite number >= 0, got '0.5'"),
    ("learning_rate", np.int64(0), "learning_rate must be a finite number > 0, got {!r}"),
    ("momentum", -0.5, "momentum must be a finite number >= 0, got {!r}"),
    ("weight_decay", np.inf, "weight_decay must be a finite number >= 0, got {!r}"),
    ("validation_fraction", 1.0, "validation_fraction must be a finite number < 1, got {!r}"),
    ("n_epochs", 2.0, "n_epochs must be an integer >= 1, got {!r}"),
    ("batch_size", True, "batch_size must be an integer >= 2, got {!r}"),
    ("image_width", np.int64(0), "image_width must be an integer >= 1, got {!r}"),
    ("text_decoder_depth", None, "text_decoder_depth must be an integer >= 1, got {!r}"),
    ("predictor_width", -3, "predictor_width must be an integer >= 1, got {!r}"),
    ("joint_semantics", 1, "joint_semantics must be True or False, got {!r}"),
    ("normalize_inputs", "yes", "normalize_inputs must be True or False, got {!r}"),
    ("decode_from", "predicte",
     "decode_from must be one of own, predicted; got {!r} (did you mean 'predicted'?)"),
    ("optimizer", "Adam", "optimizer must be one of adam, sgd; got {!r}"),
    ("random_state", -1, "random_state must be an integer >= 0, got {!r}"),
    ("n_threads", 0, "n_threads must be a positive integer or None, got {!r}"),
])
def test_bad_values_are_refused_by_name_before_training(param, value, message, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(deep_hasher, "train_loop", no_training)
    train, _ = _data()
    with pytest.raises(InvalidInputError, match=re.escape(message.format(value))):
        UJSAH(**{**ONE_EPOCH, param: value}).fit(train)


# ---- import hygiene ----------------------------------------------------------------------------
def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


def test_import_mmhash_does_not_import_torch():
    out = _python("""
        import sys
        import mmhash, mmhash.base, mmhash.registry, mmhash.hashers
        mmhash.registry.hasher_names()
        print("torch" in sys.modules)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_registry_lists_ujsah_as_unavailable_without_torch():
    out = _python("""
        import sys
        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("No module named 'torch'")
        sys.meta_path.insert(0, NoTorch())
        from mmhash.registry import list_hashers
        info = {h.name: h for h in list_hashers()}["ujsah"]
        print(info.available)
        print(info.reason)
    """)
    assert out.returncode == 0, out.stderr
    available, reason = out.stdout.strip().splitlines()
    assert available == "False"
    assert "pip install 'mmhash[deep]'" in reason


def test_default_weights_are_the_authors_codes_weighting():
    """Issue 16: the defaults put 18 on the cross-view term and .08 on the within-view terms,
    as the authors' script does (the paper prints the two the other way round)."""
    hasher = UJSAH()
    assert (hasher.alpha, hasher.beta, hasher.gamma, hasher.delta) == (18.0, 0.08, 200.0, 0.12)
