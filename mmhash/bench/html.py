"""One self-contained HTML page of stored results (``mmhash report --format html``).

:func:`render_page` builds the page string from tidy result rows, stored curves, the stored run
records and the failed cells; :func:`report_page` builds the page of ``mmhash report --format
html`` from several stores combined (:func:`mmhash.bench.combine.combine_stores`): the failed
cells and runs matching its filters, the filters named under the title. Neither reads a store
or writes a file (the CLI writes it). The page
needs nothing beyond itself: the stylesheet is inline, figures are ``data:`` URIs (SVG by
default), and there is no script. Per dataset (and data fingerprint) and pair of tasks it shows
the tables of :func:`mmhash.bench.report.tables` -- their captions, rows, best marks and the
marks of degenerate or warned values with their footnotes, as they are -- and under them the PR
and P@K figures of :func:`mmhash.bench.plots.curve_figures`; then the failed cells with their
errors and the provenance the store kept (runs: command, versions, git revision, machine;
cells: data fingerprint, device, thread pools). Every stored text is escaped.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mmhash.bench.published import Published, published_for
from mmhash.bench.report import Table, tables

if TYPE_CHECKING:
    from mmhash.bench.combine import Combined

#: The stylesheet of the page (inline: the page must open without a network).
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 1400px; }
h1 { font-size: 1.7rem; margin: 0 0 .3rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid #d0d7de; padding-bottom: .2rem;
     margin-top: 2.5rem; }
h3 { font-size: 1.1rem; margin-top: 1.8rem; }
h4 { font-size: .95rem; margin: 1.2rem 0 .4rem; color: #444c56; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
p.meta, p.note { color: #57606a; margin: .2rem 0; }
nav.toc { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
          padding: .6rem 1.2rem; margin: 1rem 0; display: inline-block; min-width: 20rem; }
nav.toc h2 { border: 0; margin: .2rem 0; font-size: 1.05rem; }
nav.toc ul { margin: .2rem 0; padding-left: 1.2rem; }
.table-wrap { overflow-x: auto; margin: .4rem 0 1.2rem; }
table { border-collapse: collapse; font-size: 13px; }
figure.table { margin: 1rem 0 1.4rem; border: 0; padding: 0; }
figure.table > figcaption { text-align: left; font-size: 13px; color: #24292f;
                            max-width: 1100px; padding: 0 0 .4rem; }
th, td { border: 1px solid #d0d7de; padding: .28rem .55rem; }
thead th { background: #eaeef2; text-align: center; }
tbody th { text-align: left; font-weight: 600; white-space: nowrap; }
table.results td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #f6f8fa; }
tr.reference, tbody tr.reference:nth-child(even) { background: #eef3fb; font-style: italic;
                                                   color: #444c56; }
tr.reference + tr:not(.reference) > * { border-top: 2px solid #8c959f; }
td.best { font-weight: 700; background: #dafbe1; }
td.flagged { background: #fff1e5; }
p.footnote { color: #953800; font-size: 12px; margin: .2rem 0; max-width: 1100px; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
           gap: .8rem; margin: .4rem 0 1rem; }
.figures figure { margin: 0; border: 1px solid #d0d7de; border-radius: 4px; padding: .3rem;
                 background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: #57606a; text-align: center; }
table.info td { vertical-align: top; text-align: left; }
table.runs td { max-width: 36rem; }
table.runs pre { white-space: pre-wrap; margin: .3rem 0 0; }
table.info td.error { white-space: pre-wrap; font-family: ui-monospace, monospace;
                      font-size: 12px; max-width: 40rem; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.none { color: #8c959f; font-style: italic; }
details { margin: .3rem 0; } summary { cursor: pointer; color: #0969da; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: .5rem; overflow-x: auto;
      font-size: 12px; }
footer { margin-top: 3rem; color: #8c959f; font-size: 12px; }
"""

_NOT_RECORDED = '<span class="none">not recorded</span>'
#: packages shown in their own provenance columns; the rest of a run's versions go together
_OWN_COLUMNS = ("mmhash", "numpy")


def esc(value: Any) -> str:
    """``value`` as escaped HTML text (quotes too: safe in attributes)."""
    return html.escape(str(value), quote=True)


def _task(task: str) -> str:
    return esc(task).replace("-&gt;", "&rarr;")


def _stored(value: Any) -> str:
    """A stored value as HTML text, or a mark that the store holds none."""
    return _NOT_RECORDED if value is None or value == "" else esc(value)


def _parsed(value: Any) -> Any:
    """A stored JSON text as data (the text itself when it is not JSON)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


class _Best(str):
    """A cell value marked best by :meth:`Table.marked_rows`."""


class _Unsure(_Best):
    """A best value not significantly better than the runner-up (:meth:`Table.marked_rows`)."""


def table_html(table: Table, digits: int = 3) -> str:
    """One :class:`~mmhash.bench.report.Table`: its caption above, task groups and bits as
    header rows, reference rows as the table lists them (on top, never marked best), the best
    value of each column bold."""
    _, body = table.marked_rows(digits, _Best, _Unsure)
    n = len(table.bits)
    groups = "".join(f'<th scope="colgroup" colspan="{n}">{_task(t)}</th>' for t in table.tasks)
    bits = "".join(f'<th scope="col">{b} bits</th>' for _ in table.tasks for b in table.bits)
    lines = ['<figure class="table">', f"<figcaption>{esc(table.caption)}</figcaption>",
             '<div class="table-wrap"><table class="results">',
             f'<thead><tr><th scope="col" rowspan="2">method</th>{groups}</tr>',
             f"<tr>{bits}</tr></thead>", "<tbody>"]
    columns = [(t, b) for t in table.tasks for b in table.bits]
    for method, *values in body:
        kind = ' class="reference"' if method in table.references else ""
        cells = []
        for (task, bits), v in zip(columns, values):
            # a degenerate or warned value: tinted, and its notes on hover (the footnotes say
            # the same under the table)
            notes = [*table.flags.get((method, task, bits), ()),
                     *table.warned.get((method, task, bits), ())]
            classes = (["best"] if isinstance(v, _Best) else []) + (["flagged"] if notes else [])
            attrs = (f' class="{" ".join(classes)}"' if classes else "") + (
                f' title="{esc(chr(10).join(notes))}"' if notes else "")
            text = (f"<em>{esc(v)}</em>" if isinstance(v, _Unsure)
                    else f"<strong>{esc(v)}</strong>" if isinstance(v, _Best) else esc(v))
            cells.append(f"<td{attrs}>{text}</td>")
        lines.append(f'<tr{kind}><th scope="row">{esc(method)}</th>{"".join(cells)}</tr>')
    lines.append("</tbody></table></div>")
    lines.extend(f'<p class="footnote">{esc(line)}</p>' for line in table.footnotes(full=True))
    lines.append("</figure>")
    return "\n".join(lines)


def _figures_by_task(curves: Sequence[Mapping[str, Any]], tie: str, fmt: str) -> dict:
    """``(dataset, fingerprint, task) -> [(bits, kind, title, lines, data URI)]``."""
    from mmhash.bench.plots import curve_figures, figure_bytes

    mime = {"svg": "image/svg+xml", "png": "image/png"}[fmt]
    out: dict[tuple, list] = {}
    for figure in curve_figures(curves, tie=tie):
        data = base64.b64encode(figure_bytes(figure, fmt)).decode("ascii")
        out.setdefault((figure.dataset, figure.fingerprint, figure.task), []).append(
            (figure.bits, figure.kind, figure.title, figure.lines, f"data:{mime};base64,{data}"))
    return out


def _figures_html(figures: Sequence[tuple[str, list[tuple]]]) -> str:
    """The figures of one pair of tasks (``[(task, figures)]``): per bit length, the PR then the
    P@K figure of each task; a note names the lines that have P@K but no PR curve (rows ranked
    by real-valued distances)."""
    order = [t for t, _ in figures]
    items = sorted(((task, f) for task, fs in figures for f in fs),
                   key=lambda item: (item[1][0], item[1][1] != "pr", order.index(item[0])))
    pr_lines = {line for _, f in items if f[1] == "pr" for line in f[3]}
    pk_lines = {line for _, f in items if f[1] == "p@k" for line in f[3]}
    parts = ["<h4>Figures</h4>"]
    if without_pr := sorted(pk_lines - pr_lines):
        parts.append('<p class="note">No PR curve (it is by Hamming radius) for rows ranked by '
                     f'real-valued distances: {esc(", ".join(without_pr))}; they are lines of '
                     "the P@K figures only.</p>")
    parts.append('<div class="figures">')
    for _, (_, _, title, _, uri) in items:
        parts.append(f'<figure><img src="{uri}" alt="{esc(title)}">'
                     f"<figcaption>{_task(title)}</figcaption></figure>")
    parts.append("</div>")
    return "\n".join(parts)


def _run_fields(run: Mapping[str, Any], info: Mapping[str, set]) -> list[tuple[str, str]]:
    """``(field, HTML)`` of one stored run record, and what its shown cells add."""
    versions = _parsed(run.get("versions")) or {}
    machine = _parsed(run.get("machine")) or {}
    if not isinstance(versions, dict):
        versions = {"versions": versions}
    if not isinstance(machine, dict):
        machine = {"machine": machine}
    where = [str(machine[k]) for k in ("node", "system", "machine") if machine.get(k)]
    place = [" / ".join(where)] if where else []
    if machine.get("cpus"):
        place.append(f"{machine['cpus']} CPUs")
    place += [f"{k}={v}" for k, v in machine.items()
              if k not in ("node", "system", "machine", "cpus", "python")]
    others = ", ".join(f"{k} {v}" for k, v in versions.items() if k not in _OWN_COLUMNS)
    command, revision = run.get("command"), run.get("git_revision")
    config = _parsed(run.get("config"))
    if config not in (None, ""):
        text = config if isinstance(config, str) else json.dumps(config, sort_keys=True)
        config = f"<details><summary>show</summary><pre>{esc(text)}</pre></details>"
    return [
        ("started", _stored(run.get("started"))),
        ("finished", _stored(run.get("finished"))),
        ("command", f"<code>{esc(command)}</code>" if command else _NOT_RECORDED),
        ("mmhash", _stored(versions.get("mmhash"))),
        ("git revision", f"<code>{esc(revision)}</code>" if revision else _NOT_RECORDED),
        ("machine", _stored(", ".join(place))),
        ("Python", _stored(machine.get("python"))),
        ("numpy", _stored(versions.get("numpy"))),
        ("other packages", _stored(others)),
        ("devices of the shown cells", _stored(", ".join(sorted(info["devices"])))),
        ("threads of the shown cells (BLAS, OpenMP, torch)",
         "<br>".join(esc(t) for t in sorted(info["threads"])) or _NOT_RECORDED),
        ("shown cells", esc(len(info["cells"] - {None}))),
        ("config", config or _NOT_RECORDED),
    ]


def _runs_html(runs: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
               several_stores: bool) -> str:
    """The stored run records, one column each, with what their shown cells add (devices,
    cell count)."""
    per_run: dict[tuple, dict[str, set]] = {}
    for r in rows:
        info = per_run.setdefault((r.get("store"), r.get("run_id")), {
            "cells": set(), "devices": set(), "threads": set()})
        info["cells"].add(r.get("cell_id"))
        if r.get("device"):
            info["devices"].add(r["device"])
        if r.get("threads"):
            info["threads"].add(r["threads"])
    columns = []
    for run in runs:
        name = f"run {run.get('run_id')}" + (f" of {run.get('store')}" if several_stores else "")
        info = per_run.get((run.get("store"), run.get("run_id")), {
            "cells": set(), "devices": set(), "threads": set()})
        columns.append((name, _run_fields(run, info)))
    out = ['<div class="table-wrap"><table class="info runs"><thead><tr><th></th>',
           "".join(f'<th scope="col">{esc(name)}</th>' for name, _ in columns),
           "</tr></thead><tbody>"]
    for i, (field, _) in enumerate(columns[0][1]):
        out.append(f'<tr><th scope="row">{esc(field)}</th>'
                   + "".join(f"<td>{fields[i][1]}</td>" for _, fields in columns) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _data_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per dataset and fingerprint: the cells shown and the runs they come from."""
    data: dict[tuple, dict[str, set]] = {}
    for r in rows:
        entry = data.setdefault((r["dataset"], r.get("fingerprint")), {"cells": set(),
                                                                       "runs": set()})
        entry["cells"].add((r.get("store"), r.get("cell_id"), r["method"], r["params"],
                            r["bits"], r["seed"], r["views"], r["database"]))
        if r.get("run_id") is not None:
            entry["runs"].add(str(r["run_id"]))
    out = ['<div class="table-wrap"><table class="info"><thead><tr><th>dataset</th>'
           "<th>data fingerprint (sha256)</th><th>shown cells</th><th>runs</th></tr></thead>"
           "<tbody>"]
    for (dataset, fingerprint), entry in data.items():
        out.append(f"<tr><td>{esc(dataset)}</td><td class=\"mono\">{_stored(fingerprint)}</td>"
                   f"<td>{len(entry['cells'])}</td>"
                   f"<td>{_stored(', '.join(sorted(entry['runs'], key=_natural)))}</td></tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _natural(text: str):
    return (0, int(text)) if text.isdigit() else (1, text)


def _failures_html(failures: Sequence[Mapping[str, Any]], several_stores: bool) -> str:
    if not failures:
        return '<p class="note">No failed cells.</p>'
    head = (["store"] if several_stores else []) + [
        "run", "dataset", "method", "params", "bits", "seed", "views", "database", "error",
        "in the tables"]
    out = ['<div class="table-wrap"><table class="info"><thead><tr>',
           "".join(f'<th scope="col">{esc(h)}</th>' for h in head), "</tr></thead><tbody>"]
    for f in failures:
        cells = [_stored(f.get("store"))] if several_stores else []
        cells += [_stored(f.get(k)) for k in ("run_id", "dataset", "method", "params", "bits",
                                             "seed", "views", "database")]
        cells = [f"<td>{c}</td>" for c in cells]
        cells.append(f'<td class="error">{_stored(f.get("error"))}</td>')
        cells.append("<td>yes: a finished cell of this key is shown</td>" if f.get("shown")
                     else "<td>no: missing from the tables</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def render_page(rows: Sequence[Mapping[str, Any]], curves: Sequence[Mapping[str, Any]] = (), *,
                runs: Sequence[Mapping[str, Any]] = (),
                failures: Sequence[Mapping[str, Any]] = (),
                method_order: Sequence[str] | None = None, tie: str = "expected",
                sources: Sequence[str] = (), notes: Sequence[str] = (),
                published: Published | None = None, uncertainty: dict | None = None,
                costs: Sequence[Table] = (), figure_format: str = "svg",
                title: str = "mmhash results") -> str:
    """The whole page as one string.

    ``rows``: tidy result rows (:meth:`ResultStore.results`; a ``store`` key names the file a
    row came from when several are combined). ``curves``: rows of :meth:`ResultStore.curves`
    (P@K lines under tie policy ``tie``). ``runs``: rows of the store's ``runs`` table (its JSON
    columns as stored), with ``store``. ``failures``: failed cells (key fields, ``run_id``,
    ``error``, ``store``, and ``shown``: whether a finished cell of the same key is in
    ``rows``). ``sources`` and ``notes`` go under the title. ``published``: a suite's
    published values (:mod:`mmhash.bench.published`); each run table is followed by its
    comparison tables (ours, published, difference), as ``report --published`` prints them.
    ``uncertainty``: ``{"level": 0.95, "seed": 0}`` to show intervals and test each column's
    best row (:func:`mmhash.bench.uncertainty.annotate`, over all the page's tables at once;
    the rows must carry ``per_query``). ``costs``: cost tables
    (:func:`mmhash.bench.cost.cost_tables`), each at the end of its dataset's section.
    ``figure_format``: ``svg`` or ``png``, both inline.
    """
    from mmhash import __version__

    if figure_format not in ("svg", "png"):
        raise ValueError(f"figure_format {figure_format!r}: use svg or png")
    several_stores = len({r.get("store") for r in [*rows, *runs, *failures]}) > 1
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    figures = _figures_by_task(curves, tie, figure_format) if has_matplotlib and curves else {}

    by_data: dict[tuple[str, str], list] = {}
    for r in rows:
        by_data.setdefault((r["dataset"], r.get("fingerprint") or ""), []).append(r)
    prints: dict[str, int] = {}
    for dataset, _ in by_data:
        prints[dataset] = prints.get(dataset, 0) + 1

    made = {data: tables(data_rows, method_order=method_order)
            for data, data_rows in by_data.items()}
    if uncertainty is not None:  # one family of tests: the whole page
        from mmhash.bench.uncertainty import annotate

        annotate([t for group in made.values() for t in group], rows, **uncertainty)
    toc, body = [], []
    for i, (dataset, fingerprint) in enumerate(by_data, 1):
        name = dataset + (f" (data {fingerprint[:12] or 'unrecorded'})"
                          if prints[dataset] > 1 else "")
        anchor = f"d{i}"
        pairs: dict[tuple[str, ...], list[Table]] = {}
        for table in made[(dataset, fingerprint)]:
            pairs.setdefault(tuple(table.tasks), []).append(table)
        body.append(f'<section id="{anchor}"><h2>{esc(name)}</h2>')
        entries = []
        for j, (tasks, group) in enumerate(pairs.items(), 1):
            pair = " &harr; ".join(esc(t.split("->")[0]) for t in tasks) if len(tasks) == 2 \
                and tasks[0].split("->")[::-1] == tasks[1].split("->") \
                else ", ".join(_task(t) for t in tasks)
            entries.append(f'<li><a href="#{anchor}-{j}">{pair}</a></li>')
            body.append(f'<section id="{anchor}-{j}"><h3>{esc(name)}: {pair}</h3>')
            body.extend(table_html(t) for t in group)
            if published is not None:
                body.extend(table_html(t) for t in published_for(group, published))
            shown = [(t, figures.get((dataset, fingerprint, t), [])) for t in tasks]
            if any(fs for _, fs in shown):
                body.append(_figures_html(shown))
            elif not has_matplotlib and curves:
                body.append('<p class="note">Figures left out: matplotlib is not installed '
                            "(pip install 'mmhash[plot]').</p>")
            else:
                body.append('<p class="note">No stored curves for these tasks.</p>')
            body.append("</section>")
        body.extend(table_html(t) for t in costs or ()
                    if (t.dataset, t.fingerprint) == (dataset, fingerprint))
        body.append("</section>")
        toc.append(f'<li><a href="#{anchor}">{esc(name)}</a><ul>{"".join(entries)}</ul></li>')

    n_failed = len(failures)
    toc.append(f'<li><a href="#failed">Failed cells ({n_failed})</a></li>')
    toc.append('<li><a href="#provenance">Provenance</a></li>')
    body.append('<section id="failed"><h2>Failed cells</h2>')
    if failures:
        body.append(f'<p class="note">{n_failed} failed cell(s) stored with their error.</p>')
    body.append(_failures_html(failures, several_stores))
    body.append("</section>")
    body.append('<section id="provenance"><h2>Provenance</h2>'
                "<p class=\"note\">As the store recorded them: every run that produced a shown "
                "cell or a listed failure, and the data the shown cells saw.</p>"
                "<h3>Runs</h3>")
    body.append(_runs_html(runs, rows, several_stores) if runs
                else f"<p>{_NOT_RECORDED}</p>")
    body.append("<h3>Data</h3>")
    body.append(_data_html(rows))
    body.append("</section>")

    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
    meta = [f"Rendered by mmhash {esc(__version__)} on {esc(stamp)}"
            + (f" from {esc(', '.join(sources))}" if sources else "") + "."]
    meta += [esc(n) for n in notes]
    if uncertainty is None:
        meta.append("Values: mean &plusmn; sample std over seeds; <strong>bold</strong>: the "
                    "best mean of its column (reference rows, on top, never compete).")
    else:
        meta.append(f"Values: mean over seeds [{100 * uncertainty['level']:g}% bootstrap "
                    "interval]; <strong>bold</strong>: best of its column and significantly "
                    "better than the runner-up; <em>italic</em>: best, not distinguishable "
                    "from the runner-up (the tests are under each table; reference rows, on "
                    "top, never compete).")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<header><h1>{esc(title)}</h1>",
        *(f'<p class="meta">{m}</p>' for m in meta), "</header>",
        '<nav class="toc"><h2>Contents</h2><ul>', *toc, "</ul></nav>",
        *body,
        "<footer>A self-contained page: inline styles and figures, no scripts, no network."
        "</footer>", "</body>", "</html>", ""])


def report_page(combined: Combined, *, stores: Sequence[str], dataset: str | None = None,
                methods: Sequence[str] | None = None, run_id: int | None = None,
                recompute: bool = False, published: Published | None = None,
                uncertainty: dict | None = None, costs: Sequence[Table] = ()) -> str:
    """The page of ``mmhash report --format html``: the rows and curves of
    :func:`mmhash.bench.combine.combine_stores` (read with ``provenance=True``), with the runs
    they came from and the failed cells matching the filters (``dataset``, ``methods``;
    ``run_id`` and ``recompute`` are named under the title). Adds each recomputed row's run and
    device (such rows name only their cell) in place."""
    from mmhash.bench.cell import CellKey

    rows, provenance = combined.rows, combined.provenance
    stores = list(dict.fromkeys(stores))  # a store named twice is one source
    for row in rows:  # recomputed rows name their cell only: add its run and device
        cell = provenance[row["store"]].origins.get(row.get("cell_id"), {})
        row.setdefault("run_id", cell.get("run_id"))
        row.setdefault("device", cell.get("device"))
    shown = {CellKey.from_row(r) for r in rows}
    failures = [{**f, "shown": CellKey.from_row(f) in shown}
                for store in stores for f in provenance[store].failures
                if (dataset is None or f["dataset"] == dataset)
                and (methods is None or f["method"] in methods)]
    used = {(r["store"], r.get("run_id")) for r in [*rows, *failures]}
    runs = [run for store in stores for run in provenance[store].runs
            if (store, run["run_id"]) in used]
    notes = ["Values recomputed from the stored codes (--recompute)."] if recompute else []
    filters = [f"{name} {value}" for name, value in (
        ("--dataset", dataset), ("--methods", ",".join(methods or [])), ("--run", run_id))
        if value]
    if filters:
        notes.append("Filters: " + "; ".join(filters) + ".")
    return render_page(rows, combined.curves, runs=runs, failures=failures,
                       method_order=methods, tie=combined.evaluation.ties[0],
                       sources=list(stores), notes=notes, published=published,
                       uncertainty=uncertainty, costs=costs)
