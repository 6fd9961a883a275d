"""CCQ: bit accounting, the codes' binary layout, the asymmetric distance, the alternating
updates, the near-orthogonality constraint, accuracy and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from mmhash_baselines.ccq import CCQ

from mmhash.base import REAL_VALUED_RANKING
from mmhash.errors import InvalidInputError
from mmhash.evaluation import evaluate_ranking


@pytest.fixture(scope="module")
def train(data):
    return data.part("train")[0]


@pytest.fixture(scope="module")
def fitted(train):
    return CCQ(n_bits=16).fit(train)


def _ranking_maps(h, dataset):
    (query, lq), (items, lr) = dataset.part("query"), dataset.part("retrieval")
    return [evaluate_ranking(h.distances(h.represent(query[a], a, "query"),
                                         h.represent(items[b], b, "database")),
                             lq, lr).values[("map", "expected")]
            for a, b in (("image", "text"), ("text", "image"))]


@pytest.mark.parametrize(("n_bits", "codewords", "M"),
                         [(16, 256, 2), (64, 256, 8), (8, 256, 1), (16, 16, 4), (24, 8, 8)])
def test_bits_are_codebooks_times_log2_codewords(train, n_bits, codewords, M):
    h = CCQ(n_bits=n_bits, codewords=codewords, max_iter=2).fit(train)
    assert h.codebooks_.shape == (M, codewords, h.codebooks_.shape[2])
    X = train["image"][:5]
    assert h.quantize(X, "image").shape == (5, M)
    assert h.encode(X, "image").shape == (5, n_bits)


def test_refuses_bit_lengths_and_codebook_sizes_that_do_not_fit(train, assert_refused):
    with pytest.raises(InvalidInputError, match=r"n_bits=16 .*codewords=1024.* 40, 80"):
        CCQ(n_bits=16, codewords=1024).fit(train)
    with pytest.raises(InvalidInputError, match="codewords must be a power of two"):
        CCQ(n_bits=16, codewords=100).fit(train)
    few = {m: X[:100] for m, X in train.items()}
    with pytest.raises(InvalidInputError, match="codewords=256 exceeds the 100 training pairs.*64"):
        CCQ(n_bits=16).fit(few)
    with pytest.raises(InvalidInputError, match="latent_dim=21 exceeds the smallest view"):
        CCQ(n_bits=16, latent_dim=21).fit(train)
    for bad in ({"codewords": 1}, {"latent_dim": 0}, {"whiten": "yes"}, {"reg": 0.0},
                {"mu": -1.0}, {"max_iter": 0}, {"tol": -1e-3}, {"icm_sweeps": 0},
                {"lbfgs_iter": 0}, {"random_state": -1}):
        assert_refused(CCQ, train, **bad)


def test_encode_bits_are_the_binary_codeword_indices(fitted, data):
    query, _ = data.part("query")
    for modality, X in query.items():
        idx = fitted.quantize(X, modality)
        codes = fitted.encode(X, modality)
        bits = (codes.reshape(len(X), idx.shape[1], 8) == 1).astype(np.int64)
        np.testing.assert_array_equal(bits @ (1 << np.arange(8)), idx)  # LSB first


def test_asymmetric_distance_is_the_distance_to_the_reconstruction(fitted, data):
    query, _ = data.part("query")
    Q = fitted.represent(query["text"], "text", "query")
    items = query["image"][:40]
    D = fitted.distances(Q, fitted.represent(items, "image", "database"))
    idx = fitted.quantize(items, "image")
    C = fitted.codebooks_
    brute = np.array([[np.sum((q - sum(C[m, i[m]] for m in range(len(C)))) ** 2) for i in idx]
                      for q in Q])
    np.testing.assert_allclose(D, brute, rtol=1e-10, atol=1e-10)
    # Composite quantization's table lookup differs by -(M-1)||q||^2 (one constant per query)
    # and by the item's cross terms, which the constraint holds near epsilon.
    M = len(C)
    lookup = np.stack([((Q[:, None, :] - C[m][idx[:, m]][None]) ** 2).sum(-1)
                       for m in range(M)]).sum(0)
    rec = sum(C[m][idx[:, m]] for m in range(M))
    cross = (rec ** 2).sum(1) - sum((C[m][idx[:, m]] ** 2).sum(1) for m in range(M))
    np.testing.assert_allclose(D, lookup - (M - 1) * (Q ** 2).sum(1)[:, None] + cross[None],
                               rtol=1e-9, atol=1e-9)


def test_alternating_updates_decrease_objective_and_quantization_error(train):
    h = CCQ(n_bits=32, max_iter=8, tol=0.0).fit(train)
    F, Q = h.objective_history_, h.quantization_error_history_
    assert len(F) == h.n_iter_ + 1 == 9
    # Each update minimises F over its block: F never increases.
    assert np.all(np.diff(F) <= 1e-9 * F[:-1]), F
    # The features' error of approximation by their mapped composite code: the residual
    # k-means start ignores the constraint, so the first iteration trades some of it for the
    # penalty; from there on every iteration lowers it.
    assert np.all(np.diff(Q[1:]) < 0), Q
    assert Q[-1] < Q[1] - 0.01 * abs(Q[1]), Q


def test_near_orthogonality_constraint_holds_at_the_end(train):
    # Tolerance: the items' cross terms stay within 2% (rms) of the mean squared latent norm
    # of epsilon, on the training pairs and on each view's own out-of-sample codes.
    h = CCQ(n_bits=32).fit(train)
    assert h.constraint_violation_ < 0.02
    C, M = h.codebooks_, len(h.codebooks_)
    for modality, X in train.items():
        idx = h.quantize(X, modality)
        chosen = [C[m][idx[:, m]] for m in range(M)]
        rec = sum(chosen)
        cross = (rec ** 2).sum(1) - sum((c ** 2).sum(1) for c in chosen)
        assert np.sqrt(np.mean((cross - h.epsilon_) ** 2)) / h.penalty_scale_ < 0.02
    # Without the penalty (mu = 0) it does not hold: the penalty is what enforces it.
    assert CCQ(n_bits=32, mu=0.0).fit(train).constraint_violation_ > 5 * h.constraint_violation_


@pytest.mark.parametrize("whiten", [False, True])
def test_ranking_beats_random_projection(data, train, random_floor, whiten):
    h = CCQ(n_bits=16, whiten=whiten).fit(train)
    assert REAL_VALUED_RANKING in CCQ.capabilities
    got, rp = _ranking_maps(h, data), random_floor(data)
    assert min(got) > max(rp) + 0.05, (got, rp)


def test_deterministic_under_random_state(train, data):
    query, _ = data.part("query")
    a, b = CCQ(n_bits=16, random_state=5).fit(train), CCQ(n_bits=16, random_state=5).fit(train)
    np.testing.assert_array_equal(a.codebooks_, b.codebooks_)
    for role in ("query", "database"):
        np.testing.assert_array_equal(a.represent(query["image"], "image", role),
                                      b.represent(query["image"], "image", role))
    c = CCQ(n_bits=16, random_state=6).fit(train)
    assert not np.array_equal(a.codebooks_, c.codebooks_)
