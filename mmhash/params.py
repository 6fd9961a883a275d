"""Checkers for hyperparameters, for mmhash's hashers and for plugin authors alike.

A hasher declares the rule of each hyperparameter once, in its ``parameter_constraints``
(merged along the class hierarchy, so a deep method declares only its own on top of the deep
base's training parameters)::

    parameter_constraints = {"gamma": Number(low=0, low_open=True),
                             "max_iter": Integer(minimum=1),
                             "init": Choice(("normal", "uniform")),
                             "normalize": Flag(),
                             "width": Integer(minimum=1, none=True)}

:meth:`mmhash.base.BaseHasher.check_params` applies them (at fit, and in every command before
any fit), ``mmhash list --params METHOD`` prints them, and the conformance suite derives invalid
values from them. A rule no constraint expresses (one parameter bounded by another, a device
this machine must have) goes in ``_check_params``, with the checkers below, which make each rule
one line::

    def _check_params(self):
        check_number("gamma", self.gamma, minimum=0, exclusive=True)
        check_integer("max_iter", self.max_iter, minimum=1)
        check_choice("init", self.init, ("normal", "uniform"))
        check_bool("normalize", self.normalize)

Each raises :class:`~mmhash.errors.InvalidInputError` with one line that names the parameter,
the rule and the value given, e.g. ``gamma must be a finite number > 0, got 0.0``. ``bool`` is
refused where a number is expected (``True`` is an ``int`` to Python, but never a sensible
weight or count). The checkers return the value converted (``float``, ``int``, the matching
choice) for callers that want it; hashers store their parameters unchanged and need not use it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmhash.errors import InvalidInputError

__all__ = ["Choice", "Constraint", "Flag", "Integer", "Number", "check_bool", "check_choice",
           "check_integer", "check_number"]


def _show(bound: float) -> str:
    """A bound as a reader expects it: ``0``, ``1``, ``0.0001`` (not ``0.0`` or ``1e-04``)."""
    if isinstance(bound, numbers.Integral) or float(bound).is_integer():
        return str(int(bound))
    return repr(float(bound))


def check_number(name: str, value: Any, *, minimum: float | None = None,
                 maximum: float | None = None, exclusive: bool = False) -> float:
    """Return ``value`` as ``float`` if it is a finite real number within the bounds, else raise.

    Parameters
    ----------
    name : the parameter's name, as the user spells it
    value : the value given; any real number (Python or numpy) except ``bool``
    minimum, maximum : bounds (None = unbounded on that side)
    exclusive : the bounds themselves are refused (``> minimum``, ``< maximum``)

    Raises
    ------
    InvalidInputError
        For a bool, a non-real (str, complex, None, array, ...), NaN, an infinity (or an
        integer too large for a float) or a value outside the bounds.
    """
    if minimum is not None and maximum is not None:
        rule = (f"lie strictly between {_show(minimum)} and {_show(maximum)}" if exclusive
                else f"lie between {_show(minimum)} and {_show(maximum)} (inclusive)")
    else:
        op, bound = ((">" if exclusive else ">=", minimum) if minimum is not None
                     else ("<" if exclusive else "<=", maximum))
        rule = "be a finite number" + ("" if bound is None else f" {op} {_show(bound)}")
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        try:
            as_float = float(value)
        except OverflowError:  # an integer beyond the float range: infinite in any computation
            ok = False
        else:
            ok = math.isfinite(as_float)
    if ok and minimum is not None:
        ok = value > minimum if exclusive else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if exclusive else value <= maximum
    if not ok:
        raise InvalidInputError(f"{name} must {rule}, got {value!r}")
    return as_float


def check_integer(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as ``int`` if it is an integer (Python or numpy, not ``bool``) >= minimum.

    Raises
    ------
    InvalidInputError
        For a bool, a float (even ``2.0``: counts and seeds are integers), any other type, or a
        value below ``minimum``.
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok or (minimum is not None and value < minimum):
        rule = "an integer" + ("" if minimum is None else f" >= {minimum}")
        raise InvalidInputError(f"{name} must be {rule}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise listing them (in the given order).

    Raises
    ------
    InvalidInputError
        ``init must be one of normal, uniform; got 'zeros'``, with a "did you mean" hint when
        a choice is spelled closely.
    """
    choices = tuple(choices)
    # Unhashable values (lists, arrays) are never a choice; testing them with `in` would
    # compare element-wise.
    if isinstance(value, Hashable) and value in choices:
        return value
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(str(c) for c in choices)
    raise InvalidInputError(f"{name} must be one of {listed}; got {value!r}{hint}")


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` as ``bool`` if it is ``True`` or ``False`` (numpy's included), else raise.

    Strings such as ``"yes"`` and the numbers 0 / 1 are refused: a flag is a flag.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


# ---- declared constraints --------------------------------------------------------------------
class Constraint:
    """The rule of one hyperparameter: :meth:`check` raises the checker's one-line
    :class:`InvalidInputError`, :meth:`describe` says the rule in a few words, and
    :meth:`invalid_values` gives values the rule refuses (for the conformance suite)."""

    none: bool = False

    def check(self, name: str, value: Any) -> None:
        if value is None and self.none:
            return
        self._check(name, value)

    def describe(self) -> str:
        return self._describe() + (" or None" if self.none else "")

    def invalid_values(self) -> list[Any]:
        return ([] if self.none else [None]) + self._invalid()

    def _check(self, name: str, value: Any) -> None:
        raise NotImplementedError

    def _describe(self) -> str:
        raise NotImplementedError

    def _invalid(self) -> list[Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Number(Constraint):
    """A finite real number (not a bool) in an interval: ``low``/``high`` (None: unbounded),
    each end closed unless ``low_open``/``high_open``. ``Number(0, 1, high_open=True)`` is
    ``[0, 1)``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none: bool = False

    def _check(self, name: str, value: Any) -> None:
        if self.low is not None and self.high is not None and self.low_open == self.high_open:
            check_number(name, value, minimum=self.low, maximum=self.high,
                         exclusive=self.low_open)
            return
        # one end at a time: the message names the end that was broken
        check_number(name, value, minimum=self.low, exclusive=self.low_open)
        if self.high is not None:
            check_number(name, value, maximum=self.high, exclusive=self.high_open)

    def _describe(self) -> str:
        if self.low is None and self.high is None:
            return "number"
        if self.low is not None and self.high is not None:
            return (f"number in {'(' if self.low_open else '['}{_show(self.low)}, "
                    f"{_show(self.high)}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"number {'>' if self.low_open else '>='} {_show(self.low)}"
        return f"number {'<' if self.high_open else '<='} {_show(self.high)}"

    def _invalid(self) -> list[Any]:
        out: list[Any] = ["abc", True, float("nan"), float("inf")]
        if self.low is not None:
            out.append(self.low if self.low_open else self.low - 1)
        if self.high is not None:
            out.append(self.high if self.high_open else self.high + 1)
        return out


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer (Python or numpy, not a bool or a float) ``>= minimum``."""

    minimum: int | None = None
    none: bool = False

    def _check(self, name: str, value: Any) -> None:
        check_integer(name, value, minimum=self.minimum)

    def _describe(self) -> str:
        return "integer" + ("" if self.minimum is None else f" >= {self.minimum}")

    def _invalid(self) -> list[Any]:
        return ["abc", True, 2.5] + ([] if self.minimum is None else [self.minimum - 1])


@dataclass(frozen=True)
class Choice(Constraint):
    """One of ``choices`` (compared with ``==``; listed in this order in messages)."""

    choices: tuple[Any, ...] = ()
    none: bool = False

    def _check(self, name: str, value: Any) -> None:
        check_choice(name, value, self.choices)

    def _describe(self) -> str:
        return "one of " + ", ".join(str(c) for c in self.choices)

    def _invalid(self) -> list[Any]:
        return ["not-a-choice", [self.choices[0]] if self.choices else []]


@dataclass(frozen=True)
class Flag(Constraint):
    """``True`` or ``False`` (numpy's too); never a string or a number."""

    none: bool = False

    def _check(self, name: str, value: Any) -> None:
        check_bool(name, value)

    def _describe(self) -> str:
        return "True or False"

    def _invalid(self) -> list[Any]:
        return ["yes", 1]
