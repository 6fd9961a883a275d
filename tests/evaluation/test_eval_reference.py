"""mmhash.evaluation against a brute-force reference written here in the most literal way.

The reference builds explicit rankings (argsort / lexsort, every permutation of every tie group,
random tie-breaks) and computes AP and P@K with the textbook loop over positions. ``expected`` is
checked against the mean over *all* orders of the tie groups (exhaustive, tiny N) and against a
Monte-Carlo mean (larger N).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmhash.evaluation import (
    TIE_POLICIES,
    average_precision,
    evaluate,
    hamming_distance,
    mean_average_precision,
    pr_curve,
    precision_at_k,
    relevance,
)
from mmhash.evaluation import hamming as hamming_module

# ----------------------------------------------------------------------------- reference


def ref_distances(qc, rc):
    return np.array([[int(np.sum(q != x)) for x in rc] for q in qc])


def ref_relevance(ql, rl):
    if np.ndim(ql) == 1:  # class ids: relevant iff equal
        return np.array([[a == b for b in rl] for a in ql])
    return np.array([[bool(np.any((a > 0) & (b > 0))) for b in rl] for a in ql])


def ref_ap(ranked, topk=None):
    """Textbook AP of relevance flags in rank order; ``ranked`` is (n_orders, N), vectorised
    over orders only. Full: divided by all relevant; top-K: by relevant found in the top K."""
    ranked = np.atleast_2d(ranked)
    length = ranked.shape[1] if topk is None else min(topk, ranked.shape[1])
    hits = np.zeros(len(ranked))
    total = np.zeros(len(ranked))
    for i in range(length):
        rel = ranked[:, i]
        hits += rel
        total += np.where(rel, hits / (i + 1), 0.0)
    denom = ranked.sum(axis=1) if topk is None else hits
    return np.where(denom > 0, total / np.maximum(denom, 1), 0.0)


def ref_p(ranked, k):
    ranked = np.atleast_2d(ranked)
    k = min(k, ranked.shape[1])
    return ranked[:, :k].sum(axis=1) / k


def ref_order(d, rel, tie):
    """The deterministic ranking of one query under ``tie``."""
    idx = np.arange(len(d))
    if tie == "index":
        return np.argsort(d, kind="stable")
    if tie == "optimistic":
        return np.lexsort((idx, ~rel, d))  # last key first: distance, then relevant first
    if tie == "pessimistic":
        return np.lexsort((idx, rel, d))
    raise AssertionError(tie)


def all_tie_orders(d):
    """Every ranking consistent with ascending distance: all permutations of each tie group.

    Returns int (n_orders, N), n_orders = prod over groups of (group size)!.
    """
    orders = np.zeros((1, 0), dtype=int)
    for g in np.unique(d):
        perms = np.array(list(itertools.permutations(np.flatnonzero(d == g))))
        assert len(orders) * len(perms) <= 200_000, "case too big to enumerate"
        orders = np.hstack(
            [np.repeat(orders, len(perms), axis=0), np.tile(perms, (len(orders), 1))]
        )
    return orders


def ref_value(ranked, metric):
    kind, k = metric
    return ref_ap(ranked, k) if kind == "map" else ref_p(ranked, k)


def ref_metric(qc, rc, ql, rl, metric, tie):
    """Per-query values of ``metric`` = ("map", None | K) or ("p", K) under ``tie``."""
    dist, rel = ref_distances(qc, rc), ref_relevance(ql, rl)
    out = []
    for d, r in zip(dist, rel):
        if tie == "expected":
            out.append(ref_value(r[all_tie_orders(d)], metric).mean())
        else:
            out.append(ref_value(r[ref_order(d, r, tie)], metric)[0])
    return np.array(out)


def ours(qc, rc, ql, rl, metric, tie):
    kind, k = metric
    if kind == "map":
        return average_precision(qc, rc, ql, rl, tie=tie, topk=k)
    # p@K from the public API is a mean over queries; per query, evaluate one query at a time.
    return np.array(
        [
            precision_at_k(qc[i : i + 1], rc, ql[i : i + 1], rl, [k], tie=tie)[0]
            for i in range(len(qc))
        ]
    )


def tie_heavy_case(seed, n_query=5, n_items=12, n_bits=8, n_base=4, n_classes=3):
    """Codes drawn from a few base codes (so tie groups are large), multi-label relevance."""
    rng = np.random.default_rng(seed)
    base = rng.choice([-1, 1], size=(n_base, n_bits)).astype(np.int8)
    qc = base[rng.integers(0, n_base, n_query)]
    rc = base[rng.integers(0, n_base, n_items)]
    ql = (rng.random((n_query, n_classes)) < 0.4).astype(np.int64)
    rl = (rng.random((n_items, n_classes)) < 0.4).astype(np.int64)
    ql[0] = 0  # query 0 has no label, so no relevant item: AP 0 and it counts
    return qc, rc, ql, rl


METRICS = [("map", None), ("map", 1), ("map", 3), ("map", 7), ("map", 50)]
METRICS += [("p", 1), ("p", 3), ("p", 7), ("p", 50)]


# ----------------------------------------------------------------------------- hand examples


def _line_codes(distances, n_bits=4):
    """A query of all +1 and items with the given numbers of leading -1 bits."""
    qc = np.ones((1, n_bits), dtype=np.int8)
    rc = np.ones((len(distances), n_bits), dtype=np.int8)
    for i, d in enumerate(distances):
        rc[i, :d] = -1
    return qc, rc


def test_hand_example_distinct_distances():
    # ranking: irrelevant, relevant, relevant, irrelevant -> AP = (1/2 + 2/3) / 2 = 7/12
    qc, rc = _line_codes([0, 1, 2, 3])
    ql = np.array([[1, 0]])
    rl = np.array([[0, 1], [1, 0], [1, 1], [0, 1]])
    for tie in TIE_POLICIES:
        assert average_precision(qc, rc, ql, rl, tie=tie)[0] == pytest.approx(0.5833333333333333)
        # top 2: one relevant (at 2) -> AP@2 = (1/2)/1; P@2 = 1/2; top 1: nothing relevant
        assert evaluate(qc, rc, ql, rl, metrics=["map@2", "p@2", "map@1", "p@3"], tie=tie) == (
            pytest.approx({"map@2": 0.5, "p@2": 0.5, "map@1": 0.0, "p@3": 2 / 3})
        )


def test_hand_example_ties():
    # three items tied at distance 0, two relevant, then one relevant item at distance 2.
    qc, rc = _line_codes([0, 0, 0, 2])
    ql = np.array([1])
    rl = np.array([1, 2, 1, 1])  # 1-D class ids
    # Tie group patterns RRI, RIR, IRR are equally likely; each adds the 4th item at rank 4 with
    # precision 3/4:  APs (1 + 1 + 3/4)/3, (1 + 2/3 + 3/4)/3, (1/2 + 2/3 + 3/4)/3.
    expected = ((1 + 1 + 0.75) + (1 + 2 / 3 + 0.75) + (0.5 + 2 / 3 + 0.75)) / 9
    assert expected == pytest.approx(85 / 108) == pytest.approx(0.7870370370370370)
    ap = {tie: average_precision(qc, rc, ql, rl, tie=tie)[0] for tie in TIE_POLICIES}
    assert ap["expected"] == pytest.approx(expected, abs=1e-15)
    assert ap["optimistic"] == pytest.approx((1 + 1 + 0.75) / 3, abs=1e-15)
    assert ap["pessimistic"] == pytest.approx((0.5 + 2 / 3 + 0.75) / 3, abs=1e-15)
    assert ap["index"] == pytest.approx((1 + 2 / 3 + 0.75) / 3, abs=1e-15)  # R, I, R, R
    # top 1: relevant with probability 2/3 -> E[AP@1] = E[P@1] = 2/3
    # top 2: j ~ Hypergeom(3, 2, 2): P(j=1) = 2/3 (RI or IR, AP@2 = 1 or 1/2), P(j=2) = 1/3 (AP 1)
    got = evaluate(qc, rc, ql, rl, metrics=["map@1", "p@1", "map@2", "p@2"])
    want = {"map@1": 2 / 3, "p@1": 2 / 3, "map@2": (1 + 0.5 + 1) / 3, "p@2": 2 / 3}
    assert got == pytest.approx(want, abs=1e-15)


# ----------------------------------------------------------------------------- brute force


@pytest.mark.parametrize("tie", TIE_POLICIES)
@pytest.mark.parametrize("seed", [2, 3, 5])  # tie groups up to 6 items, <= 2e5 orders
def test_every_metric_matches_brute_force(seed, tie):
    qc, rc, ql, rl = tie_heavy_case(seed)
    for metric in METRICS:
        want = ref_metric(qc, rc, ql, rl, metric, tie)
        got = ours(qc, rc, ql, rl, metric, tie)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13, err_msg=f"{metric} {tie}")
    assert average_precision(qc, rc, ql, rl, tie=tie)[0] == 0.0  # query without relevant items


@pytest.mark.parametrize("tie", TIE_POLICIES)
def test_degenerate_cases_match_brute_force(tie):
    rng = np.random.default_rng(5)
    code = rng.choice([-1, 1], size=(1, 8))
    other = -code
    qc = np.vstack([code, other, code])
    cases = {
        "all tied": (np.repeat(code, 7, axis=0), np.array([0, 1, 0, 1, 1, 0, 0])),
        "all relevant": (rng.choice([-1, 1], size=(7, 8)), np.ones(7, dtype=int)),
        "none relevant": (rng.choice([-1, 1], size=(7, 8)), np.full(7, 2)),
        "single item": (code.copy(), np.array([1])),
    }
    ql = np.array([1, 1, 0])
    for name, (rc, rl) in cases.items():
        for metric in METRICS:
            want = ref_metric(qc, rc, ql, rl, metric, tie)
            got = ours(qc, rc, ql, rl, metric, tie)
            np.testing.assert_allclose(got, want, atol=1e-13, err_msg=f"{name} {metric} {tie}")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_query=st.integers(1, 3),
    n_items=st.integers(1, 7),
    n_bits=st.integers(1, 5),
    n_classes=st.integers(1, 3),
    k=st.integers(1, 9),
)
def test_random_cases_match_brute_force(seed, n_query, n_items, n_bits, n_classes, k):
    rng = np.random.default_rng(seed)
    qc = rng.choice([-1, 1], size=(n_query, n_bits))
    rc = rng.choice([-1, 1], size=(n_items, n_bits))
    ql = rng.integers(0, 2, size=(n_query, n_classes))
    rl = rng.integers(0, 2, size=(n_items, n_classes))
    for tie in TIE_POLICIES:
        for metric in [("map", None), ("map", k), ("p", k)]:
            want = ref_metric(qc, rc, ql, rl, metric, tie)
            got = ours(qc, rc, ql, rl, metric, tie)
            np.testing.assert_allclose(got, want, atol=1e-13, err_msg=f"{metric} {tie}")


def test_expected_matches_monte_carlo_over_random_tie_breaks():
    qc, rc, ql, rl = tie_heavy_case(11, n_query=4, n_items=80, n_bits=6, n_base=5, n_classes=4)
    dist, rel = ref_distances(qc, rc), ref_relevance(ql, rl)
    rng = np.random.default_rng(0)
    n_samples = 20_000
    for metric in [("map", None), ("map", 10), ("map", 33), ("p", 10), ("p", 33)]:
        got = ours(qc, rc, ql, rl, metric, "expected")
        for q in range(len(qc)):
            # random tie-break: sort by (distance, uniform random key)
            keys = rng.random((n_samples, dist.shape[1]))
            orders = np.lexsort((keys, np.broadcast_to(dist[q], keys.shape)), axis=1)
            values = ref_value(rel[q][orders], metric)
            tol = 5 * values.std() / np.sqrt(n_samples) + 1e-12
            assert abs(values.mean() - got[q]) <= tol, (metric, q, values.mean(), got[q], tol)


# ----------------------------------------------------------------------------- properties


def test_optimistic_expected_pessimistic_bound_map_and_p_at_k():
    for seed in range(5):
        qc, rc, ql, rl = tie_heavy_case(seed, n_query=6, n_items=40, n_bits=4)
        for metric in [("map", None), ("p", 1), ("p", 5), ("p", 17)]:
            hi = ours(qc, rc, ql, rl, metric, "optimistic")
            mid = ours(qc, rc, ql, rl, metric, "expected")
            lo = ours(qc, rc, ql, rl, metric, "pessimistic")
            assert np.all(hi >= mid - 1e-15) and np.all(mid >= lo - 1e-15), metric
            assert np.any(hi > lo)  # the case does have ties that matter


def test_map_at_k_orders_need_not_bound_expected():
    # ranking: relevant (d=0), irrelevant (d=1), then a tie group {relevant, irrelevant} (d=2).
    # Top 3, relevant-first puts a relevant item at precision 2/3 and lowers AP@3 below the
    # relevant-last order (documented: for map@K optimistic/pessimistic are orders, not bounds).
    qc, rc = _line_codes([0, 1, 2, 2])
    ql, rl = np.array([1]), np.array([1, 0, 1, 0])
    ap = {t: average_precision(qc, rc, ql, rl, tie=t, topk=3)[0] for t in TIE_POLICIES}
    assert ap["optimistic"] == pytest.approx((1 + 2 / 3) / 2)
    assert ap["pessimistic"] == pytest.approx(1.0)
    assert ap["expected"] == pytest.approx(0.5 * (1 + 2 / 3) / 2 + 0.5 * 1.0)


def test_index_depends_on_database_order_but_expected_does_not():
    qc, rc, ql, rl = tie_heavy_case(3, n_query=5, n_items=30, n_bits=8, n_base=3)
    perm = np.random.default_rng(1).permutation(len(rc))
    for metric in [("map", None), ("map", 7), ("p", 7)]:
        before = ours(qc, rc, ql, rl, metric, "expected")
        after = ours(qc, rc[perm], ql, rl[perm], metric, "expected")
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-14)
    # reversing the database turns relevant-first ties into relevant-last ones for index
    qc, rc = _line_codes([0, 0, 1])
    ql, rl = np.array([1]), np.array([1, 0, 1])
    forward = average_precision(qc, rc, ql, rl, tie="index")[0]
    backward = average_precision(qc, rc[::-1], ql, rl[::-1], tie="index")[0]
    assert forward == pytest.approx((1 + 2 / 3) / 2)
    assert backward == pytest.approx((1 / 2 + 2 / 3) / 2)  # order: I(d0), R(d0), R(d1)


def test_index_equals_stable_argsort_loop_exactly():
    qc, rc, ql, rl = tie_heavy_case(7, n_query=6, n_items=50, n_bits=8)
    dist, rel = ref_distances(qc, rc), ref_relevance(ql, rl)
    for topk in [None, 1, 9, 50]:
        want = np.array(
            [ref_ap(rel[q][np.argsort(dist[q], kind="stable")], topk)[0] for q in range(len(qc))]
        )
        got = average_precision(qc, rc, ql, rl, tie="index", topk=topk)
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


def test_query_without_relevant_items_scores_zero_and_counts():
    qc, rc = _line_codes([0, 1])
    qc = np.vstack([qc, qc])
    ql, rl = np.array([[1, 0], [0, 1]]), np.array([[1, 0], [1, 0]])
    for tie in TIE_POLICIES:
        assert average_precision(qc, rc, ql, rl, tie=tie).tolist() == [1.0, 0.0]
        assert mean_average_precision(qc, rc, ql, rl, tie=tie) == 0.5
        assert mean_average_precision(qc, rc, ql, rl, tie=tie, topk=1) == 0.5


@pytest.mark.parametrize("tie", TIE_POLICIES)
def test_topk_of_n_or_more_is_full_map(tie):
    qc, rc, ql, rl = tie_heavy_case(4, n_items=20)
    full = average_precision(qc, rc, ql, rl, tie=tie)
    for k in (20, 21, 1000):
        np.testing.assert_allclose(average_precision(qc, rc, ql, rl, tie=tie, topk=k), full)


def test_blocks_do_not_change_results(monkeypatch):
    qc, rc, ql, rl = tie_heavy_case(9, n_query=23, n_items=40, n_bits=8)
    whole = {
        t: evaluate(qc, rc, ql, rl, metrics=["map", "map@5", "p@5"], tie=t) for t in TIE_POLICIES
    }
    curve = pr_curve(qc, rc, ql, rl)
    monkeypatch.setattr(hamming_module, "BLOCK_ELEMENTS", 3 * 40)  # blocks of 3 queries
    for tie in TIE_POLICIES:
        assert evaluate(qc, rc, ql, rl, metrics=["map", "map@5", "p@5"], tie=tie) == pytest.approx(
            whole[tie], abs=1e-15
        )
    blocked = pr_curve(qc, rc, ql, rl)
    np.testing.assert_allclose(blocked.precision, curve.precision, atol=1e-15)
    np.testing.assert_allclose(blocked.recall, curve.recall, atol=1e-15)


# ----------------------------------------------------------------------------- other API


def test_hamming_distance_and_relevance_match_reference():
    qc, rc, ql, rl = tie_heavy_case(2, n_query=4, n_items=9, n_bits=16, n_base=9)
    d = hamming_distance(qc, rc)
    assert d.dtype == np.int32 and d.shape == (4, 9)
    np.testing.assert_array_equal(d, ref_distances(qc, rc))
    np.testing.assert_array_equal(hamming_distance(qc.astype(np.int64), rc.astype(float)), d)
    rel = relevance(ql, rl)
    assert rel.dtype == bool
    np.testing.assert_array_equal(rel, ref_relevance(ql, rl))
    np.testing.assert_array_equal(relevance(ql.astype(bool), rl.astype(np.float32)), rel)


def test_class_id_labels_equal_their_one_hot():
    qc, rc, _, _ = tie_heavy_case(6, n_items=15)
    rng = np.random.default_rng(0)
    qy, ry = rng.integers(-1, 3, 5) * 10, rng.integers(-1, 3, 15) * 10  # arbitrary ids
    classes = np.unique(np.concatenate([qy, ry]))
    qh, rh = (qy[:, None] == classes).astype(int), (ry[:, None] == classes).astype(int)
    np.testing.assert_array_equal(relevance(qy, ry), qy[:, None] == ry[None, :])
    for tie in TIE_POLICIES:
        np.testing.assert_array_equal(
            average_precision(qc, rc, qy, ry, tie=tie), average_precision(qc, rc, qh, rh, tie=tie)
        )


def test_pr_curve_matches_brute_force():
    qc, rc, ql, rl = tie_heavy_case(8, n_query=6, n_items=30, n_bits=8, n_base=6)
    curve = pr_curve(qc, rc, ql, rl)
    dist, rel = ref_distances(qc, rc), ref_relevance(ql, rl)
    np.testing.assert_array_equal(curve.radius, np.arange(9))
    for radius in range(9):
        precisions, recalls = [], []
        for d, r in zip(dist, rel):
            retrieved = d <= radius
            if retrieved.sum() > 0:
                precisions.append((r & retrieved).sum() / retrieved.sum())
            if r.sum() > 0:
                recalls.append((r & retrieved).sum() / r.sum())
        want_p = np.mean(precisions) if precisions else np.nan
        np.testing.assert_allclose(curve.precision[radius], want_p, atol=1e-15)
        np.testing.assert_allclose(curve.recall[radius], np.mean(recalls), atol=1e-15)
    assert curve.recall[-1] == 1.0  # everything is retrieved at radius n_bits


def test_pr_curve_is_nan_where_undefined():
    qc, rc = _line_codes([1, 2])  # nothing at radius 0
    curve = pr_curve(qc, rc, np.array([0]), np.array([1, 1]))  # and no relevant item
    assert np.isnan(curve.precision[0]) and curve.precision[1] == 0.0
    assert np.all(np.isnan(curve.recall))


def test_evaluate_matches_the_single_metric_functions():
    qc, rc, ql, rl = tie_heavy_case(10, n_query=7, n_items=25)
    for tie in TIE_POLICIES:
        got = evaluate(qc, rc, ql, rl, metrics=("map", "map@5", "p@1", "p@5", "p@100"), tie=tie)
        assert list(got) == ["map", "map@5", "p@1", "p@5", "p@100"]
        assert all(type(v) is float for v in got.values())
        assert got["map"] == mean_average_precision(qc, rc, ql, rl, tie=tie)
        assert got["map@5"] == mean_average_precision(qc, rc, ql, rl, tie=tie, topk=5)
        p = precision_at_k(qc, rc, ql, rl, [1, 5, 100], tie=tie)
        assert p.shape == (3,) and p.dtype == np.float64
        assert [got["p@1"], got["p@5"], got["p@100"]] == p.tolist()
    # one token as a plain string; a single int K for precision_at_k
    assert evaluate(qc, rc, ql, rl, metrics="p@5") == {"p@5": precision_at_k(qc, rc, ql, rl, 5)[0]}
