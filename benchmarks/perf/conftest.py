"""Shared set-up of the performance suite: thread counts, sizes, side-by-side timing, the table.

Run: ``pytest benchmarks/perf`` (or ``tox -e bench``). The suite is not part of the test run
(pytest's testpaths are ``tests`` and ``baselines/tests``).

* Every target is a *ratio* of two medians measured in the same run, rounds interleaved (ours,
  theirs, ours, theirs, ...), so a shared, noisy machine slows both sides alike.
* ``MMHASH_PERF_THREADS`` (default 2) threads for every side: numba, FAISS's OpenMP and BLAS.
* ``MMHASH_PERF_FULL=1`` runs the slow references at the sizes of the issue (e.g. the research
  loop over all 2,000 queries, FAISS over 2,000 queries); by default they run on a subset of the
  queries and the ratio compares time *per query* (documented in each test's ``extra_info``).
* The terminal summary prints one table row per target: medians, ratio, target, met or not.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pytest

THREADS = int(os.environ.get("MMHASH_PERF_THREADS", "2"))
FULL = os.environ.get("MMHASH_PERF_FULL", "") == "1"

_ROWS: list[dict] = []


def pytest_configure(config):
    import numba

    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(THREADS)  # BLAS of the numpy references
    except ImportError:
        pass
    try:
        import faiss

        faiss.omp_set_num_threads(THREADS)
    except ImportError:
        pass


def side_by_side(
    benchmark,
    name: str,
    ours: Callable[[], object],
    theirs: Callable[[], object],
    *,
    rounds: int = 3,
    scale: float = 1.0,
    target: str = "",
    holds: Callable[[float], bool] = lambda ratio: True,
    note: str = "",
) -> dict:
    """Time ``ours`` (pytest-benchmark) and ``theirs`` in interleaved rounds; record the ratio.

    ``scale`` multiplies the median of ``theirs`` before the ratio (``theirs`` ran on a subset:
    scale = full size / subset size, valid because its cost is linear in the subset). Returns
    the row: medians in seconds and ``ratio = scale * median(theirs) / median(ours)``.
    """
    their_times: list[float] = []

    def run_theirs():
        start = time.perf_counter()
        theirs()
        their_times.append(time.perf_counter() - start)

    ours()  # warm-up: numba kernels loaded, caches filled
    benchmark.pedantic(ours, setup=run_theirs, rounds=rounds, iterations=1)
    ours_median = benchmark.stats.stats.median
    theirs_median = statistics.median(their_times) * scale
    row = {
        "name": name,
        "ours_s": ours_median,
        "theirs_s": theirs_median,
        "ratio": theirs_median / ours_median,
        "target": target,
        "met": None,
        "note": note,
    }
    row["met"] = bool(holds(row["ratio"]))
    benchmark.extra_info.update({k: v for k, v in row.items() if k != "name"})
    benchmark.extra_info["threads"] = THREADS
    _ROWS.append(row)
    return row


def record(name: str, value: str, target: str, met: bool, note: str = "") -> None:
    """A row that is not a timing ratio (memory, scaling)."""
    _ROWS.append({"name": name, "value": value, "target": target, "met": met, "note": note})


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    tr = terminalreporter
    tr.section(f"mmhash perf targets ({THREADS} threads, full sizes: {FULL})")
    for row in _ROWS:
        if "ratio" in row:
            value = (
                f"ours {row['ours_s']:.3f} s | reference {row['theirs_s']:.3f} s | "
                f"ratio {row['ratio']:.1f}x"
            )
        else:
            value = row["value"]
        mark = "met" if row["met"] else "NOT MET"
        tr.write_line(f"{row['name']}: {value} | target {row['target']}: {mark}")
        if row["note"]:
            tr.write_line(f"    {row['note']}")


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(20260101)


def random_codes(rng, n: int, n_bits: int) -> np.ndarray:
    """int8 (n, n_bits) in {-1, +1}, made without int64 temporaries."""
    return (rng.integers(0, 2, size=(n, n_bits), dtype=np.int8) * 2 - 1).astype(np.int8)


def multi_hot(rng, n: int, n_classes: int, rate: float) -> np.ndarray:
    """uint8 (n, n_classes) multi-hot labels, each class present with probability ``rate``."""
    return (rng.random((n, n_classes), dtype=np.float32) < rate).astype(np.uint8)



def make_set(rng, n_query: int, n_items: int, n_bits: int, n_classes: int = 24, rate=0.15):
    """A retrieval set shaped like a real one: multi-hot labels (MIRFlickr-like, 24 classes) and
    codes correlated with them, as a trained hasher's would be -- ``sign(labels @ P + e)`` with
    one Gaussian projection ``P`` for queries and items -- so the ranking and its tie groups
    look like real ones.

    Returns ``(qc, rc, ql, rl)``: int8 (Q, B), int8 (N, B), uint8 (Q, C), uint8 (N, C).
    """
    proj = rng.standard_normal((n_classes, n_bits)).astype(np.float32)

    def codes(labels):
        out = np.empty((len(labels), n_bits), dtype=np.int8)
        for start in range(0, len(labels), 1 << 16):  # chunks keep float temporaries small
            rows = slice(start, start + (1 << 16))
            z = labels[rows].astype(np.float32) @ proj
            z += 1.5 * rng.standard_normal(z.shape, dtype=np.float32)
            out[rows] = np.where(z >= 0, 1, -1)
        return out

    ql, rl = multi_hot(rng, n_query, n_classes, rate), multi_hot(rng, n_items, n_classes, rate)
    return codes(ql), codes(rl), ql, rl
