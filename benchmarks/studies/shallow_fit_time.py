"""Fit time of the shallow methods on one dataset, each beside CMFH's fit of the same cell.

    MMHASH_DATA=../shared/datasets python benchmarks/studies/shallow_fit_time.py
        [--dataset wiki] [--methods lssh,imh,cmfh,cvh] [--bits 16,32,64,128] [--seeds 0,1,2]
        [--threads 1] [--repeats 1] [--base PYTHONPATH]

Fits every method at every bit length and seed, at its default parameters, on the training
split (as float64, as the bench hands it over) in a long-lived worker process, and prints one
Markdown row per fit:

* ``fit s``: the fit (``hasher.fit``), the fastest of ``--repeats`` fits;
* ``/ cmfh``: that time over CMFH's fit of the same bits and seed in the same worker, fitted
  right before or after it (a busy machine slows both alike, so ratios compare across runs
  where seconds do not);
* ``iters``: ``n_iter_`` (outer iterations) where the method has it;
* ``objective``: the last value of ``objective_`` (the value at convergence); IMH's is the sum
  of its selected eigenvalues, CVH records none;
* ``I->T`` / ``T->I``: mAP of the query codes of one view ranked against the retrieval codes of
  the other (:func:`mmhash.evaluation.mean_average_precision`), the bench's per-view protocol.

A second table gives, per method and bit length, the median ratio to CMFH over the seeds and
the seed spread (slowest over fastest fit).

``--base PYTHONPATH`` starts a second worker with that path in front of ``sys.path`` (e.g. a
``git worktree add /tmp/base REV`` checkout: ``--base /tmp/base:/tmp/base/baselines``) and fits
every cell in both, alternately, so the two revisions are timed under the same load: every row
is then given for ``base`` and ``now``, and the summary adds ``now / base``.

Each worker first fits every method once on a few hundred training rows, so the timings leave
out imports and loading compiled kernels. BLAS/OpenMP threads: ``--threads`` (default 1), set
before numpy starts in the workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

WORKER = r"""
import json, sys, time, warnings
import numpy as np
from mmhash.data import load_dataset
from mmhash.evaluation import mean_average_precision
from mmhash.registry import get_hasher

warnings.simplefilter("ignore")
dataset = load_dataset({dataset!r})
rows = dataset.split.train
train = {{v: dataset.views[v][rows].astype(np.float64) for v in dataset.views}}
(query, lq), (retrieval, lr) = dataset.part("query"), dataset.part("retrieval")
views = list(train)
for method in {methods!r}:  # warm-up: imports, compiled kernels
    get_hasher(method, n_bits=16, random_state=0).fit({{v: X[:300] for v, X in train.items()}})
print(json.dumps({{"ready": True}}), flush=True)


def last(value):
    if value is None:
        return None
    return float(value[-1]) if isinstance(value, (list, tuple)) else float(value)


for line in sys.stdin:
    cell = json.loads(line)
    hasher = get_hasher(cell["method"], n_bits=cell["bits"], random_state=cell["seed"])
    start = time.perf_counter()
    hasher.fit(train)
    out = {{"seconds": time.perf_counter() - start,
            "n_iter": getattr(hasher, "n_iter_", None),
            "objective": last(getattr(hasher, "objective_", None))}}
    if cell["evaluate"]:
        a, b = views
        out["maps"] = [float(mean_average_precision(hasher.encode(query[q], q),
                                                    hasher.encode(retrieval[r], r), lq, lr))
                       for q, r in ((a, b), (b, a))]
    print(json.dumps(out), flush=True)
"""


def start_worker(pythonpath: str | None, dataset: str, methods: list[str],
                 threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "MMHASH_THREADS": str(threads)}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH"))
                                            if p)
    worker = subprocess.Popen([sys.executable, "-c", WORKER.format(dataset=dataset,
                                                                     methods=methods)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=env, cwd=REPO)
    json.loads(worker.stdout.readline())  # ready
    return worker


def ask(worker: subprocess.Popen, cell: dict) -> dict:
    worker.stdin.write(json.dumps(cell) + "\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())


def number(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="wiki")
    parser.add_argument("--methods", default="lssh,imh,cmfh,cvh")
    parser.add_argument("--bits", default="16,32,64,128")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="fits per cell; the fastest counts")
    parser.add_argument("--base", help="PYTHONPATH of a second (earlier) tree to time alongside")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if "cmfh" not in methods:
        methods.append("cmfh")  # the yardstick
    bits = [int(b) for b in args.bits.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]

    sides = {"now": None} if args.base is None else {"base": args.base, "now": None}
    workers = {side: start_worker(path, args.dataset, methods, args.threads)
               for side, path in sides.items()}
    results: dict = {}
    try:
        for b in bits:
            for seed in seeds:
                for method in methods:
                    for repeat in range(args.repeats):
                        for side, worker in workers.items():
                            out = ask(worker, {"method": method, "bits": b, "seed": seed,
                                               "evaluate": repeat == 0})
                            key = (side, method, b, seed)
                            if repeat == 0:
                                results[key] = out
                            else:
                                results[key]["seconds"] = min(results[key]["seconds"],
                                                              out["seconds"])
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait()

    print(f"{args.dataset}, {args.threads} BLAS thread(s), fastest of {args.repeats} fit(s) per "
          f"cell{'; base = ' + args.base if args.base else ''}\n")
    side_col = " side |" if len(sides) > 1 else ""
    print(f"| method | bits | seed |{side_col} fit s | / cmfh | iters | objective | I->T | T->I |")
    print("|---|---|---|" + ("---|" if side_col else "") + "---|---|---|---|---|---|")
    for method in methods:
        for b in bits:
            for seed in seeds:
                for side in sides:
                    r = results[(side, method, b, seed)]
                    ratio = r["seconds"] / results[(side, "cmfh", b, seed)]["seconds"]
                    maps = r["maps"]
                    cell = f" {side} |" if side_col else ""
                    print(f"| {method} | {b} | {seed} |{cell} {r['seconds']:.3f} | {ratio:.2f} | "
                          f"{number(r['n_iter'], 'd')} | {number(r['objective'], '.6f')} | "
                          f"{maps[0]:.4f} | {maps[1]:.4f} |")

    print()
    head = " | ".join(f"{side} / cmfh (median) | {side} seed spread" for side in sides)
    print(f"| method | bits | {head} |" + (" now / base (median) |" if len(sides) > 1 else ""))
    print("|---|---|" + "---|---|" * len(sides) + ("---|" if len(sides) > 1 else ""))
    for method in methods:
        for b in bits:
            cols = []
            for side in sides:
                secs = [results[(side, method, b, s)]["seconds"] for s in seeds]
                ratios = [results[(side, method, b, s)]["seconds"]
                          / results[(side, "cmfh", b, s)]["seconds"] for s in seeds]
                cols.append(f"{statistics.median(ratios):.2f} | {max(secs) / min(secs):.2f}")
            line = f"| {method} | {b} | " + " | ".join(cols) + " |"
            if len(sides) > 1:
                change = statistics.median(results[("now", method, b, s)]["seconds"]
                                           / results[("base", method, b, s)]["seconds"]
                                           for s in seeds)
                line += f" {change:.2f} |"
            print(line)


if __name__ == "__main__":
    main()
