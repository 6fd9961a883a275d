"""The thread budget of a process: how many cores the work in it may use.

A process runs on the cores of its affinity mask. A parallel runner that starts N worker
processes on C cores gives each a budget of C // N (``mmhash bench --jobs N``, a Dask worker's
``threads``) by setting :data:`BUDGET_ENV` in the worker, before any library starts its pools;
every thread count mmhash chooses itself -- a deep method's torch threads when ``n_threads`` is
None, and an explicit ``n_threads`` too, lowered to the budget -- stays within it, so N workers
use C cores, not N x C. A user may set the variable as well (e.g. beside other jobs).
"""

from __future__ import annotations

import os

#: The environment variable holding the budget (a positive integer).
BUDGET_ENV = "MMHASH_THREADS"


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_budget() -> int:
    """The threads this process may use: :data:`BUDGET_ENV` when it holds a positive integer,
    at most the available cores; else the available cores."""
    cores = available_cores()
    try:
        budget = int(os.environ.get(BUDGET_ENV, ""))
    except ValueError:
        return cores
    return min(budget, cores) if budget >= 1 else cores


def set_thread_budget(threads: int) -> None:
    """Set this process's budget (inherited by the processes it starts)."""
    os.environ[BUDGET_ENV] = str(max(1, int(threads)))


__all__ = ["BUDGET_ENV", "available_cores", "set_thread_budget", "thread_budget"]
