"""Run benchmark cells: fit on the training split, encode queries and retrieval set, evaluate.

Every method sees the same fixed split of the dataset; labels are used only by the evaluation.
"""

from __future__ import annotations

import hashlib
import inspect
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


#: ``on_epoch(cell, epoch, n_epochs, metrics)``: a hasher that trains in epochs (it takes
#: ``fit(views, progress=...)``, as the deep hashers do) reports each epoch through this.
EpochCallback = Callable[[Cell, int, int, dict], None]


def _fit(hasher, views: dict, cell: Cell, on_epoch: EpochCallback | None) -> None:
    """``hasher.fit(views)``, reporting epochs to ``on_epoch`` when the hasher can."""
    if on_epoch is not None and "progress" in inspect.signature(hasher.fit).parameters:
        hasher.fit(views, progress=lambda epoch, total, metrics:
                   on_epoch(cell, epoch, total, metrics))
    else:
        hasher.fit(views)


def run_cell(dataset: Dataset, cell: Cell, metrics: Sequence[str] = DEFAULT_METRICS,
             ties: Sequence[str] = DEFAULT_TIES, *,
             on_epoch: EpochCallback | None = None) -> CellRecord:
    """Fit and evaluate one cell; exceptions propagate (the grid decides what to do).

    ``on_epoch`` receives the training progress of hashers that train in epochs (see
    :data:`EpochCallback`); others fit without it.
    """
    from mmhash.evaluation import evaluate, pr_curve, precision_at_k
    from mmhash.registry import get_hasher

    hasher = get_hasher(cell.method, n_bits=cell.bits, random_state=cell.seed, **dict(cell.params))
    train, _ = dataset.part("train")
    start = time.perf_counter()
    _fit(hasher, {v: train[v] for v in cell.views}, cell, on_epoch)
    train_seconds = time.perf_counter() - start

    (queries, q_labels), (items, r_labels) = dataset.part("query"), dataset.part("retrieval")
    start = time.perf_counter()
    q_codes = {v: hasher.encode(queries[v], v) for v in cell.views}
    r_codes = {v: hasher.encode(items[v], v) for v in cell.views}
    encode_seconds = time.perf_counter() - start

    rows, curves = [], []
    ks = pk_grid(len(r_labels))
    for query_view, retrieval_view in tasks(cell.views):
        task = task_name(query_view, retrieval_view)
        qc, rc = q_codes[query_view], r_codes[retrieval_view]
        pr = pr_curve(qc, rc, q_labels, r_labels)
        curves.append((task, "pr", "none", pr.radius.tolist(), pr.precision.tolist(),
                       pr.recall.tolist()))
        for tie in ties:
            values = evaluate(qc, rc, q_labels, r_labels, metrics=tuple(metrics), tie=tie)
            rows.extend((task, metric, tie, float(value)) for metric, value in values.items())
            pk = precision_at_k(qc, rc, q_labels, r_labels, ks, tie=tie)
            curves.append((task, "p@k", tie, list(ks), pk.tolist(), None))
    return CellRecord(dataset.name, dataset_fingerprint(dataset), cell.method, cell.params_json,
                      cell.bits, cell.seed, ",".join(cell.views), "done", None, train_seconds,
                      encode_seconds, rows, curves)


def pk_grid(n_items: int) -> list[int]:
    """Cut-offs of the stored P@K curve: 1, 2, 5, 10, 20, 50, ... below ``n_items``, then it."""
    ks, scale = [], 1
    while scale < n_items:
        ks.extend(k for k in (scale, 2 * scale, 5 * scale) if k < n_items)
        scale *= 10
    return [*ks, n_items]


def failed_record(dataset: Dataset, cell: Cell, error: str) -> CellRecord:
    """The record of a cell that raised: stored with its error, no results."""
    return CellRecord(dataset.name, dataset_fingerprint(dataset), cell.method, cell.params_json,
                      cell.bits, cell.seed, ",".join(cell.views), "failed", error, None, None, ())


@dataclass
class GridSummary:
    """What a grid run did: cells run, skipped (already in the store) and failed."""

    run_id: int
    ran: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (cell label, error)


def run_grid(dataset: Dataset, cells: Sequence[Cell], store: ResultStore, run_id: int, *,
             metrics: Sequence[str] = DEFAULT_METRICS, ties: Sequence[str] = DEFAULT_TIES,
             resume: bool = False, executor=None,
             progress: Callable[[str, int, int], None] | None = None) -> GridSummary:
    """Run cells on ``executor`` (default: serially here), storing each as soon as it finishes.

    With ``resume``, cells already stored as done (same dataset, method, params, bits, seed,
    views) are skipped. A cell that raises is stored as failed with its error and the grid goes
    on. ``progress(label, finished, total)`` is called after each stored cell.
    """
    from mmhash.bench.executors import SerialExecutor

    summary = GridSummary(run_id)
    done = store.finished_keys() if resume else set()
    todo = [cell for cell in cells if cell.key not in done]
    summary.skipped = len(cells) - len(todo)
    executor = executor or SerialExecutor()
    by_key = {cell.key: cell for cell in todo}
    finished = summary.skipped
    for record in executor.map(dataset, todo, metrics, ties):
        store.add_cell(run_id, record)
        label = by_key[(record.dataset, record.method, record.params, record.bits, record.seed,
                        record.views)].label()
        if record.status == "failed":
            log.error("cell failed: %s: %s", label, record.error)
            summary.failed.append((label, record.error or ""))
        else:
            summary.ran += 1
        finished += 1
        if progress is not None:
            progress(label, finished, len(cells))
    return summary
