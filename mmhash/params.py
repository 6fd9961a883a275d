"""Checkers for hyperparameters, for mmhash's hashers and for plugin authors alike.

A hasher validates its hyperparameters in ``_check_params`` (called by
:meth:`mmhash.base.BaseHasher.fit`); these functions make each rule one line::

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
from typing import Any

import numpy as np

from mmhash.errors import InvalidInputError

__all__ = ["check_bool", "check_choice", "check_integer", "check_number"]


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
