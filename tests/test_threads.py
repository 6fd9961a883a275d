"""The thread budget: what a parallel runner sets in a worker holds for every thread count
mmhash chooses, a deep method's included."""

from __future__ import annotations

import os

import pytest

from mmhash.bench.executors import _init_worker
from mmhash.threads import BUDGET_ENV, available_cores, set_thread_budget, thread_budget


@pytest.fixture
def clean_env(monkeypatch):
    for var in (BUDGET_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_no_budget_means_every_available_core(clean_env):
    assert thread_budget() == available_cores()


@pytest.mark.parametrize("value", ["abc", "0", "-3", ""])
def test_a_bad_budget_is_ignored(clean_env, value):
    clean_env.setenv(BUDGET_ENV, value)
    assert thread_budget() == available_cores()


def test_the_budget_never_exceeds_the_cores(clean_env):
    clean_env.setenv(BUDGET_ENV, str(available_cores() + 5))
    assert thread_budget() == available_cores()
    set_thread_budget(1)
    assert thread_budget() == 1 and os.environ[BUDGET_ENV] == "1"


def test_a_worker_caps_its_pools_and_its_budget(clean_env):
    signal = pytest.importorskip("signal")
    before = signal.getsignal(signal.SIGINT)
    try:
        _init_worker(1)
    finally:
        signal.signal(signal.SIGINT, before)
    assert thread_budget() == 1
    assert os.environ["NUMBA_NUM_THREADS"] == "1" and os.environ["OMP_NUM_THREADS"] == "1"


def test_deep_thread_counts_obey_the_budget(clean_env):
    pytest.importorskip("torch")
    from mmhash.deep import resolve_threads

    set_thread_budget(1)
    assert resolve_threads(None) == 1
    assert resolve_threads(8) == 1  # an explicit count is lowered to the budget
    clean_env.delenv(BUDGET_ENV)
    assert resolve_threads(None) == available_cores()
    assert resolve_threads(1) == 1
