"""CMFH: exact block updates, monotone objective, refusals, cross-modal accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from mmhash_baselines.cmfh import (
    CMFH,
    PrincipalCoordinates,
    objective_value,
    update_basis,
    update_latent,
    update_projection,
)
from scipy.optimize import minimize

from mmhash.errors import InvalidInputError

LAM, MU, GAMMA = 0.3, 2.0, 0.1


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    k, n = 3, 7
    blocks = {
        "X1": rng.standard_normal((4, n)), "X2": rng.standard_normal((5, n)),
        "U1": rng.standard_normal((4, k)), "U2": rng.standard_normal((5, k)),
        "V": rng.standard_normal((k, n)),
        "P1": rng.standard_normal((k, 4)), "P2": rng.standard_normal((k, 5)),
    }
    return blocks


def _sq(M):
    return float(np.sum(M * M))


def _G(b):
    """Eq. 5 written out directly in the raw features (the reference for the fit's traces)."""
    return (LAM * _sq(b["X1"] - b["U1"] @ b["V"]) + (1 - LAM) * _sq(b["X2"] - b["U2"] @ b["V"])
            + MU * (_sq(b["V"] - b["P1"] @ b["X1"]) + _sq(b["V"] - b["P2"] @ b["X2"]))
            + GAMMA * sum(_sq(b[key]) for key in ("U1", "U2", "V", "P1", "P2")))


def _principal(b):
    """The blocks in each view's principal coordinates, and the coordinates themselves."""
    pcs = [PrincipalCoordinates.of(b[x].T) for x in ("X1", "X2")]
    return pcs, {
        "X1": pcs[0].scores, "X2": pcs[1].scores, "V": b["V"],
        "U1": pcs[0].basis.T @ b["U1"], "U2": pcs[1].basis.T @ b["U2"],
        "P1": b["P1"] @ pcs[0].basis, "P2": b["P2"] @ pcs[1].basis,
    }


def _numeric_argmin(b, key):
    """Minimise G over one block numerically (BFGS), the others fixed."""
    shape = b[key].shape

    def f(z):
        return _G({**b, key: z.reshape(shape)})

    res = minimize(f, np.zeros(np.prod(shape)), method="BFGS", options={"gtol": 1e-10})
    return res.x.reshape(shape)


@pytest.mark.parametrize("key", ["U1", "U2", "V", "P1", "P2"])
def test_closed_form_update_equals_numeric_minimiser(tiny, key):
    b = tiny
    if key == "U1":
        closed = update_basis(b["X1"] @ b["V"].T, b["V"], GAMMA / LAM)
    elif key == "U2":
        closed = update_basis(b["X2"] @ b["V"].T, b["V"], GAMMA / (1 - LAM))
    elif key == "V":
        closed = update_latent(b["X1"], b["X2"], b["U1"], b["U2"], b["P1"], b["P2"],
                               LAM, MU, GAMMA)
    else:  # the P-step runs in principal coordinates; mapped back it is the raw minimiser
        pc = PrincipalCoordinates.of((b["X1"] if key == "P1" else b["X2"]).T)
        closed = update_projection(pc.scores @ b["V"].T, pc.variances, GAMMA / MU) @ pc.basis.T
    np.testing.assert_allclose(closed, _numeric_argmin(b, key), atol=1e-5)


@pytest.mark.parametrize("wide", [False, True])
def test_principal_coordinates_keep_every_term_of_the_objective(tiny, wide):
    """G from the traces in principal coordinates equals G written out in the raw features,
    for d <= n (a rotation) and d > n (the thin SVD), when U lies in the span of X (as every
    U-step leaves it)."""
    b = dict(tiny)
    if wide:  # 9 > 7 features: the thin-SVD branch
        b["X1"] = np.random.default_rng(3).standard_normal((9, 7))
        b["P1"] = np.random.default_rng(4).standard_normal((3, 9))
    b["U1"] = update_basis(b["X1"] @ b["V"].T, b["V"], 0.3)
    b["U2"] = update_basis(b["X2"] @ b["V"].T, b["V"], 0.3)
    pcs, p = _principal(b)
    np.testing.assert_allclose(np.diag(pcs[0].variances), p["X1"] @ p["X1"].T, atol=1e-10)
    # P's part outside the span of X is dropped by the change of coordinates; ||P|| is only
    # kept for a P inside the span, which every P-step returns.
    for key, pc in (("P1", pcs[0]), ("P2", pcs[1])):
        b[key] = p[key] @ pc.basis.T
    terms = [(float(np.sum(p[x] ** 2)), p[x] @ p["V"].T, p[u], p[q], pc.variances)
             for x, u, q, pc in (("X1", "U1", "P1", pcs[0]), ("X2", "U2", "P2", pcs[1]))]
    assert objective_value(terms, p["V"], LAM, MU, GAMMA) == pytest.approx(_G(b), rel=1e-10)


@pytest.mark.parametrize("init", ["normal", "uniform"])
def test_objective_never_increases(data, init):
    views, _ = data.part("train")
    h = CMFH(n_bits=16, max_iter=40, tol=0, random_state=1, init=init).fit(views)
    obj = np.asarray(h.objective_)
    assert len(obj) == 40 == h.n_iter_
    assert np.all(np.diff(obj) <= 1e-9 * obj[:-1]), np.diff(obj).max()
    assert obj[-1] < 0.5 * obj[0]


def test_stops_at_tolerance_and_is_seeded(data):
    views, _ = data.part("train")
    h = CMFH(n_bits=16, tol=0.05).fit(views)
    rel = -np.diff(h.objective_) / np.asarray(h.objective_[:-1])
    assert h.n_iter_ < 100 and rel[-1] < 0.05 <= rel[:-1].min()
    a = CMFH(n_bits=16, random_state=5).fit(views).encode(views["text"], "text")
    b = CMFH(n_bits=16, random_state=5).fit(views).encode(views["text"], "text")
    np.testing.assert_array_equal(a, b)


def test_refuses_bad_parameters_and_sizes(data):
    views, _ = data.part("train")
    with pytest.raises(InvalidInputError, match="max_features"):
        CMFH(n_bits=16, max_features=25).fit(views)
    with pytest.raises(InvalidInputError, match="lam must lie strictly between 0 and 1"):
        CMFH(n_bits=16, lam=1.0).fit(views)
    with pytest.raises(InvalidInputError, match="gamma must be a finite number > 0"):
        CMFH(n_bits=16, gamma=0).fit(views)
    with pytest.raises(InvalidInputError, match="max_iter"):
        CMFH(n_bits=16, max_iter=0).fit(views)
    with pytest.raises(InvalidInputError, match="normal, uniform"):
        CMFH(n_bits=16, init="zeros").fit(views)


def test_cross_modal_retrieval_beats_random_projection(data, cross_modal_maps, random_floor):
    train, _ = data.part("train")
    cmfh = cross_modal_maps(CMFH(n_bits=16).fit(train), data)
    rp = random_floor(data)
    assert min(cmfh) > max(rp) + 0.05, (cmfh, rp)


@pytest.mark.parametrize("seed", [None, -1, 1.5, "0"])
def test_an_unusable_seed_is_refused_before_fitting(seed):
    views = {"image": np.ones((20, 4)), "text": np.ones((20, 3))}
    with pytest.raises(InvalidInputError, match="random_state"):
        CMFH(n_bits=8, random_state=seed).fit(views)


# ---- unified database codes ------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(data):
    views, _ = data.part("train")
    return CMFH(n_bits=16).fit(views)


def test_unified_database_codes_are_deterministic_per_item_codes(data, fitted):
    views, _ = data.part("retrieval")
    codes = fitted.encode_database(views)
    assert codes.dtype == np.int8 and codes.shape == (len(views["image"]), 16)
    assert set(np.unique(codes)) <= {-1, 1}
    np.testing.assert_array_equal(fitted.encode_database(views), codes)
    rows = np.arange(3, len(codes), 7)  # a subset: each code depends on its own pair only
    np.testing.assert_array_equal(
        fitted.encode_database({m: X[rows] for m, X in views.items()}), codes[rows])
    np.testing.assert_array_equal(
        fitted.encode_database({m: X[5:6] for m, X in views.items()}), codes[5:6])


def test_unified_latent_minimises_the_objective_of_its_pair(data, fitted):
    h = fitted
    views, _ = data.part("query")
    x1, x2 = views["image"][0] - h.mean0_, views["text"][0] - h.mean1_
    lam, mu, gamma = h.lam, h.mu, h.gamma

    def g(v):  # G restricted to one column, the learned U_m, P_m fixed
        return (lam * ((x1 - h.basis0_ @ v) ** 2).sum()
                + (1 - lam) * ((x2 - h.basis1_ @ v) ** 2).sum()
                + mu * (((v - h.proj0_ @ x1) ** 2).sum() + ((v - h.proj1_ @ x2) ** 2).sum())
                + gamma * (v**2).sum())

    v = h._encode_database({m: X[:1] for m, X in views.items()})[0]
    ref = minimize(g, np.zeros(16), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(v, ref, atol=1e-6 * np.abs(ref).max())
    assert g(v) <= g(ref) * (1 + 1e-12)


def test_unified_codes_of_the_training_pairs_are_the_learned_codes(data, monkeypatch):
    # The paper's database codes are sgn(V) of the training pairs: the fit's last V-step.
    from mmhash_baselines import cmfh

    latents = []

    def spy(*args, **kwargs):
        latents.append(update_latent(*args, **kwargs))
        return latents[-1]

    monkeypatch.setattr(cmfh, "update_latent", spy)
    views, _ = data.part("train")
    h = CMFH(n_bits=16).fit(views)
    monkeypatch.undo()
    learned = np.where(latents[-1].T >= 0, 1, -1)
    assert (h.encode_database(views) == learned).mean() >= 0.999


def test_unified_database_retrieval_beats_random_projection(data, fitted, unified_maps,
                                                           random_floor):
    got = unified_maps(fitted, data)
    rp = random_floor(data)
    assert min(got) > max(rp) + 0.05, (got, rp)
