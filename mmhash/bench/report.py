"""Comparison tables and exports from stored results (no printing: the CLI renders them)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmhash.bench.store import RESULT_COLUMNS
from mmhash.errors import InvalidInputError

METRIC_NAMES = {"map": "mAP@all"}


def metric_title(metric: str) -> str:
    """Human name of a metric token: ``map`` -> ``mAP@all``, ``map@50`` -> ``mAP@50``."""
    if metric in METRIC_NAMES:
        return METRIC_NAMES[metric]
    if metric.startswith("map@"):
        return "mAP@" + metric[4:]
    if metric.startswith("p@"):
        return "P@" + metric[2:]
    return metric


def summarise(rows: Sequence[dict[str, Any]]):
    """Mean and std over seeds per (dataset, method, task, metric, tie, bits).

    Returns a pandas DataFrame with those key columns plus ``mean``, ``std`` (sample std,
    0 for a single seed) and ``n_seeds``.
    """
    import pandas as pd

    keys = ["dataset", "method", "task", "metric", "tie", "bits"]
    if not rows:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n_seeds"])
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(keys, sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


@dataclass
class Table:
    """A comparison table in the papers' layout: rows = methods, columns = task x bits."""

    caption: str
    tasks: list[str]
    bits: list[int]
    methods: list[str]
    cells: dict[tuple[str, str, int], tuple[float, float, int]]  # (method, task, bits) -> stats

    def best(self, task: str, bits: int) -> str | None:
        """The method with the highest mean in one column (None for an empty column)."""
        scored = [(self.cells[(m, task, bits)][0], m) for m in self.methods
                  if (m, task, bits) in self.cells]
        return max(scored)[1] if scored else None

    def text_rows(self, digits: int = 3) -> tuple[list[str], list[list[str]]]:
        """Headers ``TASK BITS`` and rows of ``mean ± std`` strings (``-`` where missing)."""
        headers = ["method"] + [f"{t} {b}" for t in self.tasks for b in self.bits]
        body = []
        for m in self.methods:
            row = [m]
            for t in self.tasks:
                for b in self.bits:
                    stats = self.cells.get((m, t, b))
                    if stats is None:
                        row.append("-")
                    elif stats[2] > 1:
                        row.append(f"{stats[0]:.{digits}f} ± {stats[1]:.{digits}f}")
                    else:
                        row.append(f"{stats[0]:.{digits}f}")
            body.append(row)
        return headers, body

    def marked_rows(self, digits: int, mark) -> tuple[list[str], list[list[str]]]:
        """text_rows with the best value of each column passed through ``mark``."""
        headers, body = self.text_rows(digits)
        columns = [(t, b) for t in self.tasks for b in self.bits]
        best = {col: self.best(*col) for col in columns}
        marked = []
        for method, *values in body:
            marked.append([method] + [mark(v) if best[col] == method and len(self.methods) > 1
                                      else v for col, v in zip(columns, values)])
        return headers, marked

    def markdown(self, digits: int = 3) -> str:
        """GitHub Markdown, best mean per column in bold, caption above."""
        from tabulate import tabulate

        headers, body = self.marked_rows(digits, lambda v: f"**{v}**")
        return f"{self.caption}\n\n" + tabulate(body, headers, tablefmt="github")

    def latex(self, digits: int = 3) -> str:
        """A booktabs table as in the papers: task column groups, bits below, best in bold."""
        _, body = self.marked_rows(digits, lambda v: f"\\textbf{{{v}}}")
        n = len(self.bits)
        spec = "l" + "c" * (n * len(self.tasks))
        groups = " & ".join(f"\\multicolumn{{{n}}}{{c}}{{{_latex_escape(t)}}}"
                            for t in self.tasks)
        rules = " ".join(f"\\cmidrule(lr){{{2 + i * n}-{1 + (i + 1) * n}}}"
                         for i in range(len(self.tasks)))
        bits = " & ".join(str(b) for _ in self.tasks for b in self.bits)
        lines = [
            "\\begin{table}[t]", "\\centering",
            f"\\caption{{{_latex_escape(self.caption)}}}",
            f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
            f" & {groups} \\\\", rules, f"Method & {bits} \\\\", "\\midrule",
        ]
        for method, *values in body:
            cells = [v.replace("±", "$\\pm$") for v in values]
            lines.append(" & ".join([_latex_escape(method).upper(), *cells]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines)


def _latex_escape(text: str) -> str:
    out = text
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"),
                       ("_", r"\_"), ("#", r"\#"), ("->", r"$\to$")):
        out = out.replace(char, repl)
    return out


#: Tasks per table: the two directions of one view pair, the papers' layout.
TASKS_PER_TABLE = 2


def tables(rows: Sequence[dict[str, Any]], *, method_order: Sequence[str] | None = None,
           describe: dict[str, str] | None = None) -> list[Table]:
    """One :class:`Table` per (dataset, metric, tie) found in ``rows``; with more than two views,
    one per view pair (both directions, e.g. ``a->b`` and ``b->a``), so a table stays as wide
    as the papers' two-view tables.

    ``method_order`` fixes the row order (default: order of first appearance); ``describe`` maps a
    dataset name to a short description used in the caption (sizes, split, synthetic or not).
    """
    summary = summarise(rows)
    out = []
    for (dataset, metric, tie), part in summary.groupby(["dataset", "metric", "tie"], sort=False):
        methods = list(dict.fromkeys(part["method"]))
        if method_order is not None:
            methods = [m for m in method_order if m in methods] + \
                      [m for m in methods if m not in method_order]
        seeds = sorted(set(part["n_seeds"]))
        seed_text = (f"mean ± std over {seeds[0]} seeds" if seeds == [seeds[0]] and seeds[0] > 1
                     else "single seed" if seeds == [1] else "mean ± std over seeds")
        where = f"{dataset}" + (f" ({describe[dataset]})" if describe and dataset in describe
                                else "")
        head = (f"{metric_title(metric)} on {where}, Hamming ranking, tie policy: {tie}; "
                f"{seed_text}")
        columns = ". Columns: task (query view->retrieval view) x bits."
        cells = {(r.method, r.task, int(r.bits)): (float(r.mean), float(r.std), int(r.n_seeds))
                 for r in part.itertuples()}
        all_tasks = _pair_up(list(dict.fromkeys(part["task"])))
        bits = sorted({int(b) for b in part["bits"]})
        # M views give M(M-1) tasks (30 for mfeat): one table of them all would be hundreds of
        # columns wide, so they come TASKS_PER_TABLE at a time -- a pair of views per table.
        chunks = [all_tasks[i:i + TASKS_PER_TABLE]
                  for i in range(0, len(all_tasks), TASKS_PER_TABLE)]
        for i, chunk in enumerate(chunks, 1):
            which = "" if len(chunks) == 1 else \
                f" (tasks {', '.join(chunk)}; table {i} of {len(chunks)})"
            out.append(Table(head + which + columns, chunk, bits, methods,
                             {k: v for k, v in cells.items() if k[1] in chunk}))
    return out


def _pair_up(tasks: list[str]) -> list[str]:
    """Tasks reordered so both directions of a view pair are adjacent (first appearance order)."""
    groups: dict[frozenset, list[str]] = {}
    for task in tasks:
        groups.setdefault(frozenset(task.split("->")), []).append(task)
    return [task for group in groups.values() for task in group]


def export(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write tidy rows (dataset, method, bits, seed, task, metric, tie, value) to .csv or .json."""
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InvalidInputError(f"--export: unknown file type {path.suffix!r} (use .csv or .json)")
    frame = pd.DataFrame(list(rows), columns=[*RESULT_COLUMNS, "params", "views"])
    frame = frame[list(RESULT_COLUMNS)]
    tmp = path.with_name(path.name + ".tmp")
    if suffix == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        frame.to_json(tmp, orient="records", indent=1)
    tmp.replace(path)  # never leave a half-written export behind
    return path
