"""From what the user asked (options or a suite) to a validated plan, and running that plan.

:func:`make_plan` does every check before any work: a typo never costs a run or touches the
store. :func:`execute_plan` runs the cells on an executor and returns the tidy rows of the grid.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mmhash.bench.cell import DEFAULT_METRICS, DEFAULT_TIES, CellKey, Evaluation
from mmhash.bench.grid import (
    DEFAULT_BITS,
    expand,
    parse_bits,
    parse_database,
    parse_list,
    parse_names,
    parse_seeds,
)
from mmhash.bench.store import ResultStore
from mmhash.data.dataset import Dataset

DEFAULT_DATASET = "synthetic"
DEFAULT_METHODS = ("rp", "cvh")


@dataclass
class Plan:
    grids: list[tuple[Dataset, list[CellKey]]]
    methods: list[str]
    evaluation: Evaluation
    config: dict[str, Any]
    suite: str | None = None

    @property
    def metrics(self) -> list[str]:
        return list(self.evaluation.metrics)

    @property
    def ties(self) -> list[str]:
        return list(self.evaluation.ties)

    @property
    def n_cells(self) -> int:
        return sum(len(cells) for _, cells in self.grids)

    def keys(self) -> set[CellKey]:
        return {cell for _, cells in self.grids for cell in cells}

    @property
    def per_view_fallbacks(self) -> list[str]:
        """Methods that run per-view although the plan asks for ``unified`` database codes
        (they learn none): their cells are keyed per-view, and the run says so."""
        if self.config.get("database") != "unified":
            return []
        return list(dict.fromkeys(cell.method for _, cells in self.grids for cell in cells
                                  if cell.database != "unified"))


@dataclass
class Outcome:
    run_id: int
    rows: list[dict[str, Any]]
    failed: list[tuple[str, str]] = field(default_factory=list)


def make_plan(*, datasets=None, methods=None, bits=None, seeds=None, metrics=None, ties=None,
              views=None, params: dict[str, dict[str, Any]] | None = None, suite=None,
              database=None, data_dir=None, protocol=None) -> Plan:
    protocol_arg = protocol
    """Resolve options over a suite's values over the defaults, and validate all of it.

    Each option is a comma-separated string or a list; ``None`` means "the suite's value, else
    the default". Raises an :class:`~mmhash.errors.MMHashError` naming the first problem.
    """
    from mmhash.bench.suite import load_suite
    from mmhash.data import load_dataset
    from mmhash.registry import get_hasher_class

    spec = load_suite(suite) if suite else None

    def pick(value, parse, from_suite, default):
        if value is not None:
            return parse(value)
        return from_suite if spec else list(default)

    dataset_names = pick(datasets, lambda v: parse_names(v, "--dataset"),
                         spec and spec.datasets, [DEFAULT_DATASET])
    method_names = pick(methods, lambda v: parse_names(v, "--methods"),
                        spec and spec.methods, DEFAULT_METHODS)
    bit_list = pick(bits, parse_bits, spec and spec.bits, DEFAULT_BITS)
    seed_list = pick(seeds, parse_seeds, spec and spec.seeds, [0])
    metric_list = pick(metrics, lambda v: parse_list(v, "--metrics"), spec and spec.metrics,
                       list(DEFAULT_METRICS))
    tie_list = pick(ties, lambda v: parse_list(v, "--tie"), spec and spec.ties,
                    list(DEFAULT_TIES))
    protocol = parse_database(database if database is not None
                              else spec.database if spec else None)
    # The split protocol of the field's benchmark files (mmhash.data.protocols); None: each
    # dataset's own. It becomes part of each dataset's name, so of every cell key and caption.
    split_protocol = protocol_arg if protocol_arg is not None else (
        spec.protocol if spec else None)
    if split_protocol is not None:
        from mmhash.data.protocols import get_protocol

        get_protocol(split_protocol)
    # A suite's params for methods that --methods leaves out do not apply (and are no typo);
    # without --methods a suite's params must all name its methods.
    suite_params = {m: v for m, v in (spec.params if spec else {}).items()
                    if methods is None or m in method_names}
    all_params = {**suite_params, **(params or {})}

    for name in method_names:
        get_hasher_class(name)
    evaluation = Evaluation.parse(metric_list, tie_list)
    grids = []
    for name in dataset_names:
        data = load_dataset(name, data_dir=data_dir, protocol=split_protocol)
        if views:
            data = data.select_views(parse_list(views, "--views"))
        grids.append((data, expand(data, method_names, bit_list, seed_list, all_params,
                                   database=protocol)))
    config = {"datasets": dataset_names, "methods": method_names, "bits": bit_list,
              "seeds": seed_list, "metrics": list(evaluation.metrics),
              "ties": list(evaluation.ties), "params": all_params, "views": views,
              "database": protocol, "protocol": split_protocol,
              "suite": spec.name if spec else None}
    return Plan(grids, method_names, evaluation, config, spec.name if spec else None)


def execute_plan(plan: Plan, store: ResultStore, *, resume: bool = False, executor=None,
                 progress: Callable[[str, int, int], None] | None = None) -> Outcome:
    """Run every cell of the plan (skipping stored ones with ``resume``) and read back the grid.

    ``progress(running, finished, total)`` counts over the whole plan, from before the first
    cell (``running`` describes the cell(s) running now, see
    :func:`mmhash.bench.runner.run_grid`).
    """
    from mmhash.bench.runner import run_grid

    if progress is not None:  # the grid's size is known before any cell starts
        progress("", 0, plan.n_cells)
    run_id = store.start_run(plan.config, command=" ".join(sys.argv))
    failed: list[tuple[str, str]] = []
    offset = 0
    for data, cells in plan.grids:
        def step(label, finished, count, offset=offset):
            if progress is not None:
                progress(label, offset + finished, plan.n_cells)

        summary = run_grid(data, cells, store, run_id, evaluation=plan.evaluation,
                           resume=resume, executor=executor, progress=step)
        offset += len(cells)
        failed.extend(summary.failed)
    store.finish_run(run_id)
    # Without resume, show only this run's cells (a cell that failed now must not show an old
    # value); with resume, the grid's cells wherever they were finished.
    keys = plan.keys()
    stored = store.results(methods=plan.methods, run_id=None if resume else run_id)
    rows = [r for r in stored if CellKey.from_row(r) in keys
            and r["metric"] in plan.metrics and r["tie"] in plan.ties]
    return Outcome(run_id, rows, failed)
