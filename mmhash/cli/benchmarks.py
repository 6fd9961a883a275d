"""``mmhash bench``, ``regress`` and ``tune``: run grids of cells into a result store."""

from __future__ import annotations

import contextlib
import json
import sys

import click

from mmhash.cli._common import (
    EXIT_FAILED_CELLS,
    EXIT_INTERRUPTED,
    EXIT_REGRESSION,
    FIT_FLAGS,
    METRIC_HELP,
    OUTPUT,
    PARAM_HELP_MANY,
    PARAM_HELP_ONE,
    bits_help,
    console,
    data_dir_option,
    errors_as_one_line,
    loss_text,
    method_params,
    one_bits_and_seed,
    output_option,
    param_line,
    parse_params,
    progress_bar,
    seed_option,
    views_option,
)
from mmhash.outputs import PARAMS_EXTENSIONS, TABLE_EXTENSIONS, check_output


# ---- bench -------------------------------------------------------------------------------------
class _Jobs(click.ParamType):
    """``--jobs``: a positive integer, or ``auto`` (:func:`mmhash.bench.executors.auto_jobs`)."""

    name = "jobs"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        text = str(value).strip()
        if text.lower() == "auto":
            return "auto"
        try:
            jobs = int(text)
        except ValueError:
            self.fail(f"{value!r} is neither a positive integer nor 'auto'.", param, ctx)
        if jobs < 1:
            self.fail(f"{jobs} is not in the range x>=1 (or 'auto').", param, ctx)
        return jobs


JOBS = _Jobs()


@click.command()
@click.option("--dataset", "datasets", default=None,
              help="Registered dataset name(s), comma-separated, or a path to a data file. "
                   "Default: synthetic (embedded, no download).")
@click.option("--methods", default=None,
              help="Comma-separated hashers (default rp,cvh).")
@click.option("--bits", default=None, help=bits_help(many=True, default="16,32,64,128"))
@seed_option(many=True)
@click.option("--metrics", default=None, help=f"{METRIC_HELP}, comma-separated (default map).")
@click.option("--tie", "ties", default=None,
              help="Tie policies: expected, optimistic, pessimistic, index (default expected).")
@views_option
@click.option("--param", "param_items", multiple=True, metavar="METHOD.NAME=VALUE",
              help=PARAM_HELP_MANY)
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
@output_option("Also write this run's cells as a tidy .csv or .json table.",
               old_name="--export")
@click.option("--resume", is_flag=True, help="Skip cells already stored as done.")
@click.option("--jobs", default="1", show_default=True, type=JOBS, metavar="N|auto",
              help="Local worker processes (spawned; BLAS/torch threads = cores // jobs). "
                   "auto: one single-threaded worker per core while there are cells of "
                   "methods that train in epochs (deep methods) to share them, else serial.")
@click.option("--executor", "executor_kind", default="local", show_default=True,
              type=click.Choice(["local", "dask"]), help="Where cells run.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Dask scheduler address for --executor dask.")
@data_dir_option
@errors_as_one_line
def bench(datasets, methods, bits, seeds, metrics, ties, views, param_items, params_file,
          database, protocol, suite, store, output, resume, jobs, executor_kind, scheduler,
          data_dir) -> None:
    """Run methods x bits x seeds on fixed splits, store every cell, print comparison tables.

    Exits 1 when cells failed (stored with their errors, after everything that finished)."""
    from mmhash.bench.plan import execute_plan, make_plan
    from mmhash.bench.report import export
    from mmhash.bench.store import ResultStore

    inputs = (params_file, suite, *(datasets or "").split(","))
    if output:
        check_output(output, option=OUTPUT, extensions=TABLE_EXTENSIONS,
                     inputs=(*inputs, store), what="tables of a run's cells")
    check_store(store, inputs)
    params = {}
    if params_file:
        from mmhash.bench.tune import read_params_file

        params = read_params_file(params_file)
    for method, values in parse_params(param_items).items():
        params[method] = {**params.get(method, {}), **values}
    plan = make_plan(datasets=datasets, methods=methods, bits=bits, seeds=seeds,
                     metrics=metrics, ties=ties, views=views, params=params, suite=suite,
                     database=database, data_dir=data_dir, protocol=protocol)
    out = console()
    _print_run_notes(out, plan)
    if jobs == "auto" and executor_kind == "local":
        from mmhash.bench.executors import auto_jobs

        choice = auto_jobs(plan.grids)
        jobs = choice.jobs
        how = ("cells run here, one after another" if choice.jobs == 1 else
               f"{choice.jobs} worker processes x {choice.threads} thread(s)")
        out.print(f"--jobs auto: {how} ({choice.reason})", soft_wrap=True)
    with _executor(executor_kind, jobs, scheduler) as executor:
        try:
            with _progress_bar(executor, plan.n_cells) as step, \
                    ResultStore(store) as results:
                outcome = execute_plan(plan, results, resume=resume, executor=executor,
                                       progress=step)
        except KeyboardInterrupt:  # said before the executor waits for the cells in flight
            _exit_interrupted(plan, store)
    _print_tables(out, plan, outcome.rows)
    if output:
        export(outcome.rows, output)
        out.print(f"exported {len(outcome.rows)} values to {output}")
    out.print(f"stored run {outcome.run_id} in {store}")
    _exit_on_failures(outcome.failed)


def _print_run_notes(out, plan) -> None:
    """What a run applies beyond its options, said before it starts: the parameters of each
    method (from --params-file, --param or the suite), and the methods that run per-view under
    --database unified because they learn no unified database code."""
    from rich.markup import escape

    for method, params in plan.config.get("params", {}).items():
        if params and method in plan.methods:
            out.print(escape(param_line(method, params)), soft_wrap=True)
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
    console(stderr=True).print(
        f"[bold red]interrupted:[/] {escape(stored)}; `mmhash bench ... --resume` (the same "
        "options with --resume) runs the rest", soft_wrap=True)
    sys.exit(EXIT_INTERRUPTED)


def check_store(store, inputs) -> None:
    """Before any work: the result store can be written where it is (it is updated in place)
    and, if it exists, is an mmhash store of a schema this mmhash reads."""
    from pathlib import Path

    from mmhash.bench.store import ResultStore

    check_output(store, option="--store", inputs=inputs, in_place=True)
    if Path(store).is_file() and Path(store).stat().st_size:
        ResultStore(store, read_only=True).close()


@contextlib.contextmanager
def _executor(kind: str, jobs: int | str, scheduler):
    from mmhash.bench.executors import make_executor

    # --jobs auto is resolved before (from the plan); Dask ignores --jobs.
    executor = make_executor(kind, jobs=jobs if isinstance(jobs, int) else 1,
                             scheduler=scheduler)
    try:
        yield executor
    finally:
        executor.close()


def _bar_description(running: str, finished: int, total: int | None) -> str:
    """The grid bar's text: the cell(s) running now, ``starting`` before the first one does."""
    from rich.markup import escape

    if running:
        return escape(running)  # labels hold literal brackets ("[image+text]")
    return "done" if total is not None and finished >= total else "starting"


@contextlib.contextmanager
def _progress_bar(executor, total: int | None = None):
    """The bar over a grid of ``total`` cells; yields ``step(running, finished, total)`` for
    :func:`mmhash.bench.plan.execute_plan`, and shows the epochs of deep methods on a second
    line when ``executor`` reports them (the serial executor)."""
    from rich.markup import escape

    with progress_bar(_bar_description("", 0, total), total, elapsed=True) as bar:
        # A second line for hashers that train in epochs (deep methods): epoch and loss.
        epochs = bar.add_line()

        def step(running, finished, total):
            bar.update(description=_bar_description(running, finished, total),
                       completed=finished, total=total)
            epochs.update(visible=False)

        def on_epoch(key, epoch, n_epochs, metrics):
            epochs.update(description=f"  {escape(key.label())} epoch", completed=epoch,
                          total=n_epochs, note=loss_text(metrics), visible=True)

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


def _describe(dataset) -> str:
    s = dataset.split
    kind = "synthetic, generated; " if dataset.synthetic else ""
    return (f"{kind}{len(s.query)} queries, {len(s.retrieval)} retrieval items, "
            f"{len(s.train)} training pairs")


def _print_table(out, table) -> None:
    """A table, then what its marked (degenerate or warned) values mean: one line each, left
    to the terminal to wrap, so a line can be found whole in a log."""
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
    out.print(rich)
    for line in table.footnotes():
        out.print(escape(line), soft_wrap=True)


def _exit_on_failures(failed) -> None:
    from rich.markup import escape

    if failed:
        err = console(stderr=True)
        err.print(f"[bold red]{len(failed)} cell(s) failed[/] (stored with their errors):")
        for label, error in failed:
            err.print(f"  {escape(label)}: {escape(error)}", soft_wrap=True)
        sys.exit(EXIT_FAILED_CELLS)


# ---- regress -----------------------------------------------------------------------------------
@click.command()
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
@data_dir_option
@errors_as_one_line
def regress(suite, tolerance, reference, store, accept, jobs, data_dir) -> None:
    """Rerun a suite and compare its mean mAP per cell with the accepted reference values.

    Exits 4 when cells dropped beyond the tolerance or went missing, 1 when cells failed."""
    from mmhash.bench.regress import run_regression

    with _executor("local", jobs, None) as executor, _progress_bar(executor) as step:
        outcome = run_regression(suite, tolerance=tolerance, reference=reference, store=store,
                                 accept=accept, data_dir=data_dir, executor=executor,
                                 progress=step)
    out = console()
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
        sys.exit(EXIT_REGRESSION)


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


# ---- tune --------------------------------------------------------------------------------------
@click.command()
@click.argument("method")
@click.option("--dataset", required=True,
              help="Registered dataset or a path; only its training rows are used.")
@views_option
@click.option("--bits", default="64", show_default=True,
              help=bits_help(many=False) + " Every trial uses it.")
@click.option("--space", "space_items", multiple=True, metavar="NAME=v1,v2|NAME=lo:hi[:log]",
              help="A searched parameter (repeatable); default: the method's own search space.")
@click.option("--trials", default=None, type=click.IntRange(min=1),
              help="Settings to try (default: the whole grid, or 20 for TPE).")
@click.option("--metric", default="map", show_default=True,
              help=f"Validation score: one of {METRIC_HELP} (mean over the tasks).")
@click.option("--tie", default="expected", show_default=True, help="Tie policy of the score.")
@click.option("--param", "param_items", multiple=True, metavar="NAME=VALUE",
              help=PARAM_HELP_ONE + " Held fixed in every trial.")
@seed_option(many=False)
@click.option("--store", default="mmhash-results.sqlite", show_default=True,
              type=click.Path(dir_okay=False),
              help="Every trial is stored here; a rerun reads back what is stored (resume).")
@output_option("Write the best setting as [params.METHOD] TOML for bench --params-file.")
@data_dir_option
@errors_as_one_line
def tune(method, dataset, views, bits, space_items, trials, metric, tie, param_items, seed,
         store, output, data_dir) -> None:
    """Search METHOD's hyperparameters on the validation split (never the test queries)."""
    from mmhash.bench.grid import parse_list
    from mmhash.bench.store import ResultStore
    from mmhash.bench.tune import checked_space, parse_space, write_params
    from mmhash.bench.tune import tune as run_tune
    from mmhash.data import load_dataset
    from mmhash.registry import get_hasher_class

    get_hasher_class(method)
    if output:
        check_output(output, option=OUTPUT, extensions=PARAMS_EXTENSIONS,
                     inputs=(dataset, store), what="tuned settings")
    check_store(store, (dataset,))
    n_bits, seed = one_bits_and_seed(bits, seed, "tune")
    fixed = method_params(param_items, method, FIT_FLAGS)
    space = checked_space(method, parse_space(space_items) if space_items else None, fixed)
    data = load_dataset(dataset, data_dir=data_dir)
    if views:
        data = data.select_views(parse_list(views, "--views"))
    with ResultStore(store) as results, \
            progress_bar(f"tune {method} on {data.name}:validation", trials) as bar:
        best = [-1.0]

        def step(done, total, trial):
            if trial.value is not None:
                best[0] = max(best[0], trial.value)
            bar.update(completed=done, total=total, note=f"best {best[0]:.4f}")

        result = run_tune(method, data, bits=n_bits, space=space, trials=trials,
                          metric=metric, tie=tie, fixed=fixed, store=results, seed=seed,
                          progress=step)
    _print_tune(console(), result)
    if output:
        write_params(output, result)
        console().print(f"wrote the best setting to {output} (mmhash bench --params-file "
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
