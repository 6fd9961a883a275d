"""Memory and scaling of mAP@all.

* Peak memory of mAP@all (every tie policy) at 2,000 x 1,000,000, 64 bits, 24 labels: below
  2 GiB. Measured in a fresh subprocess as peak RSS (``VmHWM``, which sees numba's allocations
  too, unlike tracemalloc), reset after the data is made inside it, so it is the peak of the
  process while evaluating, inputs and interpreter included.
* Time linear in Q x N: four sizes spanning 16x in pairs; the fitted exponent of time against
  Q x N must be within [0.85, 1.15], and time per pair is reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
from conftest import THREADS, make_set, record

from mmhash.evaluation import evaluate

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, os, resource, sys, time
    import numpy as np
    import numba
    from mmhash.evaluation import evaluate

    numba.set_num_threads({threads})
    sys.path.insert(0, {here!r})
    from conftest import make_set

    def peak_mib():
        # VmHWM: peak resident set since start or since the last reset below
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    def current_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    rng = np.random.default_rng(7)
    qc, rc, ql, rl = make_set(rng, 2000, 1_000_000, 64)
    evaluate(qc[:2], rc[:1000], ql[:2], rl[:1000], tie="index")  # load kernels
    generation_peak = peak_mib()
    try:  # reset the peak so it measures the evaluation, not the data generation
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = current_mib()
    start = time.perf_counter()
    result = {{}}
    for tie in ("expected", "optimistic", "pessimistic", "index"):
        result[tie] = evaluate(qc, rc, ql, rl, metrics=["map"], tie=tie)["map"]
    seconds = time.perf_counter() - start
    print(json.dumps({{"peak_mib": peak_mib(), "before_mib": before, "seconds": seconds,
                      "generation_peak_mib": generation_peak,
                      "map": result, "input_mib": (qc.nbytes + rc.nbytes + ql.nbytes
                                                   + rl.nbytes) / 2**20}}))
    """
)


def test_peak_memory_map_all_2000_x_1m(benchmark):
    import pathlib

    here = str(pathlib.Path(__file__).parent)
    script = _MEMORY_SCRIPT.format(threads=THREADS, here=here)

    def run():
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    peak_gib = result["peak_mib"] / 1024
    record(
        "peak memory, mAP@all (4 tie policies) 2000x1000000 @64, fresh process",
        f"peak RSS while evaluating {result['peak_mib']:.0f} MiB (resident before: "
        f"{result['before_mib']:.0f} MiB, inputs {result['input_mib']:.0f} MiB; peak while "
        f"making the data {result['generation_peak_mib']:.0f} MiB; 4 policies in "
        f"{result['seconds']:.1f} s)",
        "< 2 GiB",
        peak_gib < 2,
    )
    assert peak_gib < 2, result


# 16x in Q x N. The cost is Q * (a + b N): a ~40 us per query for the tie formulas over n_bits + 1
# groups, b ~1-2 ns per pair; N >= 200,000 keeps the per-query term small beside the pairs.
SIZES = [(1000, 200_000), (2000, 400_000), (4000, 400_000), (4000, 800_000)]


def test_time_is_linear_in_pairs(benchmark, rng):
    n_query, n_items = SIZES[-1]
    qc, rc, ql, rl = make_set(rng, n_query, n_items, 64)
    times = []
    for q, n in SIZES:
        args = (qc[:q], rc[:n], ql[:q], rl[:n])
        evaluate(*args)  # warm
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            evaluate(*args)
            runs.append(time.perf_counter() - start)
        times.append(float(np.median(runs)))
    benchmark.pedantic(evaluate, args=(qc, rc, ql, rl), rounds=3, iterations=1)
    pairs = np.array([q * n for q, n in SIZES], dtype=float)
    slope = float(np.polyfit(np.log(pairs), np.log(times), 1)[0])
    per_pair = [t / p * 1e9 for t, p in zip(times, pairs)]
    benchmark.extra_info.update({"sizes": SIZES, "median_s": times, "exponent": slope})
    record(
        "time of mAP@all vs Q x N (64 bits, tie=expected)",
        ", ".join(
            f"{q}x{n}: {t:.3f} s ({ns:.2f} ns/pair)"
            for (q, n), t, ns in zip(SIZES, times, per_pair)
        )
        + f"; fitted exponent {slope:.2f}",
        "exponent in [0.85, 1.15]",
        0.85 <= slope <= 1.15,
    )
    assert 0.85 <= slope <= 1.15, (times, slope)
