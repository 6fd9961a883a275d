"""The ``mmhash`` command line; the only module that prints.

Every error a user can cause (an :class:`~mmhash.errors.MMHashError`) ends as one line on stderr
and exit code 2; a grid with failed cells exits 1 after storing everything that finished.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from typing import Any

import click

from mmhash.errors import InvalidInputError, MMHashError

EXIT_USAGE = 2
EXIT_FAILED_CELLS = 1
DEFAULT_METHODS = "rp,cvh"


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _errors_as_one_line(func):
    """Turn mmhash errors into one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MMHashError as exc:
            _console(stderr=True).print(f"[bold red]error:[/] {exc}", markup=True,
                                        soft_wrap=True)
            sys.exit(EXIT_USAGE)

    return wrapper


@click.group()
@click.version_option(package_name="mmhash")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def main(verbose: int) -> None:
    """mmhash: unsupervised multimodal hashing — methods, exact evaluation, benchmarks."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# ---- bench ---------------------------------------------------------------------------------
def _parse_params(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--param cmfh.mu=100`` -> {"cmfh": {"mu": 100}} (values parsed as JSON when they can be)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, name = key.partition(".")
        if not (sep and dot and method and name):
            raise InvalidInputError(f"--param {item!r}: expected METHOD.NAME=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(method, {})[name] = value
    return out


def _check_metrics(metrics: list[str], ties: list[str]) -> None:
    """Validate metric tokens and tie policies before any work (same parser as the evaluation)."""
    import numpy as np

    from mmhash.evaluation import evaluate

    codes = np.ones((2, 8), dtype=np.int8)
    labels = np.eye(2, dtype=np.uint8)
    for tie in ties:
        evaluate(codes, codes, labels, labels, metrics=tuple(metrics), tie=tie)


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
              help=f"Comma-separated hashers (default {DEFAULT_METHODS}).")
@click.option("--bits", default=None, help="Code lengths, multiples of 8 (default 16,32,64,128).")
@click.option("--seeds", default=None, help="Comma-separated integer seeds (default 0).")
@click.option("--metrics", default=None, help="map, map@K, p@K, comma-separated (default map).")
@click.option("--tie", "ties", default=None,
              help="Tie policies: expected, optimistic, pessimistic, index (default expected).")
@click.option("--views", default=None,
              help="Use only these views of the dataset (comma-separated).")
@click.option("--param", "param_items", multiple=True, metavar="METHOD.NAME=VALUE",
              help="Set a hyperparameter of one method (repeatable).")
@click.option("--suite", default=None, help="Run a named suite (benchmarks/suites/NAME.toml).")
@click.option("--store", default="mmhash-results.sqlite", show_default=True,
              type=click.Path(dir_okay=False), help="SQLite file the results are added to.")
@click.option("--export", "export_path", default=None, type=click.Path(dir_okay=False),
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
def bench(datasets, methods, bits, seeds, metrics, ties, views, param_items, suite, store,
          export_path, resume, jobs, executor_kind, scheduler, data_dir) -> None:
    """Run methods x bits x seeds on fixed splits, store every cell, print comparison tables."""
    from mmhash.bench.grid import expand, parse_bits, parse_list, parse_seeds
    from mmhash.bench.report import export, tables
    from mmhash.bench.runner import run_grid
    from mmhash.bench.store import ResultStore
    from mmhash.bench.suite import load_suite
    from mmhash.data import load_dataset
    from mmhash.registry import get_hasher_class

    spec = load_suite(suite) if suite else None
    dataset_names = parse_list(datasets, "--dataset") if datasets else (
        spec.datasets if spec else ["synthetic"])
    method_names = parse_list(methods, "--methods") if methods else (
        spec.methods if spec else parse_list(DEFAULT_METHODS, "--methods"))
    bit_list = parse_bits(bits) if bits else (spec.bits if spec else [16, 32, 64, 128])
    seed_list = parse_seeds(seeds) if seeds else (spec.seeds if spec else [0])
    metric_list = parse_list(metrics, "--metrics") if metrics else (
        spec.metrics if spec else ["map"])
    tie_list = parse_list(ties, "--tie") if ties else (spec.ties if spec else ["expected"])
    params = {**(spec.params if spec else {}), **_parse_params(param_items)}
    if export_path and not export_path.lower().endswith((".csv", ".json")):
        raise InvalidInputError(f"--export {export_path!r}: use a .csv or .json file name")

    # Validate everything before the first fit, so a typo never costs a run or touches the store.
    for name in method_names:
        get_hasher_class(name)
    _check_metrics(metric_list, tie_list)
    grids = []
    for name in dataset_names:
        data = load_dataset(name, data_dir=data_dir)
        if views:
            data = data.select_views(parse_list(views, "--views"))
        grids.append((data, expand(data.name, data.view_names, method_names, bit_list,
                                   seed_list, params)))

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out = _console()
    config = {"datasets": dataset_names, "methods": method_names, "bits": bit_list,
              "seeds": seed_list, "metrics": metric_list, "ties": tie_list, "params": params,
              "views": views, "suite": spec.name if spec else None}
    from mmhash.bench.executors import make_executor

    executor = make_executor(executor_kind, jobs=jobs, scheduler=scheduler)
    failed = []
    try:
        with ResultStore(store) as results:
            run_id = results.start_run(config, command=" ".join(sys.argv))
            total = sum(len(cells) for _, cells in grids)
            columns = (TextColumn("[bold]{task.description}"), BarColumn(),
                       MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=_console(stderr=True), transient=True) as bar:
                task = bar.add_task("bench", total=total)
                offset = 0
                for data, cells in grids:
                    def step(label, finished, count, offset=offset):
                        bar.update(task, description=label, completed=offset + finished)

                    summary = run_grid(data, cells, results, run_id, metrics=metric_list,
                                       ties=tie_list, resume=resume, executor=executor,
                                       progress=step)
                    offset += len(cells)
                    failed.extend(summary.failed)
            results.finish_run(run_id)
            if resume:  # show the whole grid, including cells finished by earlier runs
                keys = {cell.key for _, cells in grids for cell in cells}
                rows = [r for r in results.results(methods=method_names)
                        if (r["dataset"], r["method"], r["params"], r["bits"], r["seed"],
                            r["views"]) in keys]
            else:
                rows = results.results(run_id=run_id)
    finally:
        executor.close()

    describe = {d.name: _describe(d) for d, _ in grids}
    for table in tables(rows, method_order=method_names, describe=describe):
        out.print(_rich_table(table))
    if export_path:
        export(rows, export_path)
        out.print(f"exported {len(rows)} values to {export_path}")
    out.print(f"stored run {run_id} in {store}")
    if failed:
        err = _console(stderr=True)
        err.print(f"[bold red]{len(failed)} cell(s) failed[/] (stored with their errors):")
        for label, error in failed:
            err.print(f"  {label}: {error}", soft_wrap=True)
        sys.exit(EXIT_FAILED_CELLS)


def _rich_table(table):
    from rich.table import Table as RichTable

    rich = RichTable(title=table.caption, title_justify="left", show_lines=False)
    rich.add_column("method", style="bold")
    for t in table.tasks:
        for b in table.bits:
            rich.add_column(f"{t}\n{b} bits", justify="right")
    columns = [(t, b) for t in table.tasks for b in table.bits]
    best = {col: table.best(*col) for col in columns}
    _, body = table.text_rows()
    for method, *values in body:
        marked = [f"[bold green]{v}[/]" if best[col] == method and len(table.methods) > 1 else v
                  for col, v in zip(columns, values)]
        rich.add_row(method, *marked)
    return rich


# ---- list / datasets / check -----------------------------------------------------------------
@main.command("list")
@_errors_as_one_line
def list_command() -> None:
    """Registered hashers, where they come from, and why any is unavailable."""
    from rich.table import Table as RichTable

    from mmhash.registry import list_hashers

    table = RichTable(title="Registered hashers (entry-point group mmhash.hashers)")
    table.add_column("name", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in ("views", "distribution"):
        table.add_column(col)
    table.add_column("description", overflow="fold")
    for info in list_hashers():
        if info.available:
            lo, hi = info.supported_views
            views = str(lo) if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}"
            table.add_row(info.name, "[green]available[/]", views, info.distribution,
                          info.summary)
        else:
            table.add_row(info.name, "[red]unavailable[/]", "", info.distribution, info.reason)
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
    from mmhash.registry import get_hasher_class
    from mmhash.testing import check_hasher

    cls = get_hasher_class(name)
    params = _parse_params(tuple(f"{name}.{p}" for p in param_items)).get(name, {})
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


if __name__ == "__main__":  # pragma: no cover
    main()
