"""Time and peak memory of the front door at a million rows: encode, index build, search.

    python benchmarks/studies/frontdoor_scale.py [--rows 1000000] [--queries 1000] [--dir DIR]

Fits CVH (64 bits) on the synthetic default, writes ``--rows`` rows of 128-d float32 features
shaped like its image view (a seeded Gaussian mixture through the same kind of projection: the
codes' content does not matter for speed) as one ``.npy`` file, then runs, each in its own
process so its peak resident memory is its own::

    mmhash encode model.npz items.npy --view image -o codes.npz
    mmhash index build codes.npz -o db.index
    mmhash search db.index queries.npy --model model.npz --view text -k 50 -o hits.csv

and prints wall seconds and peak RSS per command (and the feature file's size, for scale).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MMHASH = [sys.executable, "-m", "mmhash.cli"]


def _measure(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command run in a child process of a child (so the
    RSS is that command's alone)."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        f"code = subprocess.run({args!r}, stdout=subprocess.DEVNULL).returncode\n"
        "elapsed = time.perf_counter() - t\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(elapsed, peak, code)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    if out[2] != "0":
        raise SystemExit(f"{' '.join(args)} failed with exit code {out[2]}")
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dir", default=None, help="Working folder (default: a temporary one).")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=options.dir) as tmp:
        root = Path(tmp)
        subprocess.run([*MMHASH, "fit", "cvh", "--bits", "64", "-o", str(root / "model.npz")],
                       check=True, capture_output=True)
        rng = np.random.default_rng(0)
        items = np.lib.format.open_memmap(root / "items.npy", mode="w+", dtype=np.float32,
                                          shape=(options.rows, 128))
        centres = rng.standard_normal((12, 128)).astype(np.float32)
        for start in range(0, options.rows, 100_000):
            stop = min(start + 100_000, options.rows)
            items[start:stop] = (centres[rng.integers(0, 12, stop - start)]
                                 + rng.standard_normal((stop - start, 128)).astype(np.float32))
        items.flush()
        del items
        np.save(root / "queries.npy", rng.standard_normal((options.queries, 64)))
        size = (root / "items.npy").stat().st_size / 2**20
        print(f"{options.rows:,} rows x 128 float32 ({size:,.0f} MiB), {options.queries:,} "
              "queries, CVH 64 bits")
        steps = {
            "encode": [*MMHASH, "encode", str(root / "model.npz"), str(root / "items.npy"),
                       "--view", "image", "-o", str(root / "codes.npz")],
            "index build": [*MMHASH, "index", "build", str(root / "codes.npz"), "-o",
                            str(root / "db.index")],
            "search -k 50": [*MMHASH, "search", str(root / "db.index"),
                             str(root / "queries.npy"), "--model", str(root / "model.npz"),
                             "--view", "text", "-k", "50", "-o", str(root / "hits.csv")],
        }
        for name, args in steps.items():
            seconds, peak = _measure(args)
            print(f"{name:>14}: {seconds:7.1f} s, peak RSS {peak:7.0f} MiB")
        print(f"{'(this process)':>14}: peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
