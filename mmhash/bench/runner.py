"""Run a grid of cells on an executor, storing each cell as soon as it finishes.

Every method sees the same fixed split of the dataset; labels are used only by the evaluation
(and stored once per dataset so that metrics can be recomputed from the stored codes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mmhash.bench.cell import CellKey, Evaluation
from mmhash.bench.executors import Executor, SerialExecutor
from mmhash.bench.store import ResultStore
from mmhash.data.dataset import Dataset

log = logging.getLogger(__name__)


@dataclass
class GridSummary:
    """What a grid run did: cells run, skipped (already in the store) and failed."""

    run_id: int
    ran: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (cell label, error)


def run_grid(dataset: Dataset, cells: Sequence[CellKey], store: ResultStore, run_id: int, *,
             evaluation: Evaluation | None = None, resume: bool = False,
             executor: Executor | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> GridSummary:
    """Run cells on ``executor`` (default: serially here), storing each as soon as it finishes.

    With ``resume``, cells whose key is already stored as done are skipped. A cell that raises is
    stored as failed with its error and the grid goes on. ``progress(running, finished, total)``
    is called before the first cell and after each stored cell; ``running`` describes the
    cell(s) running now (:func:`describe_running`; empty when none is left).
    """
    summary = GridSummary(run_id)
    done = store.finished_keys() if resume else set()
    todo = [cell for cell in cells if cell not in done]
    summary.skipped = len(cells) - len(todo)
    if todo:  # the labels the stored codes are evaluated against, once per dataset
        q_labels, r_labels = dataset.part_labels("query"), dataset.part_labels("retrieval")
        store.add_labels(todo[0].dataset, todo[0].fingerprint, q_labels, r_labels)
    executor = executor or SerialExecutor()
    # Executors start cells in the order given, ``slots`` at a time: the first ``slots`` cells
    # not yet finished are the ones running.
    slots = max(1, getattr(executor, "slots", 1))
    pending = list(todo)
    finished = summary.skipped
    if progress is not None:
        progress(describe_running(pending[:slots]), finished, len(cells))
    for record in executor.map(dataset, todo, evaluation or Evaluation()):
        store.add_cell(run_id, record)
        label = record.key.label()
        if record.status == "failed":
            log.error("cell failed: %s: %s", label, record.error)
            summary.failed.append((label, record.error or ""))
        else:
            summary.ran += 1
        finished += 1
        if record.key in pending:
            pending.remove(record.key)
        if progress is not None:
            progress(describe_running(pending[:slots]), finished, len(cells))
    return summary


def describe_running(cells: Sequence[CellKey]) -> str:
    """How a progress line names the cells running now: the first one's label, and how many
    more run beside it; empty when none runs."""
    if not cells:
        return ""
    more = f" (+{len(cells) - 1} more)" if len(cells) > 1 else ""
    return cells[0].label() + more
