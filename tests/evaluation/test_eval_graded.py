"""NDCG@K and ACG@K (graded relevance) against a brute-force reference.

The reference (:func:`brute_force`) ranks each query by enumeration: ``expected`` is the mean
over *every* order of every tie group (itertools), optimistic / pessimistic sort each group by
gain, ``index`` is a stable argsort. Checked: the Hamming path (:func:`graded_per_query` on
packed inputs) and the real-valued path (:func:`graded_from_ranking`) on small random cases with
heavy ties (multi-hot labels with overlapping label sets, class ids, a query with no relevant
item, all items tied, K = 1 and K > N); the real-valued path fed Hamming distances equals the
Hamming path; the kernels' histograms equal numpy's on a larger case, and query blocks do not
change any value.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mmhash.errors import InvalidInputError, UnknownNameError
from mmhash.evaluation import TIE_POLICIES, engine, reference
from mmhash.evaluation.engine import kernels
from mmhash.evaluation.graded import (
    gains_block,
    graded_from_histograms,
    graded_from_ranking,
    graded_per_query,
    max_gain,
)
from mmhash.evaluation.packing import pack_label_pair

ATOL = 1e-12


# --- brute force -------------------------------------------------------------------------------


def ref_gains(ql, rl):
    """int (Q, N): shared labels (multi-hot) or equal ids (1-D)."""
    ql, rl = np.asarray(ql), np.asarray(rl)
    if ql.ndim == 1:
        return (ql[:, None] == rl[None, :]).astype(np.int64)
    return ql.astype(np.int64) @ rl.astype(np.int64).T


def ref_value(kind, k, ranked_gains, all_gains):
    """NDCG@K or ACG@K of one ranking (a list of gains in rank order)."""
    k_eff = min(k, len(ranked_gains))
    if kind == "acg":
        return sum(ranked_gains[:k_eff]) / k_eff

    def dcg(gs):
        return sum(g / math.log2(p + 2) for p, g in enumerate(gs[:k_eff]))

    ideal = dcg(sorted(all_gains, reverse=True))
    return dcg(ranked_gains) / ideal if ideal > 0 else 0.0


def ref_orders(dist, gain, tie):
    """Every ranking (list of gains) the policy allows, all equally likely."""
    levels = sorted(set(dist.tolist()))
    groups = [[int(gain[i]) for i in range(len(dist)) if dist[i] == v] for v in levels]
    if tie == "index":
        return [[int(gain[i]) for i in np.argsort(dist, kind="stable")]]
    if tie in ("optimistic", "pessimistic"):
        rev = tie == "optimistic"
        return [[g for grp in groups for g in sorted(grp, reverse=rev)]]
    # expected: all orders of all groups (permutations of equal gains included: same weight)
    per_group = [list(itertools.permutations(grp)) for grp in groups]
    return [[g for perm in combo for g in perm] for combo in itertools.product(*per_group)]


def brute_force(dist, gain, kind, k, tie):
    """float64 (Q,) per-query values by enumeration."""
    out = []
    for d, g in zip(dist, gain):
        orders = ref_orders(np.asarray(d), np.asarray(g), tie)
        out.append(np.mean([ref_value(kind, k, o, g.tolist()) for o in orders]))
    return np.array(out)


# --- cases -------------------------------------------------------------------------------------


def small_case(seed, n_query=6, n_items=7, n_bits=3, n_classes=5, ids=False):
    """Few bits (many ties), overlapping multi-hot label sets or class ids; query 0 has no
    relevant item."""
    rng = np.random.default_rng(seed)
    qc = rng.choice(np.array([-1, 1]), (n_query, n_bits))
    rc = rng.choice(np.array([-1, 1]), (n_items, n_bits))
    if ids:
        ql = rng.integers(0, 3, n_query)
        rl = rng.integers(0, 3, n_items)
        ql[0] = 9  # an id no item has
    else:
        ql = (rng.random((n_query, n_classes)) < 0.5).astype(np.int64)
        rl = (rng.random((n_items, n_classes)) < 0.5).astype(np.int64)
        ql[0] = 0
    return qc, rc, ql, rl


SMALL = {  # name: (seed, Q, N, n_bits, ids)
    "multi-hot, 7 items, 3 bits": (1, 6, 7, 3, False),
    "multi-hot, 5 items, 2 bits": (2, 5, 5, 2, False),
    "class ids, 7 items, 3 bits": (3, 6, 7, 3, True),
    "multi-hot, 1 item": (4, 4, 1, 3, False),
    "class ids, 6 items, 1 bit": (5, 5, 6, 1, True),
}
REQUESTS = [(kind, k) for kind in ("ndcg", "acg") for k in (1, 2, 3, 7, 12)]


def requests_for(n_items):
    return REQUESTS + [("ndcg", n_items), ("acg", n_items)]


@pytest.mark.parametrize("name", list(SMALL))
def test_hamming_and_ranking_paths_match_brute_force(name):
    seed, n_query, n_items, n_bits, ids = SMALL[name]
    qc, rc, ql, rl = small_case(seed, n_query, n_items, n_bits, ids=ids)
    dist = reference.hamming_distance(qc, rc)
    gain = ref_gains(ql, rl)
    reqs = requests_for(n_items)
    hamming = graded_per_query(engine.prepare(qc, rc, ql, rl), reqs, list(TIE_POLICIES))
    real = graded_from_ranking(dist.astype(np.float64), gain, reqs, list(TIE_POLICIES))
    for kind, k in reqs:
        for tie in TIE_POLICIES:
            want = brute_force(dist, gain, kind, k, tie)
            np.testing.assert_allclose(hamming[(kind, k, tie)], want, rtol=0, atol=ATOL,
                                       err_msg=f"{kind}@{k} {tie} (Hamming path)")
            np.testing.assert_allclose(real[(kind, k, tie)], hamming[(kind, k, tie)], rtol=0,
                                       atol=ATOL, err_msg=f"{kind}@{k} {tie} (ranking path)")
    # the query with no relevant item scores 0 everywhere
    for key, values in hamming.items():
        assert values[0] == 0.0, key


def test_all_items_tied():
    rng = np.random.default_rng(7)
    qc = np.ones((3, 4), dtype=np.int64)
    rc = np.ones((6, 4), dtype=np.int64)
    qc[1] = -1  # distance 4 to every item: still one group
    ql = (rng.random((3, 4)) < 0.6).astype(np.int64)
    rl = (rng.random((6, 4)) < 0.6).astype(np.int64)
    ql[2] = 1
    dist = reference.hamming_distance(qc, rc)
    gain = ref_gains(ql, rl)
    assert (gain[2] > 0).any()
    reqs = requests_for(6)
    got = graded_per_query(engine.prepare(qc, rc, ql, rl), reqs, list(TIE_POLICIES))
    for kind, k in reqs:
        for tie in TIE_POLICIES:
            np.testing.assert_allclose(got[(kind, k, tie)], brute_force(dist, gain, kind, k, tie),
                                       rtol=0, atol=ATOL, err_msg=f"{kind}@{k} {tie}")
        # with everything tied, expected ACG is the mean gain whatever K
        np.testing.assert_allclose(got[("acg", k, "expected")], gain.mean(axis=1), atol=ATOL)
    # NDCG@N is 1 whatever the order: all items are in, and IDCG is over the same gains
    # (index here: items in retrieval order)
    assert np.allclose(got[("ndcg", 6, "optimistic")][gain.sum(axis=1) > 0], 1.0)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_real_valued_ranking_with_ties(seed):
    """Real distances from a few levels plus repeated items (ties), against brute force."""
    rng = np.random.default_rng(seed)
    n_query, n_items = 5, 7
    levels = rng.normal(size=3)
    dist = levels[rng.integers(0, 3, (n_query, n_items))]
    dist[:, -2:] = dist[:, :2]
    dist += rng.normal(size=(n_query, 1))
    ql = (rng.random((n_query, 4)) < 0.5).astype(np.int64)
    rl = (rng.random((n_items, 4)) < 0.5).astype(np.int64)
    ql[0] = 0
    gain = gains_block(pack_label_pair(ql, rl))
    assert np.array_equal(gain, ref_gains(ql, rl))
    reqs = requests_for(n_items)
    got = graded_from_ranking(dist, gain, reqs, list(TIE_POLICIES))
    for kind, k in reqs:
        for tie in TIE_POLICIES:
            np.testing.assert_allclose(got[(kind, k, tie)], brute_force(dist, gain, kind, k, tie),
                                       rtol=0, atol=ATOL, err_msg=f"{kind}@{k} {tie}")


def test_hand_computed():
    """Distances (0, 0, 1), gains (0, 2, 1): the tied pair is (0, 2) or (2, 0)."""
    reqs = [("ndcg", 2), ("acg", 2), ("ndcg", 1)]
    got = graded_from_ranking(np.array([[0.0, 0.0, 1.0]]), np.array([[0, 2, 1]]), reqs,
                              list(TIE_POLICIES))
    l3 = math.log2(3)
    ideal = 2 + 1 / l3
    want = {("ndcg", 2): {"optimistic": 2 / ideal, "pessimistic": (2 / l3) / ideal,
                          "expected": (2 + 2 / l3) / 2 / ideal, "index": (2 / l3) / ideal},
            ("acg", 2): dict.fromkeys(TIE_POLICIES, 1.0),
            ("ndcg", 1): {"optimistic": 1.0, "pessimistic": 0.0, "expected": 0.5, "index": 0.0}}
    for (kind, k), per_tie in want.items():
        for tie, value in per_tie.items():
            assert got[(kind, k, tie)][0] == pytest.approx(value, abs=ATOL), (kind, k, tie)


def test_policies_bound_expected_and_histogram_form():
    qc, rc, ql, rl = small_case(21, 8, 7, 2)
    data = engine.prepare(qc, rc, ql, rl)
    reqs = requests_for(7)
    got = graded_per_query(data, reqs, ["optimistic", "expected", "pessimistic"])
    for kind, k in reqs:
        lo, mid, hi = (got[(kind, k, t)] for t in ("pessimistic", "expected", "optimistic"))
        assert (lo <= mid + ATOL).all() and (mid <= hi + ATOL).all()
    # graded_from_histograms on the kernel's histograms is what graded_per_query returns
    h = kernels().gain_histograms(data.query_codes, data.retrieval_codes_t, data.labels.query,
                                  data.labels.retrieval_t, data.labels.ids, data.n_bits,
                                  max_gain(data.labels), 1)
    for kind, k in reqs:
        for tie in ("optimistic", "expected", "pessimistic"):
            np.testing.assert_allclose(graded_from_histograms(h, kind, k, tie),
                                       got[(kind, k, tie)], rtol=0, atol=ATOL)


def test_max_gain_and_gains():
    ql = np.array([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]])
    rl = np.array([[1, 1, 1, 1], [0, 1, 0, 1]])
    labels = pack_label_pair(ql, rl)
    assert max_gain(labels) == 3
    assert np.array_equal(gains_block(labels), [[3, 2], [0, 0], [1, 0]])
    assert np.array_equal(gains_block(labels, slice(1, 3)), [[0, 0], [1, 0]])
    ids = pack_label_pair(np.array([4, 2]), np.array([2, 2, 4]))
    assert max_gain(ids) == 1
    assert np.array_equal(gains_block(ids), [[0, 0, 1], [1, 1, 0]])
    # more than 64 classes: gains add over label words
    rng = np.random.default_rng(3)
    ql = (rng.random((5, 150)) < 0.3).astype(np.int64)
    rl = (rng.random((9, 150)) < 0.3).astype(np.int64)
    wide = pack_label_pair(ql, rl)
    assert max_gain(wide) == int(ql.sum(axis=1).max())
    assert np.array_equal(gains_block(wide), ref_gains(ql, rl))


def test_invalid_requests():
    data = engine.prepare(*small_case(1))
    with pytest.raises(UnknownNameError):
        graded_per_query(data, [("map", 5)], ["expected"])
    with pytest.raises(InvalidInputError):
        graded_per_query(data, [("ndcg", 0)], ["expected"])
    with pytest.raises(UnknownNameError):
        graded_per_query(data, [("ndcg", 5)], ["random"])
    with pytest.raises(InvalidInputError):
        graded_from_ranking(np.zeros((2, 3)), np.zeros((2, 4), dtype=int), [("acg", 1)],
                            ["index"])


# --- larger case: kernels against numpy, blocks ------------------------------------------------


@pytest.fixture(scope="module")
def large_case():
    """300 queries x 5,000 items (more than two tiles), 64 bits, 24-label multi-hot."""
    rng = np.random.default_rng(5)
    n_query, n_items, n_bits, n_classes = 300, 5000, 64, 24
    base = rng.choice(np.array([-1, 1]), (20, n_bits))
    qc = base[rng.integers(0, 20, n_query)]
    rc = rng.choice(np.array([-1, 1]), (n_items, n_bits))
    tied = rng.random(n_items) < 0.5
    rc[tied] = base[rng.integers(0, 20, int(tied.sum()))]
    ql = (rng.random((n_query, n_classes)) < 0.12).astype(np.int64)
    rl = (rng.random((n_items, n_classes)) < 0.12).astype(np.int64)
    ql[0] = 0
    return qc, rc, ql, rl


LARGE_REQUESTS = [("ndcg", 1), ("ndcg", 100), ("ndcg", 6000), ("acg", 50), ("acg", 1000)]


def test_large_histograms_and_blocks(large_case, monkeypatch):
    qc, rc, ql, rl = large_case
    data = engine.prepare(qc, rc, ql, rl)
    dist = reference.hamming_distance(qc, rc)
    gain = ref_gains(ql, rl)
    top = max_gain(data.labels)
    assert top == int(ql.sum(axis=1).max())
    h = kernels().gain_histograms(data.query_codes, data.retrieval_codes_t, data.labels.query,
                                  data.labels.retrieval_t, data.labels.ids, data.n_bits, top,
                                  engine.queries_per_task(len(qc)))
    keys = (dist * (top + 1) + gain + (np.arange(len(qc)) * 65 * (top + 1))[:, None]).ravel()
    want = np.bincount(keys, minlength=len(qc) * 65 * (top + 1)).reshape(h.shape)
    assert np.array_equal(h, want)
    assert np.array_equal(gains_block(data.labels), gain)

    ties = list(TIE_POLICIES)
    whole = graded_per_query(data, LARGE_REQUESTS, ties)
    real = graded_from_ranking(dist.astype(np.float64), gain, LARGE_REQUESTS, ties)
    for key in whole:
        np.testing.assert_allclose(real[key], whole[key], rtol=0, atol=ATOL, err_msg=str(key))
    monkeypatch.setattr(engine, "QUERY_BLOCK", 37)
    blocked = graded_per_query(data, LARGE_REQUESTS, ties)
    for key in whole:
        assert np.array_equal(blocked[key], whole[key]), key
    # a value does not depend on which other cut-offs are asked for in the same call
    alone = graded_per_query(data, [("ndcg", 100)], ["index"])
    assert np.array_equal(alone[("ndcg", 100, "index")], whole[("ndcg", 100, "index")])
