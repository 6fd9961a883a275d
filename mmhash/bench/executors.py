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
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from mmhash.bench.cell import CellKey, CellRecord, Evaluation, run_cell_safely
from mmhash.data.dataset import Dataset
from mmhash.errors import InvalidInputError
from mmhash.threads import set_thread_budget, thread_budget

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

    Each of the ``jobs`` workers gets ``threads`` threads (default: this process's thread
    budget -- its cores, :func:`mmhash.threads.thread_budget` -- // jobs, at least 1).
    """

    def __init__(self, jobs: int, threads: int | None = None):
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise InvalidInputError(f"--jobs must be a positive integer, got {jobs!r}")
        self.jobs = jobs
        self.threads = threads or max(1, thread_budget() // jobs)
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


@dataclass(frozen=True)
class JobsChoice:
    """What ``--jobs auto`` chose: ``jobs`` worker processes (1: run serially here) of
    ``threads`` threads each, and why, in words."""

    jobs: int
    threads: int
    reason: str


def _available_memory() -> int | None:
    """Bytes of memory available to new work (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _dataset_bytes(dataset: Dataset) -> int:
    return sum(X.nbytes for X in dataset.views.values()) + dataset.labels.nbytes


def auto_jobs(grids: Sequence[tuple[Dataset, Sequence[CellKey]]], *,
              cores: int | None = None, memory: int | None = None,
              gpu: bool | None = None) -> JobsChoice:
    """How many local workers ``--jobs auto`` runs ``grids`` ((dataset, cells) pairs) on.

    The cells that take the time are those of methods that train in mini-batch steps (they
    declare :data:`~mmhash.base.EPOCH_PROGRESS`: the deep methods). Two such cells side by side
    on one thread each keep two cores busy, while one cell's step -- the products of a small
    batch with the weight matrices, an optimiser pass over every parameter -- uses a second
    thread only in part; and where other work shares the cores, torch's threads wait on each
    other at every parallel region (a UJSAH epoch at the paper's widths took 7 s on one
    thread and 51 s on two beside one other busy process). So: one worker per such cell, at
    most ``cores`` (default: the thread budget, :func:`mmhash.threads.thread_budget`), each
    with ``cores // jobs`` threads; and at most as many as can each hold three copies of the
    largest dataset in ``memory`` (default: the memory available now; a worker gets the
    dataset, and a fit its training rows). Serial (1) when fewer than two such cells, or when
    ``gpu`` (default: torch, if the plan imported it, sees a CUDA device): cells sharing one
    accelerator gain nothing from workers. Cells of the other methods (closed-form and
    iterative shallow methods) run in the pool beside them when there is one, but never make
    one on their own: each worker takes seconds to start and import its libraries.
    """
    from mmhash.base import EPOCH_PROGRESS, declares
    from mmhash.registry import get_hasher_class

    cores = thread_budget() if cores is None else max(1, int(cores))
    stepped = sum(1 for _, cells in grids for cell in cells
                  if declares(get_hasher_class(cell.method), EPOCH_PROGRESS))
    if gpu is None:
        torch = sys.modules.get("torch")  # imported by a deep method's module, never here
        gpu = bool(torch is not None and torch.cuda.is_available())
    if stepped < 2:
        what = "no cell" if stepped == 0 else "one cell"
        return JobsChoice(1, cores, f"{what} of a method that trains in epochs")
    if gpu:
        return JobsChoice(1, cores, "the methods that train in epochs run on the GPU")
    jobs = min(cores, stepped)
    reason = f"{stepped} cells of methods that train in epochs, {cores} cores"
    memory = _available_memory() if memory is None else memory
    largest = max((_dataset_bytes(data) for data, cells in grids if cells), default=0)
    if memory is not None and largest:
        fits = max(1, memory // (3 * largest))
        if fits < jobs:
            jobs = fits
            reason += f", memory for {fits} worker(s) holding the data"
    return JobsChoice(jobs, max(1, cores // jobs), reason)


def make_executor(kind: str = "local", *, jobs: int = 1, scheduler=None,
                  threads: int | None = None) -> Executor:
    """``local`` (serial for jobs=1, else a spawn process pool) or ``dask``."""
    if kind == "local":
        return SerialExecutor() if jobs == 1 else ProcessExecutor(jobs, threads)
    if kind == "dask":
        return DaskExecutor(scheduler, threads or 1)
    from mmhash.errors import UnknownNameError

    raise UnknownNameError("executor", kind, ["local", "dask"])
