"""Bad input to mmhash.evaluation raises mmhash errors whose message names the argument."""

from __future__ import annotations

import numpy as np
import pytest

from mmhash.errors import InvalidInputError, MMHashError, UnknownNameError
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

RNG = np.random.default_rng(0)
QC = RNG.choice([-1, 1], size=(3, 8)).astype(np.int8)
RC = RNG.choice([-1, 1], size=(5, 8)).astype(np.int8)
QL = RNG.integers(0, 2, size=(3, 4))
RL = RNG.integers(0, 2, size=(5, 4))

ALL_FUNCTIONS = [
    lambda qc, rc, ql, rl: average_precision(qc, rc, ql, rl),
    lambda qc, rc, ql, rl: mean_average_precision(qc, rc, ql, rl, tie="index", topk=2),
    lambda qc, rc, ql, rl: precision_at_k(qc, rc, ql, rl, [1, 3]),
    lambda qc, rc, ql, rl: pr_curve(qc, rc, ql, rl),
    lambda qc, rc, ql, rl: evaluate(qc, rc, ql, rl, metrics=["map", "p@2"]),
]


def _replace(**kwargs):
    args = {"qc": QC, "rc": RC, "ql": QL, "rl": RL}
    args.update(kwargs)
    return args["qc"], args["rc"], args["ql"], args["rl"]


BAD_INPUTS = {
    "query codes 1-D": (_replace(qc=QC[0]), r"query_codes must be 2-D"),
    "retrieval codes 3-D": (_replace(rc=RC[None]), r"retrieval_codes must be 2-D"),
    "empty query codes": (_replace(qc=QC[:0], ql=QL[:0]), r"query_codes is empty"),
    "zero bits": (_replace(rc=RC[:, :0]), r"retrieval_codes is empty"),
    "0/1 bits": (_replace(qc=(QC > 0).astype(np.int8)), r"query_codes .*found other values \[0\]"),
    "boolean codes": (_replace(rc=RC > 0), r"retrieval_codes .*boolean"),
    "nan in codes": (
        _replace(qc=np.where(QC > 0, 1.0, np.nan)),
        r"query_codes .*found other values \[nan\]",
    ),
    "real-valued codes": (_replace(rc=RC * 0.5), r"retrieval_codes .*\[-0.5, 0.5\]"),
    "string codes": (_replace(qc=QC.astype(str)), r"query_codes must be a numeric array"),
    "different n_bits": (_replace(rc=RC[:, :4]), r"same number of bits, got 8 and 4"),
    "query label rows": (_replace(ql=QL[:2]), r"query_labels has 2 rows but query_codes has 3"),
    "retrieval label rows": (
        _replace(rl=RL[:4]),
        r"retrieval_labels has 4 rows but retrieval_codes has 5",
    ),
    "different classes": (_replace(rl=RL[:, :3]), r"same number of classes, got 4 and 3"),
    "label counts": (_replace(ql=QL * 2), r"query_labels .*multi-hot.*found other values \[2\]"),
    "empty labels": (_replace(rl=RL[:, :0]), r"retrieval_labels is empty"),
    "3-D labels": (_replace(ql=QL[None]), r"query_labels must be 2-D multi-hot .* or 1-D"),
    "mixed label forms": (
        _replace(ql=np.array([0, 1, 2])),
        r"query_labels is 1-D class ids but retrieval_labels is 2-D multi-hot",
    ),
    "fractional ids": (
        _replace(ql=np.array([0.0, 1.5, 2.0]), rl=np.arange(5)),
        r"query_labels is 1-D.*\[1.5\]",
    ),
    "boolean ids": (_replace(ql=np.array([True, False, True]), rl=np.arange(5)), r"query_labels"),
}


@pytest.mark.parametrize("function", range(len(ALL_FUNCTIONS)))
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_arrays_raise_named_errors(case, function):
    args, message = BAD_INPUTS[case]
    with pytest.raises(InvalidInputError, match=message):
        ALL_FUNCTIONS[function](*args)


def test_distance_and_relevance_validate_their_arguments():
    with pytest.raises(InvalidInputError, match=r"retrieval_codes .*found other values \[0, 2\]"):
        hamming_distance(QC, np.where(RC > 0, 2, 0))
    with pytest.raises(InvalidInputError, match="same number of bits"):
        hamming_distance(QC, RC[:, 1:])
    with pytest.raises(InvalidInputError, match="same number of classes"):
        relevance(QL, RL[:, 1:])
    with pytest.raises(InvalidInputError, match="query_labels is 2-D multi-hot but"):
        relevance(QL, np.arange(5))


@pytest.mark.parametrize("tie", ["random", "Expected", "", None, 3])
def test_unknown_tie_policy_lists_the_choices(tie):
    for call in (
        lambda: average_precision(QC, RC, QL, RL, tie=tie),
        lambda: precision_at_k(QC, RC, QL, RL, [1], tie=tie),
        lambda: evaluate(QC, RC, QL, RL, tie=tie),
    ):
        with pytest.raises(UnknownNameError, match="unknown tie policy") as info:
            call()
        for choice in TIE_POLICIES:
            assert choice in str(info.value)


@pytest.mark.parametrize("topk", [0, -3, 2.5, True, "10", np.float64(4.0)])
def test_topk_must_be_a_positive_integer(topk):
    with pytest.raises(InvalidInputError, match="topk must be a positive integer"):
        average_precision(QC, RC, QL, RL, topk=topk)


def test_topk_accepts_numpy_integers():
    assert average_precision(QC, RC, QL, RL, topk=np.int64(3)).shape == (3,)


@pytest.mark.parametrize("ks", [0, [1, 0], [2, -1], [1.5], [True], "abc", None])
def test_ks_must_be_positive_integers(ks):
    with pytest.raises(InvalidInputError, match="ks"):
        precision_at_k(QC, RC, QL, RL, ks)


def test_empty_ks_is_refused():
    with pytest.raises(InvalidInputError, match="at least one K"):
        precision_at_k(QC, RC, QL, RL, [])


@pytest.mark.parametrize("token", ["ndcg", "MAP", "map@", "map@x", "p@-3", "mAP@10", "p10", 5])
def test_unknown_metric_token_lists_the_forms(token):
    with pytest.raises(UnknownNameError, match="unknown metric") as info:
        evaluate(QC, RC, QL, RL, metrics=["map", token])
    assert "map@K" in str(info.value) and "p@K" in str(info.value)


@pytest.mark.parametrize("token", ["map@0", "p@0"])
def test_metric_with_k_zero_is_invalid(token):
    with pytest.raises(InvalidInputError, match=f"metric '{token}': K must be a positive"):
        evaluate(QC, RC, QL, RL, metrics=[token])


def test_empty_metric_list_is_refused():
    with pytest.raises(InvalidInputError, match="at least one metric"):
        evaluate(QC, RC, QL, RL, metrics=[])


def test_all_errors_are_mmhash_errors():
    for args, _ in BAD_INPUTS.values():
        with pytest.raises(MMHashError):
            average_precision(*args)
