"""Where cells run: in this process, in a local process pool, or on a Dask cluster.

Executors only move cells: each sends the same picklable task
(:func:`mmhash.bench.cell.run_cell_safely`) with a :class:`~mmhash.bench.cell.CellKey` and yields
the finished :class:`~mmhash.bench.cell.CellRecord` objects as they complete; only the driver
writes the store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

from mmhash.bench.cell import CellKey, CellRecord, Evaluation, run_cell_safely
from mmhash.data.dataset import Dataset
from mmhash.errors import InvalidInputError
from mmhash.threads import set_thread_budget

#: The thread pools a worker caps before it imports anything: BLAS/OpenMP (and so torch's
#: intra-op pool), numba's (the evaluation's kernels).
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS")


def _init_worker(threads: int) -> None:
    # Set before torch, BLAS or numba are imported in the worker, so they start with this many
    # threads; the budget holds for what mmhash chooses itself (a deep method's torch threads).
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    set_thread_budget(threads)
    # Ctrl-C reaches the whole process group: the driver alone handles it (and stops the
    # workers), so no worker prints a KeyboardInterrupt traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _ctrl_c_ignored():
    """Ignore SIGINT while worker processes are spawned, so that they start ignoring it too
    (a spawned interpreter keeps an ignored SIGINT ignored); only in the main thread, the one
    place Python lets a handler be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Executor(Protocol):
    #: How many cells run at once: progress lines name the first ``slots`` unfinished cells, in
    #: the order given to :meth:`map`, as the ones running.
    slots: int

    def map(self, dataset: Dataset, cells: Sequence[CellKey],
            evaluation: Evaluation) -> Iterator[CellRecord]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Run cells one after another in this process (the default for ``--jobs 1``).

    ``on_epoch`` (see :data:`mmhash.bench.cell.EpochCallback`) receives the per-epoch progress
    of hashers that train in epochs; only this executor reports it (workers in other processes
    report finished cells only).
    """

    slots = 1

    def __init__(self, on_epoch=None):
        self.on_epoch = on_epoch

    def map(self, dataset, cells, evaluation):
        for cell in cells:
            yield run_cell_safely(dataset, cell, evaluation, on_epoch=self.on_epoch)

    def close(self) -> None:
        pass


class ProcessExecutor:
    """A local process pool (spawn, not fork: torch and BLAS threads are not fork-safe).

    Each of the ``jobs`` workers gets ``threads`` threads (default: cores // jobs, at least 1).
    """

    def __init__(self, jobs: int, threads: int | None = None):
        if jobs < 1:
            raise InvalidInputError(f"--jobs must be a positive integer, got {jobs}")
        self.jobs = jobs
        self.threads = threads or max(1, (os.cpu_count() or 1) // jobs)
        self._pool = None

    @property
    def slots(self) -> int:
        return self.jobs

    def map(self, dataset, cells, evaluation):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(self.threads,))
        with _ctrl_c_ignored():  # the pool spawns its workers as cells are submitted
            futures = [self._pool.submit(run_cell_safely, dataset, cell, evaluation,
                                         self.threads) for cell in cells]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """The same grid on a Dask distributed cluster; results come back to the driver.

    ``scheduler`` is an address (``tcp://host:8786``) or an existing ``distributed.Client``.
    """

    def __init__(self, scheduler, threads: int | None = 1):
        try:
            from distributed import Client
        except ImportError:
            raise InvalidInputError(
                "--executor dask needs dask.distributed: pip install 'mmhash[dist]'"
            ) from None
        if isinstance(scheduler, Client):
            self.client, self._owns = scheduler, False
        else:
            if not scheduler:
                raise InvalidInputError("--executor dask needs --scheduler tcp://HOST:PORT")
            try:
                self.client, self._owns = Client(scheduler, timeout="20s"), True
            except OSError as exc:
                raise InvalidInputError(
                    f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        self.threads = threads

    @property
    def slots(self) -> int:
        """The cluster's worker threads now (workers may come and go; at least 1)."""
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:  # a lost scheduler shows as a failed cell, not in a progress line
            return 1

    def map(self, dataset, cells, evaluation):
        from distributed import as_completed

        remote = self.client.scatter(dataset, broadcast=True)  # ship the arrays once per worker
        futures = [self.client.submit(run_cell_safely, remote, cell, evaluation, self.threads,
                                      pure=False) for cell in cells]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        if self._owns:
            self.client.close()


def make_executor(kind: str = "local", *, jobs: int = 1, scheduler=None,
                  threads: int | None = None) -> Executor:
    """``local`` (serial for jobs=1, else a spawn process pool) or ``dask``."""
    if kind == "local":
        return SerialExecutor() if jobs == 1 else ProcessExecutor(jobs, threads)
    if kind == "dask":
        return DaskExecutor(scheduler, threads or 1)
    from mmhash.errors import UnknownNameError

    raise UnknownNameError("executor", kind, ["local", "dask"])
