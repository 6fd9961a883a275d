"""DAEH: the discriminative similarity, the mutual information and the losses against numpy /
scipy transcriptions of the official code (reresearcher/DAEH @ 97b8ff1), the networks, one step
against the code's three optimisers, training, refusals, determinism."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
scipy_distance = pytest.importorskip("scipy.spatial.distance")
from mmhash_baselines.deep.daeh import (  # noqa: E402
    DAEH,
    DAEHNet,
    attribute_loss,
    bin_edges,
    cross_loss,
    daeh_loss,
    daeh_similarity,
    distance_mode,
    gaussian_gram,
    mirrored_widths,
    renyi_mutual_information,
    tri_loss,
)
from scipy.stats import norm  # noqa: E402

from mmhash.deep import TrainingState, run_updates  # noqa: E402
from mmhash.errors import InvalidInputError  # noqa: E402

SMALL = {"image_width": 64, "text_width": 64, "n_epochs": 8, "batch_size": 32,
         "learning_rate": 0.05, "n_threads": 1}


def _t(X):
    return torch.from_numpy(np.asarray(X, dtype=np.float64))


# ---- the official similarity, transcribed (daeh.py:449-527) ----------------------------------
def _code_mode(cos_dist):
    """daeh.py:501-509, line by line."""
    max_cnt, max_cos = 0, 0
    interval = 1. / 100
    cur = 0
    for _ in range(100):
        cur_cnt = np.sum((cos_dist > cur) & (cos_dist < cur + interval))
        if max_cnt < cur_cnt:
            max_cnt = cur_cnt
            max_cos = cur
        cur += interval
    return max_cos


def _code_fit(cos_dist, max_cos):
    """daeh.py:512-522: mirror each half about max_cos, norm.fit."""
    flat = cos_dist.reshape((-1, 1))
    left = flat[np.where(flat <= max_cos)[0]]
    right = flat[np.where(flat > max_cos)[0]]
    left = np.concatenate([left, 2 * max_cos - left])
    right = np.concatenate([2 * max_cos - right, right])
    return norm.fit(left), norm.fit(right)


def _code_similarity(vgg, texts, alpha, beta, a1, near=1.0, far=5.0):
    """distance_fusion + generate_similarity_matrix (daeh.py:449-527), labels left out (the
    code computes their agreement and never uses it)."""
    cos_dist = scipy_distance.squareform(scipy_distance.pdist(vgg, metric="cosine"))
    max_cos = _code_mode(cos_dist)
    (left_mean, left_std), (right_mean, right_std) = _code_fit(cos_dist, max_cos)
    Svgg = ((cos_dist < (left_mean - alpha * left_std)) * 1.0
            + (cos_dist > (right_mean + beta * right_std)) * -1.0)
    ptexts = scipy_distance.squareform(scipy_distance.pdist(texts, metric="euclidean"))
    Stxt = np.zeros_like(ptexts)
    Stxt[ptexts <= near] = 1
    Stxt[ptexts >= far] = -1
    Snear = 1.0 * (Svgg + Stxt == 2)
    Sfar = -1.0 * (((Svgg == -1) + (Stxt == -1)) > 0)
    S = Snear + Sfar
    I = (((S == 1.0) + (S == -1.0)) == 1)  # noqa: E741 - the code's name
    F_I = vgg / np.linalg.norm(vgg, axis=1, keepdims=True)
    F_T = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    S_pair = a1 * (F_T @ F_T.T) + (1 - a1) * (F_I @ F_I.T)
    S_pair = S_pair * 2.0 - 1
    S_pair[I == 1] = 0
    return S_pair + S


def _pairs(seed=0, n=40):
    """Non-negative image features (fc7-like) and 0/1 tag vectors with near-duplicates, so that
    text-near (one tag apart) and text-far (25 tags apart) pairs both occur."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, n)
    vgg = rng.random((n, 12))
    tags = (rng.random((4, 60)) < 0.3)[group].astype(float)
    flip = rng.random((n, 60)) < 0.04
    texts = np.abs(tags - flip)
    vgg[1] = vgg[0] * 1.01  # image-near duplicates of item 0
    vgg[2] = vgg[0] + 0.01
    texts[1] = texts[0]
    texts[2] = texts[0]
    texts[2, 0] = 1 - texts[2, 0]  # one tag apart from item 0
    return vgg, texts


def test_bin_edges_are_the_codes_accumulated_edges():
    edges, cur = bin_edges(), 0
    assert len(edges) == 101 and edges[0] == 0.0
    for i in range(100):
        cur += 1. / 100
        assert edges[i + 1] == cur  # the same float, not i / 100
    assert edges[6] != 0.06 and edges[100] > 1.0  # accumulated: 0.060000000000000005, ...


def test_mode_counts_open_bins_like_the_code():
    edges = bin_edges()
    # Values exactly on an edge count in no bin; outside (0, 1) never; the first fullest wins.
    values = np.array([edges[5]] * 9 + [0.0] * 9 + [1.5] * 9 + [0.052, 0.055, 0.071, 0.073,
                                                                 0.35])
    assert _code_mode(values) == edges[5] == distance_mode(_t(values))
    assert distance_mode(_t(np.array([0.0, edges[7], 2.0]))) == 0.0  # nothing counted
    # The last edge is 1.0000000000000007: a distance of exactly 1 falls in the last bin.
    ones = np.array([1.0, 1.0, 0.5])
    assert distance_mode(_t(ones)) == _code_mode(ones) == edges[99]
    vgg, _ = _pairs()
    D = scipy_distance.squareform(scipy_distance.pdist(vgg, metric="cosine"))
    assert distance_mode(_t(D)) == _code_mode(D)


def test_mirrored_widths_are_the_codes_normal_fits():
    vgg, _ = _pairs(1)
    D = scipy_distance.squareform(scipy_distance.pdist(vgg, metric="cosine"))
    mode = _code_mode(D)
    (lm, ls), (rm, rs) = _code_fit(D, mode)
    assert lm == pytest.approx(mode, abs=1e-12) and rm == pytest.approx(mode, abs=1e-12)
    assert mirrored_widths(_t(D), mode) == pytest.approx((ls, rs), rel=1e-9)
    left, right = mirrored_widths(_t(np.array([0.0, 0.0])), 0.0)
    assert left == 0.0 and np.isnan(right)  # an empty half: NaN, as norm.fit of nothing


@pytest.mark.parametrize("alpha, beta, a1", [(2.0, 2.0, 0.3), (0.5, 1.0, 0.6)])
def test_similarity_matches_the_codes_distance_fusion(alpha, beta, a1):
    vgg, texts = _pairs()
    expected = _code_similarity(vgg, texts, alpha, beta, a1)
    got = daeh_similarity(_t(vgg), _t(texts), alpha=alpha, beta=beta, text_near=1.0,
                          text_far=5.0, text_weight=a1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(got, got.T, atol=1e-12)
    off = ~np.eye(len(got), dtype=bool)
    assert (got[off] == 1).any() and (got[off] == -1).any()
    assert ((got[off] != 1) & (got[off] != -1)).any()  # fused cosines elsewhere


def test_similarity_thresholds_are_parameters():
    vgg, texts = _pairs(2)
    for near, far in ((0.0, 3.0), (2.0, 4.5)):
        expected = _code_similarity(vgg, texts, 1.0, 1.0, 0.3, near=near, far=far)
        got = daeh_similarity(_t(vgg), _t(texts), alpha=1.0, beta=1.0, text_near=near,
                              text_far=far, text_weight=0.3).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_similarity_of_all_zero_rows_is_finite():
    vgg, texts = _pairs(3)
    vgg[5] = 0.0
    texts[6] = 0.0
    S = daeh_similarity(_t(vgg), _t(texts), alpha=2.0, beta=2.0, text_near=1.0, text_far=5.0,
                        text_weight=0.3)
    assert torch.isfinite(S).all()


# ---- mutual information (model_loader.py:9-43) -----------------------------------------------
def _official_kernel(X, sigma):
    """The official port's guassianMatrix (model_loader.py:9-16): diag(G) repeated as rows,
    subtracted twice."""
    G = X @ X.T
    K = 2 * G - torch.diag(G, 0).repeat(X.size(0), 1)
    return torch.exp((1 / (2 * sigma * sigma)) * (K - torch.diag(G, 0).repeat(X.size(0), 1)))


def _estimator_mi(X, Y, sigma=1.0, alpha=2.0):
    """The matrix-based Renyi estimator the code ports, with the numpy original's kernel
    (``- diag(G)`` once as a row, once as a column) and eigenvalues as the code takes them."""
    def gram(Z):
        G = Z @ Z.T
        K = 2 * G - np.diag(G).reshape((-1, 1)).T
        return np.exp((1 / (2 * sigma ** 2)) * (K - np.diag(G).reshape((-1, 1))))

    def entropy(A):
        lam = np.abs(np.linalg.eig(A)[0])
        return (1 / (1 - alpha)) * np.log(np.sum(lam ** alpha))

    n = X.shape[0]
    K_x, K_y = gram(X) / n, gram(Y) / n
    return entropy(K_x) + entropy(K_y) - entropy(K_x * K_y * n)


def test_kernel_is_the_gaussian_kernel_and_fixes_the_port():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 3))
    K = gaussian_gram(_t(X), 0.8).numpy()
    sq = scipy_distance.squareform(scipy_distance.pdist(X, "sqeuclidean"))
    np.testing.assert_allclose(K, np.exp(-sq / (2 * 0.8 ** 2)), rtol=1e-12)
    official = _official_kernel(_t(X), 0.8).numpy()
    assert not np.allclose(official, official.T)  # the port's bug: not even symmetric
    np.testing.assert_allclose(np.diag(official), 1.0)  # ... though its diagonal is right


def test_mutual_information_matches_the_estimator():
    rng = np.random.default_rng(5)
    S = rng.uniform(-1, 1, (9, 9))
    codes = np.tanh(rng.standard_normal((9, 4)))
    for X, Y in ((S, codes), (0.3 * codes, codes + 0.1)):
        assert float(renyi_mutual_information(_t(X), _t(Y))) == pytest.approx(
            _estimator_mi(X, Y), rel=1e-9, abs=1e-12)


# ---- losses ----------------------------------------------------------------------------------
def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _code_cross(a, b, S, K=1.5):
    """cross_loss (daeh.py:64-82) with numpy loops."""
    A, B = _unit(a), _unit(b)
    n = len(S)
    AB = A @ B.T
    pair = np.mean([(AB[i, i] - K) ** 2 for i in range(n)])
    dis = np.mean([[0.0 if i == j else (AB[i, j] - S[i, j]) ** 2 for j in range(n)]
                   for i in range(n)])
    cons = np.mean((B @ B.T - A @ A.T) ** 2)
    return pair + dis + cons


def _code_tri(f, g, t, S, w_s, w_t):
    """tri_loss (daeh.py:22-63) as the sum of the code's nine terms."""
    return w_s * _code_cross(f, g, S) + w_t * (_code_cross(f, t, S) + _code_cross(g, t, S))


@pytest.fixture
def batch():
    rng = np.random.default_rng(6)
    b, k = 7, 8
    return {"f": np.tanh(rng.standard_normal((b, k))), "g": np.tanh(rng.standard_normal((b, k))),
            "t": np.tanh(rng.standard_normal((b, k))), "r": np.tanh(rng.standard_normal((b, k))),
            "a": np.maximum(rng.standard_normal((b, 5)), 0), "x": rng.random((b, 5)),
            "S": rng.uniform(-1, 1, (b, b))}


def test_tri_and_cross_losses_match_the_code(batch):
    f, g, t, S = batch["f"], batch["g"], batch["t"], batch["S"]
    got = tri_loss(_t(f), _t(g), _t(t), _t(S), student_weight=4.0, teacher_weight=0.7)
    assert float(got) == pytest.approx(_code_tri(f, g, t, S, 4.0, 0.7), rel=1e-12)
    assert float(cross_loss(_t(t), _t(g), _t(S))) == pytest.approx(_code_cross(t, g, S),
                                                                   rel=1e-12)


def test_attribute_loss_is_the_codes_summed_squares(batch):
    t, r, a, x = batch["t"], batch["r"], batch["a"], batch["x"]
    expected = (np.sum((r - t) ** 2) + np.sum((a - x) ** 2)) / len(t)  # daeh.py:219-223
    assert float(attribute_loss(_t(t), _t(a), _t(r), _t(x))) == pytest.approx(expected,
                                                                             rel=1e-12)


@pytest.mark.parametrize("image_leads", [True, False])
def test_objective_enhances_the_side_with_less_information(batch, image_leads):
    f, g, t, r, a, x, S = (batch[key] for key in "fgtraxS")
    if not image_leads:
        f, g = g, f
    mi_f, mi_g = _estimator_mi(S, f), _estimator_mi(S, g)
    assert mi_f != mi_g  # swapping the two sides (the parameter) swaps the branch
    leads = mi_f > mi_g
    cross = _code_cross(t, g, S) if leads else _code_cross(f, t, S)  # daeh.py:235-242
    att = (np.sum((r - t) ** 2) + np.sum((a - x) ** 2)) / len(t)
    expected = _code_tri(f, g, t, S, 4.0, 1.0) + 1e-3 * att + 0.1 * cross
    total, parts = daeh_loss(_t(f), _t(g), (_t(t), _t(a), _t(r)), _t(x), _t(S),
                             student_weight=4.0, teacher_weight=1.0, enhance_weight=0.1,
                             attribute_weight=1e-3)
    assert float(total) == pytest.approx(expected, rel=1e-12)
    assert parts["image_leads"] == float(leads)
    assert parts["enhance"] == pytest.approx(cross, rel=1e-12)


# ---- networks and the step -------------------------------------------------------------------
def _nets(seed=0, dims=(6, 4)):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DAEHNet(list(dims), 8, image_width=16, text_width=16, teacher_width=0,
                       dropout=0.0, text_init_std=0.3).double()


def test_networks_are_the_codes_layers():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = DAEHNet([30, 20], 64, image_width=4096, text_width=4096, teacher_width=0,
                      dropout=0.5, text_init_std=0.3)
    linear = [[m for m in e if isinstance(m, torch.nn.Linear)] for e in net.encoders]
    assert [(m.in_features, m.out_features) for m in linear[0]] == [(30, 4096), (4096, 64)]
    assert [(m.in_features, m.out_features) for m in linear[1]] == [(20, 4096), (4096, 64)]
    assert float(linear[1][-1].weight.detach().std()) == pytest.approx(0.3, rel=0.02)  # :235
    assert float(linear[0][-1].weight.detach().std()) < 0.02  # PyTorch's default
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in net.encoders[0])
    # teacher: ReLU -> Linear(d_I, k) -> Tanh; k -> 256 -> 512 -> d_I (ReLU); d_I -> 512 ->
    # 256 -> k (Tanh) (model_loader.py:139-159)
    sizes = [(m.in_features, m.out_features) for m in net.teacher.modules()
             if isinstance(m, torch.nn.Linear)]
    assert sizes == [(30, 64), (64, 256), (256, 512), (512, 30), (30, 512), (512, 256),
                     (256, 64)]
    assert isinstance(net.teacher.hash_layer[0], torch.nn.ReLU)
    code, att, rec = net.teacher(torch.randn(3, 30))
    assert code.shape == rec.shape == (3, 64) and att.shape == (3, 30) and (att >= 0).all()


def test_step_is_the_codes_three_optimisers():
    """One SGD over every network, stepped on the loss, equals the code's three SGDs with equal
    settings (daeh.py:153-156, 246-254)."""
    rng = np.random.default_rng(7)
    X_I, X_T = _t(rng.random((7, 6))), _t(rng.random((7, 4)))
    S = _t(rng.uniform(-1, 1, (7, 7)))
    sgd = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
    hasher = DAEH()

    ours = _nets()
    state = TrainingState(ours, [], np.arange(7), np.arange(0), 0, torch.device("cpu"))
    state.S, state.image_leads = S, []
    state.optimizers = {"model": torch.optim.SGD(ours.parameters(), **sgd)}
    batch = [X_I, X_T, torch.arange(7)]
    for _ in range(2):  # momentum matters from the second step on
        run_updates(hasher._updates(state, batch), state.optimizers, {}, name="DAEH")
    assert len(state.image_leads) == 2

    ref = _nets()
    optimisers = [torch.optim.SGD(part.parameters(), **sgd)
                  for part in (ref.teacher, ref.encoders[0], ref.encoders[1])]
    for _ in range(2):
        loss, _ = daeh_loss(ref.encoders[0](X_I), ref.encoders[1](X_T), ref.teacher(X_I), X_I,
                            S, **hasher._weights())
        for opt in optimisers:
            opt.zero_grad()
        loss.backward()
        for opt in optimisers:
            opt.step()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12, msg=name)


# ---- the hasher ------------------------------------------------------------------------------
def test_defaults_are_the_codes_mirflickr_run():
    h = DAEH()
    assert (h.n_bits, h.n_epochs, h.batch_size) == (16, 30, 18)  # run.py:103, 107, 119
    assert (h.alpha, h.beta, h.text_weight) == (2.0, 2.0, 0.3)  # run.py:148-150, 162
    assert (h.student_weight, h.teacher_weight, h.enhance_weight) == (4.0, 1.0, 0.1)
    assert h.attribute_weight == 10 ** -3  # gamma = -3, daeh.py:141
    assert (h.text_near, h.text_far, h.pair_target) == (1.0, 5.0, 1.5)
    assert (h.optimizer, h.learning_rate, h.momentum, h.weight_decay) == ("sgd", 0.001, 0.9,
                                                                           5e-4)
    assert (h.image_width, h.text_width, h.dropout, h.text_init_std) == (4096, 4096, 0.5, 0.3)


def test_trains_and_beats_random_projection(data, cross_modal_maps, random_floor,
                                            training_state_left):
    train, _ = data.part("train")
    h = DAEH(n_bits=16, **SMALL).fit(train)
    losses = [r["loss"] for r in h.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(0.0 <= r["image_leads"] <= 1.0 for r in h.history_)
    maps, rp = cross_modal_maps(h, data), random_floor(data)
    assert min(maps) > max(rp) + 0.05, (maps, rp)
    assert not training_state_left(h)
    assert len(h._encoders) == 2  # the students only: the teacher is not kept


def test_held_out_loss_and_determinism(data):
    train, _ = data.part("train")
    params = {**SMALL, "n_epochs": 3, "validation_fraction": 0.2}
    a, b = DAEH(n_bits=8, **params).fit(train), DAEH(n_bits=8, **params).fit(train)
    assert all("val_loss" in r for r in a.history_)
    assert a.best_epoch_ == 1 + int(np.argmin([r["val_loss"] for r in a.history_]))
    for m, X in train.items():
        np.testing.assert_array_equal(a.encode(X, m), b.encode(X, m))


def test_refuses_bad_parameters(data, assert_refused):
    train, _ = data.part("train")
    for bad in ({"alpha": -1.0}, {"text_weight": 1.5}, {"text_far": 0.0},
                {"student_weight": -1}, {"attribute_weight": float("nan")}, {"dropout": 1.0},
                {"text_init_std": 0.0}, {"image_width": 0}, {"teacher_width": -1},
                {"max_samples": 0}):
        assert_refused(DAEH, train, **bad)
    with pytest.raises(InvalidInputError, match="text_near=5.0 must be below text_far=5.0"):
        DAEH(n_bits=8, text_near=5.0).fit(train)


def test_refuses_sizes_before_building(data):
    train, _ = data.part("train")
    with pytest.raises(InvalidInputError, match=r"max_samples=100.*GiB"):
        DAEH(n_bits=8, max_samples=100).fit(train)


def test_teacher_width_adds_a_hidden_layer(data):
    train, _ = data.part("train")
    h = DAEH(n_bits=8, **{**SMALL, "n_epochs": 1, "teacher_width": 16}).fit(train)
    assert np.isfinite(h.history_[0]["loss"])
