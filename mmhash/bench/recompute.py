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
from mmhash.bench.codestats import cell_statistics, n_classes
from mmhash.bench.store import ResultStore, flag_row


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
              dataset: str | None = None, methods: Iterable[str] | None = None,
              per_query: bool = False) -> Recomputed:
    """Evaluate the stored codes of the newest finished cell per key (filters as in
    :meth:`ResultStore.results`) under ``metrics`` and ``ties``.

    Rows carry the flags of :func:`~mmhash.bench.store.flag_row`, the code statistics computed
    from the stored codes (so cells stored before statistics were kept are flagged too), and,
    with ``per_query``, a ``per_query`` field: float64 (Q,) the value of every query, in the
    order of the dataset's query split (the rank of the pair for ``medr``).
    Raises a clear error for a bad metric token or tie policy before reading any codes.
    """
    evaluation = Evaluation.parse(metrics, ties)
    out = Recomputed()
    labels: dict[tuple[str, str | None], tuple | None] = {}
    cells = store.stored_cells(run_id=run_id, dataset=dataset, methods=methods)
    checks = store.cell_checks(cell_id for cell_id, _, _ in cells)
    for cell_id, key, has_codes in cells:
        data = (key.dataset, key.fingerprint)
        if data not in labels:
            labels[data] = store.labels(*data)
        codes = store.codes(cell_id) if has_codes else None
        if codes is None or labels[data] is None:
            out.without_codes.append(key)
            continue
        query_labels, retrieval_labels = labels[data]
        values: dict | None = {} if per_query else None
        results, curves = evaluate_codes(codes, query_labels, retrieval_labels, evaluation,
                                         per_query=values)
        row = {**key.as_row(), "cell_id": cell_id}
        stats = cell_statistics(codes, n_classes(query_labels))
        cell_checks = {**checks.get(cell_id, {}), "code_stats": stats}
        for task, metric, tie, value in results:
            found = flag_row({**row, "task": task, "metric": metric, "tie": tie,
                              "value": value}, cell_checks)
            if values is not None:
                found["per_query"] = values[(task, metric, tie)]
            out.rows.append(found)
        out.curves.extend({**row, "task": task, "kind": kind, "tie": tie, "x": x,
                           "precision": p, "recall": r}
                          for task, kind, tie, x, p, r in curves)
    return out
