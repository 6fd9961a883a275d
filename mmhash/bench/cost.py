"""Cost beside quality: what each row of a report spends to fit, encode, store and search.

One table per dataset (and data fingerprint), rows as in the quality tables, and per bit length
four columns:

``fit s``
    the seconds the fit took, as stored with each cell (mean ± std over seeds) -- on the machine
    and with the threads that ran the cell (each cell records them: see the HTML provenance).
``encode µs/item``
    the stored encoding seconds divided by the number of codes the cell encoded (queries and
    retrieval items, every view), in microseconds.
``bytes/item``
    the bytes of one code, ``ceil(bits / 8)``, what each retrieval item costs in the index.
``query µs/1k items``
    the time to answer one query against 1,000 retrieval items: a top-100 exact Hamming search
    (:class:`mmhash.evaluation.HammingIndex`) of the cell's stored query codes over its stored
    retrieval codes (the first task), best of :data:`QUERY_REPEATS`, divided by queries and by
    thousands of items. It is measured when the report is made, on that machine, so it compares
    rows of one report; it depends on the bits and the sizes, hardly on the method.

Rows ranked by real-valued distances keep no codes: their code columns are left empty. Reads and
computes; prints nothing.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

from mmhash.bench.cell import KEY_FIELDS, CellKey

#: The cost columns, in order: they play the part of a quality table's tasks.
COST_COLUMNS = ("fit s", "encode µs/item", "bytes/item", "query µs/1k items")
#: Decimals shown per cost column.
COST_DIGITS = (2, 1, 0, 3)
#: The neighbours a timed search returns.
QUERY_K = 100
#: Timed searches per cell; the best is kept (the least disturbed by other work).
QUERY_REPEATS = 5


def cost_rows(stores: Sequence[str | os.PathLike], *, dataset: str | None = None,
              methods: Sequence[str] | None = None, run_id: int | None = None
              ) -> list[dict[str, Any]]:
    """Tidy rows for :func:`mmhash.bench.report.tables`: per finished cell (the newest per key,
    the later store winning) and cost column, a row with the cell key, ``task`` = the column,
    ``metric`` = ``"cost"``, ``tie`` = ``"none"`` and ``value`` (None where not measurable)."""
    from mmhash.bench.store import ResultStore

    by_key: dict[tuple, dict[str, Any]] = {}
    for store in stores:
        with ResultStore(store, read_only=True) as results:
            seconds = {r["cell_id"]: (r["train_seconds"], r["encode_seconds"])
                       for r in results.results(run_id=run_id, dataset=dataset,
                                                methods=methods)}
            for cell_id, key, has_codes in results.stored_cells(run_id=run_id, dataset=dataset,
                                                                methods=methods):
                codes = results.codes(cell_id) if has_codes else None
                fit, encode = seconds.get(cell_id, (None, None))
                values = _costs(key, codes, fit, encode)
                by_key[tuple(key.as_row()[f] for f in KEY_FIELDS)] = {
                    "key": key, "values": values}
    rows = []
    for found in by_key.values():
        row = found["key"].as_row()
        rows.extend({**row, "task": column, "metric": "cost", "tie": "none", "value": value}
                    for column, value in zip(COST_COLUMNS, found["values"]) if value is not None)
    return rows


def _costs(key: CellKey, codes, fit: float | None, encode: float | None) -> list:
    """The four :data:`COST_COLUMNS` values of one cell (None where not known)."""
    if codes is None:
        return [fit, None, None, None]
    n_codes = sum(len(c) for c in codes.query.values()) + (
        len(codes.database) if codes.database is not None
        else sum(len(c) for c in codes.retrieval.values()))
    per_item = None if encode is None or not n_codes else 1e6 * encode / n_codes
    return [fit, per_item, float(math.ceil(key.bits / 8)), _query_microseconds(codes)]


def _query_microseconds(codes) -> float | None:
    """µs per query per 1,000 retrieval items of a top-:data:`QUERY_K` Hamming search of the
    first task's stored codes (best of :data:`QUERY_REPEATS`)."""
    from mmhash.bench.cell import tasks
    from mmhash.evaluation import HammingIndex

    pairs = tasks(codes.views)
    if not pairs:
        return None
    query_view, retrieval_view = pairs[0]
    queries, items = codes.query[query_view], codes.retrieval_for(retrieval_view)
    index = HammingIndex(items.shape[1])
    index.add(items)
    index.search(queries[:1], QUERY_K)  # compiled and warm before timing
    best = math.inf
    for _ in range(QUERY_REPEATS):
        start = time.perf_counter()
        index.search(queries, QUERY_K)
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / len(queries) / (len(items) / 1000)


def cost_tables(rows: Sequence[dict[str, Any]], *, method_order: Sequence[str] | None = None):
    """The cost tables (:class:`mmhash.bench.report.Table`, one per dataset and fingerprint) of
    :func:`cost_rows`: the columns are :data:`COST_COLUMNS` x bits, no value marked best."""
    from dataclasses import replace

    from mmhash.bench.report import tables

    out = []
    for table in tables(rows, method_order=method_order, tasks_per_table=len(COST_COLUMNS)):
        caption = (f"Cost on {table.dataset}: fit seconds as stored (mean ± std over seeds, on "
                   "the machine that ran each cell); encode µs per code encoded; bytes per "
                   f"code; µs per query per 1,000 retrieval items (top-{QUERY_K} exact Hamming "
                   "search of the stored codes, measured now on this machine). Columns: cost "
                   "x bits.")
        present = [c for c in COST_COLUMNS if c in table.tasks]
        out.append(replace(table, caption=caption, tasks=present, ranks=False,
                           digits=dict(zip(COST_COLUMNS, COST_DIGITS))))
    return out


__all__ = ["COST_COLUMNS", "cost_rows", "cost_tables"]
