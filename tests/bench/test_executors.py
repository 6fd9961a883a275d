"""Executors: serial, spawned process pool and a real Dask LocalCluster give the same cells."""

from __future__ import annotations

import os

import pytest

import mmhash
from mmhash.bench.cell import Evaluation
from mmhash.bench.executors import DaskExecutor, ProcessExecutor, SerialExecutor, make_executor
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
