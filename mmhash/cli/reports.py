"""``mmhash report``: stored results as Markdown, LaTeX, CSV or one HTML page, and figures."""

from __future__ import annotations

import click

from mmhash.cli._common import (
    METRIC_HELP,
    OUTPUT,
    console,
    errors_as_one_line,
    output_option,
)
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
              help=f"Metric tokens to show: {METRIC_HELP}, comma-separated (default: all "
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
@click.option("--ci", "ci_level", default=None, metavar="LEVEL",
              help="Add a bootstrap interval at this confidence level (e.g. 95) to every value "
                   "and test each column's best row against the runner-up (paired over the "
                   "same queries, Holm-adjusted over the report): bold = significantly best, "
                   "italic = best but not distinguishable. Evaluates the stored codes again "
                   "(implies --recompute).")
@click.option("--ci-seed", default=0, show_default=True, type=int,
              help="Seed of the resampling behind --ci: the same seed gives the same report.")
@click.option("--cost", is_flag=True,
              help="Also show a cost table per dataset: fit seconds, encode µs per item, code "
                   "bytes per item and query µs per 1,000 retrieval items (Markdown, LaTeX and "
                   "HTML).")
@click.option("--tune-trials", is_flag=True,
              help="Also show the trials of `mmhash tune` (datasets NAME:validation, scored on "
                   "the validation split). Without it they are left out, unless --dataset or "
                   "--run names them.")
@errors_as_one_line
def report(stores, dataset, methods, run_id, recompute, metrics, ties, fmt, output,
           plot_dir, published_suite, ci_level, ci_seed, cost, tune_trials) -> None:
    """Render stored results: mean ± std over seeds, best per column in bold.

    Shows the cells of `mmhash bench` runs; the validation-split trials of `mmhash tune` only
    with --tune-trials (or when --dataset or --run names them).
    """
    from mmhash.bench.combine import combine_stores
    from mmhash.bench.grid import parse_list
    from mmhash.errors import DataError

    _check_paths(stores, fmt, output, plot_dir)
    published = _published(published_suite)
    level = None
    if ci_level is not None:
        from mmhash.bench.uncertainty import check_level

        level, recompute = check_level(ci_level), True
    method_list = parse_list(methods, "--methods") if methods else None
    found = combine_stores(
        stores, dataset=dataset, methods=method_list, run_id=run_id, recompute=recompute,
        metrics=parse_list(metrics, "--metrics") if metrics else None,
        ties=parse_list(ties, "--tie") if ties else None,
        curves=bool(plot_dir) or fmt == "html", provenance=fmt == "html",
        tune_trials=tune_trials, per_query=level is not None)
    if recompute:
        _warn_not_recomputed(found.without_codes)
    if not found.rows:
        hidden = found.hidden_trials
        raise DataError(f"{', '.join(stores)} holds no finished cells matching the filters"
                        + (" that can be recomputed" if recompute else "")
                        + (f" ({hidden} validation-split trial(s) of `mmhash tune` are left "
                           "out: add --tune-trials)" if hidden else ""))
    uncertainty = None if level is None else {"level": level, "seed": ci_seed}
    costs = None
    if cost:
        if fmt == "csv":
            raise InvalidInputError("--cost adds tables: use it with --format markdown, latex "
                                    "or html")
        from mmhash.bench.cost import cost_rows, cost_tables

        costs = cost_tables(cost_rows(stores, dataset=dataset, methods=method_list,
                                      run_id=run_id), method_order=method_list)
    if fmt == "csv":
        _write_csv(found.rows, output or "-", uncertainty)
    elif fmt == "html":
        from mmhash.bench.html import report_page

        page = report_page(found, stores=stores, dataset=dataset, methods=method_list,
                           run_id=run_id, recompute=recompute, published=published,
                           uncertainty=uncertainty, costs=costs)
        _write_atomically(output, page)
        click.echo(f"wrote {output}", err=True)
    else:
        _write_tables(found.rows, fmt, output, method_list, published, uncertainty, costs)
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


def _write_csv(rows, target, uncertainty=None) -> None:
    """The tidy rows as CSV (with ``uncertainty``: each row's interval bounds too): to
    ``target``, or to stdout for ``-``."""
    from mmhash.bench.report import export, export_frame

    with_bounds = uncertainty is not None
    if with_bounds:
        from mmhash.bench.uncertainty import interval_columns

        rows = interval_columns(rows, **uncertainty)
    if target == "-":
        click.echo(export_frame(rows, intervals=with_bounds).to_csv(index=False), nl=False)
    else:
        export(rows, target, intervals=with_bounds)


def _write_tables(rows, fmt, output, method_order, published, uncertainty=None,
                  costs=None) -> None:
    """The tables (and the published values beside them) as Markdown or LaTeX, with intervals
    and tests when ``uncertainty`` (level, seed) is given, and the cost tables ``costs`` last:
    to ``output``, or to stdout without one."""
    from mmhash.bench.report import tables

    shown = tables(rows, method_order=method_order)
    if uncertainty is not None:
        from mmhash.bench.uncertainty import annotate

        annotate(shown, rows, **uncertainty)
    if published is not None:
        from mmhash.bench.published import published_for

        shown += published_for(shown, published)
    shown += costs or []
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


@click.command()
@click.argument("method_a", metavar="A")
@click.argument("method_b", metavar="B")
@click.option("--store", "stores", default=("mmhash-results.sqlite",), show_default=True,
              multiple=True, type=click.Path(dir_okay=False),
              help="SQLite result file to read; repeat it to combine stores (the later wins).")
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--run", "run_id", default=None, type=int, help="Only cells of this run id.")
@click.option("--bits", default=None, help="Only these bit lengths (comma-separated).")
@click.option("--task", "task_filter", default=None,
              help="Only these tasks (comma-separated, e.g. image->text).")
@click.option("--metrics", default="map", show_default=True,
              help=f"Metric tokens: {METRIC_HELP}, comma-separated.")
@click.option("--tie", "ties", default="expected", show_default=True,
              help="Tie policies: expected, optimistic, pessimistic, index.")
@click.option("--ci", "ci_level", default="95", show_default=True, metavar="LEVEL",
              help="Confidence level of the intervals; the tests are at 1 - LEVEL.")
@click.option("--ci-seed", default=0, show_default=True, type=int,
              help="Seed of the resampling: the same seed gives the same verdicts.")
@errors_as_one_line
def compare(method_a, method_b, stores, dataset, run_id, bits, task_filter, metrics, ties,
            ci_level, ci_seed) -> None:
    """Is A really better than B? A paired test per task from the stored codes.

    For every dataset, task, bit length, metric and tie policy where both methods have
    finished cells with codes, the per-query values are recomputed (no refitting) and A - B is
    tested: a paired permutation test over the same queries, with a paired bootstrap interval
    of the difference (seeds, then queries, when there are several; seeds paired when both hold
    the same ones). p-values are Holm-adjusted over all the tasks compared; a difference is
    significant when the adjusted p is below 1 - LEVEL and its interval excludes 0. Ends with
    one verdict line per task.
    """
    from mmhash.bench.combine import combine_stores
    from mmhash.bench.grid import parse_bits, parse_list
    from mmhash.bench.uncertainty import check_level, compare_methods
    from mmhash.errors import DataError

    level = check_level(ci_level)
    _check_paths(stores, "markdown", None, None)
    bit_list = set(parse_bits(bits)) if bits else None
    task_list = set(parse_list(task_filter, "--task")) if task_filter else None
    found = combine_stores(stores, dataset=dataset, methods=[method_a, method_b], run_id=run_id,
                           recompute=True, metrics=parse_list(metrics, "--metrics"),
                           ties=parse_list(ties, "--tie"), per_query=True)
    _warn_not_recomputed(found.without_codes)
    rows = [r for r in found.rows if (bit_list is None or int(r["bits"]) in bit_list)
            and (task_list is None or r["task"] in task_list)]
    results = compare_methods(rows, method_a, method_b, level=level, seed=ci_seed)
    if not results:
        have = sorted({r["method"] for r in found.rows})
        raise DataError(f"no task where both {method_a} and {method_b} have stored codes "
                        f"matching the filters (methods found: {', '.join(have) or 'none'})")
    _print_comparisons(results, level)


def _print_comparisons(results, level: float) -> None:
    """A table of the comparisons, then one verdict line per task."""
    from rich.table import Table as RichTable

    first = results[0]
    table = RichTable(title=f"{first.a} vs {first.b}: paired over queries, "
                            f"{100 * level:g}% intervals, Holm over {len(results)} test(s)")
    for name in ("dataset", "task", "bits", "metric", "tie", first.a, first.b, "A - B",
                 "interval", "p", "Holm p"):
        table.add_column(name, justify="left" if name in ("dataset", "task") else "right")
    for c in results:
        table.add_row(c.dataset, c.task, str(c.bits), c.metric, c.tie, f"{c.value_a:.4f}",
                      f"{c.value_b:.4f}", f"{c.comparison.difference:+.4f}",
                      f"[{c.comparison.low:+.4f}, {c.comparison.high:+.4f}]",
                      f"{c.comparison.p_value:.4f}", f"{c.p_adjusted:.4f}")
    out = console()
    out.print(table)
    for c in results:
        out.print(c.verdict(), soft_wrap=True, highlight=False)
