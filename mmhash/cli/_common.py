"""What every ``mmhash`` command shares: the console, the one-line error decorator, the exit
codes, the options spelled the same in every command, ``--param`` parsing and the progress bar.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import click

from mmhash.errors import InvalidInputError, MMHashError
from mmhash.evaluation.measures import METRIC_FORMS

# ---- exit codes: the only place they are defined ----------------------------------------------
EXIT_OK = 0
EXIT_FAILED_CELLS = 1  # bench, regress: cells failed at run time (stored with their errors)
EXIT_USAGE = 2  # bad input or usage, refused before any work
EXIT_CHECKS_FAILED = 3  # check: conformance checks failed
EXIT_REGRESSION = 4  # regress: cells dropped beyond the tolerance, or went missing
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

#: The exit codes as ``mmhash --help`` lists them (``\b``: click keeps the lines as they are).
EXIT_CODES_HELP = f"""\b
Exit codes:
  {EXIT_OK:<4} ok
  {EXIT_FAILED_CELLS:<4} cells failed at run time (bench, regress; stored with their errors)
  {EXIT_USAGE:<4} bad input or usage, refused before any work
  {EXIT_CHECKS_FAILED:<4} conformance checks failed (check)
  {EXIT_REGRESSION:<4} regression beyond the tolerance (regress)
  {EXIT_INTERRUPTED:<4} interrupted (Ctrl-C); what finished is kept"""

#: The metric tokens, for help texts (defined once, in mmhash.evaluation.measures).
METRIC_HELP = ", ".join(METRIC_FORMS)


def console(stderr: bool = False):
    """A rich console on stdout (or stderr); 240 columns wide when not a terminal."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal:
        # Piped or captured output has no width to fit: keep wide tables on one line per row.
        out = Console(stderr=stderr, highlight=False, width=240)
    return out


def errors_as_one_line(func):
    """Turn mmhash errors into one clear line and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MMHashError as exc:
            from rich.markup import escape

            # escape: messages hold literal brackets (pip install 'mmhash[plot]')
            console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}",
                                       soft_wrap=True)
            sys.exit(EXIT_USAGE)

    return wrapper


# ---- options spelled once ---------------------------------------------------------------------
#: How every command's messages name its output file.
OUTPUT = "-o"


def output_option(help: str, *, required: bool = False, old_name: str | None = None):
    """``-o/--output PATH``, the file a command writes. ``old_name``: a former spelling kept
    as a hidden alias (``--export`` of bench), so old scripts still run."""
    # No explicit default: click 8.5 counts an explicit default=None as a value, so a
    # required -o would never be reported missing.
    option = click.option("-o", "--output", "output", required=required,
                          type=click.Path(dir_okay=False), help=help)
    if old_name is None:
        return option
    alias = click.option(old_name, "output_alias", default=None, hidden=True,
                         type=click.Path(dir_okay=False))

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, output=None, output_alias=None, **kwargs):
            if output and output_alias:  # a usage error: one line, exit 2 (see _OneLineGroup)
                raise click.UsageError(f"-o/--output and {old_name} (its old name) both given: "
                                       "name the output once")
            return func(*args, output=output or output_alias, **kwargs)

        return option(alias(wrapper))

    return decorate


def data_dir_option(func):
    """``--data-dir``: where the real datasets are."""
    return click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                        help="Directory of the real datasets (default $MMHASH_DATA, else "
                             "./data).")(func)


def views_option(func):
    """``--views``: a subset of the dataset's views."""
    return click.option("--views", default=None,
                        help="Use only these views of the dataset (comma-separated).")(func)


def bits_help(many: bool, default: str | None = None) -> str:
    """The help of ``--bits`` (the same words in every command): several code lengths (bench)
    or one (fit, tune); ``default`` where click does not show it."""
    text = ("Code lengths in bits, comma-separated: multiples of 8 up to 1024" if many
            else "Code length in bits: a multiple of 8 up to 1024")  # mmhash.base.MAX_BITS
    return text + (f" (default {default})." if default else ".")


def one_bits_and_seed(bits: str, seed: str, command: str) -> tuple[int, int]:
    """``--bits`` and ``--seed`` of a command that trains one model (fit, tune), parsed as
    bench parses its lists, so the flags mean the same everywhere; more than one value is
    refused naming bench, which runs several."""
    from mmhash.bench.grid import parse_bits, parse_seeds

    values = {"--bits": (bits, parse_bits(bits)),
              "--seed": (seed, parse_seeds(seed, "--seed"))}
    for flag, (text, parsed) in values.items():
        if len(parsed) != 1:
            raise InvalidInputError(f"{flag} {text!r}: {command} trains one model, so it takes "
                                    f"one value; bench runs several")
    return values["--bits"][1][0], values["--seed"][1][0]


def seed_option(many: bool):
    """``--seed`` / ``--seeds`` (either spelling in every command): several seeds in bench,
    one where a command trains one model."""
    if many:
        return click.option("--seeds", "--seed", "seeds", default=None,
                            help="Comma-separated non-negative integer seeds (default 0).")
    return click.option("--seed", "--seeds", "seed", default="0", show_default=True,
                        help="random_state: one non-negative integer.")


#: Why bench names the method in ``--param`` and the single-method commands need not.
PARAM_HELP_MANY = ("A hyperparameter of one method (repeatable). bench runs several methods, so "
                   "each value names its METHOD.")
PARAM_HELP_ONE = ("A hyperparameter of METHOD (repeatable): NAME=VALUE, as this command runs one "
                  "method; bench's METHOD.NAME=VALUE is accepted too (METHOD must be this "
                  "command's method).")


# ---- --param ----------------------------------------------------------------------------------
#: The flags that set ``n_bits`` and ``random_state`` in bench, and in fit and tune.
BENCH_FLAGS = {"n_bits": "--bits", "random_state": "--seeds"}
FIT_FLAGS = {"n_bits": "--bits", "random_state": "--seed"}


def _json_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _refuse_flag_param(item: str, name: str, flags: Mapping[str, str] | None) -> None:
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


def parse_params(items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """bench's ``--param cmfh.mu=100`` -> {"cmfh": {"mu": 100}} (values parsed as JSON when
    they can be)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, name = key.partition(".")
        if not (sep and dot and method and name):
            raise InvalidInputError(f"--param {item!r}: expected METHOD.NAME=VALUE")
        _refuse_flag_param(item, name, BENCH_FLAGS)
        out.setdefault(method, {})[name] = _json_value(raw)
    return out


def method_params(items: tuple[str, ...], method: str,
                  flags: Mapping[str, str] | None) -> dict[str, Any]:
    """``--param mu=100`` (or ``--param cmfh.mu=100``, bench's spelling) of the one ``method``
    a command runs (fit, tune, check) -> {"mu": 100}; another method's name is refused."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name = key.removeprefix(f"{method}.")
        other, dot, _ = name.partition(".")
        if not (sep and name) or (dot and not other):
            raise InvalidInputError(f"--param {item!r}: expected NAME=VALUE or "
                                    f"{method}.NAME=VALUE")
        if dot:
            raise InvalidInputError(f"--param {item!r}: this command runs {method}, not "
                                    f"{other}; use NAME=VALUE or {method}.NAME=VALUE")
        _refuse_flag_param(item, name, flags)
        out[name] = _json_value(raw)
    return out


def param_line(method: str, params: Mapping[str, Any]) -> str:
    """The parameters a run applies to one method, exactly as they are passed."""
    from mmhash.bench.cell import describe_params

    return f"params of {method}: {describe_params(params, digits=None)}"


# ---- the progress bar -------------------------------------------------------------------------
class Bar:
    """One line of :func:`progress_bar`: ``update`` moves it, ``add_line`` adds one under it."""

    def __init__(self, progress, task) -> None:
        self._progress, self._task = progress, task

    def update(self, **fields) -> None:
        """rich's ``Progress.update`` of this line (description, completed, total, visible,
        note: the text after the counts)."""
        self._progress.update(self._task, **fields)

    def add_line(self) -> Bar:
        """A second line, hidden until an update makes it ``visible``."""
        return Bar(self._progress, self._progress.add_task("", total=1, visible=False,
                                                           note=""))


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None, *, elapsed: bool = False,
                 remaining: bool = False, note: bool = True) -> Iterator[Bar]:
    """The one progress bar of the commands: on stderr, cleared when done. Its line shows the
    description, the bar and done/total, then the elapsed and remaining time if asked, then
    a ``note`` (a loss, a best score) that updates set."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TimeElapsedColumn()] if elapsed else []
    columns += [TimeRemainingColumn()] if remaining else []
    columns += [TextColumn("{task.fields[note]}")] if note else []
    with Progress(*columns, console=console(stderr=True), transient=True) as progress:
        yield Bar(progress, progress.add_task(description, total=total, note=""))


def loss_text(metrics: Mapping[str, float]) -> str:
    """An epoch's training metrics as the bar shows them: ``loss=0.1234``."""
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
