"""Stored results of one or several result stores, combined for a report
(``mmhash report``, several ``--store``).

:func:`combine_stores` reads each store (or recomputes its cells from their stored codes),
keeps one row per (cell key, task, metric, tie) and one curve per (cell key, task, kind, tie)
-- where two stores hold the same cell, the later store wins, so a cell stored twice never counts
as two seeds -- and leaves out the validation-split trials of ``mmhash tune`` unless asked for.
It reads and returns; it prints and writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mmhash.bench.cell import DEFAULT_METRICS, DEFAULT_TIES, KEY_FIELDS, CellKey, Evaluation

#: What makes a row, and a curve, one value: a cell key and what was measured.
ROW_FIELDS = (*KEY_FIELDS, "task", "metric", "tie")
CURVE_FIELDS = (*KEY_FIELDS, "task", "kind", "tie")


class StoreProvenance(NamedTuple):
    """What a store keeps about where its cells come from."""

    runs: list[dict[str, Any]]  #: its runs (rows of the ``runs`` table), each with ``store``
    failures: list[dict[str, Any]]  #: its failed cells, each with ``run_id`` and ``store``
    origins: dict[Any, dict[str, Any]]  #: per finished cell id: its ``run_id`` and ``device``


@dataclass
class Combined:
    """The rows, curves and provenance of several stores (see :func:`combine_stores`)."""

    evaluation: Evaluation  #: the metrics and tie policies asked for (defaults filled in)
    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)
    #: per store (as named): its provenance; filled only with ``provenance=True``
    provenance: dict[str, StoreProvenance] = field(default_factory=dict)
    #: recompute: the keys of cells that have no stored codes (so no recomputed values)
    without_codes: list[CellKey] = field(default_factory=list)
    #: how many validation-split trial cells of ``mmhash tune`` were left out
    hidden_trials: int = 0


def stored_provenance(results, store: str, run_id: int | None = None) -> StoreProvenance:
    """What the open ``results`` store (named ``store``) keeps about where its cells come from:
    its runs (only ``run_id`` when given), its failed cells (with their run) and, per finished
    cell id, its run and device."""
    runs = [{**run, "store": store} for run in results.runs(run_id)]
    failures = [{**f, "run_id": run["run_id"], "store": store}
                for run in runs for f in results.failures(run["run_id"])]
    return StoreProvenance(runs, failures, results.cell_origins())


def combine_stores(stores: Sequence[str | os.PathLike], *, dataset: str | None = None,
                   methods: Sequence[str] | None = None, run_id: int | None = None,
                   metrics: Sequence[str] | None = None, ties: Sequence[str] | None = None,
                   recompute: bool = False, curves: bool = False, provenance: bool = False,
                   tune_trials: bool = False, per_query: bool = False) -> Combined:
    """The results of ``stores`` (existing result files, read only) as one set of rows.

    ``dataset``, ``methods`` and ``run_id`` filter the cells. ``metrics`` and ``ties``: the
    metric tokens and tie policies to keep (None: all stored); with ``recompute`` they are the
    ones evaluated again from the stored codes (None: map, expected), no refitting.
    ``curves``: also read the PR and P@K curves. ``provenance``: also read each store's
    :class:`StoreProvenance`, and name each row's store in its ``store`` field (the HTML page).
    ``per_query`` (with ``recompute``): each row also carries ``per_query``, the value of every
    query (see :func:`mmhash.bench.recompute.recompute`).
    The trials of ``mmhash tune`` (datasets ``NAME:validation``) are model selection, not
    results: they are left out (and counted in ``hidden_trials``) unless ``tune_trials`` or a
    ``dataset`` or ``run_id`` filter names them.
    """
    from mmhash.bench.store import ResultStore

    out = Combined(Evaluation.parse(metrics or DEFAULT_METRICS, ties or DEFAULT_TIES))
    wanted = out.evaluation
    by_key: dict[tuple, dict] = {}
    curves_by_key: dict[tuple, dict] = {}
    for store in stores:
        with ResultStore(store, read_only=True) as results:
            if recompute:
                from mmhash.bench.recompute import recompute as recompute_codes

                found = recompute_codes(results, metrics=wanted.metrics, ties=wanted.ties,
                                        run_id=run_id, dataset=dataset, methods=methods,
                                        per_query=per_query)
                rows, store_curves = found.rows, found.curves if curves else []
                out.without_codes.extend(found.without_codes)
            else:
                rows = results.results(run_id=run_id, dataset=dataset, methods=methods)
                rows = [r for r in rows if (not metrics or r["metric"] in wanted.metrics)
                        and (not ties or r["tie"] in wanted.ties)]
                store_curves = results.curves(dataset=dataset, run_id=run_id,
                                              methods=methods) if curves else []
            if provenance:
                rows = [{**r, "store": store} for r in rows]
                out.provenance[store] = stored_provenance(results, store, run_id)
        by_key.update({tuple(r[f] for f in ROW_FIELDS): r for r in rows})
        curves_by_key.update({tuple(c[f] for f in CURVE_FIELDS): c for c in store_curves})
    out.rows, out.curves = list(by_key.values()), list(curves_by_key.values())
    if not (tune_trials or dataset is not None or run_id is not None):
        _leave_out_trials(out)
    return out


def _leave_out_trials(out: Combined) -> None:
    """Drop the validation-split trials of ``mmhash tune`` from ``out``, counting their cells:
    a table of them beside the bench tables reads as a comparison of settings on the test
    queries."""
    from mmhash.data.dataset import is_validation_name

    out.hidden_trials = len({CellKey.from_row(r) for r in out.rows
                             if is_validation_name(r["dataset"])})
    out.rows = [r for r in out.rows if not is_validation_name(r["dataset"])]
    out.curves = [c for c in out.curves if not is_validation_name(c["dataset"])]
    out.without_codes = [k for k in out.without_codes if not is_validation_name(k.dataset)]
    out.provenance = {
        store: p._replace(failures=[f for f in p.failures
                                    if not is_validation_name(f["dataset"])])
        for store, p in out.provenance.items()}
