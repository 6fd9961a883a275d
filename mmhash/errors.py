"""Exceptions that mmhash raises on purpose.

Every error a user can cause derives from :class:`MMHashError`; the CLI prints its message as one
line and exits non-zero, so each message must name the problem and, where there is a finite set of
valid choices, list them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MMHashError(Exception):
    """Base class of all errors mmhash raises for bad input or bad state."""


class InvalidInputError(MMHashError, ValueError):
    """Arrays, parameters or options that cannot be used (shape, NaN, unpaired rows, ...)."""


class NotFittedError(MMHashError, RuntimeError):
    """A hasher was asked to encode before :meth:`fit`."""


class UnknownNameError(MMHashError, LookupError):
    """A name (method, dataset, modality, tie policy, ...) that is not among the valid choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        choices = sorted(choices)
        close = difflib.get_close_matches(str(name), choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(choices) if choices else "(none)"
        super().__init__(f"unknown {kind} {name!r}{hint} (choose from: {listed})")
        self.kind, self.name, self.choices = kind, name, choices


class DataError(MMHashError, OSError):
    """A data file that is missing, corrupt, of an unknown format or not the pinned version."""


class PluginError(MMHashError, ImportError):
    """A registered hasher plugin that could not be imported or is not a valid Hasher."""


class MMHashWarning(UserWarning):
    """Base class of the warnings mmhash issues about a result that may surprise: the result is
    computed, but something about it needs saying (the bench stores these with the cell)."""


class DegenerateCodesWarning(MMHashWarning):
    """A fitted hasher cannot fill its bits: some are constant on the training items, or the
    method needs more directions than a view's rank holds (e.g. CVH with more bits than the
    text view's dimension), so those bits carry nothing or depend on round-off."""
