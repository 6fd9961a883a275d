"""One pass per task: :func:`evaluate_task` equals the metrics, curves and policies computed one
by one (bit-identical) and the reference oracle (to 1e-12); metric tokens are parsed in one
place."""

from __future__ import annotations

import numpy as np
import pytest
from test_eval_engine import CASES, make_case  # rootdir-relative: tests have no packages

from mmhash.errors import InvalidInputError, UnknownNameError
from mmhash.evaluation import (
    TIE_POLICIES,
    Metric,
    evaluate,
    evaluate_task,
    metric_title,
    parse_metric,
    pr_curve,
    precision_at_k,
    reference,
)

METRICS = ("map", "map@1", "map@7", "map@100000", "p@1", "p@13", "p@100000")
CUTOFFS = (1, 2, 5, 10, 50, 100000)


@pytest.fixture(params=list(CASES), scope="module")
def case(request):
    seed, q, n, bits, classes, ids = CASES[request.param]
    return make_case(seed, q, n, bits, classes, ids=ids)


def test_one_pass_equals_each_call_exactly(case):
    q, r, lq, lr = case
    found = evaluate_task(q, r, lq, lr, metrics=METRICS, ties=TIE_POLICIES, pk_cutoffs=CUTOFFS)
    for tie in TIE_POLICIES:
        alone = evaluate(q, r, lq, lr, metrics=METRICS, tie=tie)
        assert {m: found.values[(m, tie)] for m in METRICS} == alone  # bit-identical
        np.testing.assert_array_equal(found.precision_at_k[tie],
                                      precision_at_k(q, r, lq, lr, CUTOFFS, tie=tie))
    pr = pr_curve(q, r, lq, lr)
    np.testing.assert_array_equal(found.pr.precision, pr.precision)
    np.testing.assert_array_equal(found.pr.recall, pr.recall)
    assert found.cutoffs.tolist() == list(CUTOFFS)


@pytest.mark.parametrize("tie", TIE_POLICIES)
def test_a_value_does_not_depend_on_what_else_is_asked(case, tie):
    """A recomputation from stored codes may ask other metrics than the run did: each value,
    under every policy (the index walk included), must come out the same to the last bit."""
    q, r, lq, lr = case
    alone = {m: evaluate(q, r, lq, lr, metrics=[m], tie=tie)[m] for m in METRICS}
    crowded = evaluate_task(q, r, lq, lr, metrics=(*METRICS, "map@3", "p@30", "map@30"),
                            ties=[tie], pk_cutoffs=(3, 4, 30, 31))
    assert {m: crowded.values[(m, tie)] for m in METRICS} == alone


def test_one_pass_equals_the_reference(case):
    q, r, lq, lr = case
    found = evaluate_task(q, r, lq, lr, metrics=METRICS, ties=TIE_POLICIES, pk_cutoffs=())
    for tie in TIE_POLICIES:
        oracle = reference.evaluate(q, r, lq, lr, metrics=METRICS, tie=tie)
        for metric in METRICS:
            assert abs(found.values[(metric, tie)] - oracle[metric]) < 1e-12
    assert found.precision_at_k == {}


def test_one_pass_refuses_bad_requests_clearly(case):
    q, r, lq, lr = case
    with pytest.raises(UnknownNameError, match="tie policy"):
        evaluate_task(q, r, lq, lr, ties=("expected", "random"))
    with pytest.raises(InvalidInputError, match="at least one tie policy"):
        evaluate_task(q, r, lq, lr, ties=())
    with pytest.raises(UnknownNameError, match="map@K"):
        evaluate_task(q, r, lq, lr, metrics=("ndcg",))
    with pytest.raises(InvalidInputError, match="each K"):
        evaluate_task(q, r, lq, lr, pk_cutoffs=(5, 0))


@pytest.mark.parametrize("token, metric, title", [
    ("map", Metric("map"), "mAP@all"), ("map@50", Metric("map", 50), "mAP@50"),
    ("p@100", Metric("p", 100), "P@100"), ("recall@5", Metric("recall", 5), "Recall@5"),
    ("medr", Metric("medr"), "MedR"), ("ndcg@100", Metric("ndcg", 100), "NDCG@100"),
    ("acg@10", Metric("acg", 10), "ACG@10")])
def test_a_metric_is_defined_once(token, metric, title):
    assert parse_metric(token) == metric
    assert metric.token == token and metric.title == title == metric_title(token)


@pytest.mark.parametrize("token", ["MAP", "map@", "p", "p@x", "ndcg", "medr@5", "recall",
                                   "map@-1", 5, None])
def test_bad_tokens_name_the_valid_forms(token):
    with pytest.raises(UnknownNameError, match="map@K"):
        parse_metric(token)


def test_cut_offs_beyond_the_retrieval_set():
    assert Metric("map", 500).cut(100) is None  # the whole ranking
    assert Metric("p", 500).cut(100) == 100
    assert Metric("map").cut(100) is None and Metric("map", 5).cut(100) == 5
