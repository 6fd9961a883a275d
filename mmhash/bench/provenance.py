"""What a cell records about the conditions it ran under beyond its key: the thread pools
(BLAS, OpenMP, torch) and the warnings raised while it was fitted, encoded and evaluated.

Both can change a result without changing the cell's key: an eigensolver with a degenerate
eigenvalue returns another basis with another BLAS thread count, and a method that cannot fill
its bits warns at fit (:class:`~mmhash.errors.DegenerateCodesWarning`). Each cell keeps them
(:class:`~mmhash.bench.cell.CellRecord`), the store files them, and the reports show them.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

#: Warning categories about code rather than results: not recorded with a cell.
_CODE_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning,
                  ResourceWarning)
#: At most this many distinct warnings are kept per cell (a warning raised every epoch with a
#: changing number would otherwise fill the store).
MAX_WARNINGS = 20


def thread_provenance() -> dict[str, Any]:
    """The thread pools of this process as they are now.

    Returns ``{"pools": [...], "torch": n}``: one entry per loaded BLAS / OpenMP library
    (``threadpoolctl.threadpool_info``: ``api`` blas|openmp, ``library`` e.g. openblas,
    ``version``, ``threads``, ``layer`` its threading layer, ``prefix`` the library's file
    prefix, which tells numpy's copy from scipy's) and torch's intra-op thread count where torch
    is imported.
    """
    from threadpoolctl import threadpool_info

    pools = [{"api": p.get("user_api"), "library": p.get("internal_api"),
              "version": p.get("version"), "threads": p.get("num_threads"),
              "layer": p.get("threading_layer"), "prefix": p.get("prefix")}
             for p in threadpool_info()]
    out: dict[str, Any] = {"pools": pools}
    if "torch" in sys.modules:
        out["torch"] = int(sys.modules["torch"].get_num_threads())
    return out


def describe_threads(info: Mapping[str, Any] | None) -> str:
    """One line for tables and pages: ``openblas 0.3.31 (pthreads) 2 threads; torch 2 threads``
    (identical pools named once, in sorted order: the order libraries were loaded in varies;
    "" when nothing was recorded)."""
    if not info:
        return ""
    parts = []
    for pool in info.get("pools") or []:
        layer = f" ({pool['layer']})" if pool.get("layer") else ""
        version = f" {pool['version']}" if pool.get("version") else ""
        parts.append(f"{pool.get('library') or pool.get('api')}{version}{layer} "
                     f"{pool.get('threads')} threads")
    parts = sorted(set(parts))
    if info.get("torch") is not None:
        parts.append(f"torch {info['torch']} threads")
    return "; ".join(parts)


class WarningRecorder:
    """A context that records the warnings raised inside it (each distinct one once, every
    occurrence seen: the filter is ``always``) instead of printing them.

    After the block, :attr:`messages` holds ``"Category: message"`` strings in order of first
    appearance, at most :data:`MAX_WARNINGS`; warnings about code (deprecations) are dropped.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._context = warnings.catch_warnings(record=True)
        self._caught: list = []

    def __enter__(self) -> WarningRecorder:
        self._caught = self._context.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc) -> bool:
        self._context.__exit__(*exc)
        self.messages = recorded_messages(self._caught)
        return False


def recorded_messages(caught: Iterable[warnings.WarningMessage]) -> list[str]:
    """``"Category: message"`` of each distinct recorded warning about a result (see
    :class:`WarningRecorder`)."""
    out = [f"{w.category.__name__}: {w.message}" for w in caught
           if not issubclass(w.category, _CODE_WARNINGS)]
    return list(dict.fromkeys(out))[:MAX_WARNINGS]


__all__ = ["MAX_WARNINGS", "WarningRecorder", "describe_threads", "recorded_messages",
           "thread_provenance"]
