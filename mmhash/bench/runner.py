"""Run benchmark cells: fit on the training split, encode queries and retrieval set, evaluate.

Every method sees the same fixed split of the dataset; labels are used only by the evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mmhash.bench.grid import Cell, task_name, tasks
from mmhash.bench.store import CellRecord, ResultStore
from mmhash.data.dataset import Dataset

log = logging.getLogger(__name__)

DEFAULT_METRICS = ("map",)
DEFAULT_TIES = ("expected",)


def dataset_fingerprint(dataset: Dataset) -> str:
    """One sha256 naming the data a cell saw: the source files' hashes, or synthetic params."""
    source = dataset.info.get("sha256") or dataset.info.get("params") or dataset.name
    return hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()


def run_cell(dataset: Dataset, cell: Cell, metrics: Sequence[str] = DEFAULT_METRICS,
             ties: Sequence[str] = DEFAULT_TIES) -> CellRecord:
    """Fit and evaluate one cell; exceptions propagate (the grid decides what to do)."""
    from mmhash.evaluation import evaluate
    from mmhash.registry import get_hasher

    hasher = get_hasher(cell.method, n_bits=cell.bits, random_state=cell.seed, **dict(cell.params))
    train, _ = dataset.part("train")
    start = time.perf_counter()
    hasher.fit({v: train[v] for v in cell.views})
    train_seconds = time.perf_counter() - start

    (queries, q_labels), (items, r_labels) = dataset.part("query"), dataset.part("retrieval")
    start = time.perf_counter()
    q_codes = {v: hasher.encode(queries[v], v) for v in cell.views}
    r_codes = {v: hasher.encode(items[v], v) for v in cell.views}
    encode_seconds = time.perf_counter() - start

    rows = []
    for query_view, retrieval_view in tasks(cell.views):
        for tie in ties:
            values = evaluate(q_codes[query_view], r_codes[retrieval_view], q_labels, r_labels,
                              metrics=tuple(metrics), tie=tie)
            rows.extend((task_name(query_view, retrieval_view), metric, tie, float(value))
                        for metric, value in values.items())
    return CellRecord(dataset.name, dataset_fingerprint(dataset), cell.method, cell.params_json,
                      cell.bits, cell.seed, ",".join(cell.views), "done", None, train_seconds,
                      encode_seconds, rows)


@dataclass
class GridSummary:
    """What a grid run did: cells run, skipped (already in the store) and failed."""

    run_id: int
    ran: int = 0
    skipped: int = 0
    failed: list[tuple[Cell, str]] = field(default_factory=list)


def run_grid(dataset: Dataset, cells: Sequence[Cell], store: ResultStore, run_id: int, *,
             metrics: Sequence[str] = DEFAULT_METRICS, ties: Sequence[str] = DEFAULT_TIES,
             resume: bool = False,
             progress: Callable[[Cell, int, int], None] | None = None) -> GridSummary:
    """Run cells one after another, storing each as soon as it finishes.

    With ``resume``, cells already stored as done (same dataset, method, params, bits, seed,
    views) are skipped. A cell that raises is stored as failed with its error and the grid goes
    on. ``progress(cell, index, total)`` is called before each cell.
    """
    summary = GridSummary(run_id)
    done = store.finished_keys() if resume else set()
    for index, cell in enumerate(cells):
        if progress is not None:
            progress(cell, index, len(cells))
        if cell.key in done:
            summary.skipped += 1
            continue
        try:
            record = run_cell(dataset, cell, metrics, ties)
        except Exception as exc:  # one broken cell must not lose the rest of the grid
            log.exception("cell failed: %s", cell.label())
            error = f"{type(exc).__name__}: {exc}"
            record = CellRecord(dataset.name, dataset_fingerprint(dataset), cell.method,
                                cell.params_json, cell.bits, cell.seed, ",".join(cell.views),
                                "failed", error, None, None, ())
            summary.failed.append((cell, error))
        else:
            summary.ran += 1
        store.add_cell(run_id, record)
    return summary
