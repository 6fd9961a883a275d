"""mAP regression against accepted reference values (``benchmarks/reference/SUITE.json``).

A reference file holds, per (dataset, method, task, metric, tie, bits), the accepted mean over the
suite's seeds. :func:`compare` sorts a fresh run's means into dropped (below reference minus
tolerance), improved (above reference plus tolerance), unchanged, missing and new cells.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmhash.errors import DataError

KEY = ("dataset", "method", "task", "metric", "tie", "bits")


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
    """``benchmarks/suites/NAME.toml`` -> ``benchmarks/reference/NAME.json``."""
    suite_path = Path(suite_path)
    return suite_path.parent.parent / "reference" / f"{suite_path.stem}.json"


def means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per KEY, from tidy store rows."""
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
            _ = [cell[k] for k in (*KEY, "value")]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"reference file {path} is malformed ({exc})") from None
    return cells


def write_reference(path: str | os.PathLike, suite: str, cells: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(cells, key=lambda c: tuple(str(c[k]) for k in KEY))
    payload = {"suite": suite, "statistic": "mean over the suite's seeds", "cells": ordered}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)
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
        if cell["delta"] < -tolerance:
            result.dropped.append(cell)
        elif cell["delta"] > tolerance:
            result.improved.append(cell)
        else:
            result.unchanged.append(cell)
    result.new = list(now.values())
    return result
