"""UCMFH: the network, loss, step and evaluation against a restatement of the official code
(XinyuXia97/UCMFH@116f015), the per-view encoding and its fills, the code's batch-dependent
evaluation (and that mmhash's conformance check catches it), the heads' per-step schedule,
refusals, saving."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from mmhash_baselines.deep.ucmfh import (  # noqa: E402
    UCMFH,
    contrastive_loss,
    official_batched_codes,
)
from torch import nn  # noqa: E402

from mmhash.deep import TrainingState, run_updates  # noqa: E402
from mmhash.errors import InvalidInputError  # noqa: E402
from mmhash.testing.checks import check_no_batch_dependence, check_params  # noqa: E402

FAST = {"hidden_width": 64, "feedforward_width": 64, "batch_size": 64, "learning_rate": 1e-3,
        "n_threads": 1, "device": "cpu"}


# ---- the official code, restated (model.py:7-62, metric.py:5-23, ICMR.py:107-204) ----------
class RefFuseTrans(nn.Module):
    """FuseTransEncoder: TransformerEncoder(batch_first=False) with PyTorch's defaults, output
    L2-normalised, split at d_model / 2."""

    def __init__(self, num_layers, hidden_size, nhead):
        super().__init__()
        with warnings.catch_warnings():  # nested-tensor notice of the default encoder
            warnings.simplefilter("ignore")
            layer = nn.TransformerEncoderLayer(d_model=hidden_size, nhead=nhead,
                                               batch_first=False)
            self.transformerEncoder = nn.TransformerEncoder(encoder_layer=layer,
                                                            num_layers=num_layers)
        self.d_model, self.sigal_d = hidden_size, int(hidden_size / 2)

    def forward(self, tokens):
        x = F.normalize(self.transformerEncoder(tokens).reshape(-1, self.d_model), p=2, dim=1)
        return x[:, :self.sigal_d], x[:, self.sigal_d:]


class RefMlp(nn.Module):
    """ImageMlp / TextMlp: normalise, fc1 (4096), ReLU, Dropout(0.3), tohash, tanh, normalise."""

    def __init__(self, input_dim, hash_lens):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, 4096)
        self.relu = nn.ReLU(inplace=True)
        self.dp = nn.Dropout(0.3)
        self.tohash = nn.Linear(4096, hash_lens)
        self.tanh = nn.Tanh()

    def forward(self, x):
        x = F.normalize(x, p=2, dim=1)
        out = self.tanh(self.tohash(self.dp(self.relu(self.fc1(x)))))
        return F.normalize(out, p=2, dim=1)


def ref_contrastive(emb_i, emb_j, batch_size, temperature=0.5):
    """metric.py's ContrastiveLoss.forward, its fixed-size negatives mask included."""
    z_i, z_j = F.normalize(emb_i, dim=1), F.normalize(emb_j, dim=1)
    reps = torch.cat([z_i, z_j], dim=0)
    sim = F.cosine_similarity(reps.unsqueeze(1), reps.unsqueeze(0), dim=2)
    positives = torch.cat([torch.diag(sim, batch_size), torch.diag(sim, -batch_size)])
    nominator = torch.exp(positives / temperature)
    mask = (~torch.eye(batch_size * 2, batch_size * 2, dtype=bool)).float()
    denominator = mask * torch.exp(sim / temperature)
    return torch.sum(-torch.log(nominator / torch.sum(denominator, dim=1))) / (2 * batch_size)


def ref_modules(d_half, n_bits):
    """The code's modules in its order of creation (ICMR.py:30-32)."""
    return RefFuseTrans(2, 2 * d_half, 4), RefMlp(d_half, n_bits), RefMlp(d_half, n_bits)


def load_ref(encoders, fuse, image_mlp, text_mlp):
    """Copy our encoders' weights into the restated modules (names mapped)."""
    fuse.transformerEncoder.load_state_dict(encoders[2].transformer.state_dict())
    for ours, ref in ((encoders[0].head, image_mlp), (encoders[1].head, text_mlp)):
        ref.fc1.load_state_dict(ours[1].state_dict())
        ref.tohash.load_state_dict(ours[4].state_dict())


def _t(X):
    return torch.from_numpy(np.asarray(X, dtype=np.float64))


# ---- loss ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "k", "temperature"), [(5, 8, 0.5), (12, 3, 0.5), (7, 16, 0.2)])
def test_contrastive_loss_is_the_codes_nt_xent(n, k, temperature):
    rng = np.random.default_rng(n)
    a, b = _t(rng.standard_normal((n, k))), _t(rng.standard_normal((n, k)))
    expected = ref_contrastive(a, b, n, temperature)
    assert float(contrastive_loss(a, b, temperature)) == pytest.approx(float(expected),
                                                                        abs=1e-12)
    # and a loop: the partner stays in the denominator, only j = i leaves it
    z = np.vstack([a.numpy(), b.numpy()])
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    S = z @ z.T / temperature
    loop = np.mean([np.log(sum(np.exp(S[i, j]) for j in range(2 * n) if j != i))
                    - S[i, (i + n) % (2 * n)] for i in range(2 * n)])
    assert float(contrastive_loss(a, b, temperature)) == pytest.approx(loop, abs=1e-12)


# ---- network and one training step against the code -----------------------------------------
def test_network_initialises_and_steps_as_the_official_code():
    d_half, n_bits = 8, 8
    hasher = UCMFH(n_bits=n_bits, n_threads=1, device="cpu")
    torch.manual_seed(5)
    net = hasher._build_model([d_half, d_half])
    torch.manual_seed(5)
    fuse, image_mlp, text_mlp = ref_modules(d_half, n_bits)
    ours = [p for m in (net.fusion, net.encoders[0].head, net.encoders[1].head)
            for p in m.parameters()]
    theirs = [p for m in (fuse, image_mlp, text_mlp) for p in m.parameters()]
    assert len(ours) == len(theirs)
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)  # same draws, same order: the code's initialisation
    layer = net.fusion.transformer.layers[0]
    assert (layer.self_attn.num_heads, layer.linear1.out_features, layer.dropout.p,
            layer.norm_first, layer.self_attn.batch_first) == (4, 2048, 0.1, False, False)
    assert len(net.fusion.transformer.layers) == 2

    # One step of trainhash (ICMR.py:176-203) from the same start, same dropout draws (in
    # float64, so that the two ways of writing the loss agree to round-off).
    for m in (net, fuse, image_mlp, text_mlp):
        m.double()
    rng = np.random.default_rng(0)
    image, text = (torch.from_numpy(rng.standard_normal((6, d_half))) for _ in range(2))
    fuse.train(), image_mlp.train(), text_mlp.train()
    torch.manual_seed(11)
    f_i, f_t = fuse(torch.concat((image, text), dim=1).unsqueeze(0))
    loss1 = ref_contrastive(f_i, f_t, 6)
    loss = loss1 + ref_contrastive(image_mlp(f_i), text_mlp(f_t), 6) * 0.5
    optimizers = [torch.optim.Adam(list(m.parameters()), lr=lr, betas=(0.5, 0.999))
                  for m, lr in ((fuse, 1e-4), (image_mlp, 1e-3), (text_mlp, 1e-3))]
    for opt in optimizers:
        opt.zero_grad()
    loss.backward()
    for opt in optimizers:
        opt.step()

    state = TrainingState(net, [image.numpy(), text.numpy()], np.arange(6),
                          np.empty(0, dtype=np.int64), 0, torch.device("cpu"))
    hasher._begin_training(state)
    defaults = {"optimizer": "adam", "learning_rate": 1e-4, "momentum": 0.9,
                "weight_decay": 0.0}
    state.optimizers = {k: p.build(defaults) for k, p in hasher._parts(state).items()}
    group_rates = [g["lr"] for g in state.optimizers["model"].param_groups]
    assert group_rates == [1e-4, 1e-3, 1e-3]
    assert state.optimizers["model"].defaults["betas"] == (0.5, 0.999)
    net.train()
    torch.manual_seed(11)
    ours_loss, _ = run_updates(hasher._updates(state, [image, text]), state.optimizers, {},
                               name="UCMFH")
    assert ours_loss == pytest.approx(float(loss.detach()), rel=1e-6)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-9,
                                   atol=1e-12)


def test_official_batched_codes_are_the_codes_evaluation(wide_data):
    views, _ = wide_data.part("train")
    hasher = UCMFH(n_bits=16, n_epochs=2, standardize=False, **FAST).fit(views)
    fuse, image_mlp, text_mlp = ref_modules(32, 16)
    hasher_params = {**FAST, "hidden_width": 4096, "feedforward_width": 2048}
    big = UCMFH(n_bits=16, n_epochs=1, standardize=False, **hasher_params).fit(views)
    load_ref(big._encoders, fuse, image_mlp, text_mlp)
    for m in (fuse, image_mlp, text_mlp):
        m.double().eval()
    query, _ = wide_data.part("query")
    image, text = query["image"], query["text"]
    # ICMR.py:107-151 with a loader of 16 rows, drop_last=True.
    codes = [[], []]
    with torch.no_grad():
        for start in range(0, len(image) - len(image) % 16, 16):
            tokens = torch.concat((_t(image[start:start + 16]), _t(text[start:start + 16])),
                                  dim=1)
            f_i, f_t = fuse(tokens)
            codes[0].extend(np.sign(image_mlp(f_i).numpy()))
            codes[1].extend(np.sign(text_mlp(f_t).numpy()))
    got = official_batched_codes(big, image, text, 16, drop_last=True)
    for ours, theirs in zip(got, codes):
        assert ours.shape == (len(image) - len(image) % 16, 16) and ours.dtype == np.int8
        np.testing.assert_array_equal(ours, np.array(theirs, dtype=np.int8))
    # without drop_last the last partial batch is encoded too
    assert official_batched_codes(hasher, image, text, 16)[0].shape == (len(image), 16)


# ---- per-view encoding -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(wide_data):
    views, _ = wide_data.part("train")
    return UCMFH(n_bits=16, n_epochs=10, standardize=False, **FAST).fit(views)


def test_each_view_is_encoded_with_the_other_views_training_mean(wide_data, fitted):
    views, _ = wide_data.part("train")
    np.testing.assert_allclose(fitted.fill0_, views["image"].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(fitted.fill1_, views["text"].mean(axis=0), rtol=1e-6)
    query, _ = wide_data.part("query")
    image_encoder, text_encoder, fusion = fitted._scorers
    with torch.no_grad():
        for X, other, view, encoder in ((query["image"], fitted.fill1_, 0, image_encoder),
                                        (query["text"], fitted.fill0_, 1, text_encoder)):
            fill = np.broadcast_to(other, (len(X), len(other)))
            token = np.hstack([X, fill] if view == 0 else [fill, X])
            halves = fusion(_t(token).unsqueeze(0))  # one-token sequences
            expected = np.where(encoder.head(halves[view]).numpy() >= 0, 1, -1)
            modality = ("image", "text")[view]
            np.testing.assert_array_equal(fitted.encode(X, modality), expected)


def test_missing_view_zero_fills_zeros(wide_data):
    views, _ = wide_data.part("train")
    mean = UCMFH(n_bits=16, n_epochs=2, standardize=False, **FAST).fit(views)
    zero = UCMFH(n_bits=16, n_epochs=2, standardize=False, missing_view="zero",
                 **FAST).fit(views)
    assert not zero.fill0_.any() and not zero.fill1_.any()
    assert not zero._scorers[0].fill.any() and not zero._scorers[1].fill.any()
    # training does not read the fill: the networks are the same, only the encoding differs
    for p, q in zip(mean._encoders.parameters(), zero._encoders.parameters()):
        assert torch.equal(p, q)
    X = views["image"]
    assert not np.array_equal(mean.encode(X, "image"), zero.encode(X, "image"))


def test_standardised_views_are_filled_with_their_standardised_mean(wide_data):
    views, _ = wide_data.part("train")
    h = UCMFH(n_bits=16, n_epochs=1, standardize=True, **FAST).fit(views)
    assert np.abs(h.fill0_).max() < 1e-5 and np.abs(h.fill1_).max() < 1e-5


# ---- batch dependence: the code's evaluation vs mmhash's encode ------------------------------
def test_the_codes_evaluation_depends_on_the_batch_and_encode_does_not(wide_data, fitted):
    items, _ = wide_data.part("retrieval")
    image, text = items["image"][:64], items["text"][:64]
    a = official_batched_codes(fitted, image, text, 32)
    order = np.r_[np.arange(16), np.arange(32, 48), np.arange(16, 32), np.arange(48, 64)]
    b = official_batched_codes(fitted, image[order], text[order], 32)
    # rows 0-15 are in a batch with rows 16-31 in a, with rows 32-47 in b
    for view in (0, 1):
        differs = (a[view][:16] != b[view][:16]).any(axis=1)
        assert differs.sum() >= 4, differs  # the same items, other codes
    singles = official_batched_codes(fitted, image, text, 1)
    assert (singles[0] != a[0]).any()
    for modality, X in (("image", image), ("text", text)):
        codes = fitted.encode(X, modality)
        np.testing.assert_array_equal(fitted.encode(X[order], modality), codes[order])
        np.testing.assert_array_equal(np.vstack([fitted.encode(X[i:i + 1], modality)
                                                 for i in range(len(X))]), codes)


def test_one_item_batches_with_the_fill_are_mmhash_codes(wide_data, fitted):
    query, _ = wide_data.part("query")
    image = query["image"]
    mean_text = np.broadcast_to(fitted.fill1_, (len(image), len(fitted.fill1_)))
    image_codes, _ = official_batched_codes(fitted, image, mean_text, 1)
    np.testing.assert_array_equal(image_codes, fitted.encode(image, "image"))


class BatchedUCMFH(UCMFH):
    """UCMFH whose per-view encode feeds the rows of a call as ONE sequence, the code's
    evaluation batching (the other half still the fill): what the conformance suite must
    catch."""

    def _encode(self, X, modality):
        i = self.modalities_.index(modality)
        encoder = self._scorers[i]
        with torch.no_grad():
            return encoder.score(encoder.tokens(_t(self._standardised(X, i)))).numpy()


def test_the_conformance_check_catches_the_codes_batching():
    with pytest.raises(AssertionError, match="differs when encoded alone"):
        check_no_batch_dependence(BatchedUCMFH, check_params(UCMFH))
    check_no_batch_dependence(UCMFH, check_params(UCMFH))


def test_query_and_key_weights_change_mmhash_codes_never_the_codes_evaluation(wide_data,
                                                                             fitted):
    # One-token attention is the value projection: the query / key weights play no part.
    import copy

    query, _ = wide_data.part("query")
    perturbed = copy.deepcopy(fitted)
    assert perturbed._scorers[0].fusion is perturbed._scorers[2]
    d = perturbed._scorers[2].d_model
    with torch.no_grad():
        for layer in perturbed._scorers[2].transformer.layers:
            layer.self_attn.in_proj_weight[:2 * d] += 0.5 * torch.randn(2 * d, d,
                                                                        dtype=torch.float64)
    for modality in ("image", "text"):
        np.testing.assert_array_equal(perturbed.encode(query[modality], modality),
                                      fitted.encode(query[modality], modality))
    a = official_batched_codes(fitted, query["image"], query["text"], 32)
    b = official_batched_codes(perturbed, query["image"], query["text"], 32)
    assert (a[0] != b[0]).any()


# ---- training --------------------------------------------------------------------------------
@pytest.mark.parametrize(("schedule", "rates"), [
    ("mirflickr", {29: 1e-3, 30: 1.2e-3, 79: 1.2e-3, 80: 1.44e-3, 200: 1.44e-3}),
    ("mscoco", {199: 1e-3, 200: 6e-4}),
    ("constant", {100: 1e-3}),
])
def test_the_heads_rate_follows_the_codes_per_step_schedule(schedule, rates):
    # MultiStepLR.step() after every batch (ICMR.py:202-203): milestones count steps.
    h = UCMFH(n_bits=8, lr_schedule=schedule, hidden_width=8, feedforward_width=8,
              n_threads=1, device="cpu")
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((4, 4)) for _ in range(2)]
    net = h._build_model([4, 4])
    state = TrainingState(net, arrays, np.arange(4), np.empty(0, dtype=np.int64), 0,
                          torch.device("cpu"))
    h._begin_training(state)
    defaults = {"optimizer": "adam", "learning_rate": 1e-4, "momentum": 0.9,
                "weight_decay": 0.0}
    state.optimizers = {k: p.build(defaults) for k, p in h._parts(state).items()}
    batch = [torch.from_numpy(X.astype(np.float32)) for X in arrays]
    for step in range(1, max(rates) + 1):
        run_updates(h._updates(state, batch), state.optimizers, {}, name="UCMFH")
        if step in rates:
            groups = state.optimizers["model"].param_groups
            assert groups[0]["lr"] == 1e-4  # the transformer's rate never changes
            assert [g["lr"] for g in groups[1:]] == pytest.approx([rates[step]] * 2), step


def test_trains_on_every_row_the_last_batch_smaller(wide_data):
    sizes = []

    class Counting(UCMFH):
        def _updates(self, state, batch):
            sizes.append(len(batch[0]))
            return (yield from super()._updates(state, batch))

    views, _ = wide_data.part("train")
    n = len(views["image"])
    Counting(n_bits=16, n_epochs=1, **FAST).fit(views)
    assert sum(sizes) == n and sizes[-1] == n % 64 and n % 64 > 1


def test_cross_modal_retrieval_beats_random_projection(wide_data, fitted, cross_modal_maps,
                                                       random_floor):
    ucmfh, rp = cross_modal_maps(fitted, wide_data), random_floor(wide_data)
    assert min(ucmfh) > max(rp) + 0.05, (ucmfh, rp)
    losses = [r["loss"] for r in fitted.history_]
    assert losses[-1] < losses[0], losses


def test_held_out_selection_and_determinism(wide_data):
    views, _ = wide_data.part("train")
    a = UCMFH(n_bits=16, n_epochs=3, validation_fraction=0.2, **FAST).fit(views)
    b = UCMFH(n_bits=16, n_epochs=3, validation_fraction=0.2, **FAST).fit(views)
    assert all("val_loss" in r for r in a.history_)
    assert a.best_epoch_ == min(a.history_, key=lambda r: r["val_loss"])["epoch"]
    for m in ("image", "text"):
        assert np.array_equal(a.encode(views[m], m), b.encode(views[m], m))


def test_save_load_keeps_one_shared_transformer(tmp_path, wide_data, fitted):
    from mmhash.base import read_saved
    from mmhash.registry import load_hasher

    path = tmp_path / "ucmfh.npz"
    fitted.save(path)
    _, arrays = read_saved(path)
    transformer = [k for k in arrays if ".transformer." in k]
    assert transformer and all(k.startswith("torch__encoders.2.") for k in transformer)
    loaded = load_hasher(path)
    encoders = loaded._scorers
    assert encoders[0].fusion is encoders[2] and encoders[1].fusion is encoders[2]
    np.testing.assert_array_equal(loaded.fill0_, fitted.fill0_)
    query, _ = wide_data.part("query")
    for m in ("image", "text"):
        np.testing.assert_array_equal(loaded.encode(query[m], m), fitted.encode(query[m], m))
    np.testing.assert_array_equal(
        official_batched_codes(loaded, query["image"], query["text"], 32)[1],
        official_batched_codes(fitted, query["image"], query["text"], 32)[1])


# ---- refusals --------------------------------------------------------------------------------
def test_refuses_a_token_the_heads_do_not_divide(data, wide_data):
    import re

    views, _ = data.part("train")  # 30 + 20 = 50 features
    with pytest.raises(InvalidInputError, match=r"n_heads=4 does not divide .* 50 features") \
            as info:
        UCMFH(n_bits=8, **FAST).fit(views)
    message = str(info.value)
    assert "(1, 2, 5, 10, 25, 50)" in message and "\n" not in message
    # the standard-size test's form of a refusal: NAME=VALUE and how to move it
    assert re.search(r"\w+=\d", message) and "raise" in message
    h = UCMFH(n_bits=8, n_heads=2, n_epochs=1, **FAST).fit(views)
    assert h.encode(views["text"], "text").shape == (len(views["text"]), 8)


def test_refuses_an_odd_token(wide_data):
    views, _ = wide_data.part("train")
    odd = {"image": views["image"], "text": views["text"][:, :-1]}  # 40 + 23
    with pytest.raises(InvalidInputError, match="63 is odd"):
        UCMFH(n_bits=8, n_heads=1, **FAST).fit(odd)


@pytest.mark.parametrize("bad", [
    {"missing_view": "median"}, {"lr_schedule": "nus"}, {"n_layers": 0}, {"n_heads": 0},
    {"feedforward_width": 0}, {"hidden_width": 0}, {"dropout": 1.0}, {"fusion_dropout": -0.1},
    {"temperature": 0}, {"hash_weight": -1}, {"mlp_learning_rate": 0}, {"adam_beta1": 1.0},
    {"standardize": "sometimes"}, {"validation_fraction": 1.0}, {"n_epochs": 0},
])
def test_refuses_bad_parameters(wide_data, assert_refused, bad):
    views, _ = wide_data.part("train")
    assert_refused(UCMFH, views, **bad)


def test_default_widths_are_the_codes():
    net = UCMFH(n_bits=16)._build_model([512, 512])
    head = net.encoders[0].head
    assert [m.out_features for m in head if isinstance(m, nn.Linear)] == [4096, 16]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.3]
    assert head[1].in_features == 512 and net.fusion.d_model == 1024
