"""``mmhash report``: stored results as Markdown, LaTeX, CSV or one HTML page, and figures."""

from __future__ import annotations

import click

from mmhash.cli._common import OUTPUT, console, errors_as_one_line, output_option
from mmhash.errors import InvalidInputError
from mmhash.outputs import REPORT_EXTENSIONS, check_output, check_output_folder


@click.command()
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
@output_option("Write the report to this file instead of the terminal (required by --format "
               "html).")
@click.option("--plot", "plot_dir", default=None, type=click.Path(file_okay=False),
              help="Also write PR and P@K curves as PNG files into this directory.")
@click.option("--published", "published_suite", default=None, metavar="SUITE",
              help="Add the published values of this suite (e.g. paper-mirflickr) beside ours: "
                   "per source, ours, published and the difference, with what differs.")
@click.option("--tune-trials", is_flag=True,
              help="Also show the trials of `mmhash tune` (datasets NAME:validation, scored on "
                   "the validation split). Without it they are left out, unless --dataset or "
                   "--run names them.")
@errors_as_one_line
def report(stores, dataset, methods, run_id, recompute, metrics, ties, fmt, output,
           plot_dir, published_suite, tune_trials) -> None:
    """Render stored results: mean ± std over seeds, best per column in bold.

    Shows the cells of `mmhash bench` runs; the validation-split trials of `mmhash tune` only
    with --tune-trials (or when --dataset or --run names them).
    """
    from mmhash.bench.combine import combine_stores
    from mmhash.bench.grid import parse_list
    from mmhash.errors import DataError

    _check_paths(stores, fmt, output, plot_dir)
    published = _published(published_suite)
    method_list = parse_list(methods, "--methods") if methods else None
    found = combine_stores(
        stores, dataset=dataset, methods=method_list, run_id=run_id, recompute=recompute,
        metrics=parse_list(metrics, "--metrics") if metrics else None,
        ties=parse_list(ties, "--tie") if ties else None,
        curves=bool(plot_dir) or fmt == "html", provenance=fmt == "html",
        tune_trials=tune_trials)
    if recompute:
        _warn_not_recomputed(found.without_codes)
    if not found.rows:
        hidden = found.hidden_trials
        raise DataError(f"{', '.join(stores)} holds no finished cells matching the filters"
                        + (" that can be recomputed" if recompute else "")
                        + (f" ({hidden} validation-split trial(s) of `mmhash tune` are left "
                           "out: add --tune-trials)" if hidden else ""))
    if fmt == "csv":
        _write_csv(found.rows, output or "-")
    elif fmt == "html":
        from mmhash.bench.html import report_page

        page = report_page(found, stores=stores, dataset=dataset, methods=method_list,
                           run_id=run_id, recompute=recompute, published=published)
        _write_atomically(output, page)
        click.echo(f"wrote {output}", err=True)
    else:
        _write_tables(found.rows, fmt, output, method_list, published)
    if plot_dir:
        from mmhash.bench.plots import plot_curves

        paths = plot_curves(found.curves, plot_dir, tie=found.evaluation.ties[0])
        click.echo(f"wrote {len(paths)} figure(s) to {plot_dir}", err=True)


def _check_paths(stores, fmt, output, plot_dir) -> None:
    """Before any work: the outputs can be written (and html has one), the stores exist."""
    from pathlib import Path

    from mmhash.errors import DataError

    if fmt == "html" and output in (None, "-"):
        raise InvalidInputError("--format html writes a page to a file: name it with -o/--output "
                                "(e.g. -o results.html)")
    if output and not (output == "-" and fmt == "csv"):  # csv to "-": stdout
        check_output(output, option=OUTPUT, extensions=REPORT_EXTENSIONS[fmt],
                     inputs=stores, what=f"--format {fmt} reports")
    if plot_dir:
        check_output_folder(plot_dir, option="--plot", inputs=stores)
    for store in stores:
        if not Path(store).is_file():
            raise DataError(f"no result store at {store} (run `mmhash bench` first or pass "
                            "--store)")


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


def _write_csv(rows, target) -> None:
    """The tidy rows as CSV: to ``target``, or to stdout for ``-``."""
    from mmhash.bench.report import export, export_frame

    if target == "-":
        click.echo(export_frame(rows).to_csv(index=False), nl=False)
    else:
        export(rows, target)


def _write_tables(rows, fmt, output, method_order, published) -> None:
    """The tables (and the published values beside them) as Markdown or LaTeX: to ``output``,
    or to stdout without one."""
    from mmhash.bench.report import tables

    shown = tables(rows, method_order=method_order)
    if published is not None:
        from mmhash.bench.published import published_for

        shown += published_for(shown, published)
    rendered = [t.markdown() if fmt == "markdown" else t.latex() for t in shown]
    text = "\n\n".join(rendered) + "\n"
    if output:
        _write_atomically(output, text)
    else:
        click.echo(text, nl=False)


def _write_atomically(path, text: str) -> None:
    """Write ``text`` through a temporary file and a rename: never half-written."""
    from mmhash.codefiles import atomic_output

    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _warn_not_recomputed(keys) -> None:
    from rich.markup import escape

    if not keys:
        return
    err = console(stderr=True)
    err.print(f"[yellow]{len(keys)} cell(s) have no stored codes and cannot be recomputed[/] "
              "(stored before mmhash kept codes, or ranked by real-valued distances, which "
              "keep none; rerun them to recompute):")
    for key in keys:
        err.print(f"  {escape(key.label())}", soft_wrap=True)
