"""The bench's evaluation of one task: one engine pass (evaluate_task) against the calls the
bench made before (a PR-curve pass, then per tie policy one evaluate and one precision_at_k:
1 + 2 x ties histogram passes, plus two index walks for ``index``).

Both sides compute the same numbers (asserted bit-identical below): mAP@all under the
``expected`` and ``index`` policies, the PR curve and the P@K curve at the bench's cut-offs.
Two sizes: ``wiki`` (693 queries x 2,173 items, 10 classes, 64 bits) and a synthetic cell of
20,000 queries x 190,000 items (MMHASH_PERF_FULL=1; by default 2,000 queries: both sides scale
linearly in the queries, so the ratio is the same).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FULL, make_set, side_by_side

from mmhash.bench.cell import pk_grid
from mmhash.evaluation import evaluate, evaluate_task, pr_curve, precision_at_k

TIES = ("expected", "index")
SIZES = {"wiki-shaped 693x2173": (693, 2173, 10, 0.1),
         f"synthetic {20_000 if FULL else 2_000}x190000": (20_000 if FULL else 2_000, 190_000,
                                                           24, 0.15)}


def separate_calls(qc, rc, ql, rl, ks):
    """What the runner did before: PR curve, then evaluate + precision_at_k per tie policy."""
    pr = pr_curve(qc, rc, ql, rl)
    values, curves = {}, {}
    for tie in TIES:
        values[tie] = evaluate(qc, rc, ql, rl, metrics=["map"], tie=tie)["map"]
        curves[tie] = precision_at_k(qc, rc, ql, rl, ks, tie=tie)
    return pr, values, curves


@pytest.mark.parametrize("size", list(SIZES))
def test_one_pass_vs_separate_calls(benchmark, rng, size):
    n_query, n_items, n_classes, rate = SIZES[size]
    qc, rc, ql, rl = make_set(rng, n_query, n_items, 64, n_classes, rate)
    ks = pk_grid(n_items)
    one = evaluate_task(qc, rc, ql, rl, metrics=["map"], ties=TIES, pk_cutoffs=ks)
    pr, values, curves = separate_calls(qc, rc, ql, rl, ks)
    assert {t: one.values[("map", t)] for t in TIES} == values
    assert all(np.array_equal(one.precision_at_k[t], curves[t]) for t in TIES)
    assert np.array_equal(one.pr.precision, pr.precision, equal_nan=True)
    side_by_side(
        benchmark,
        f"bench evaluation of one task, {size}, 64 bits, ties expected+index: one pass vs "
        "separate calls",
        lambda: evaluate_task(qc, rc, ql, rl, metrics=["map"], ties=TIES, pk_cutoffs=ks),
        lambda: separate_calls(qc, rc, ql, rl, ks),
        target="> 1x",
        holds=lambda r: r > 1,
        note="same values (asserted equal); the separate calls make 5 histogram passes and "
             "2 index walks, the one pass 1 and 1",
    )
