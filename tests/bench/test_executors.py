"""Executors: serial, spawned process pool and a real Dask LocalCluster give the same cells."""

from __future__ import annotations

import os

import pytest

import mmhash
from mmhash.bench.cell import Evaluation
from mmhash.bench.executors import (
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    auto_jobs,
    make_executor,
)
from mmhash.bench.grid import expand
from mmhash.bench.runner import run_grid
from mmhash.bench.store import ResultStore
from mmhash.data.synthetic import make_synthetic
from mmhash.errors import InvalidInputError, UnknownNameError
from mmhash.hashers.rp import RandomProjectionHasher


@pytest.fixture(scope="module")
def small():
    data = make_synthetic(n=300, dims=(16, 12), n_labels=5, random_state=1)
    return data, expand(data, ["rp"], [8, 16], [0, 1])


def _values(records):
    return sorted((r.key.method, r.key.bits, r.key.seed, task, metric, tie, value)
                  for r in records for task, metric, tie, value in r.results)


def test_process_pool_matches_serial(small):
    data, cells = small
    serial = _values(SerialExecutor().map(data, cells, Evaluation(("map", "p@10"), ("expected",))))
    pool = ProcessExecutor(jobs=2, threads=1)
    try:
        parallel = _values(pool.map(data, cells, Evaluation(("map", "p@10"), ("expected",))))
    finally:
        pool.close()
    assert parallel == serial and len(serial) == len(cells) * 2 * 2


def test_dask_local_cluster_matches_serial(small):
    if os.environ.get("CI"):  # CI installs the dist extra: the real cluster must run there
        import distributed
    else:
        distributed = pytest.importorskip("distributed")
    data, cells = small
    serial = _values(SerialExecutor().map(data, cells, Evaluation()))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        executor = DaskExecutor(cluster.scheduler_address)
        try:
            remote = _values(executor.map(data, cells, Evaluation()))
        finally:
            executor.close()
    assert remote == serial


def test_failing_cell_is_stored_and_grid_goes_on(small, tmp_path):
    @mmhash.register
    class Explodes(RandomProjectionHasher):
        name = "explodes"

        def _fit(self, views):
            raise FloatingPointError("diverged")

    try:
        data, _ = small
        cells = expand(data, ["explodes", "rp"], [8], [0])
        with ResultStore(tmp_path / "s.sqlite") as store:
            run = store.start_run({})
            summary = run_grid(data, cells, store, run)
            assert summary.ran == 1 and len(summary.failed) == 1
            assert "FloatingPointError: diverged" in summary.failed[0][1]
            assert store.failures(run)[0]["method"] == "explodes"
            assert {r["method"] for r in store.results()} == {"rp"}
    finally:
        mmhash.registry.unregister("explodes")


def test_executor_options_are_validated():
    with pytest.raises(UnknownNameError, match="executor"):
        make_executor("slurm")
    with pytest.raises(InvalidInputError, match="--jobs"):
        ProcessExecutor(jobs=0)
    with pytest.raises(InvalidInputError, match="--scheduler"):
        make_executor("dask")


def test_serial_executor_reports_the_epochs_of_hashers_that_train_in_epochs():
    torch = pytest.importorskip("torch")
    data = make_synthetic(n=120, dims=(16, 12), n_labels=4, random_state=1)
    fast = {"image_width": 16, "text_width": 16, "predictor_width": 8, "image_decoder_depth": 1,
            "text_decoder_depth": 1, "n_epochs": 3, "batch_size": 32, "n_threads": 1}
    cells = expand(data, ["ujsah", "rp"], [8], [0], {"ujsah": fast})
    seen = []
    executor = SerialExecutor(on_epoch=lambda key, epoch, total, metrics:
                              seen.append((key.method, epoch, total, sorted(metrics))))
    records = list(executor.map(data, cells, Evaluation()))
    assert [r.status for r in records] == ["done", "done"]
    want = "cuda:0" if torch.cuda.is_available() else "cpu"  # device="auto", recorded per cell
    assert [r.device for r in records] == [want, None]
    # rp has no epochs: only UJSAH reports, once per epoch, with its training loss.
    assert seen == [("ujsah", e, 3, ["loss"]) for e in (1, 2, 3)]


def _deep_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_auto_jobs_gives_a_worker_per_core_to_cells_that_train_in_epochs(small):
    if not _deep_available():
        pytest.skip("needs torch (ujsah)")
    data, _ = small
    deep = expand(data, ["ujsah", "rp"], [8, 16, 32, 64], [0])  # 4 ujsah cells, 4 rp cells
    choice = auto_jobs([(data, deep)], cores=2, memory=2**40, gpu=False)
    assert (choice.jobs, choice.threads) == (2, 1) and "4 cells" in choice.reason
    # fewer such cells than cores: one worker each, the cores shared among them
    assert (auto_jobs([(data, deep)], cores=16, memory=2**40, gpu=False).jobs,
            auto_jobs([(data, deep)], cores=16, memory=2**40, gpu=False).threads) == (4, 4)
    assert auto_jobs([(data, deep)], cores=1, memory=2**40, gpu=False).jobs == 1
    # each worker must hold three copies of the data
    data_bytes = sum(X.nbytes for X in data.views.values()) + data.labels.nbytes
    capped = auto_jobs([(data, deep)], cores=16, memory=6 * data_bytes, gpu=False)
    assert (capped.jobs, capped.threads) == (2, 8) and "memory" in capped.reason
    # one accelerator runs them one at a time anyway
    assert auto_jobs([(data, deep)], cores=16, memory=2**40, gpu=True).jobs == 1
    # a single such cell has nothing to share the cores with
    one = expand(data, ["ujsah", "rp"], [8], [0])
    assert auto_jobs([(data, one)], cores=16, memory=2**40, gpu=False).jobs == 1


def test_auto_jobs_runs_methods_without_epochs_serially(small):
    data, cells = small  # rp: closed form, seconds; a pool's start-up would cost more
    choice = auto_jobs([(data, cells)], cores=16, memory=2**40, gpu=False)
    assert (choice.jobs, choice.threads) == (1, 16) and "no cell" in choice.reason


def test_process_pool_threads_default_to_the_thread_budget(monkeypatch):
    monkeypatch.setenv("MMHASH_THREADS", "1")
    assert ProcessExecutor(jobs=1).threads == 1  # not all of the cores
    with pytest.raises(InvalidInputError, match="--jobs"):
        ProcessExecutor(jobs="auto")
