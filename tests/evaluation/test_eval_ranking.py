"""The real-valued ranking path against the brute-force reference and the Hamming engine.

Equal distances are ties: the reference enumerates every order of every tie group
(:func:`all_tie_orders`), and a distance matrix holding Hamming distances must give exactly what
the Hamming engine gives for the same codes, under every metric and tie policy.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_eval_reference import METRICS, all_tie_orders, ref_order, ref_relevance, ref_value

from mmhash.errors import InvalidInputError
from mmhash.evaluation import TIE_POLICIES, evaluate_ranking, evaluate_task, hamming_distance
from mmhash.evaluation import ranking as ranking_module


def _tokens(metrics):
    return [("map" if k is None else f"{kind}@{k}") for kind, k in metrics]


def tied_real_case(seed, n_query=5, n_items=9, n_classes=3):
    """Real distances with heavy ties (values from a few levels, plus repeated database rows:
    the same item twice is at the same distance), one query with no relevant item."""
    rng = np.random.default_rng(seed)
    levels = rng.normal(size=3)
    distances = levels[rng.integers(0, 3, (n_query, n_items))]
    distances[:, -2:] = distances[:, :2]  # the last two items repeat the first two
    distances += rng.normal(size=(n_query, 1))  # a query's offset does not change its ranking
    ql = (rng.random((n_query, n_classes)) < 0.4).astype(np.int64)
    rl = (rng.random((n_items, n_classes)) < 0.4).astype(np.int64)
    rl[-2:] = rl[:2]
    ql[0] = 0
    return distances, ql, rl


def brute_force(distances, ql, rl, metric, tie):
    rel = ref_relevance(ql, rl)
    out = []
    for d, r in zip(distances, rel):
        if tie == "expected":
            out.append(ref_value(r[all_tie_orders(d)], metric).mean())
        else:
            out.append(ref_value(r[ref_order(d, r, tie)], metric)[0])
    return float(np.mean(out))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tie", TIE_POLICIES)
def test_every_metric_and_tie_policy_equals_the_brute_force_reference(seed, tie):
    distances, ql, rl = tied_real_case(seed)
    found = evaluate_ranking(distances, ql, rl, metrics=_tokens(METRICS), ties=[tie])
    for metric, token in zip(METRICS, _tokens(METRICS)):
        assert found.values[(token, tie)] == pytest.approx(
            brute_force(distances, ql, rl, metric, tie), abs=1e-12), (token, tie)


@pytest.mark.parametrize("seed", range(3))
def test_hamming_distances_as_reals_give_the_hamming_engine_values(seed):
    rng = np.random.default_rng(seed)
    base = rng.choice([-1, 1], size=(5, 16)).astype(np.int8)
    qc, rc = base[rng.integers(0, 5, 40)], base[rng.integers(0, 5, 300)]
    ql, rl = rng.integers(0, 4, 40), rng.integers(0, 4, 300)
    metrics, ks = ["map", "map@20", "p@7", "map@1000"], [1, 5, 50, 300]
    codes = evaluate_task(qc, rc, ql, rl, metrics=metrics, ties=TIE_POLICIES, pk_cutoffs=ks)
    real = evaluate_ranking(hamming_distance(qc, rc) * 0.25 - 3.0, ql, rl, metrics=metrics,
                            ties=TIE_POLICIES, pk_cutoffs=ks)
    assert real.pr is None
    for key, value in codes.values.items():
        assert real.values[key] == pytest.approx(value, abs=1e-12), key
    for tie in TIE_POLICIES:
        np.testing.assert_allclose(real.precision_at_k[tie], codes.precision_at_k[tie],
                                   atol=1e-12)


def test_blocks_from_a_function_equal_the_whole_matrix(monkeypatch):
    distances, ql, rl = tied_real_case(3, n_query=23, n_items=9)
    whole = evaluate_ranking(distances, ql, rl, metrics=["map", "p@3"], ties=TIE_POLICIES)
    monkeypatch.setattr(ranking_module, "BLOCK_PAIRS", 20)  # two queries per block
    asked = []

    def rows_of(rows):
        asked.append(rows)
        return distances[rows]

    blocked = evaluate_ranking(rows_of, ql, rl, metrics=["map", "p@3"], ties=TIE_POLICIES)
    assert len(asked) == 12
    assert blocked.values == whole.values


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, 8)), "matching the labels"),
    (lambda rows: np.zeros((1, 9)), "expected"),
    (np.where(np.eye(5, 9) > 0, np.nan, 0.0), "NaN or infinite"),
    (np.full((5, 9), np.inf), "NaN or infinite"),
    (np.full((5, 9), "a"), "real numbers"),
])
def test_bad_distances_get_one_clear_error(bad, message):
    _, ql, rl = tied_real_case(0)
    with pytest.raises(InvalidInputError, match=message):
        evaluate_ranking(bad, ql, rl)
