"""mAP regression against accepted reference values (``NAME.json`` beside the suite ``NAME.toml``).

A reference file holds, per series of cells (every :data:`~mmhash.bench.cell.CellKey` field but
the seed) and per task, metric and tie policy, the accepted mean over the suite's seeds.
:func:`compare` sorts a fresh run's means into dropped (below reference minus tolerance),
improved (above reference plus tolerance), unchanged, missing and new entries;
:func:`run_regression` is the whole of ``mmhash regress``: rerun the suite, then compare or accept.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmhash.bench.cell import SERIES_FIELDS
from mmhash.errors import DataError

#: What one reference entry is about: the series of cells, then the value's task/metric/tie.
KEY = (*SERIES_FIELDS, "task", "metric", "tie")


@dataclass
class Comparison:
    tolerance: float
    dropped: list[dict[str, Any]] = field(default_factory=list)
    improved: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)  # in reference, not in the run
    new: list[dict[str, Any]] = field(default_factory=list)  # in the run, not in reference

    @property
    def failed(self) -> bool:
        return bool(self.dropped or self.missing)


def reference_path(suite_path: str | os.PathLike) -> Path:
    """The reference values of a suite: ``NAME.toml`` -> ``NAME.json`` beside it."""
    return Path(suite_path).with_suffix(".json")


def means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per :data:`KEY`, from tidy store rows."""
    from mmhash.bench.report import summarise

    summary = summarise(rows)
    return [{**{k: (int(r[k]) if k == "bits" else r[k]) for k in KEY},
             "value": round(float(r["mean"]), 6), "n_seeds": int(r["n_seeds"])}
            for r in summary.to_dict("records")]


def load_reference(path: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no reference values at {path}; create them with "
                        f"`mmhash regress --suite {path.stem} --accept`")
    try:
        data = json.loads(path.read_text())
        cells = data["cells"]
        for cell in cells:
            missing = [k for k in (*KEY, "value") if k not in cell]
            if missing:
                raise KeyError(f"an entry lacks {', '.join(missing)}; files written before "
                               "mmhash keyed cells by data fingerprint and params need "
                               "`--accept` again")
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"reference file {path} is malformed ({exc})") from None
    return cells


def write_reference(path: str | os.PathLike, suite: str, cells: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(cells, key=lambda c: tuple(str(c[k]) for k in KEY))
    payload = {"suite": suite, "statistic": "mean over the suite's seeds", "cells": ordered}
    from mmhash.codefiles import atomic_output

    with atomic_output(path) as temporary:  # never a half-written file
        temporary.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def compare(current: list[dict[str, Any]], reference: list[dict[str, Any]],
            tolerance: float = 0.01) -> Comparison:
    """Sort current means against reference values (absolute tolerance in mAP points)."""
    result = Comparison(tolerance)
    now = {tuple(c[k] for k in KEY): c for c in current}
    for ref in reference:
        key = tuple(ref[k] for k in KEY)
        if key not in now:
            result.missing.append({**ref, "reference": ref["value"], "value": None})
            continue
        cell = {**now.pop(key), "reference": float(ref["value"])}
        cell["delta"] = cell["value"] - cell["reference"]
        gain = cell["delta"] * _direction(cell["metric"])  # > 0: better, whatever the metric
        if gain < -tolerance:
            result.dropped.append(cell)
        elif gain > tolerance:
            result.improved.append(cell)
        else:
            result.unchanged.append(cell)
    result.new = list(now.values())
    return result


@dataclass
class RegressionOutcome:
    """What :func:`run_regression` did: the suite, its reference file, the rerun's means, and
    either the comparison or (with ``accept``) nothing to compare; failed cells of the rerun."""

    suite: str
    reference: Path
    current: list[dict[str, Any]]
    comparison: Comparison | None
    failed: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not self.failed and not (self.comparison and self.comparison.failed)


def _direction(token: str) -> float:
    """+1 where a higher value is better, -1 where lower is (``medr``); unknown tokens +1."""
    from mmhash.errors import MMHashError
    from mmhash.evaluation.measures import parse_metric

    try:
        return 1.0 if parse_metric(token).higher_is_better else -1.0
    except MMHashError:
        return 1.0


def run_regression(suite: str, *, tolerance: float = 0.01, reference: str | None = None,
                   store: str | os.PathLike | None = None, accept: bool = False,
                   data_dir=None, executor=None,
                   progress: Callable[[str, int, int], None] | None = None
                   ) -> RegressionOutcome:
    """Rerun ``suite`` and compare its means with the accepted values, or accept them.

    ``reference`` defaults to the JSON beside the suite file; ``store`` keeps the rerun's cells
    (default: a temporary file); ``executor`` and ``progress`` as for
    :func:`mmhash.bench.plan.execute_plan`. The reference is read before anything runs, so a
    missing or malformed file costs no run.
    """
    from mmhash.bench.plan import execute_plan, make_plan
    from mmhash.bench.store import ResultStore
    from mmhash.bench.suite import load_suite
    from mmhash.outputs import REFERENCE_EXTENSIONS, check_output

    spec = load_suite(suite)
    ref_path = Path(reference) if reference else reference_path(spec.path)
    # what the run will write, checked before it runs
    if accept:
        check_output(ref_path, option="--reference", extensions=REFERENCE_EXTENSIONS,
                     inputs=(spec.path, store), what="reference values", make_folder=True)
    if store:
        check_output(store, option="--store", inputs=(spec.path, ref_path), in_place=True)
    reference_cells = None if accept else load_reference(ref_path)
    plan = make_plan(suite=suite, data_dir=data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        with ResultStore(store or Path(tmp) / "regress.sqlite") as results:
            outcome = execute_plan(plan, results, executor=executor, progress=progress)
    current = means(outcome.rows)
    if accept:
        write_reference(ref_path, spec.name, current)
        return RegressionOutcome(spec.name, ref_path, current, None, outcome.failed)
    return RegressionOutcome(spec.name, ref_path, current,
                             compare(current, reference_cells, tolerance), outcome.failed)
