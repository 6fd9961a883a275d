"""Metrics recomputed from stored codes: any metric, any tie policy, no refitting.

Every finished cell keeps its codes and every dataset its labels (:mod:`mmhash.bench.store`), so
a metric or tie policy nobody asked for at run time is one evaluation away. The values come from
the same function a fresh run uses (:func:`mmhash.bench.cell.evaluate_codes`), so they equal what
a new fit with the same seed would store, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmhash.bench.cell import CellKey, Evaluation, evaluate_codes
from mmhash.bench.store import ResultStore


@dataclass
class Recomputed:
    """Tidy rows and curves (as :meth:`ResultStore.results` / :meth:`ResultStore.curves` return
    them) of every cell that could be recomputed, and the keys of those that could not (stored
    by a version of mmhash that kept no codes)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)
    without_codes: list[CellKey] = field(default_factory=list)


def recompute(store: ResultStore, *, metrics: str | Sequence[str] = ("map",),
              ties: str | Sequence[str] = ("expected",), run_id: int | None = None,
              dataset: str | None = None, methods: Iterable[str] | None = None) -> Recomputed:
    """Evaluate the stored codes of the newest finished cell per key (filters as in
    :meth:`ResultStore.results`) under ``metrics`` and ``ties``.

    Raises a clear error for a bad metric token or tie policy before reading any codes.
    """
    evaluation = Evaluation.parse(metrics, ties)
    out = Recomputed()
    labels: dict[tuple[str, str | None], tuple | None] = {}
    for cell_id, key, has_codes in store.stored_cells(run_id=run_id, dataset=dataset,
                                                      methods=methods):
        data = (key.dataset, key.fingerprint)
        if data not in labels:
            labels[data] = store.labels(*data)
        codes = store.codes(cell_id) if has_codes else None
        if codes is None or labels[data] is None:
            out.without_codes.append(key)
            continue
        query_labels, retrieval_labels = labels[data]
        results, curves = evaluate_codes(codes, query_labels, retrieval_labels, evaluation)
        row = {**key.as_row(), "cell_id": cell_id}
        out.rows.extend({**row, "task": task, "metric": metric, "tie": tie, "value": value}
                        for task, metric, tie, value in results)
        out.curves.extend({**row, "task": task, "kind": kind, "tie": tie, "x": x,
                           "precision": p, "recall": r}
                          for task, kind, tie, x, p, r in curves)
    return out
