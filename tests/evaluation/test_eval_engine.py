"""The packed engine against the reference engine (the test oracle).

Histograms must be equal exactly, metrics to 1e-12, on random cases with heavy ties, multi-label
and class-id labels, more than 64 classes, queries without relevant items, every tie policy,
top-K cut-offs, code lengths that are and are not multiples of 64, and retrieval sets longer
than one kernel tile.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmhash.errors import InvalidInputError
from mmhash.evaluation import (
    TIE_POLICIES,
    average_precision,
    engine,
    evaluate,
    hamming_distance,
    pack_codes,
    pr_curve,
    precision_at_k,
    reference,
    relevance,
    unpack_codes,
)
from mmhash.evaluation.kernels import TILE
from mmhash.evaluation.packing import check_packed

ATOL = 1e-12


def make_case(seed, n_query, n_items, n_bits, n_classes, *, n_base=12, label_rate=0.15, ids=False):
    """Codes drawn partly from a few base codes (large tie groups) and partly at random;
    multi-hot labels (or class ids), with query 0 unlabelled so it has no relevant item."""
    rng = np.random.default_rng(seed)
    base = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_base, n_bits))
    qc = base[rng.integers(0, n_base, n_query)]
    rc = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_items, n_bits))
    tied = rng.random(n_items) < 0.5
    rc[tied] = base[rng.integers(0, n_base, int(tied.sum()))]
    if ids:
        ql = rng.integers(0, n_classes, n_query)
        rl = rng.integers(0, n_classes, n_items)
        ql[0] = n_classes + 7  # an id no item has
        return qc, rc, ql, rl
    ql = (rng.random((n_query, n_classes)) < label_rate).astype(np.int64)
    rl = (rng.random((n_items, n_classes)) < label_rate).astype(np.int64)
    ql[0] = 0
    return qc, rc, ql, rl


CASES = {  # name: (seed, Q, N, n_bits, n_classes, ids)
    "8 bits, 3 classes": (1, 9, 301, 8, 3, False),
    "24 bits, 70 classes (2 words)": (2, 7, 2 * TILE + 77, 24, 70, False),
    "64 bits, 24 classes": (3, 11, TILE + 3, 64, 24, False),
    "72 bits, 130 classes (3 words)": (4, 6, 999, 72, 130, False),
    "1024 bits, 5 classes": (5, 5, 700, 1024, 5, False),
    "64 bits, class ids": (6, 8, 1500, 64, 6, True),
    "130 bits, 200 class ids": (7, 5, 1200, 130, 200, True),
}
SPECS = ["map", "map@1", "map@10", "map@100", "map@5000", "p@1", "p@10", "p@100", "p@5000"]


@pytest.fixture(params=list(CASES), scope="module")
def case(request):
    seed, q, n, bits, classes, ids = CASES[request.param]
    return make_case(seed, q, n, bits, classes, ids=ids)


def test_histograms_equal_the_reference_exactly(case):
    qc, rc, ql, rl = case
    (_, n, r), = list(engine.iter_histograms(engine.prepare(qc, rc, ql, rl)))
    (_, n_ref, r_ref), = list(reference.iter_histograms(reference.prepare(qc, rc, ql, rl)))
    assert n.dtype == np.int64 and r.dtype == np.int64
    np.testing.assert_array_equal(n, n_ref)
    np.testing.assert_array_equal(r, r_ref)
    assert (n.sum(axis=1) == len(rc)).all()


@pytest.mark.parametrize("tie", TIE_POLICIES)
def test_every_metric_equals_the_reference(case, tie):
    qc, rc, ql, rl = case
    got = evaluate(qc, rc, ql, rl, metrics=SPECS, tie=tie)
    want = reference.evaluate(qc, rc, ql, rl, metrics=SPECS, tie=tie)
    assert got == pytest.approx(want, abs=ATOL, rel=0)
    for topk in (None, 1, 17, len(rc) - 1, len(rc) + 3):
        np.testing.assert_allclose(
            average_precision(qc, rc, ql, rl, tie=tie, topk=topk),
            reference.average_precision(qc, rc, ql, rl, tie=tie, topk=topk),
            rtol=0,
            atol=ATOL,
            err_msg=f"{tie} topk={topk}",
        )
    ks = [1, 2, 50, 333, len(rc), len(rc) + 9]
    np.testing.assert_allclose(
        precision_at_k(qc, rc, ql, rl, ks, tie=tie),
        reference.precision_at_k(qc, rc, ql, rl, ks, tie=tie),
        rtol=0,
        atol=ATOL,
    )


def test_query_without_relevant_items_scores_zero(case):
    qc, rc, ql, rl = case  # query 0 has no label (or an id no item has)
    for tie in TIE_POLICIES:
        assert average_precision(qc, rc, ql, rl, tie=tie)[0] == 0.0
        assert average_precision(qc, rc, ql, rl, tie=tie, topk=10)[0] == 0.0


def test_pr_curve_equals_the_reference(case):
    qc, rc, ql, rl = case
    got, want = pr_curve(qc, rc, ql, rl), reference.pr_curve(qc, rc, ql, rl)
    np.testing.assert_array_equal(got.radius, want.radius)
    np.testing.assert_allclose(got.precision, want.precision, rtol=0, atol=ATOL)
    np.testing.assert_allclose(got.recall, want.recall, rtol=0, atol=ATOL)


def test_distance_and_relevance_matrices_equal_the_reference(case):
    qc, rc, ql, rl = case
    d = hamming_distance(qc, rc)
    assert d.dtype == np.int32
    np.testing.assert_array_equal(d, reference.hamming_distance(qc, rc))
    np.testing.assert_array_equal(relevance(ql, rl), reference.relevance(ql, rl))


def _research_loop(dist, rel, topk=None):
    """The usual per-query loop: argsort (stable), cumulative precision at relevant ranks."""
    out = []
    for d, r in zip(dist, rel):
        ranked = r[np.argsort(d, kind="stable")][:topk]
        hits = np.cumsum(ranked)
        found = hits[-1]
        prec = hits / np.arange(1, len(ranked) + 1)
        out.append((prec * ranked).sum() / found if found else 0.0)
    return np.array(out)


def test_index_policy_equals_the_stable_argsort_loop():
    qc, rc, ql, rl = make_case(8, 12, 3 * TILE + 5, 16, 4, n_base=4, label_rate=0.4)
    dist, rel = reference.hamming_distance(qc, rc), reference.relevance(ql, rl)
    for topk in (None, 1, 9, 1000, TILE + 1):
        got = average_precision(qc, rc, ql, rl, tie="index", topk=topk)
        np.testing.assert_allclose(got, _research_loop(dist, rel, topk), rtol=0, atol=ATOL)


def test_blocks_of_queries_do_not_change_results(monkeypatch):
    qc, rc, ql, rl = make_case(9, 23, 400, 24, 5)
    metrics = ["map", "map@5", "p@5"]
    whole = {t: evaluate(qc, rc, ql, rl, metrics=metrics, tie=t) for t in TIE_POLICIES}
    curve = pr_curve(qc, rc, ql, rl)
    monkeypatch.setattr(engine, "QUERY_BLOCK", 4)
    for tie in TIE_POLICIES:
        assert evaluate(qc, rc, ql, rl, metrics=metrics, tie=tie) == whole[tie]
    blocked = pr_curve(qc, rc, ql, rl)  # sums over blocks: equal up to rounding
    np.testing.assert_allclose(blocked.precision, curve.precision, rtol=0, atol=1e-15)
    np.testing.assert_allclose(blocked.recall, curve.recall, rtol=0, atol=1e-15)


def test_thread_count_does_not_change_results(monkeypatch):
    numba = pytest.importorskip("numba")
    qc, rc, ql, rl = make_case(10, 40, 2000, 64, 8)
    # the small case would run on one thread (PARALLEL_MIN_PAIRS): force the parallel path
    monkeypatch.setattr(engine, "PARALLEL_MIN_PAIRS", 0)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = {t: evaluate(qc, rc, ql, rl, metrics=SPECS, tie=t) for t in TIE_POLICIES}
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = {t: evaluate(qc, rc, ql, rl, metrics=SPECS, tie=t) for t in TIE_POLICIES}
    finally:
        numba.set_num_threads(before)
    assert one == many
    for tie in TIE_POLICIES:
        want = reference.evaluate(qc, rc, ql, rl, metrics=SPECS, tie=tie)
        assert many[tie] == pytest.approx(want, abs=ATOL, rel=0)
    np.testing.assert_array_equal(hamming_distance(qc, rc), reference.hamming_distance(qc, rc))
    np.testing.assert_array_equal(relevance(ql, rl), reference.relevance(ql, rl))


# ----------------------------------------------------------------------------- packing


@pytest.mark.parametrize("n_bits", [1, 8, 24, 63, 64, 65, 72, 128, 1024])
def test_pack_unpack_round_trip(n_bits):
    rng = np.random.default_rng(n_bits)
    codes = rng.choice(np.array([-1, 1], dtype=np.int8), size=(5, n_bits))
    words = pack_codes(codes)
    assert words.dtype == np.uint64 and words.shape == (5, -(-n_bits // 64))
    np.testing.assert_array_equal(unpack_codes(words, n_bits), codes)
    # bit j of the code is bit j % 64 of word j // 64, set for +1
    j = n_bits - 1
    assert ((words[:, j // 64] >> np.uint64(j % 64)) & np.uint64(1)).astype(bool).tolist() == (
        codes[:, j] > 0
    ).tolist()
    # popcount of XOR equals the Hamming distance
    xor = words[:, None, :] ^ words[None, :, :]
    xor = np.unpackbits(xor.reshape(5, 5, -1).view(np.uint8), axis=2).sum(axis=2)
    np.testing.assert_array_equal(xor, reference.hamming_distance(codes, codes))


def test_packed_words_must_be_packed_as_declared():
    words = pack_codes(np.ones((3, 72), dtype=np.int8))
    with pytest.raises(InvalidInputError, match="uint64"):
        check_packed(words.astype(np.int64), 72, "words")
    with pytest.raises(InvalidInputError, match=r"shape \(n, 2\)"):
        check_packed(words[:, :1], 72, "words")
    bad = words.copy()
    bad[0, 1] |= np.uint64(1) << np.uint64(8)  # bit 72: beyond a 72-bit code
    with pytest.raises(InvalidInputError, match="bits set above bit 72"):
        check_packed(bad, 72, "words")


# ----------------------------------------------------------------------------- bad input


_Q, _R = np.ones((2, 8)), np.ones((3, 8))  # valid codes: 2 queries, 3 items, 8 bits
_LQ, _LR = np.ones((2, 2)), np.ones((3, 2))  # valid labels


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((_Q, np.ones((3, 16)), _LQ, _LR), "same number of bits"),
        ((np.zeros((2, 8)), _R, _LQ, _LR), "only -1 and \\+1"),
        ((_Q, _R, np.ones((4, 2)), _LR), "query_labels has 4 rows"),
        ((_Q, _R, _LQ, np.ones((5, 2))), "retrieval_labels has 5 rows"),
        ((_Q, _R, _LQ, np.ones((3, 3))), "same number of classes"),
        ((_Q, _R, np.ones(2), _LR), "same form"),
        ((_Q, _R, np.full((2, 2), 2), _LR), "multi-hot with values 0 and 1"),
    ],
)
def test_bad_input_raises_a_clear_error(args, message):
    with pytest.raises(InvalidInputError, match=message):
        evaluate(*args)
    with pytest.raises(InvalidInputError, match=message):
        engine.prepare(*args)


@pytest.mark.parametrize("k", [0, -3, 1.5, True])
def test_k_must_be_positive(k):
    qc, rc, ql, rl = make_case(11, 2, 10, 8, 2)
    with pytest.raises(InvalidInputError, match="positive integer"):
        average_precision(qc, rc, ql, rl, topk=k)
    with pytest.raises(InvalidInputError, match="positive integer"):
        precision_at_k(qc, rc, ql, rl, [k])


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_query=st.integers(1, 6),
    n_items=st.integers(1, 300),
    n_bits=st.sampled_from([1, 3, 8, 24, 63, 64, 65, 72, 130]),
    n_classes=st.integers(1, 130),
    ids=st.booleans(),
    k=st.integers(1, 400),
)
def test_random_small_cases_equal_the_reference(seed, n_query, n_items, n_bits, n_classes, ids, k):
    qc, rc, ql, rl = make_case(
        seed, n_query, n_items, n_bits, n_classes, n_base=3, label_rate=0.3, ids=ids
    )
    metrics = ["map", f"map@{k}", f"p@{k}"]
    for tie in TIE_POLICIES:
        got = evaluate(qc, rc, ql, rl, metrics=metrics, tie=tie)
        want = reference.evaluate(qc, rc, ql, rl, metrics=metrics, tie=tie)
        assert got == pytest.approx(want, abs=ATOL, rel=0), tie
    prepared = engine.prepare(qc, rc, ql, rl)
    (_, n, r), = list(engine.iter_histograms(prepared))
    n0, r0 = (
        np.concatenate(parts)
        for parts in zip(*[(b[1], b[2]) for b in reference.iter_histograms(
            reference.prepare(qc, rc, ql, rl)
        )])
    )
    np.testing.assert_array_equal(n, n0)
    np.testing.assert_array_equal(r, r0)
