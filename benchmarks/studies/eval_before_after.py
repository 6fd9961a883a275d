"""The evaluation's speed at an earlier revision and now, side by side in one run.

    python benchmarks/studies/eval_before_after.py --base REV [--rounds 7] [--threads 2]

Checks out ``REV`` into a temporary git worktree and starts two long-lived worker processes,
one importing mmhash from that worktree and one from this tree. Both load the same retrieval
set (2,000 queries x 190,000 items, 64 bits, 24-label multi-hot: the MIRFlickr-shaped set of
``benchmarks/perf/test_perf_map.py``), warm up (numba kernels compiled and loaded), and then
time, in interleaved rounds (base, now, base, now, ...) so a busy machine slows both alike:

* ``evaluate(metrics=["map"])``: the mAP-only path of the library;
* ``evaluate_task(metrics=["map"], pk_cutoffs=pk_grid(N), pr=True)``: what the bench computes
  for each task by default (mAP, the P@K curve and the PR curve from one pass).

Prints a Markdown table of the medians and the ratio now / base (below 1: faster now), and
checks the two revisions give the same values.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

WORKER = r"""
import json, sys, time
import numpy as np
import numba
numba.set_num_threads({threads})
from mmhash.evaluation import evaluate, evaluate_task
from mmhash.bench.cell import pk_grid
data = np.load({data!r})
qc, rc, ql, rl = (data[k] for k in ("qc", "rc", "ql", "rl"))
ks = pk_grid(len(rl))
paths = {{
    "map": lambda: evaluate(qc, rc, ql, rl, metrics=["map"])["map"],
    "bench task": lambda: evaluate_task(qc, rc, ql, rl, metrics=["map"], pk_cutoffs=ks,
                                        pr=True).values[("map", "expected")],
}}
values = {{name: float(run()) for name, run in paths.items()}}  # warm-up
print(json.dumps(values), flush=True)
for line in sys.stdin:
    name = line.strip()
    start = time.perf_counter()
    paths[name]()
    print(time.perf_counter() - start, flush=True)
"""


def make_set(path: Path) -> None:
    """The MIRFlickr-shaped set of the perf suite, written once for both workers."""
    sys.path.insert(0, str(REPO / "benchmarks" / "perf"))
    from conftest import make_set as perf_set

    qc, rc, ql, rl = perf_set(np.random.default_rng(20260101), 2000, 190_000, 64)
    np.savez(path, qc=qc, rc=rc, ql=ql, rl=rl)


def start_worker(tree: Path, data: Path, threads: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_NUM_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-c", WORKER.format(data=str(data),
                                                                  threads=threads)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            cwd=tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_tree = tmp / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base_tree),
                        args.base], check=True, capture_output=True)
        try:
            data = tmp / "set.npz"
            make_set(data)
            workers = {"base": start_worker(base_tree, data, args.threads),
                       "now": start_worker(REPO, data, args.threads)}
            values = {side: json.loads(w.stdout.readline()) for side, w in workers.items()}
            if values["base"] != values["now"]:
                raise SystemExit(f"the revisions disagree: {values}")
            times: dict = {}
            for _ in range(args.rounds):
                for path in values["now"]:
                    for side, worker in workers.items():
                        worker.stdin.write(path + "\n")
                        worker.stdin.flush()
                        times.setdefault((path, side), []).append(
                            float(worker.stdout.readline()))
            for worker in workers.values():
                worker.stdin.close()
                worker.wait()
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(base_tree)], capture_output=True)
    revision = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.base],
                              capture_output=True, text=True).stdout.strip()
    print(f"2,000 x 190,000, 64 bits, {args.threads} threads, median of {args.rounds} "
          f"interleaved rounds; base {revision}; values equal: {values['now']}\n")
    print("| path | base s | now s | now / base |")
    print("|---|---|---|---|")
    for path in values["now"]:
        base = statistics.median(times[(path, "base")])
        now = statistics.median(times[(path, "now")])
        print(f"| {path} | {base:.3f} | {now:.3f} | {now / base:.3f} |")


if __name__ == "__main__":
    main()
