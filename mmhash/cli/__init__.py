"""The ``mmhash`` command line; the only package that prints.

Each command parses its options, calls the library and prints; the work is done in
:mod:`mmhash.bench`, :mod:`mmhash.frontdoor`, :mod:`mmhash.extract` and the rest. Every error
a user can cause (an :class:`~mmhash.errors.MMHashError`) ends as one line on stderr and exit
code 2; the other exit codes (:mod:`mmhash.cli._common`) are listed by ``mmhash --help``.

Modules: ``_common`` (console, errors, exit codes, shared options, ``--param``, the progress
bar), ``benchmarks`` (bench, regress, tune), ``reports`` (report, compare), ``catalogue`` (list,
datasets, check), ``codes`` (fit, encode, index, search, features).
"""

from __future__ import annotations

import logging
import sys

import click

from mmhash.cli._common import (
    EXIT_CHECKS_FAILED,
    EXIT_CODES_HELP,
    EXIT_FAILED_CELLS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_USAGE,
    console,
)
from mmhash.cli._common import errors_as_one_line as _errors_as_one_line
from mmhash.cli.benchmarks import _progress_bar, bench, regress, tune
from mmhash.cli.catalogue import check_command, datasets_command, list_command
from mmhash.cli.codes import encode, features_command, fit, index, search
from mmhash.cli.reports import compare, report

__all__ = ["EXIT_CHECKS_FAILED", "EXIT_FAILED_CELLS", "EXIT_INTERRUPTED", "EXIT_OK",
           "EXIT_REGRESSION", "EXIT_USAGE", "_errors_as_one_line", "_progress_bar", "main"]


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

        err = console(stderr=True)
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
            sys.exit(EXIT_USAGE)  # bad input: 1 is for failed cells only


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning (e.g. a method that cannot fill its bits) as one line on stderr, not Python's
    file:line block."""
    from rich.markup import escape

    console(stderr=True).print(f"[yellow]warning:[/] {escape(str(message))}", soft_wrap=True)


@click.group(cls=_OneLineGroup, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="mmhash")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def main(verbose: int) -> None:
    """mmhash: unsupervised multimodal hashing — methods, exact evaluation, benchmarks."""
    import warnings

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    warnings.showwarning = _show_warning


# The commands, module by module (`mmhash --help` lists them alphabetically).
for _command in (bench, report, compare, regress, tune, list_command, datasets_command,
                 check_command, fit, encode, index, search, features_command):
    main.add_command(_command)
