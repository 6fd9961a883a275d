"""Results survive a SIGKILL mid-grid, --resume redoes only unfinished cells, and two processes
can write one store at the same time."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

GRID = ["--dataset", "synthetic", "--methods", "rp", "--bits", "8,16",
        "--seeds", ",".join(str(s) for s in range(30))]


def _bench(store, *extra, **kwargs):
    cmd = [sys.executable, "-m", "mmhash.cli", "bench", *GRID, "--store", str(store), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def _done_cells(store) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=30) as db:
            return db.execute("SELECT COUNT(*) FROM cells WHERE status='done'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_sigkill_loses_nothing_finished_and_resume_redoes_only_the_rest(tmp_path):
    store = tmp_path / "s.sqlite"
    proc = _bench(store)
    deadline = time.time() + 120
    while _done_cells(store) < 5:
        assert proc.poll() is None, f"bench ended before it could be killed: {proc.stderr.read()}"
        assert time.time() < deadline, "no cell finished within 120 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    survived = _done_cells(store)
    assert 5 <= survived < 60, "the kill should land mid-grid"
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        before = set(db.execute("SELECT cell_id, method, bits, seed FROM cells"))

    resumed = _bench(store, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    with sqlite3.connect(store) as db:
        after = set(db.execute("SELECT cell_id, method, bits, seed FROM cells"))
        keys = list(db.execute("SELECT bits, seed FROM cells WHERE status='done'"))
    assert before <= after  # nothing finished earlier was lost or rewritten
    assert len(keys) == len(set(keys)) == 60  # every cell once: only unfinished ones were redone
    assert len(after - before) == 60 - survived


@pytest.mark.parametrize("writers", [2])
def test_concurrent_writers_do_not_corrupt_the_store(tmp_path, writers):
    store = tmp_path / "shared.sqlite"
    procs = [_bench(store, "--seeds", f"{100 * w},{100 * w + 1},{100 * w + 2}")
             for w in range(writers)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        runs = db.execute("SELECT COUNT(*) FROM runs WHERE finished IS NOT NULL").fetchone()[0]
        seeds = {s for (s,) in db.execute("SELECT DISTINCT seed FROM cells WHERE status='done'")}
    assert runs == writers
    assert seeds == {100 * w + i for w in range(writers) for i in range(3)}
