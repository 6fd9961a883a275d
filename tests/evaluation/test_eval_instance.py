"""Instance-level retrieval (``recall@K``, ``medr``) against brute force, ties included.

The single relevant item of query q is its own pair: row q of the pair codes. Brute force
enumerates every order of each tie group (``expected`` is the average over them), puts the pair
first / last in its group (``optimistic`` / ``pessimistic``) or sorts stably (``index``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mmhash.errors import InvalidInputError
from mmhash.evaluation import evaluate, evaluate_ranking, evaluate_task, hamming_distance

TIES = ("expected", "optimistic", "pessimistic", "index")


def _codes(rng, n, bits):
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, bits))


def _ranks_brute(distances: np.ndarray, tie: str) -> list[list[int]]:
    """Every rank the pair (column q of row q) can take under ``tie``, per query: all orders of
    the tie groups for ``expected``, one rank for the others."""
    out = []
    for q, row in enumerate(distances):
        if tie == "index":
            order = np.argsort(row, kind="stable")
            out.append([int(np.flatnonzero(order == q)[0]) + 1])
            continue
        before = int((row < row[q]).sum())
        group = [i for i in range(len(row)) if row[i] == row[q]]
        if tie == "optimistic":
            out.append([before + 1])
        elif tie == "pessimistic":
            out.append([before + len(group)])
        else:  # every order of the pair's tie group, equally likely
            out.append([before + perm.index(q) + 1
                        for perm in itertools.permutations(group)])
    return out


def _brute(distances: np.ndarray, tie: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query: recall@k (the pair within the top k, averaged over orders) and the
    (expected) rank."""
    ranks = _ranks_brute(distances, tie)
    recall = np.array([np.mean([r <= k for r in rs]) for rs in ranks])
    rank = np.array([np.mean(rs) for rs in ranks])
    return recall, rank


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recall_and_median_rank_match_brute_force(tie, seed):
    rng = np.random.default_rng(seed)
    Q, bits = 7, 3  # 3 bits: 4 distances for 7 items, so most pairs sit in a tie group
    queries, pairs = _codes(rng, Q, bits), _codes(rng, Q, bits)
    labels = rng.integers(0, 2, size=(Q, 2))  # the label task is irrelevant here
    labels[:, 0] = 1
    distances = hamming_distance(queries, pairs)
    found = evaluate_task(queries, pairs, labels, labels, ties=tie, pair_codes=pairs,
                          metrics=["recall@1", "recall@3", "recall@10", "medr"], pr=False,
                          per_query=True)
    for k in (1, 3, 10):
        recall, rank = _brute(distances, tie, k)
        np.testing.assert_allclose(found.per_query[(f"recall@{k}", tie)], recall, atol=1e-12)
        assert found.values[(f"recall@{k}", tie)] == pytest.approx(recall.mean(), abs=1e-12)
    np.testing.assert_allclose(found.per_query[("medr", tie)], rank, atol=1e-12)
    assert found.values[("medr", tie)] == pytest.approx(np.median(rank), abs=1e-12)


def test_real_valued_rankings_give_the_same_values():
    rng = np.random.default_rng(3)
    Q, N, bits = 40, 60, 6
    queries, pairs, items = _codes(rng, Q, bits), _codes(rng, Q, bits), _codes(rng, N, bits)
    ql, rl = rng.integers(0, 3, Q), rng.integers(0, 3, N)
    metrics = ["map", "recall@1", "recall@5", "medr"]
    for tie in TIES:
        codes = evaluate_task(queries, items, ql, rl, metrics=metrics, ties=tie,
                              pair_codes=pairs, pr=False, per_query=True)
        ranking = evaluate_ranking(hamming_distance(queries, items).astype(float), ql, rl,
                                   metrics=metrics, ties=tie, per_query=True,
                                   pair_distances=hamming_distance(queries, pairs) * 1.0)
        for key, values in codes.per_query.items():
            np.testing.assert_allclose(ranking.per_query[key], values, atol=1e-12)


def test_real_valued_ties_are_grouped_by_equal_distance():
    distances = np.array([[0.5, 0.5, 0.1, 0.5],
                          [0.2, 0.9, 0.2, 0.2],
                          [0.3, 0.1, 0.7, 0.0],
                          [0.4, 0.4, 0.4, 0.4]])
    labels = np.zeros(4, dtype=int)
    found = evaluate_ranking(np.zeros((4, 4)), labels, labels, metrics=["recall@2", "medr"],
                             ties=list(TIES), pair_distances=distances, per_query=True)
    for tie in TIES:
        recall, rank = _brute(distances, tie, 2)
        np.testing.assert_allclose(found.per_query[("recall@2", tie)], recall, atol=1e-12)
        np.testing.assert_allclose(found.per_query[("medr", tie)], rank, atol=1e-12)


def test_identical_codes_put_every_pair_in_one_tie_group():
    codes = np.ones((5, 8), dtype=np.int8)
    values = evaluate(codes, codes, np.zeros(5, int), np.zeros(5, int), pair_codes=codes,
                      metrics=["recall@1", "medr"], tie="expected")
    assert values == {"recall@1": pytest.approx(0.2), "medr": pytest.approx(3.0)}


def test_pair_metrics_need_the_pair_codes():
    codes = np.ones((5, 8), dtype=np.int8)
    labels = np.zeros(5, int)
    with pytest.raises(InvalidInputError, match="recall@5, medr rank each query's own pair"):
        evaluate(codes, codes, labels, labels, metrics=["map", "recall@5", "medr"])
    with pytest.raises(InvalidInputError, match="one row per query"):
        evaluate(codes, codes, labels, labels, metrics=["medr"], pair_codes=codes[:3])
    with pytest.raises(InvalidInputError, match="pair_distances"):
        evaluate_ranking(np.zeros((5, 5)), labels, labels, metrics=["medr"])
