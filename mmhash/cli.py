"""The ``mmhash`` command line; the only module that prints.

Every error a user can cause (an :class:`~mmhash.errors.MMHashError`) ends as one line on stderr
and exit code 2; a grid with failed cells exits 1 after storing everything that finished.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from typing import Any

import click

from mmhash.errors import InvalidInputError, MMHashError
from mmhash.outputs import (
    CODES_EXTENSIONS,
    INDEX_EXTENSIONS,
    MODEL_EXTENSIONS,
    PARAMS_EXTENSIONS,
    REPORT_EXTENSIONS,
    TABLE_EXTENSIONS,
    check_output,
    check_output_folder,
)

EXIT_USAGE = 2
EXIT_FAILED_CELLS = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        # Piped or captured output has no width to fit: keep wide tables on one line per row.
        console = Console(stderr=stderr, highlight=False, width=240)
    return console


def _errors_as_one_line(func):
    """Turn mmhash errors into one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MMHashError as exc:
            from rich.markup import escape

            # escape: messages hold literal brackets (pip install 'mmhash[plot]')
            _console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}",
                                        soft_wrap=True)
            sys.exit(EXIT_USAGE)

    return wrapper


class _OneLineGroup(click.Group):
    """The ``mmhash`` group: click's own usage errors (a value of the wrong type, an unknown
    option, a missing argument) end as one line and exit 2 like mmhash's errors, instead of
    click's usage block; Ctrl-C outside a grid (which says more, see ``bench``) is one line and
    exit 130, not ``Aborted!`` and exit 1 like a failed grid."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        from rich.markup import escape

        err = _console(stderr=True)
        try:
            return super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # `mmhash` alone: the help text
            click.echo(exc.format_message(), err=True)
            sys.exit(EXIT_USAGE)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "mmhash"
            err.print(f"[bold red]error:[/] {escape(exc.format_message())} (see {where} "
                      "--help)", soft_wrap=True)
            sys.exit(EXIT_USAGE)
        except (click.Abort, KeyboardInterrupt):
            err.print("[yellow]interrupted[/]: what finished before is kept; nothing is "
                      "half-written", soft_wrap=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as exc:  # a file click could not open, and the like
            err.print(f"[bold red]error:[/] {escape(exc.format_message())}", soft_wrap=True)
            sys.exit(exc.exit_code)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning (e.g. a method that cannot fill its bits) as one line on stderr, not Python's
    file:line block."""
    from rich.markup import escape

    _console(stderr=True).print(f"[yellow]warning:[/] {escape(str(message))}", soft_wrap=True)


@click.group(cls=_OneLineGroup)
@click.version_option(package_name="mmhash")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def main(verbose: int) -> None:
    """mmhash: unsupervised multimodal hashing — methods, exact evaluation, benchmarks."""
    import warnings

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    warnings.showwarning = _show_warning


# ---- bench ---------------------------------------------------------------------------------
#: The flags that set ``n_bits`` and ``random_state`` in bench, and in fit and tune.
_BENCH_FLAGS = {"n_bits": "--bits", "random_state": "--seeds"}
_FIT_FLAGS = {"n_bits": "--bits", "random_state": "--seed"}


def _json_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _refuse_flag_param(item: str, name: str, flags: dict[str, str] | None) -> None:
    """``n_bits`` and ``random_state`` have their own flags (whose values the cell key, the
    model file and the reports record): through --param they would clash with them. ``flags``
    None: the command sets both itself (the conformance checks)."""
    if name not in ("n_bits", "random_state"):
        return
    if flags is None:
        raise InvalidInputError(f"--param {item}: the conformance checks set n_bits and "
                                "random_state themselves")
    what = "the code length" if name == "n_bits" else "the seed"
    raise InvalidInputError(f"--param {item}: {what} is set by {flags[name]}, not --param")


def _parse_params(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--param cmfh.mu=100`` -> {"cmfh": {"mu": 100}} (values parsed as JSON when they can be)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, name = key.partition(".")
        if not (sep and dot and method and name):
            raise InvalidInputError(f"--param {item!r}: expected METHOD.NAME=VALUE")
        _refuse_flag_param(item, name, _BENCH_FLAGS)
        out.setdefault(method, {})[name] = _json_value(raw)
    return out


def _method_params(items: tuple[str, ...], flags: dict[str, str] | None) -> dict[str, Any]:
    """``--param mu=100`` of one method (fit, tune, check) -> {"mu": 100}."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not (sep and name):
            raise InvalidInputError(f"--param {item!r}: expected NAME=VALUE")
        _refuse_flag_param(item, name, flags)
        out[name] = _json_value(raw)
    return out


def _param_line(method: str, params: dict[str, Any]) -> str:
    """The parameters a run applies to one method, exactly as they are passed."""
    from mmhash.bench.cell import describe_params

    return f"params of {method}: {describe_params(params, digits=None)}"


def _describe(dataset) -> str:
    s = dataset.split
    kind = "synthetic, generated; " if dataset.synthetic else ""
    return (f"{kind}{len(s.query)} queries, {len(s.retrieval)} retrieval items, "
            f"{len(s.train)} training pairs")


@main.command()
@click.option("--dataset", "datasets", default=None,
              help="Registered dataset name(s), comma-separated, or a path to a data file. "
                   "Default: synthetic (embedded, no download).")
@click.option("--methods", default=None,
              help="Comma-separated hashers (default rp,cvh).")
@click.option("--bits", default=None, help="Code lengths, multiples of 8 (default 16,32,64,128).")
@click.option("--seeds", default=None, help="Comma-separated integer seeds (default 0).")
@click.option("--metrics", default=None, help="map, map@K, p@K, comma-separated (default map).")
@click.option("--tie", "ties", default=None,
              help="Tie policies: expected, optimistic, pessimistic, index (default expected).")
@click.option("--views", default=None,
              help="Use only these views of the dataset (comma-separated).")
@click.option("--param", "param_items", multiple=True, metavar="METHOD.NAME=VALUE",
              help="Set a hyperparameter of one method (repeatable).")
@click.option("--params-file", default=None, type=click.Path(dir_okay=False),
              help="A TOML file of [params.METHOD] tables (what `mmhash tune -o` writes); "
                   "--param values override it.")
@click.option("--database", default=None, type=click.Choice(["per-view", "unified"]),
              help="Rank against each retrieval view's codes (per-view, default) or, for "
                   "methods that learn one, a code per item from all its views (unified: the "
                   "CMFH/LSSH/IMH papers' protocol).")
@click.option("--protocol", default=None, metavar="NAME",
              help="Split protocol of the field's benchmark files: dcmh, djsrh, ucch, ucmfh or "
                   "file (default: each dataset's family's own; see README 'Reproducing the "
                   "field's tables'). Part of the dataset's name in every key and caption.")
@click.option("--suite", default=None,
              help="Run a named suite (shipped with mmhash, or ./benchmarks/suites/NAME.toml) "
                   "or a .toml file.")
@click.option("--store", default="mmhash-results.sqlite", show_default=True,
              type=click.Path(dir_okay=False), help="SQLite file the results are added to.")
@click.option("-o", "--export", "export_path", default=None, type=click.Path(dir_okay=False),
              help="Also write this run's cells as a tidy .csv or .json table.")
@click.option("--resume", is_flag=True, help="Skip cells already stored as done.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Local worker processes (spawned; BLAS/torch threads = cores // jobs).")
@click.option("--executor", "executor_kind", default="local", show_default=True,
              type=click.Choice(["local", "dask"]), help="Where cells run.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Dask scheduler address for --executor dask.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Directory of the real datasets (default $MMHASH_DATA, else ./data).")
@_errors_as_one_line
def bench(datasets, methods, bits, seeds, metrics, ties, views, param_items, params_file,
          database, protocol, suite, store, export_path, resume, jobs, executor_kind, scheduler,
          data_dir) -> None:
    """Run methods x bits x seeds on fixed splits, store every cell, print comparison tables."""
    from mmhash.bench.plan import make_plan
    from mmhash.bench.report import export

    inputs = (params_file, suite, *(datasets or "").split(","))
    if export_path:
        check_output(export_path, option="--export", extensions=TABLE_EXTENSIONS,
                     inputs=(*inputs, store), what="tables of a run's cells")
    _check_store(store, inputs)
    params = {}
    if params_file:
        from mmhash.bench.tune import read_params_file

        params = read_params_file(params_file)
    for method, values in _parse_params(param_items).items():
        params[method] = {**params.get(method, {}), **values}
    plan = make_plan(datasets=datasets, methods=methods, bits=bits, seeds=seeds,
                     metrics=metrics, ties=ties, views=views, params=params, suite=suite,
                     database=database, data_dir=data_dir, protocol=protocol)
    from mmhash.bench.plan import execute_plan
    from mmhash.bench.store import ResultStore

    out = _console()
    _print_run_notes(out, plan)
    with _executor(executor_kind, jobs, scheduler) as executor:
        try:
            with _progress_bar(executor, plan.n_cells) as step, \
                    ResultStore(store) as results:
                outcome = execute_plan(plan, results, resume=resume, executor=executor,
                                       progress=step)
        except KeyboardInterrupt:  # said before the executor waits for the cells in flight
            _exit_interrupted(plan, store)
    _print_tables(out, plan, outcome.rows)
    if export_path:
        export(outcome.rows, export_path)
        out.print(f"exported {len(outcome.rows)} values to {export_path}")
    out.print(f"stored run {outcome.run_id} in {store}")
    _exit_on_failures(outcome.failed)


def _print_run_notes(out, plan) -> None:
    """What a run applies beyond its options, said before it starts: the parameters of each
    method (from --params-file, --param or the suite), and the methods that run per-view under
    --database unified because they learn no unified database code."""
    from rich.markup import escape

    for method, params in plan.config.get("params", {}).items():
        if params and method in plan.methods:
            out.print(escape(_param_line(method, params)), soft_wrap=True)
    fallbacks = plan.per_view_fallbacks
    if fallbacks:
        runs, they = ("run", "they learn") if len(fallbacks) > 1 else ("runs", "it learns")
        out.print(f"note: --database unified: {', '.join(fallbacks)} {runs} per-view, as "
                  f"{they} no unified database code (cells keyed per-view)", soft_wrap=True)


def _exit_interrupted(plan, store) -> None:
    """Ctrl-C during a grid: every finished cell is already stored; say how many of this
    grid's cells that is and how to run the rest, and exit as an interrupted program does."""
    from pathlib import Path

    from rich.markup import escape

    from mmhash.bench.store import ResultStore

    done = None
    if Path(store).is_file():
        try:
            with ResultStore(store, read_only=True) as results:
                done = len(plan.keys() & results.finished_keys())
        except Exception:  # the count is a courtesy; the cells are stored either way
            done = None
    stored = (f"{done} of {plan.n_cells} cells of this grid are stored (done) in {store}"
              if done is not None else f"the cells that finished are stored in {store}")
    _console(stderr=True).print(
        f"[bold red]interrupted:[/] {escape(stored)}; `mmhash bench ... --resume` (the same "
        "options with --resume) runs the rest", soft_wrap=True)
    sys.exit(EXIT_INTERRUPTED)


def _check_store(store, inputs) -> None:
    """Before any work: the result store can be written where it is (it is updated in place)
    and, if it exists, is an mmhash store of a schema this mmhash reads."""
    from pathlib import Path

    from mmhash.bench.store import ResultStore

    check_output(store, option="--store", inputs=inputs, in_place=True)
    if Path(store).is_file() and Path(store).stat().st_size:
        ResultStore(store, read_only=True).close()


@contextlib.contextmanager
def _executor(kind: str, jobs: int, scheduler):
    from mmhash.bench.executors import make_executor

    executor = make_executor(kind, jobs=jobs, scheduler=scheduler)
    try:
        yield executor
    finally:
        executor.close()


def _bar_description(running: str, finished: int, total: int | None) -> str:
    """The bench bar's text: the cell(s) running now, ``starting`` before the first one does."""
    from rich.markup import escape

    if running:
        return escape(running)  # labels hold literal brackets ("[image+text]")
    return "done" if total is not None and finished >= total else "starting"


@contextlib.contextmanager
def _progress_bar(executor, total: int | None = None):
    """A rich progress bar on stderr (cleared when done) over a grid of ``total`` cells; yields
    ``step(running, finished, total)`` for :func:`mmhash.bench.plan.execute_plan`, and shows
    the epochs of deep methods on a second line when ``executor`` reports them (the serial
    executor)."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[loss]}"))
    with Progress(*columns, console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task(_bar_description("", 0, total), total=total, loss="")
        # A second line for hashers that train in epochs (deep methods): epoch and loss.
        epochs = bar.add_task("", total=1, visible=False, loss="")

        def step(running, finished, total):
            bar.update(task, description=_bar_description(running, finished, total),
                       completed=finished, total=total)
            bar.update(epochs, visible=False)

        def on_epoch(key, epoch, n_epochs, metrics):
            loss = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            bar.update(epochs, description=f"  {escape(key.label())} epoch",
                       completed=epoch, total=n_epochs, loss=loss, visible=True)

        if hasattr(executor, "on_epoch"):
            executor.on_epoch = on_epoch
        yield step


def _print_tables(out, plan, rows) -> None:
    from mmhash.bench.report import tables

    describe = {d.name: _describe(d) for d, _ in plan.grids}
    shown = tables(rows, method_order=plan.methods, describe=describe)
    for table in shown:
        _print_table(out, table)
    if plan.suite:  # a suite with published values: them beside ours
        from mmhash.bench.published import load_published, published_for

        published = load_published(plan.suite)
        for table in published_for(shown, published) if published else []:
            _print_table(out, table)


def _exit_on_failures(failed) -> None:
    from rich.markup import escape

    if failed:
        err = _console(stderr=True)
        err.print(f"[bold red]{len(failed)} cell(s) failed[/] (stored with their errors):")
        for label, error in failed:
            err.print(f"  {escape(label)}: {escape(error)}", soft_wrap=True)
        sys.exit(EXIT_FAILED_CELLS)


def _rich_table(table):
    from rich.markup import escape
    from rich.table import Table as RichTable

    # escape: captions and row names hold literal brackets ("cmfh [unified db]")
    rich = RichTable(title=escape(table.caption), title_justify="left", show_lines=False)
    rich.add_column("method", style="bold")
    for t in table.tasks:
        for b in table.bits:
            rich.add_column(f"{escape(t)}\n{b} bits", justify="right")
    _, body = table.marked_rows(3, lambda v: f"[bold green]{v}[/]")
    for method, *values in body:
        rich.add_row(escape(method), *values)
    return rich


def _print_table(out, table) -> None:
    """A table, then what its marked (degenerate or warned) values mean: one line each, left
    to the terminal to wrap, so a line can be found whole in a log."""
    from rich.markup import escape

    out.print(_rich_table(table))
    for line in table.footnotes():
        out.print(escape(line), soft_wrap=True)


# ---- report / regress ----------------------------------------------------------------------
@main.command()
@click.option("--store", "stores", default=("mmhash-results.sqlite",), show_default=True,
              multiple=True, type=click.Path(dir_okay=False),
              help="SQLite result file to read; repeat it to combine stores (e.g. runs made on "
                   "several machines): where two hold the same cell, the later --store wins.")
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--methods", default=None, help="Only these methods (comma-separated), in order.")
@click.option("--run", "run_id", default=None, type=int, help="Only cells of this run id.")
@click.option("--recompute", is_flag=True,
              help="Evaluate the stored codes again under --metrics and --tie (no refitting).")
@click.option("--metrics", default=None,
              help="Metric tokens to show: map, map@K, p@K, comma-separated (default: all "
                   "stored; with --recompute: map).")
@click.option("--tie", "ties", default=None,
              help="Tie policies to show: expected, optimistic, pessimistic, index (default: "
                   "all stored; with --recompute: expected).")
@click.option("--format", "fmt", default="markdown", show_default=True,
              type=click.Choice(["markdown", "latex", "csv", "html"]),
              help="Table format; html: one self-contained page (tables, PR and P@K figures, "
                   "failed cells, provenance) written to --output.")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Write the report to this file instead of the terminal (required by "
                   "--format html).")
@click.option("--plot", "plot_dir", default=None, type=click.Path(file_okay=False),
              help="Also write PR and P@K curves as PNG files into this directory.")
@click.option("--published", "published_suite", default=None, metavar="SUITE",
              help="Add the published values of this suite (e.g. paper-mirflickr) beside ours: "
                   "per source, ours, published and the difference, with what differs.")
@click.option("--tune-trials", is_flag=True,
              help="Also show the trials of `mmhash tune` (datasets NAME:validation, scored on "
                   "the validation split). Without it they are left out, unless --dataset or "
                   "--run names them.")
@_errors_as_one_line
def report(stores, dataset, methods, run_id, recompute, metrics, ties, fmt, output,
           plot_dir, published_suite, tune_trials) -> None:
    """Render stored results: mean ± std over seeds, best per column in bold.

    Shows the cells of `mmhash bench` runs; the validation-split trials of `mmhash tune` only
    with --tune-trials (or when --dataset or --run names them).
    """
    from pathlib import Path

    from mmhash.bench.cell import DEFAULT_METRICS, DEFAULT_TIES, KEY_FIELDS, CellKey, Evaluation
    from mmhash.bench.grid import parse_list
    from mmhash.bench.report import export, tables
    from mmhash.bench.store import ResultStore
    from mmhash.errors import DataError

    if fmt == "html" and output in (None, "-"):
        raise InvalidInputError("--format html writes a page to a file: name it with -o/--output "
                                "(e.g. -o results.html)")
    if output and not (output == "-" and fmt == "csv"):  # csv to "-": stdout
        check_output(output, option="--output", extensions=REPORT_EXTENSIONS[fmt],
                     inputs=stores, what=f"--format {fmt} reports")
    if plot_dir:
        check_output_folder(plot_dir, option="--plot", inputs=stores)
    for store in stores:
        if not Path(store).is_file():
            raise DataError(f"no result store at {store} (run `mmhash bench` first or pass "
                            "--store)")
    as_html = fmt == "html"
    published = _published(published_suite)
    method_list = parse_list(methods, "--methods") if methods else None
    wanted = Evaluation.parse(parse_list(metrics, "--metrics") if metrics else DEFAULT_METRICS,
                              parse_list(ties, "--tie") if ties else DEFAULT_TIES)
    # One row per (cell key, task, metric, tie) and one curve per (cell key, task, kind, tie)
    # across all stores: a cell stored twice must not count as two seeds.
    row_fields = (*KEY_FIELDS, "task", "metric", "tie")
    curve_fields = (*KEY_FIELDS, "task", "kind", "tie")
    by_key: dict = {}
    curves_by_key: dict = {}
    without_codes = []
    provenance: dict = {}  # html: store -> (runs, failures, cells) as stored
    for store in stores:
        with ResultStore(store, read_only=True) as results:
            if recompute:
                from mmhash.bench.recompute import recompute as recompute_codes

                found = recompute_codes(results, metrics=wanted.metrics, ties=wanted.ties,
                                        run_id=run_id, dataset=dataset, methods=method_list)
                rows, curves = found.rows, found.curves if plot_dir or as_html else []
                without_codes.extend(found.without_codes)
            else:
                rows = results.results(run_id=run_id, dataset=dataset, methods=method_list)
                rows = [r for r in rows if (not metrics or r["metric"] in wanted.metrics)
                        and (not ties or r["tie"] in wanted.ties)]
                curves = results.curves(dataset=dataset, run_id=run_id,
                                        methods=method_list) if plot_dir or as_html else []
            if as_html:
                rows = [{**r, "store": store} for r in rows]
                provenance[store] = _stored_provenance(results, store, run_id)
        by_key.update({tuple(r[f] for f in row_fields): r for r in rows})
        curves_by_key.update({tuple(c[f] for f in curve_fields): c for c in curves})
    rows, curves = list(by_key.values()), list(curves_by_key.values())
    hidden = 0
    if not (tune_trials or dataset is not None or run_id is not None):
        # tune's trials are model selection, not results: a table of them beside the bench
        # tables reads as a comparison of settings on the test queries
        from mmhash.data.dataset import is_validation_name

        hidden = len({CellKey.from_row(r) for r in rows if is_validation_name(r["dataset"])})
        rows = [r for r in rows if not is_validation_name(r["dataset"])]
        curves = [c for c in curves if not is_validation_name(c["dataset"])]
        without_codes = [k for k in without_codes if not is_validation_name(k.dataset)]
        provenance = {store: (runs, [f for f in failures
                                     if not is_validation_name(f["dataset"])], origins)
                      for store, (runs, failures, origins) in provenance.items()}
    if recompute:
        _warn_not_recomputed(without_codes)
    if not rows:
        raise DataError(f"{', '.join(stores)} holds no finished cells matching the filters"
                        + (" that can be recomputed" if recompute else "")
                        + (f" ({hidden} validation-split trial(s) of `mmhash tune` are left "
                           "out: add --tune-trials)" if hidden else ""))
    if fmt == "csv":
        target = output or "-"
        if target == "-":
            from mmhash.bench.report import export_frame

            click.echo(export_frame(rows).to_csv(index=False), nl=False)
        else:
            export(rows, target)
    elif as_html:
        page = _html_page(rows, curves, provenance, stores=stores, dataset=dataset,
                          methods=method_list, run_id=run_id, recompute=recompute,
                          tie=wanted.ties[0], published=published)
        _write_atomically(output, page)
        click.echo(f"wrote {output}", err=True)
    else:
        shown = tables(rows, method_order=method_list)
        if published is not None:
            from mmhash.bench.published import published_for

            shown += published_for(shown, published)
        rendered = [t.markdown() if fmt == "markdown" else t.latex() for t in shown]
        text = "\n\n".join(rendered) + "\n"
        if output:
            _write_atomically(output, text)
        else:
            click.echo(text, nl=False)
    if plot_dir:
        from mmhash.bench.plots import plot_curves

        paths = plot_curves(curves, plot_dir, tie=wanted.ties[0])
        click.echo(f"wrote {len(paths)} figure(s) to {plot_dir}", err=True)


def _published(suite):
    """The published values of ``suite`` (None without one); an error if it has none."""
    if suite is None:
        return None
    from mmhash.bench.published import load_published

    published = load_published(suite)
    if published is None:
        raise InvalidInputError(f"suite {suite!r} has no published values (a "
                                f"{suite}.published.json beside it)")
    return published


def _write_atomically(path, text: str) -> None:
    """Write ``text`` through a temporary file and a rename: never half-written."""
    from mmhash.codefiles import atomic_output

    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _stored_provenance(results, store, run_id) -> tuple[list, list, dict]:
    """What ``store`` keeps about where its cells come from: its runs (only ``run_id`` when
    given), its failed cells (with their run) and, per finished cell id, its run and device."""
    runs = [{**run, "store": store} for run in results.runs(run_id)]
    failures = [{**f, "run_id": run["run_id"], "store": store}
                for run in runs for f in results.failures(run["run_id"])]
    return runs, failures, results.cell_origins()


def _html_page(rows, curves, provenance, *, stores, dataset, methods, run_id, recompute,
               tie, published) -> str:
    """The page of ``mmhash report --format html``: the rows and curves with the runs they
    came from and the failed cells matching the filters."""
    from mmhash.bench.cell import CellKey
    from mmhash.bench.html import render_page

    stores = list(dict.fromkeys(stores))  # a store named twice is one source
    for row in rows:  # recomputed rows name their cell only: add its run and device
        cell = provenance[row["store"]][2].get(row.get("cell_id"), {})
        row.setdefault("run_id", cell.get("run_id"))
        row.setdefault("device", cell.get("device"))
    shown = {CellKey.from_row(r) for r in rows}
    failures = [{**f, "shown": CellKey.from_row(f) in shown}
                for store in stores for f in provenance[store][1]
                if (dataset is None or f["dataset"] == dataset)
                and (methods is None or f["method"] in methods)]
    used = {(r["store"], r.get("run_id")) for r in [*rows, *failures]}
    runs = [run for store in stores for run in provenance[store][0]
            if (store, run["run_id"]) in used]
    notes = ["Values recomputed from the stored codes (--recompute)."] if recompute else []
    filters = [f"{name} {value}" for name, value in (
        ("--dataset", dataset), ("--methods", ",".join(methods or [])), ("--run", run_id))
        if value]
    if filters:
        notes.append("Filters: " + "; ".join(filters) + ".")
    return render_page(rows, curves, runs=runs, failures=failures, method_order=methods,
                       tie=tie, sources=list(stores), notes=notes, published=published)


def _warn_not_recomputed(keys) -> None:
    from rich.markup import escape

    if not keys:
        return
    err = _console(stderr=True)
    err.print(f"[yellow]{len(keys)} cell(s) have no stored codes and cannot be recomputed[/] "
              "(stored before mmhash kept codes, or ranked by real-valued distances, which "
              "keep none; rerun them to recompute):")
    for key in keys:
        err.print(f"  {escape(key.label())}", soft_wrap=True)


@main.command()
@click.option("--suite", required=True,
              help="Suite name (shipped with mmhash, or ./benchmarks/suites/NAME.toml) or a "
                   ".toml file.")
@click.option("--tolerance", default=0.01, show_default=True, type=click.FloatRange(min=0),
              help="Allowed drop in mAP points (absolute) before a cell counts as a regression.")
@click.option("--reference", default=None, type=click.Path(dir_okay=False),
              help="Reference file (default: NAME.json beside the suite file).")
@click.option("--store", default=None, type=click.Path(dir_okay=False),
              help="Keep the rerun in this SQLite file (default: a temporary file).")
@click.option("--accept", is_flag=True, help="Write the rerun's values as the new reference.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Local worker processes.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Directory of the real datasets (default $MMHASH_DATA, else ./data).")
@_errors_as_one_line
def regress(suite, tolerance, reference, store, accept, jobs, data_dir) -> None:
    """Rerun a suite and compare its mean mAP per cell with the accepted reference values."""
    from mmhash.bench.regress import run_regression

    with _executor("local", jobs, None) as executor, _progress_bar(executor) as step:
        outcome = run_regression(suite, tolerance=tolerance, reference=reference, store=store,
                                 accept=accept, data_dir=data_dir, executor=executor,
                                 progress=step)
    out = _console()
    if outcome.comparison is None:
        out.print(f"accepted {len(outcome.current)} reference values into {outcome.reference}")
        _exit_on_failures(outcome.failed)
        return
    result = outcome.comparison
    _print_comparison(out, result)
    if result.improved:
        out.print(f"{len(result.improved)} cell(s) improved beyond {tolerance}; accept them with:"
                  f" mmhash regress --suite {outcome.suite} --accept")
    out.print(f"{len(result.dropped)} dropped, {len(result.missing)} missing, "
              f"{len(result.improved)} improved, {len(result.unchanged)} unchanged "
              f"(tolerance {tolerance})")
    _exit_on_failures(outcome.failed)
    if result.failed:
        sys.exit(EXIT_FAILED_CELLS)


def _print_comparison(out, result) -> None:
    from rich.table import Table as RichTable

    for title, cells, style in (("Dropped below reference", result.dropped, "red"),
                                ("Missing from the rerun", result.missing, "red"),
                                ("Improved", result.improved, "green")):
        if not cells:
            continue
        table = RichTable(title=f"[{style}]{title}[/] (mean over seeds)", title_justify="left")
        for col in ("dataset", "method", "params", "task", "metric", "tie", "bits", "reference",
                    "now", "delta"):
            numeric = col in ("reference", "now", "delta", "bits")
            table.add_column(col, justify="right" if numeric else "left", overflow="fold")
        for c in cells:
            now = "-" if c["value"] is None else f"{c['value']:.4f}"
            delta = "-" if c["value"] is None else f"{c['value'] - c['reference']:+.4f}"
            method = c["method"] + (" [unified db]" if c["database"] == "unified" else "")
            table.add_row(c["dataset"], method, c["params"], c["task"], c["metric"], c["tie"],
                          str(c["bits"]), f"{c['reference']:.4f}", now, delta)
        out.print(table)


# ---- tune ----------------------------------------------------------------------------------
@main.command()
@click.argument("method")
@click.option("--dataset", required=True,
              help="Registered dataset or a path; only its training rows are used.")
@click.option("--views", default=None,
              help="Use only these views of the dataset (comma-separated).")
@click.option("--bits", default="64", show_default=True, help="Code length of every trial.")
@click.option("--space", "space_items", multiple=True, metavar="NAME=v1,v2|NAME=lo:hi[:log]",
              help="A searched parameter (repeatable); default: the method's own search space.")
@click.option("--trials", default=None, type=click.IntRange(min=1),
              help="Settings to try (default: the whole grid, or 20 for TPE).")
@click.option("--metric", default="map", show_default=True,
              help="Validation score: map, map@K or p@K (mean over the tasks).")
@click.option("--tie", default="expected", show_default=True, help="Tie policy of the score.")
@click.option("--param", "param_items", multiple=True, metavar="NAME=VALUE",
              help="A parameter held fixed in every trial (repeatable).")
@click.option("--seed", default="0", show_default=True,
              help="Seeds the sampler and every fit (a non-negative integer).")
@click.option("--store", default="mmhash-results.sqlite", show_default=True,
              type=click.Path(dir_okay=False),
              help="Every trial is stored here; a rerun reads back what is stored (resume).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Write the best setting as [params.METHOD] TOML for bench --params-file.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Directory of the real datasets (default $MMHASH_DATA, else ./data).")
@_errors_as_one_line
def tune(method, dataset, views, bits, space_items, trials, metric, tie, param_items, seed,
         store, output, data_dir) -> None:
    """Search METHOD's hyperparameters on the validation split (never the test queries)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from mmhash.bench.grid import parse_bits, parse_list, parse_seed
    from mmhash.bench.store import ResultStore
    from mmhash.bench.tune import checked_space, parse_space, write_params
    from mmhash.bench.tune import tune as run_tune
    from mmhash.data import load_dataset
    from mmhash.registry import get_hasher_class

    get_hasher_class(method)
    if output:
        check_output(output, option="-o", extensions=PARAMS_EXTENSIONS,
                     inputs=(dataset, store), what="tuned settings")
    _check_store(store, (dataset,))
    seed = parse_seed(seed)
    fixed = _method_params(param_items, _FIT_FLAGS)
    bit_list = parse_bits(bits)
    if len(bit_list) != 1:
        raise InvalidInputError(f"--bits {bits!r}: tune one code length at a time")
    n_bits = bit_list[0]
    space = checked_space(method, parse_space(space_items) if space_items else None, fixed)
    data = load_dataset(dataset, data_dir=data_dir)
    if views:
        data = data.select_views(parse_list(views, "--views"))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[best]}"))
    with ResultStore(store) as results, \
            Progress(*columns, console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"tune {method} on {data.name}:validation", total=trials, best="")
        best = [-1.0]

        def step(done, total, trial):
            if trial.value is not None:
                best[0] = max(best[0], trial.value)
            bar.update(task, completed=done, total=total, best=f"best {best[0]:.4f}")

        result = run_tune(method, data, bits=n_bits, space=space, trials=trials, metric=metric,
                          tie=tie, fixed=fixed, store=results, seed=seed, progress=step)
    _print_tune(_console(), result)
    if output:
        write_params(output, result)
        _console().print(f"wrote the best setting to {output} (mmhash bench --params-file "
                         f"{output})")


def _print_tune(out, result) -> None:
    from rich.markup import escape
    from rich.table import Table as RichTable

    best = result.best
    table = RichTable(title=escape(
        f"mmhash tune {result.method} on {result.dataset}:validation, {result.bits} bits, "
        f"{result.metric} ({result.tie} ties), mean over tasks"), title_justify="left")
    for name in result.space:
        table.add_column(name)
    table.add_column("validation score", justify="right")
    table.add_column("", justify="left")
    for trial in result.trials:
        value = "failed" if trial.value is None else f"{trial.value:.4f}"
        note = ("best" if trial is best else "") + (" (stored)" if trial.stored else "")
        table.add_row(*(escape(json.dumps(trial.params[n])) for n in result.space), value, note)
    out.print(table)


# ---- list / datasets / check -----------------------------------------------------------------
@main.command("list")
@click.option("--params", "params_of", default=None, metavar="METHOD",
              help="Instead: METHOD's hyperparameters (default, declared rule, meaning).")
@_errors_as_one_line
def list_command(params_of) -> None:
    """Registered hashers, where they come from, and why any is unavailable."""
    from rich.table import Table as RichTable

    from mmhash.registry import get_hasher_class, list_hashers

    if params_of is not None:
        table = RichTable(title=f"Hyperparameters of {params_of} (rules checked before any fit)")
        for col in ("name", "default", "rule"):
            table.add_column(col, no_wrap=True)
        table.add_column("meaning", overflow="fold")
        for row in get_hasher_class(params_of).parameter_table():
            table.add_row(row["name"], row["default"], row["rule"], row["meaning"])
        _console().print(table)
        return

    table = RichTable(title="Registered hashers (entry-point group mmhash.hashers)")
    table.add_column("name", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in ("kind", "views", "distribution"):
        table.add_column(col)
    table.add_column("description", overflow="fold")
    for info in list_hashers():
        if info.available:
            lo, hi = info.supported_views
            views = str(lo) if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}"
            kind = "reference" if info.reference else "hasher"
            table.add_row(info.name, "[green]available[/]", kind, views, info.distribution,
                          info.summary)
        else:
            table.add_row(info.name, "[red]unavailable[/]", "", "", info.distribution,
                          info.reason)
    _console().print(table)


@main.command("datasets")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Directory of the real datasets (default $MMHASH_DATA, else ./data).")
@_errors_as_one_line
def datasets_command(data_dir) -> None:
    """Registered datasets: present or not, sizes, views and classes."""
    from rich.table import Table as RichTable

    from mmhash.data import list_datasets

    table = RichTable(title="Registered datasets")
    table.add_column("name", no_wrap=True)
    for col in ("present", "n", "views (dim)", "classes"):
        table.add_column(col)
    table.add_column("description", overflow="fold")
    for d in list_datasets(data_dir=data_dir):
        views = ", ".join(f"{v} ({dim})" for v, dim in (d.get("views") or {}).items())
        present = "[green]yes[/]" if d["present"] else f"[red]no[/] ({d.get('path', '')})"
        table.add_row(d["name"], present, str(d.get("n") or ""), views,
                      str(d.get("classes") or ""), d.get("description", ""))
    _console().print(table)


@main.command("check")
@click.argument("name")
@click.option("--param", "param_items", multiple=True, metavar="NAME=VALUE",
              help="Hyperparameter for the checks (repeatable).")
@_errors_as_one_line
def check_command(name, param_items) -> None:
    """Run the conformance suite on a registered hasher (for plugin authors)."""
    from mmhash.registry import check_method_params, get_hasher_class
    from mmhash.testing import check_hasher

    cls = get_hasher_class(name)
    params = _method_params(param_items, None)
    check_method_params(name, params)  # a bad value is one line, not every check failing
    out = _console()

    def show(result):
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        out.print(f"{mark} {result.check}" + (f": {result.message}" if result.message else ""),
                  soft_wrap=True)

    results = check_hasher(cls, params, raise_on_failure=False, on_result=show)
    failed = [r for r in results if not r.passed]
    out.print(f"{name}: {len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(EXIT_FAILED_CELLS)



# ---- using the codes: fit, encode, index, search -------------------------------------------
@main.command()
@click.argument("method")
@click.option("--dataset", default="synthetic", show_default=True,
              help="Registered dataset name or a path to a data file.")
@click.option("--bits", default=64, show_default=True, type=int, help="Code length.")
@click.option("--param", "param_items", multiple=True, metavar="NAME=VALUE",
              help="A hyperparameter of the method (repeatable).")
@click.option("--seed", default="0", show_default=True,
              help="random_state: a non-negative integer.")
@click.option("--split", default="train", show_default=True,
              type=click.Choice(["train", "all"]),
              help="Train on the dataset's training split, or on every row (a user's file).")
@click.option("--views", default=None, help="Use only these views (comma-separated).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (.npz, no pickle).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Directory of the real datasets (default $MMHASH_DATA, else ./data).")
@_errors_as_one_line
def fit(method, dataset, bits, param_items, seed, split, views, output, data_dir) -> None:
    """Train METHOD on a dataset and keep the model."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from mmhash.bench.grid import parse_list, parse_seed
    from mmhash.frontdoor import fit_model
    from mmhash.registry import check_method_params

    check_output(output, option="-o", extensions=MODEL_EXTENSIONS, inputs=(dataset,),
                 what="model files")
    seed = parse_seed(seed)
    params = _method_params(param_items, _FIT_FLAGS)
    check_method_params(method, {"n_bits": bits, "random_state": seed, **params})
    view_list = parse_list(views, "--views") if views else None
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[loss]}"))
    with Progress(*columns, console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"fit {method}", total=None, loss="")

        def on_epoch(epoch, n_epochs, metrics):
            loss = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            bar.update(task, description=f"fit {method} epoch", completed=epoch, total=n_epochs,
                       loss=loss)

        hasher = fit_model(method, dataset, bits=bits, params=params, seed=seed, split=split,
                           views=view_list, output=output, data_dir=data_dir, on_epoch=on_epoch)
    _console().print(f"wrote {output}: {method}, {hasher.n_bits} bits, views "
                     f"{', '.join(hasher.modalities_)}", soft_wrap=True)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("features", type=click.Path(dir_okay=False))
@click.option("--view", required=True, help="Which of the model's views the features are.")
@click.option("--key", default=None, help="The array's name in an .npz or .mat file.")
@click.option("--format", "packing", default="packed", show_default=True,
              type=click.Choice(["packed", "int8"]),
              help="Bit-packed codes (8 per byte) or one int8 per bit.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Codes file to write (.npz).")
@_errors_as_one_line
def encode(model, features, view, key, packing, output) -> None:
    """Codes for every row of FEATURES (.npy, .npz, .mat or .csv) with a saved MODEL."""
    from mmhash.frontdoor import encode_file

    check_output(output, option="-o", extensions=CODES_EXTENSIONS, inputs=(model, features),
                 what="codes files")
    done = encode_file(model, view, features, output, key=key, packing=packing)
    _console().print(f"wrote {done.path}: {done.n_rows} rows, {done.n_bits}-bit codes of view "
                     f"{done.view!r}", soft_wrap=True)


@main.group()
def index() -> None:
    """Search indexes over encoded codes."""


@index.command("build")
@click.argument("codes", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Index file to write.")
@click.option("--backend", default="numba", show_default=True,
              type=click.Choice(["numba", "faiss"]), help="Search backend kept in the index.")
@_errors_as_one_line
def index_build(codes, output, backend) -> None:
    """An exact Hamming index of a codes file (from `mmhash encode`)."""
    from mmhash.frontdoor import build_index

    check_output(output, option="-o", extensions=INDEX_EXTENSIONS, inputs=(codes,),
                 what="index files")
    built = build_index(codes, output, backend=backend)
    _console().print(f"wrote {output}: {len(built.codes)} codes of {built.n_bits} bits",
                     soft_wrap=True)


@main.command()
@click.argument("index_file", metavar="INDEX", type=click.Path(dir_okay=False))
@click.argument("queries", type=click.Path(dir_okay=False))
@click.option("--model", default=None, type=click.Path(dir_okay=False),
              help="Encode QUERIES (features) with this model; without it QUERIES is a codes "
                   "file.")
@click.option("--view", default=None, help="Which of the model's views the queries are.")
@click.option("--key", default=None, help="The array's name in an .npz or .mat file.")
@click.option("-k", "k", default=10, show_default=True, type=int,
              help="Hits per query (with --radius: at most this many).")
@click.option("--radius", default=None, type=int,
              help="Every item within this Hamming distance (at most -k of them).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Write the hits to this .csv or .json file (default: CSV on stdout).")
@_errors_as_one_line
def search(index_file, queries, model, view, key, k, radius, output) -> None:
    """Exact top-k (ties by database row) of each query: rows query,rank,item,distance."""
    from mmhash.frontdoor import search as run_search
    from mmhash.frontdoor import write_hits, write_hits_csv

    if output:
        check_output(output, option="-o", extensions=TABLE_EXTENSIONS,
                     inputs=(index_file, queries, model), what="search hits")
    hits = run_search(index_file, queries, k=k, radius=radius, model_path=model, view=view,
                      key=key)
    if output:
        write_hits(hits, output)
        _console(stderr=True).print(f"wrote {output}: {len(hits.rank)} hits", soft_wrap=True)
    else:
        import io

        text = io.StringIO()
        write_hits_csv(hits, text)
        click.echo(text.getvalue(), nl=False)


# ---- features: raw images and texts -> feature files (mmhash.extract) -----------------------
@main.command("features")
@click.argument("inputs", metavar="IMAGES|TEXTS", type=click.Path())
@click.option("--extractor", required=True,
              type=click.Choice(["bow", "clip-vit-b32", "tfidf", "vgg19-fc7"]),
              help="vgg19-fc7 or clip-vit-b32 on images; bow, tfidf or clip-vit-b32 on texts.")
@click.option("--weights", default=None, type=click.Path(dir_okay=False),
              help="Network weights file (default: torchvision's / open_clip's cache; "
                   "nothing is downloaded).")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Images (or captions) per forward pass.")
@click.option("--key", default=None, help="The array's name in a .mat/.h5/.npz file "
                                          "(default IAll / YAll, else the only one that fits).")
@click.option("--ids", "id_file", default=None, type=click.Path(dir_okay=False),
              help="For an image folder: the images to read, one relative file name a line "
                   "(default: every image file in it, by name).")
@click.option("--preprocess", "preprocess_mode", default=None,
              type=click.Choice(["resize-crop", "crop"]),
              help="Images: resize then centre crop 224 (default; DJSRH, torchvision), or "
                   "centre crop only (UCCH's test transform: a 224x224 IAll is unchanged).")
@click.option("--vocab-size", default=None, type=click.IntRange(min=1),
              help="Captions with bow/tfidf: keep the most frequent words (default 1000).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Feature file to write (.npz: features, ids, provenance).")
@_errors_as_one_line
def features_command(inputs, extractor, weights, device, batch_size, key, id_file,
                     preprocess_mode, vocab_size, output) -> None:
    """Extract features from raw IMAGES (a 4-D IAll array file, or a folder) or TEXTS (a tag
    matrix, captions .txt one per line, or .csv with a text column). An interrupted image run
    resumes from OUTPUT.partial when rerun with the same inputs."""
    from pathlib import Path

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from mmhash.extract.run import (
        check_features_output,
        extract_image_features,
        extract_text_features,
    )
    from mmhash.extract.sources import is_caption_file

    check_features_output(output, (inputs, id_file, weights))
    on_images = extractor == "vgg19-fc7" or (
        extractor == "clip-vit-b32" and (Path(inputs).is_dir() or not is_caption_file(inputs)))
    if on_images and vocab_size is not None:
        raise InvalidInputError("--vocab-size is for captions with bow or tfidf")
    if not on_images:
        given = [name for name, value in (("--ids", id_file), ("--preprocess", preprocess_mode))
                 if value is not None]
        if extractor != "clip-vit-b32" and weights is not None:
            given.append("--weights")
        if given:
            raise InvalidInputError(f"{', '.join(given)}: for images; {inputs} is texts "
                                    f"({extractor})")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task("features", total=None)

        def step(label, done, total):
            bar.update(task, description=label, completed=done, total=total)

        if on_images:
            result = extract_image_features(
                inputs, output, extractor=extractor, weights=weights, device=device,
                batch_size=batch_size, preprocess=preprocess_mode or "resize-crop", key=key,
                id_file=id_file, progress=step)
        else:
            result = extract_text_features(
                inputs, output, extractor=extractor, key=key, vocab_size=vocab_size,
                weights=weights, device=device, batch_size=batch_size, progress=step)
    resumed = f"; {result.resumed_rows} rows resumed" if result.resumed_rows else ""
    where = result.provenance.get("device")
    _console().print(f"wrote {result.path}: {result.rows} x {result.dim} float32 features "
                     f"({extractor}{f' on {where}' if where else ''}{resumed})", soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    main()
