"""JDSH: the joint-modal similarity, DSDW, the split-normal fit and the loss against direct
numpy computations; the fitted distribution, training, persistence, refusals, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash_baselines.deep.jdsh import (  # noqa: E402
    JDSH,
    dsdw,
    fit_distribution,
    fit_split_normal,
    high_order_similarity,
    jdsh_loss,
    jdsh_target,
    joint_modal_similarity,
    split_normal_loglik,
)

from mmhash.base import read_saved  # noqa: E402
from mmhash.deep import iter_batches  # noqa: E402
from mmhash.registry import load_hasher  # noqa: E402

FAST = dict(n_bits=16, text_width=64, n_epochs=6, batch_size=32, learning_rate=0.05,
            text_learning_rate=0.05, n_threads=1, device="cpu", random_state=0)
WEIGHTS = dict(image_weight=0.5, text_weight=0.1, high_order_weight=0.4)


def _cos_rows(A, B):
    """cos(a_i, b_j) by loops."""
    return np.array([[A[i] @ B[j] / (np.linalg.norm(A[i]) * np.linalg.norm(B[j]))
                      for j in range(len(B))] for i in range(len(A))])


def _joint(Xi, Xt, a=0.5, b=0.1, lam=0.4):
    Si, St = 2 * _cos_rows(Xi, Xi) - 1, 2 * _cos_rows(Xt, Xt) - 1
    H = _cos_rows(Si, St)
    return a * Si + b * St + lam * (H + H.T) / 2


def _dsdw_like_the_code(S, left, right, lo, hi, l1, l2):
    """JDSH.py:138-141 entry by entry: the left branch first, then the right one on its result."""
    S = S.copy()
    for idx in np.ndindex(S.shape):
        if S[idx] < left:
            S[idx] = (1 + l1 * math.exp(-(S[idx] - lo))) * S[idx]
    for idx in np.ndindex(S.shape):
        if S[idx] > right:
            S[idx] = (1 + l2 * math.exp(S[idx] - hi)) * S[idx]
    return S


# ---- similarity and DSDW ---------------------------------------------------------------------
def test_high_order_and_joint_similarity_are_the_codes_formulas():
    rng = np.random.default_rng(0)
    Xi, Xt = rng.random((5, 7)), rng.random((5, 3))
    Si, St = 2 * _cos_rows(Xi, Xi) - 1, 2 * _cos_rows(Xt, Xt) - 1
    H = high_order_similarity(torch.from_numpy(Si), torch.from_numpy(St)).numpy()
    np.testing.assert_allclose(H, _cos_rows(Si, St), rtol=1e-12, atol=1e-12)
    assert not np.allclose(H, H.T)  # rows of S_I against rows of S_T: not symmetric
    J = joint_modal_similarity(torch.from_numpy(Si), torch.from_numpy(St), **WEIGHTS).numpy()
    np.testing.assert_allclose(J, _joint(Xi, Xt), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(J, J.T, atol=1e-12)


@pytest.mark.parametrize(("left", "right"), [(-0.3, 0.2), (0.1, 0.15), (-0.2, -0.1)])
def test_dsdw_matches_the_codes_masked_assignments(left, right):
    rng = np.random.default_rng(1)
    S = rng.uniform(-1, 1, (5, 5))
    S = (S + S.T) / 2
    np.fill_diagonal(S, 0.9)
    expected = _dsdw_like_the_code(S, left, right, -0.8, 0.9, 0.1, 0.2)
    before = S.copy()
    got = dsdw(torch.from_numpy(S), left=left, right=right, s_min=-0.8, s_max=0.9,
               dissimilar_weight=0.1, similar_weight=0.2).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(S, before)  # the input is not modified


def test_target_is_mu_dsdw_of_the_joint_similarity():
    rng = np.random.default_rng(2)
    Xi, Xt = rng.random((6, 5)), rng.random((6, 4))
    dist = {"left": -0.4, "right": 0.3, "min": -0.9, "max": 0.95}
    got = jdsh_target(torch.from_numpy(Xi), torch.from_numpy(Xt), mu=1.4, distribution=dist,
                      dissimilar_weight=0.1, similar_weight=0.2, **WEIGHTS).numpy()
    expected = 1.4 * _dsdw_like_the_code(_joint(Xi, Xt), -0.4, 0.3, -0.9, 0.95, 0.1, 0.2)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    plain = jdsh_target(torch.from_numpy(Xi), torch.from_numpy(Xt), mu=1.4, distribution=None,
                        dissimilar_weight=0.1, similar_weight=0.2, **WEIGHTS).numpy()
    np.testing.assert_allclose(plain, 1.4 * _joint(Xi, Xt), rtol=1e-12, atol=1e-12)


# ---- the split normal ------------------------------------------------------------------------
def _split_normal_sample(rng, n, loc, s1, s2):
    left = rng.random(n) < s1 / (s1 + s2)  # each side's mass is proportional to its scale
    z = np.abs(rng.standard_normal(n))
    return np.where(left, loc - s1 * z, loc + s2 * z)


def test_split_normal_fit_recovers_the_parameters():
    rng = np.random.default_rng(3)
    x = _split_normal_sample(rng, 200_000, -0.49, 0.019, 0.088)  # the code's MIRFlickr values
    loc, s1, s2 = fit_split_normal(x)
    assert loc == pytest.approx(-0.49, abs=0.002)
    assert s1 == pytest.approx(0.019, rel=0.05)
    assert s2 == pytest.approx(0.088, rel=0.02)


def test_split_normal_fit_is_the_maximum_likelihood():
    x = _split_normal_sample(np.random.default_rng(5), 40, 0.1, 0.3, 0.8)
    loc, s1, s2 = fit_split_normal(x)
    # The closed-form scales: S1 / s1^3 = S2 / s2^3 = n / (s1 + s2) (zero derivatives).
    S1, S2 = np.sum((x[x < loc] - loc) ** 2), np.sum((x[x >= loc] - loc) ** 2)
    assert S1 / s1 ** 3 == pytest.approx(len(x) / (s1 + s2), rel=1e-8)
    assert S2 / s2 ** 3 == pytest.approx(len(x) / (s1 + s2), rel=1e-8)
    best = split_normal_loglik(x, loc, s1, s2)
    # No location inside the range on a fine grid (scales at their optimum for it) nor any
    # small perturbation of the three parameters does better.
    inner = np.sort(x)[1:-1]
    for mu in np.linspace(inner[0], inner[-1], 4001):
        a, b = np.sum((x[x < mu] - mu) ** 2), np.sum((x[x >= mu] - mu) ** 2)
        t = np.cbrt(a) + np.cbrt(b)
        sa, sb = np.sqrt(np.cbrt(a) ** 2 * t / len(x)), np.sqrt(np.cbrt(b) ** 2 * t / len(x))
        assert split_normal_loglik(x, mu, sa, sb) <= best + 1e-9
    for d in np.random.default_rng(0).normal(0, 0.01, (200, 3)):
        assert split_normal_loglik(x, loc + d[0], s1 + d[1], s2 + d[2]) <= best + 1e-9


def test_split_normal_fit_leaves_out_the_half_normal_at_the_edge():
    # In this small sample the likelihood keeps rising towards a location at the smallest value
    # (a half-normal, left scale 0); the fit stays inside the range with both scales positive.
    x = _split_normal_sample(np.random.default_rng(4), 40, 0.1, 0.3, 0.8)
    loc, s1, s2 = fit_split_normal(x)
    assert np.sort(x)[1] <= loc < x.max()
    assert s1 > 0 and s2 > 0


def test_split_normal_fit_of_constant_values():
    assert fit_split_normal(np.full(7, 0.25)) == pytest.approx((0.25, 0.0, 0.0))


def test_fit_distribution_is_the_split_normal_of_the_batch_similarities():
    rng = np.random.default_rng(5)
    Xi, Xt = rng.random((70, 6)), rng.random((70, 4))
    got = fit_distribution(Xi, Xt, batch_size=16, rng=np.random.default_rng(9), left_width=2,
                           right_width=4, **WEIGHTS)
    values, lo, hi = [], np.inf, -np.inf
    for idx in iter_batches(70, 16, np.random.default_rng(9)):  # the same batches
        J = _joint(Xi[idx].astype(np.float32).astype(np.float64),
                   Xt[idx].astype(np.float32).astype(np.float64))
        values.append(J[~np.eye(len(idx), dtype=bool)])
        lo, hi = min(lo, J.min()), max(hi, J.max())
    values = np.concatenate(values)
    loc, s1, s2 = fit_split_normal(values)
    assert got["n_values"] == len(values) == 4 * 16 * 15 + 6 * 5  # 70 rows: 16 x 4 + 6
    assert got["loc"] == pytest.approx(loc, abs=1e-5)
    assert got["scale_left"] == pytest.approx(s1, rel=1e-4)
    assert got["scale_right"] == pytest.approx(s2, rel=1e-4)
    assert (got["min"], got["max"]) == pytest.approx((lo, hi), abs=1e-5)
    assert got["left"] == pytest.approx(got["loc"] - 2 * got["scale_left"], abs=1e-12)
    assert got["right"] == pytest.approx(got["loc"] + 4 * got["scale_right"], abs=1e-12)


# ---- the loss --------------------------------------------------------------------------------
@pytest.mark.parametrize(("cross", "pair"), [(1.0, 0.0), (2.0, 1.0)])
def test_loss_against_numpy(cross, pair):
    rng = np.random.default_rng(6)
    Xi, Xt = rng.random((5, 6)), rng.random((5, 4))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = JDSH(n_bits=8, text_width=16)._build_model([6, 4]).double()
    batch = [torch.from_numpy(Xi), torch.from_numpy(Xt)]
    S = 1.4 * _joint(Xi, Xt)
    loss, parts = jdsh_loss(net, batch, torch.from_numpy(S), intra_weight=0.1,
                            cross_weight=cross, pair_weight=pair)
    with torch.no_grad():
        Zi, Zt = (E(X).numpy() for E, X in zip(net.encoders, batch))
    Bi = Zi / np.linalg.norm(Zi, axis=1, keepdims=True)
    Bt = Zt / np.linalg.norm(Zt, axis=1, keepdims=True)

    def mse(A):
        return np.mean((A - S) ** 2)

    paired = np.mean([Bi[i] @ Bt[i] for i in range(5)])
    if cross == 2.0:  # HEAD's JDSH.py:159 literally: both cross orders, minus the paired cosine
        expected = 0.1 * mse(Bi @ Bi.T) + (mse(Bi @ Bt.T) + mse(Bt @ Bi.T) - paired) \
            + 0.1 * mse(Bt @ Bt.T)
    else:  # the paper-time code (@5762a24): the DJSRH form
        expected = 0.1 * mse(Bi @ Bi.T) + mse(Bi @ Bt.T) + 0.1 * mse(Bt @ Bt.T)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-10)
    assert parts["pair"] == pytest.approx(paired, rel=1e-10)


def test_defaults_are_the_codes_mirflickr_config():
    h = JDSH()
    assert (h.image_weight, h.text_weight, h.high_order_weight, h.mu) == (0.5, 0.1, 0.4, 1.4)
    assert (h.left_width, h.right_width, h.dissimilar_weight, h.similar_weight) == (2, 4, .1, .2)
    assert (h.intra_weight, h.cross_weight, h.pair_weight, h.dsdw) == (0.1, 1.0, 0.0, True)
    assert (h.n_bits, h.n_epochs, h.batch_size, h.optimizer, h.learning_rate,
            h.text_learning_rate, h.momentum, h.weight_decay) == (
        16, 300, 32, "sgd", 0.01, 0.01, 0.9, 5e-4)
    assert (h.image_width, h.text_width, h.normalize_inputs, h.device) == (0, 4096, False, "auto")


# ---- training --------------------------------------------------------------------------------
def test_distribution_is_fitted_on_the_fit_rows_only(data):
    train, _ = data.part("train")
    h = JDSH(**{**FAST, "n_epochs": 1, "validation_fraction": 0.25}).fit(train)
    # The base's held-out split, rebuilt: the same generator, the same draw.
    rng = np.random.default_rng([0, 0x5EED])
    n = len(train["image"])
    n_val = round(0.25 * n)
    fit_rows = np.sort(rng.permutation(n)[n_val:])
    expected = fit_distribution(train["image"][fit_rows], train["text"][fit_rows],
                                batch_size=32, rng=np.random.default_rng([0, 0xD5D3]),
                                left_width=2.0, right_width=4.0, **WEIGHTS)
    assert h.distribution_ == pytest.approx(expected)
    off = JDSH(**{**FAST, "n_epochs": 1, "dsdw": False}).fit(train)
    assert off.distribution_ is None


def test_loss_decreases_and_beats_random_projection(data, cross_modal_maps, random_floor):
    train, _ = data.part("train")
    h = JDSH(**FAST).fit(train)
    losses = [r["loss"] for r in h.history_]
    assert losses[-1] < 0.8 * losses[0], losses
    got, rp = cross_modal_maps(h, data), random_floor(data)
    assert min(got) > max(rp) + 0.05, (got, rp)


def test_deterministic_and_saved_with_its_distribution(data, tmp_path):
    train, _ = data.part("train")
    a = JDSH(**{**FAST, "n_epochs": 2}).fit(train)
    b = JDSH(**{**FAST, "n_epochs": 2}).fit(train)
    c = JDSH(**{**FAST, "n_epochs": 2, "random_state": 1}).fit(train)
    X = train["image"]
    np.testing.assert_array_equal(a.encode(X, "image"), b.encode(X, "image"))
    assert not np.array_equal(a.encode(X, "image"), c.encode(X, "image"))
    path = tmp_path / "jdsh.npz"
    a.save(path)
    assert read_saved(path)[0]["state"]["distribution_"] == pytest.approx(a.distribution_)
    loaded = load_hasher(path)
    np.testing.assert_array_equal(loaded.encode(X, "image"), a.encode(X, "image"))


def test_bad_parameters_are_refused(data, assert_refused):
    train, _ = data.part("train")
    for bad in ({"image_weight": -0.1}, {"text_weight": "a"}, {"high_order_weight": np.nan},
                {"mu": 0}, {"dsdw": 1}, {"left_width": -1}, {"right_width": -2},
                {"dissimilar_weight": -0.1}, {"similar_weight": math.inf},
                {"intra_weight": -1}, {"cross_weight": None}, {"pair_weight": -1},
                {"image_width": 1.5}, {"text_width": 0}, {"text_learning_rate": -0.01}):
        assert_refused(JDSH, train, **bad)
