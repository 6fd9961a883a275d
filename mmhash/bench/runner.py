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
    stored as failed with its error and the grid goes on. ``progress(label, finished, total)``
    is called after each stored cell.
    """
    summary = GridSummary(run_id)
    done = store.finished_keys() if resume else set()
    todo = [cell for cell in cells if cell not in done]
    summary.skipped = len(cells) - len(todo)
    if todo:  # the labels the stored codes are evaluated against, once per dataset
        (_, q_labels), (_, r_labels) = dataset.part("query"), dataset.part("retrieval")
        store.add_labels(todo[0].dataset, todo[0].fingerprint, q_labels, r_labels)
    executor = executor or SerialExecutor()
    finished = summary.skipped
    for record in executor.map(dataset, todo, evaluation or Evaluation()):
        store.add_cell(run_id, record)
        label = record.key.label()
        if record.status == "failed":
            log.error("cell failed: %s: %s", label, record.error)
            summary.failed.append((label, record.error or ""))
        else:
            summary.ran += 1
        finished += 1
        if progress is not None:
            progress(label, finished, len(cells))
    return summary
