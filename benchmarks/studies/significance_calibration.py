"""Calibration and power of the paired swap test and bootstrap interval on real per-query AP.

Fits two registered methods (default CVH and CMFH, 64 bits, seed 0) on a real dataset's training
split and takes the per-query AP of the image->text task (whole ranking, expected ties) of each:
``m1`` and ``m2``, over the same Q queries. Then, over ``--replicates`` replicates, it measures
:func:`mmhash.evaluation.significance.paired_comparison` (seed = the replicate's index) on

* identical codes: ``m1`` against itself (the test must never reject);
* coin mixing: per query a coin, heads with probability p, gives ``a`` method 1's AP and ``b``
  method 2's, tails the reverse. At p = 0.5 the pair ``(a_q, b_q)`` is exchangeable, so this is
  the test's null hypothesis built from real AP values; for p > 0.5 the expected difference of
  mAP is ``(2p - 1) * (mAP1 - mAP2)``, a known shift, and the rejection rate is the power.

and prints one Markdown row per setting: the expected and the mean observed difference, the
rejection rates at alpha 0.05 and 0.01, and how often the interval covers the expected
difference. Under the null the rates should lie within the printed binomial 99.9% bounds. For
p > 0.5 the interval covers more often than its level: it allows for the sampling of queries,
while here the queries are fixed and only the coins vary (at p = 1 nothing varies). The
identical-codes row checks the exact-zero case (p = 1, interval [0, 0]).

Run: ``MMHASH_DATA=../shared/datasets python benchmarks/studies/significance_calibration.py
cub10 [--methods cvh,cmfh] [--replicates 500] [--permutations 999] [--resamples 999]``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402  (after the thread cap, which BLAS reads on import)

MIXING = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def per_query_ap(dataset, method: str, bits: int, seed: int) -> np.ndarray:
    """(Q,) float64 AP of the image->text task: image queries rank the text retrieval items."""
    from mmhash.evaluation import average_precision
    from mmhash.registry import get_hasher

    query_view, retrieval_view = dataset.view_names[:2]
    hasher = get_hasher(method, n_bits=bits, random_state=seed)
    train = dataset.split.train
    hasher.fit({v: dataset.views[v][train].astype(np.float64) for v in dataset.view_names})
    queries, items = dataset.split.query, dataset.split.retrieval
    query_codes = hasher.encode(dataset.views[query_view][queries], query_view)
    retrieval_codes = hasher.encode(dataset.views[retrieval_view][items], retrieval_view)
    return average_precision(query_codes, retrieval_codes, dataset.labels[queries],
                             dataset.labels[items])


def measure(pairs, expected: float, options) -> dict:
    """Compare every ``(a, b)`` pair; the rates and the mean difference over them."""
    from mmhash.evaluation.significance import paired_comparison

    p_values, differences, covered = [], [], []
    for rep, (a, b) in enumerate(pairs):
        result = paired_comparison(a, b, level=options.level, n_resamples=options.resamples,
                                   n_permutations=options.permutations, seed=rep)
        p_values.append(result.p_value)
        differences.append(result.difference)
        covered.append(result.low <= expected <= result.high)
    p = np.array(p_values)
    return {"expected": expected, "mean_diff": float(np.mean(differences)),
            "reject05": float(np.mean(p < 0.05)), "reject01": float(np.mean(p < 0.01)),
            "covered": float(np.mean(covered))}


def coin_pairs(m1: np.ndarray, m2: np.ndarray, p: float, replicates: int, seed: int):
    """``replicates`` coin-mixed pairs: a gets m1's value where the coin shows heads (prob p)."""
    rng = np.random.default_rng([seed, round(p * 1000)])
    for _ in range(replicates):
        heads = rng.random(len(m1)) < p
        yield np.where(heads, m1, m2), np.where(heads, m2, m1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--methods", default="cvh,cmfh", help="two registry names, comma-separated")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="the methods' random state")
    parser.add_argument("--replicates", type=int, default=500)
    parser.add_argument("--permutations", type=int, default=999)
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--level", type=float, default=0.95)
    options = parser.parse_args(argv)
    methods = options.methods.split(",")
    if len(methods) != 2:
        parser.error("--methods takes exactly two names")

    from scipy import stats

    from mmhash.data import load_dataset
    from mmhash.evaluation.significance import paired_comparison

    tick = time.perf_counter()
    dataset = load_dataset(options.dataset)
    m1, m2 = (per_query_ap(dataset, m, options.bits, options.seed) for m in methods)
    fitted = time.perf_counter() - tick
    n_queries = len(m1)
    real = paired_comparison(m1, m2, level=options.level, n_resamples=options.resamples,
                             n_permutations=options.permutations)
    view_q, view_r = dataset.view_names[:2]
    print(f"# {options.dataset}, {view_q}->{view_r}, {n_queries} queries, {options.bits} bits, "
          f"seed {options.seed}: mAP {methods[0]} {m1.mean():.4f}, {methods[1]} {m2.mean():.4f}; "
          f"difference {real.difference:+.4f} [{real.low:+.4f}, {real.high:+.4f}], "
          f"p = {real.p_value:.4g}")
    low, high = (stats.binom.ppf(0.0005, options.replicates, 0.05) / options.replicates,
                 stats.binom.isf(0.0005, options.replicates, 0.05) / options.replicates)
    print(f"# {options.replicates} replicates, {options.permutations} permutations, "
          f"{options.resamples} resamples, level {options.level}; under H0 a rejection rate at "
          f"0.05 within [{low:.3f}, {high:.3f}] (binomial 99.9%)")

    rows = [("identical codes (a vs a)",
             measure(((m1, m1) for _ in range(options.replicates)), 0.0, options))]
    gap = float(m1.mean() - m2.mean())
    for p in MIXING:
        label = f"coin mixing p = {p:.1f}" + (" (null)" if p == 0.5 else "")
        pairs = coin_pairs(m1, m2, p, options.replicates, options.seed)
        rows.append((label, measure(pairs, (2 * p - 1) * gap + 0.0, options)))  # no -0.0

    print("| setting | expected diff | mean diff | reject at 0.05 | reject at 0.01 | "
          f"{options.level:.0%} interval covers expected |")
    print("|---|---|---|---|---|---|")
    for label, row in rows:
        print(f"| {label} | {row['expected']:+.4f} | {row['mean_diff']:+.4f} | "
              f"{row['reject05']:.3f} | {row['reject01']:.3f} | {row['covered']:.3f} |")
    print(f"\nfit + encode + AP {fitted:.1f} s, total {time.perf_counter() - tick:.1f} s")


if __name__ == "__main__":
    main()
