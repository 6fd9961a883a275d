"""What per-query values, instance-level and graded metrics add to the mAP-only path.

On the MIRFlickr-shaped set (2,000 queries x 18,000 items, 64 bits, 24 labels), side by side:
``evaluate_task(metrics=["map"])`` (ours) against the same call keeping every query's value, and
against the calls that add ``recall@K``/``medr`` (the queries against their 2,000 pairs) or
``ndcg@K``/``acg@K`` (one more pass). Targets: keeping per-query values costs nothing measurable
(ratio >= 0.9, the noise of a shared machine); the additions each cost at most 1.5 mAP passes
more (ratio <= 2.5).
"""

from __future__ import annotations

import pytest
from conftest import make_set, side_by_side

from mmhash.evaluation import evaluate_task

N_QUERY, N_ITEMS, N_BITS = 2000, 18_000, 64


@pytest.fixture(scope="module")
def data(rng):
    qc, rc, ql, rl = make_set(rng, N_QUERY, N_ITEMS, N_BITS)
    pairs = rc[:N_QUERY]  # any (Q, n_bits) codes: the cost does not depend on their content
    return qc, rc, ql, rl, pairs


def _map_only(data):
    qc, rc, ql, rl, _ = data
    return lambda: evaluate_task(qc, rc, ql, rl, metrics=["map"], pr=False)


def test_per_query_values_cost_nothing(benchmark, data):
    qc, rc, ql, rl, _ = data
    side_by_side(benchmark, "mAP-only evaluate_task vs the same keeping per-query values",
                 _map_only(data),
                 lambda: evaluate_task(qc, rc, ql, rl, metrics=["map"], pr=False,
                                       per_query=True),
                 rounds=7, target=">= 0.9x", holds=lambda r: r >= 0.9)


@pytest.mark.parametrize("metrics", [["map", "recall@1", "recall@10", "medr"],
                                     ["map", "ndcg@100", "acg@100"]])
def test_added_metrics_cost_at_most_one_and_a_half_map_passes_more(benchmark, data, metrics):
    qc, rc, ql, rl, pairs = data
    side_by_side(benchmark, f"mAP-only vs {','.join(metrics)}", _map_only(data),
                 lambda: evaluate_task(qc, rc, ql, rl, metrics=metrics, pr=False,
                                       pair_codes=pairs),
                 rounds=7, target="<= 2.5x", holds=lambda r: r <= 2.5)
