"""Comparison tables and exports from stored results (no printing: the CLI renders them).

Values are averaged over seeds only: everything else that identifies a cell (its
:data:`~mmhash.bench.cell.SERIES_FIELDS`: data fingerprint, params, views, database protocol)
separates rows, so two settings of one method are two rows (``cvh (reg=1000)``), never a mean.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmhash.bench.cell import SERIES_FIELDS, describe_params
from mmhash.bench.store import FLAG_FIELDS, RESULT_COLUMNS
from mmhash.errors import InvalidInputError
from mmhash.evaluation.measures import metric_title

#: The columns :func:`summarise` groups by: a series of cells, then task, metric, tie policy.
SUMMARY_KEYS = (*SERIES_FIELDS, "task", "metric", "tie")
#: What tells the rows of one table apart (the table itself is one dataset, fingerprint, metric
#: and tie policy): method, params, views, database protocol.
ROW_FIELDS = ("method", "params", "views", "database")
_UNIFIED_MARK = "[unified db]"
#: The mark on a value whose codes are degenerate (collapsed to fewer distinct codes than
#: classes, or with constant bits: :func:`mmhash.bench.codestats.problems`), and on a value
#: whose cell warned while it ran; footnotes under the table say what.
DEGENERATE_MARK = "\u2020"  # dagger
WARNING_MARK = "\u2021"  # double dagger
#: The columns of an export: a tidy result row, then the flags and threads of its cell.
EXPORT_COLUMNS = (*RESULT_COLUMNS, *FLAG_FIELDS)


def summarise(rows: Sequence[dict[str, Any]]):
    """Mean and std over seeds per :data:`SUMMARY_KEYS`.

    Returns a pandas DataFrame with those key columns plus ``mean``, ``std`` (sample std,
    0 for a single seed) and ``n_seeds``.
    """
    import pandas as pd

    keys = list(SUMMARY_KEYS)
    if not rows:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n_seeds"])
    frame = pd.DataFrame(rows)
    # dropna=False: cells of stores older than fingerprints have none, and still count
    grouped = frame.groupby(keys, sort=False, dropna=False)["value"]
    out = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def row_labels(series: Sequence[tuple[str, str, str, str]]) -> dict[tuple, str]:
    """Names for the rows of one table: ``(method, params, views, database)`` -> label.

    A method with one row is named by itself; with several, each row adds what sets it apart:
    the params whose values differ (``cvh (reg=1000)``, floats to 4 significant digits, more
    where that would give two rows one name) and the views when they differ. Rows ranked
    against unified database codes are marked ``[unified db]``.
    """
    by_method: dict[str, list[tuple]] = {}
    for item in series:
        by_method.setdefault(item[0], []).append(item)
    labels = {}
    for group in by_method.values():
        params = {item: json.loads(item[1]) for item in group}
        names = sorted({k for p in params.values() for k in p})
        differ = [k for k in names
                  if len({json.dumps(p.get(k), sort_keys=True) for p in params.values()}) > 1]
        views_differ = len({item[2] for item in group}) > 1
        # each row with the fewest digits that tell it apart from the others at that precision
        by_digits = {digits: {item: _row_label(item, {k: params[item][k] for k in differ
                                                      if k in params[item]},
                                                views_differ, digits) for item in group}
                     for digits in _LABEL_DIGITS}
        made = {}
        for item in group:
            for digits, named in by_digits.items():
                if list(named.values()).count(named[item]) == 1 or digits is None:
                    made[item] = named[item]
                    break
        if len(set(made.values())) < len(made):  # mixed precisions met: all exact
            made = by_digits[None]
        labels.update(made)
    return labels


#: Significant digits tried in turn for the float params of row labels, until the rows of a
#: method have distinct names (None: exact).
_LABEL_DIGITS = (4, 6, 9, 12, None)


def _row_label(item: tuple, shown: dict[str, Any], views_differ: bool,
               digits: int | None) -> str:
    """One row's name: its method, the ``shown`` params, its views when they differ."""
    parts = [describe_params(shown, digits)] if shown else []
    if views_differ:
        parts.append("views=" + item[2].replace(",", "+"))
    label = item[0] + (f" ({', '.join(parts)})" if parts else "")
    return label + (f" {_UNIFIED_MARK}" if item[3] == "unified" else "")


@dataclass
class Table:
    """A comparison table in the papers' layout: rows = methods, columns = task x bits."""

    caption: str
    tasks: list[str]
    bits: list[int]
    methods: list[str]
    cells: dict[tuple[str, str, int], tuple[float, float, int]]  # (method, task, bits) -> stats
    #: rows that are references (real-valued rankings, no codes): shown, never marked best
    references: frozenset[str] = frozenset()
    #: the dataset name and metric token the table shows ("" for a derived table)
    dataset: str = ""
    metric: str = ""
    #: (method, task, bits) -> the problems of the codes behind that value (any seed): the
    #: value is marked :data:`DEGENERATE_MARK`
    flags: dict[tuple[str, str, int], tuple[str, ...]] = field(default_factory=dict)
    #: (method, task, bits) -> the warnings its cells raised: marked :data:`WARNING_MARK`
    warned: dict[tuple[str, str, int], tuple[str, ...]] = field(default_factory=dict)
    #: the data fingerprint ("" when unrecorded) and tie policy of the values
    fingerprint: str = ""
    tie: str = ""
    #: row label -> its series of cells: (method, params, views, database)
    series: dict[str, tuple] = field(default_factory=dict)
    #: intervals and best-vs-runner-up tests (:func:`mmhash.bench.uncertainty.annotate`), or
    #: None: values are then shown as mean ± std and the best mean in bold, untested
    uncertainty: Any = None
    #: False for a table whose values are not ranked (costs): no value is marked best
    ranks: bool = True
    #: task -> decimals of its values, where they differ from the table's (costs)
    digits: dict[str, int] = field(default_factory=dict)

    def ranked(self, task: str, bits: int) -> list[str]:
        """The rows of one column from best to worst mean (highest first; lowest first for a
        metric where lower is better, ``medr``); reference rows do not compete."""
        sign = -1.0 if self.lower_is_better else 1.0
        scored = [(sign * self.cells[(m, task, bits)][0], m) for m in self.methods
                  if (m, task, bits) in self.cells and m not in self.references]
        return [m for _, m in sorted(scored, reverse=True)]

    def best(self, task: str, bits: int) -> str | None:
        """The method with the best mean in one column (None for an empty column)."""
        ranked = self.ranked(task, bits)
        return ranked[0] if ranked else None

    @property
    def lower_is_better(self) -> bool:
        """True for a table of a metric where lower is better (``medr``)."""
        from mmhash.errors import MMHashError
        from mmhash.evaluation.measures import parse_metric

        try:
            return not parse_metric(self.metric).higher_is_better
        except MMHashError:
            return False

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
                        continue
                    interval = (self.uncertainty.intervals.get((m, t, b))
                                if self.uncertainty is not None else None)
                    places = self.digits.get(t, digits)
                    if interval is not None:
                        text = (f"{stats[0]:.{places}f} [{interval.low:.{places}f}, "
                                f"{interval.high:.{places}f}]")
                    elif stats[2] > 1 and (self.ranks or stats[1] > 0):
                        text = f"{stats[0]:.{places}f} ± {stats[1]:.{places}f}"
                    else:
                        text = f"{stats[0]:.{places}f}"
                    row.append(text + self.marks(m, t, b))
            body.append(row)
        return headers, body

    def marks(self, method: str, task: str, bits: int) -> str:
        """The marks a value carries, after a space: :data:`DEGENERATE_MARK` for degenerate
        codes, :data:`WARNING_MARK` for warnings, both, or none ("")."""
        marks = ((DEGENERATE_MARK if self.flags.get((method, task, bits)) else "")
                 + (WARNING_MARK if self.warned.get((method, task, bits)) else ""))
        return f" {marks}" if marks else ""

    def footnotes(self, full: bool = False) -> list[str]:
        """One line per mark and marked row and bits: what is degenerate or was warned about
        (``† degenerate codes: cvh, 16 bits: text query codes: 7 of 16 bits constant``); with
        :attr:`uncertainty`, first what the intervals and the marks of the best values mean and
        each column's test.

        ``full``: each warning whole (else its first sentence: the tables stay readable; the
        HTML page and the exports carry the whole text).
        """
        lines = self.uncertainty_notes()
        for mark, title, found in ((DEGENERATE_MARK, "degenerate codes", self.flags),
                                   (WARNING_MARK, "warnings while the cell ran", self.warned)):
            per_row: dict[tuple[str, int], dict[str, None]] = {}
            for (method, _, bits), notes in found.items():
                if notes and method in self.methods:
                    per_row.setdefault((method, bits), {}).update(
                        dict.fromkeys(n if full else _first_sentence(n) for n in notes))
            for method, bits in sorted(per_row,
                                       key=lambda k: (self.methods.index(k[0]), k[1])):
                notes = list(per_row[(method, bits)])
                if mark == DEGENERATE_MARK:  # by view, then role: image query, image retrieval
                    notes.sort()
                lines.append(f"{mark} {title}: {method}, {bits} bits: " + "; ".join(notes))
        return lines

    def uncertainty_notes(self) -> list[str]:
        """With :attr:`uncertainty`: what the intervals are, what bold and italic mean, and the
        test of each column (best minus runner-up, its interval, raw and adjusted p)."""
        found = self.uncertainty
        if found is None:
            return []
        from mmhash.bench.uncertainty import N_PERMUTATIONS, N_RESAMPLES, verdict_word

        percent = f"{100 * found.level:g}%"
        alpha = f"{1 - found.level:.3g}"
        lines = [f"[a, b]: {percent} percentile bootstrap interval ({N_RESAMPLES:,} resamples, "
                 f"seed {found.seed}) over the queries; for a row with several seeds, over the "
                 "seeds, then the queries." if found.intervals else
                 f"[a, b]: {percent} interval (no per-query values: none shown)"]
        lines.append(
            f"Bold: best, and significantly better than the runner-up: a paired permutation "
            f"test over the same queries ({N_PERMUTATIONS:,} permutations), Holm-adjusted over "
            f"the {found.family} column tests of this report, gives p < {alpha}, and the "
            f"{percent} interval of the difference (seeds resampled too) excludes 0. Italic: "
            "best, not distinguishable from the runner-up.")
        for (task, bits), test in found.tests.items():
            c = test.comparison
            verdict = verdict_word(c, test.p_adjusted, test.alpha)
            lines.append(f"{task} {bits} bits: {test.best} - {test.runner_up} = "
                         f"{c.difference:+.4f} [{c.low:+.4f}, {c.high:+.4f}], "
                         f"p = {c.p_value:.4f}, Holm {test.p_adjusted:.4f}: {verdict}")
        return lines

    def marked_rows(self, digits: int, mark, mark_unsure=None
                    ) -> tuple[list[str], list[list[str]]]:
        """text_rows with the best value of each column passed through ``mark``; with
        :attr:`uncertainty`, a best value that is not significantly better than the runner-up
        (or untested) goes through ``mark_unsure`` instead (default: ``mark``)."""
        headers, body = self.text_rows(digits)
        columns = [(t, b) for t in self.tasks for b in self.bits]
        best = {col: self.best(*col) for col in columns}
        unsure = mark if mark_unsure is None else mark_unsure
        marked = []
        for method, *values in body:
            row = [method]
            for col, v in zip(columns, values):
                if (not self.ranks or best[col] != method
                        or len(self.methods) - len(self.references) < 2):
                    row.append(v)
                elif self.uncertainty is None:
                    row.append(mark(v))
                else:
                    test = self.uncertainty.tests.get(col)
                    row.append(mark(v) if test is not None and test.significant else unsure(v))
            marked.append(row)
        return headers, marked

    def markdown(self, digits: int = 3) -> str:
        """GitHub Markdown, best mean per column in bold, caption above."""
        from tabulate import tabulate

        headers, body = self.marked_rows(digits, lambda v: f"**{v}**", lambda v: f"*{v}*")
        notes = "".join(f"\n\n{line}" for line in self.footnotes())
        return f"{self.caption}\n\n" + tabulate(body, headers, tablefmt="github") + notes

    def latex(self, digits: int = 3) -> str:
        """A booktabs table as in the papers: task column groups, bits below, best in bold."""
        _, body = self.marked_rows(digits, lambda v: f"\\textbf{{{v}}}",
                                   lambda v: f"\\textit{{{v}}}")
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
            cells = [_latex_marks(v.replace("±", "$\\pm$")) for v in values]
            lines.append(" & ".join([_latex_escape(method).upper(), *cells]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        lines += [f"\\par\\footnotesize {_latex_marks(_latex_escape(line))}"
                  for line in self.footnotes()]
        lines.append("\\end{table}")
        return "\n".join(lines)


def _first_sentence(text: str) -> str:
    """A note up to its first sentence end (``. `` followed by a capital letter)."""
    for i in range(len(text) - 2):
        if text[i] == "." and text[i + 1] == " " and text[i + 2].isupper():
            return text[:i]
    return text


def _latex_marks(text: str) -> str:
    return (text.replace(DEGENERATE_MARK, "$^{\\dagger}$")
            .replace(WARNING_MARK, "$^{\\ddagger}$"))


def _latex_escape(text: str) -> str:
    out = text
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"),
                       ("_", r"\_"), ("#", r"\#"), ("->", r"$\to$")):
        out = out.replace(char, repl)
    return out


#: Tasks per table: the two directions of one view pair, the papers' layout.
TASKS_PER_TABLE = 2


def tables(rows: Sequence[dict[str, Any]], *, method_order: Sequence[str] | None = None,
           describe: dict[str, str] | None = None,
           tasks_per_table: int = TASKS_PER_TABLE) -> list[Table]:
    """One :class:`Table` per (dataset, data fingerprint, metric, tie) found in ``rows``; with
    more than two views, one per view pair (both directions, e.g. ``a->b`` and ``b->a``), so a
    table stays as wide as the papers' two-view tables.

    Rows are the series of cells (:data:`ROW_FIELDS`), named by :func:`row_labels`.
    ``method_order`` fixes the order of methods (default: order of first appearance);
    ``describe`` maps a dataset name to a short description used in the caption (sizes, split,
    synthetic or not).
    """
    summary = summarise(rows)
    if summary.empty:
        return []
    notes = _notes_by_value(rows)
    summary["fingerprint"] = summary["fingerprint"].fillna("")
    prints = summary.groupby("dataset", sort=False)["fingerprint"].nunique()
    out = []
    for (dataset, fingerprint, metric, tie), part in summary.groupby(
            ["dataset", "fingerprint", "metric", "tie"], sort=False):
        seeds = sorted(set(part["n_seeds"]))
        seed_text = (f"mean ± std over {seeds[0]} seeds" if seeds == [seeds[0]] and seeds[0] > 1
                     else "single seed" if seeds == [1] else "mean ± std over seeds")
        where = f"{dataset}" + (f" ({describe[dataset]})" if describe and dataset in describe
                                else "")
        if prints[dataset] > 1:  # one name, several data: say which this table is
            where += f" [data {fingerprint[:12] or 'unrecorded'}]"
        head = f"{metric_title(metric)} on {where}, tie policy: {tie}; {seed_text}"
        all_tasks = _pair_up(list(dict.fromkeys(part["task"])))
        bits = sorted({int(b) for b in part["bits"]})
        # M views give M(M-1) tasks (30 for mfeat): one table of them all would be hundreds of
        # columns wide, so they come TASKS_PER_TABLE at a time -- a pair of views per table.
        chunks = [all_tasks[i:i + tasks_per_table]
                  for i in range(0, len(all_tasks), tasks_per_table)]
        for i, chunk in enumerate(chunks, 1):
            rows_here = part[part["task"].isin(chunk)]
            series = list(dict.fromkeys(
                tuple(r) for r in rows_here[list(ROW_FIELDS)].itertuples(index=False)))
            labels = row_labels(series)
            kinds = {s[0]: ranking_of(s[0]) for s in series}
            references = {s for s in series if kinds[s[0]][0]}
            labels = {s: label + (f" {REFERENCE_MARK}" if s in references else "")
                      for s, label in labels.items()}
            # the references on top: the ceiling every row below is read against
            order = sorted(_method_order(series, method_order), key=lambda s: s not in references)
            which = "" if len(chunks) == 1 else \
                f" (tasks {', '.join(chunk)}; table {i} of {len(chunks)})"
            database = (f". Database: per-view codes; rows marked {_UNIFIED_MARK} rank against "
                        "one code per item learned from all its views"
                        if any(s[3] == "unified" for s in series)
                        else ". Database: the retrieval view's codes")
            columns = ". Columns: task (query view->retrieval view) x bits."
            database += ranking_sentence(kinds)
            cells = {(labels[tuple(getattr(r, f) for f in ROW_FIELDS)], r.task, int(r.bits)):
                     (float(r.mean), float(r.std), int(r.n_seeds))
                     for r in rows_here.itertuples()}
            flags, warned = {}, {}
            for r in rows_here.itertuples():
                series = tuple(getattr(r, f) for f in ROW_FIELDS)
                found = notes.get((dataset, fingerprint, *series, r.task, int(r.bits)))
                if found:
                    place = (labels[series], r.task, int(r.bits))
                    flags[place], warned[place] = tuple(found[0]), tuple(found[1])
            out.append(Table(head + which + database + columns, chunk, bits,
                             [labels[s] for s in order], cells,
                             frozenset(labels[s] for s in references), dataset, metric,
                             {k: v for k, v in flags.items() if v},
                             {k: v for k, v in warned.items() if v}, fingerprint, tie,
                             {labels[s]: s for s in order}))
    return out


def _notes_by_value(rows: Sequence[dict[str, Any]]) -> dict[tuple, tuple[dict, dict]]:
    """``(dataset, fingerprint or "", method, params, views, database, task, bits)`` ->
    (problems, warnings) of the cells behind it (any seed; each note once, in order), from the
    rows' ``degenerate`` and ``warnings`` lists (:func:`mmhash.bench.store.flag_row`)."""
    out: dict[tuple, tuple[dict, dict]] = {}
    for r in rows:
        if not (r.get("degenerate") or r.get("warnings")):
            continue
        key = (r["dataset"], r.get("fingerprint") or "", *(r[f] for f in ROW_FIELDS),
               r["task"], int(r["bits"]))
        problems, warnings = out.setdefault(key, ({}, {}))
        problems.update(dict.fromkeys(r.get("degenerate") or ()))
        warnings.update(dict.fromkeys(r.get("warnings") or ()))
    return out


#: How tables mark a reference row (a real-valued ranking with no codes, never marked best).
REFERENCE_MARK = "[reference]"
HAMMING_RANKING = "the Hamming distance of the codes"


def ranking_of(method: str) -> tuple[bool, str]:
    """``(is a reference, what it ranks by)`` for a registry name, from the class's
    ``reference`` and ``ranking`` attributes; a method that is not installed here counts as a
    Hamming-ranked hasher (its stored rows are still shown)."""
    from mmhash.errors import MMHashError
    from mmhash.registry import get_hasher_class

    try:
        cls = get_hasher_class(method)
    except MMHashError:
        return False, HAMMING_RANKING
    return bool(cls.reference), getattr(cls, "ranking", "") or HAMMING_RANKING


def ranking_sentence(kinds: dict[str, tuple[bool, str]]) -> str:
    """The caption's sentence on what the rows rank by: Hamming unless a row says otherwise."""
    others = [f"{method}: {ranking}" for method, (_, ranking) in kinds.items()
              if ranking != HAMMING_RANKING]
    sentence = f". Ranking: {HAMMING_RANKING}"
    if others:
        sentence += "; " + "; ".join(others)
    if any(reference for reference, _ in kinds.values()):
        sentence += f" (rows marked {REFERENCE_MARK} are references, not hashers: no binary codes)"
    return sentence


def _method_order(series: list[tuple], method_order: Sequence[str] | None) -> list[tuple]:
    """Series grouped by method, methods in ``method_order`` first, then first appearance."""
    methods = list(dict.fromkeys(s[0] for s in series))
    if method_order is not None:
        methods = [m for m in method_order if m in methods] + \
                  [m for m in methods if m not in method_order]
    return [s for m in methods for s in series if s[0] == m]


def _pair_up(tasks: list[str]) -> list[str]:
    """Tasks reordered so both directions of a view pair are adjacent (first appearance order)."""
    groups: dict[frozenset, list[str]] = {}
    for task in tasks:
        groups.setdefault(frozenset(task.split("->")), []).append(task)
    return [task for group in groups.values() for task in group]


#: The columns an export adds with intervals (``mmhash report --ci``): the bounds of the
#: series a row belongs to, and their level.
INTERVAL_COLUMNS = ("ci_low", "ci_high", "ci_level")


def export_frame(rows: Sequence[dict[str, Any]], *, intervals: bool = False):
    """Tidy rows as a pandas DataFrame of :data:`EXPORT_COLUMNS`: the cell key -- dataset,
    fingerprint, method, params, bits, seed, views, database -- then task, metric, tie, value,
    then ``degenerate`` (what is degenerate about the codes the task ranks), ``warnings`` (raised
    while the cell ran), each a ``; ``-joined text, and ``threads`` (its thread pools); those
    three are "" where there is nothing to say or nothing was recorded."""
    import pandas as pd

    from mmhash.bench.codestats import join_notes

    def text(value) -> str:
        if isinstance(value, (list, tuple)):
            return join_notes(value)
        return "" if value is None or value != value else str(value)  # NaN: not recorded

    columns = [*EXPORT_COLUMNS, *(INTERVAL_COLUMNS if intervals else ())]
    frame = pd.DataFrame(list(rows), columns=columns)
    for column in FLAG_FIELDS:
        frame[column] = [text(v) for v in frame[column]]
    return frame


def export(rows: Sequence[dict[str, Any]], path: str | os.PathLike, *,
           intervals: bool = False) -> Path:
    """Write tidy rows (:func:`export_frame`, with :data:`INTERVAL_COLUMNS` when
    ``intervals``) to .csv or .json."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InvalidInputError(f"cannot export to {path}: unknown file type {path.suffix!r} (use "
                                ".csv or .json)")
    from mmhash.codefiles import atomic_output

    frame = export_frame(rows, intervals=intervals)
    with atomic_output(path) as tmp:  # never leave a half-written export behind
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", indent=1)
    return path
