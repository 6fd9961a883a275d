"""``mmhash list``, ``datasets`` and ``check``: what is registered, and whether a hasher
conforms."""

from __future__ import annotations

import sys

import click

from mmhash.cli._common import (
    EXIT_CHECKS_FAILED,
    PARAM_HELP_ONE,
    console,
    data_dir_option,
    errors_as_one_line,
    method_params,
)


@click.command("list")
@click.option("--params", "params_of", default=None, metavar="METHOD",
              help="Instead: METHOD's hyperparameters (default, declared rule, meaning).")
@errors_as_one_line
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
        console().print(table)
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
    console().print(table)


@click.command("datasets")
@data_dir_option
@errors_as_one_line
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
    console().print(table)


@click.command("check")
@click.argument("name", metavar="METHOD")
@click.option("--param", "param_items", multiple=True, metavar="NAME=VALUE",
              help=PARAM_HELP_ONE)
@errors_as_one_line
def check_command(name, param_items) -> None:
    """Run the conformance suite on a registered hasher METHOD (for plugin authors).

    Exits 3 when any check fails."""
    from mmhash.registry import check_method_params, get_hasher_class
    from mmhash.testing import check_hasher

    cls = get_hasher_class(name)
    params = method_params(param_items, name, None)
    check_method_params(name, params)  # a bad value is one line, not every check failing
    out = console()

    def show(result):
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        out.print(f"{mark} {result.check}" + (f": {result.message}" if result.message else ""),
                  soft_wrap=True)

    results = check_hasher(cls, params, raise_on_failure=False, on_result=show)
    failed = [r for r in results if not r.passed]
    out.print(f"{name}: {len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(EXIT_CHECKS_FAILED)
