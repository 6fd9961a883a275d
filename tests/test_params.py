"""mmhash.params: each checker accepts what its rule allows and refuses the rest, by name."""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest

from mmhash.errors import InvalidInputError
from mmhash.params import check_bool, check_choice, check_integer, check_number


# ---- check_number -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 3, 0.5, -2.5, np.float32(1.5), np.float64(2.0),
                                   np.int64(7), Fraction(1, 3), 2**1000])
def test_number_accepts_finite_reals_and_returns_float(value):
    got = check_number("w", value)
    assert type(got) is float
    assert got == float(value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.nan, np.inf, -np.inf,
                                   float("nan"), np.float32("inf"), "1.0", None, 1 + 2j,
                                   np.complex128(1), [1.0], np.array([1.0]), 10**400])
def test_number_refuses_bools_non_reals_and_non_finite(value):
    with pytest.raises(InvalidInputError) as info:
        check_number("weight", value)
    assert str(info.value) == f"weight must be a finite number, got {value!r}"


def test_number_bounds_inclusive_and_exclusive():
    assert check_number("tol", 0, minimum=0) == 0.0
    assert check_number("tol", 1e-9, minimum=0, exclusive=True) == 1e-9
    with pytest.raises(InvalidInputError, match=r"^tol must be a finite number >= 0, got -1e-09$"):
        check_number("tol", -1e-9, minimum=0)
    with pytest.raises(InvalidInputError, match=r"^gamma must be a finite number > 0, got 0\.0$"):
        check_number("gamma", 0.0, minimum=0, exclusive=True)
    with pytest.raises(InvalidInputError, match=r"^r must be a finite number > 1, got 1$"):
        check_number("r", 1, minimum=1.0, exclusive=True)
    with pytest.raises(InvalidInputError, match=r"^c must be a finite number <= 0\.5, got 0\.6$"):
        check_number("c", 0.6, maximum=0.5)
    assert check_number("c", 0.5, maximum=0.5) == 0.5
    with pytest.raises(InvalidInputError, match=r"^c must be a finite number < 0\.5, got 0\.5$"):
        check_number("c", 0.5, maximum=0.5, exclusive=True)
    # A non-finite value is refused even where the bound would admit it.
    with pytest.raises(InvalidInputError, match=r"> 0, got inf$"):
        check_number("mu", np.inf, minimum=0, exclusive=True)


def test_number_between_two_bounds():
    assert check_number("lam", 0.5, minimum=0, maximum=1, exclusive=True) == 0.5
    for bad in (0, 1.0, -0.1, np.nan):
        with pytest.raises(InvalidInputError,
                           match=r"^lam must lie strictly between 0 and 1, got "):
            check_number("lam", bad, minimum=0, maximum=1, exclusive=True)
    assert check_number("p", 1, minimum=0, maximum=1) == 1.0
    with pytest.raises(InvalidInputError,
                       match=re.escape("p must lie between 0 and 1 (inclusive), got 1.5")):
        check_number("p", 1.5, minimum=0, maximum=1)


def test_number_bounds_are_shown_readably():
    with pytest.raises(InvalidInputError, match=r"> 0\.0001, got 1e-05$"):
        check_number("reg", 1e-5, minimum=1e-4, exclusive=True)


# ---- check_integer ----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 5, -3, np.int32(4), np.int64(2**40), np.uint8(9)])
def test_integer_accepts_python_and_numpy_integers(value):
    got = check_integer("k", value)
    assert type(got) is int and got == int(value)


@pytest.mark.parametrize("value", [True, False, np.bool_(False), 2.0, np.float64(3.0), "3",
                                   None, np.nan, np.inf, np.array(3), [3]])
def test_integer_refuses_bools_floats_and_the_rest(value):
    with pytest.raises(InvalidInputError) as info:
        check_integer("n_iter", value, minimum=1)
    assert str(info.value) == f"n_iter must be an integer >= 1, got {value!r}"


def test_integer_minimum():
    assert check_integer("seed", 0, minimum=0) == 0
    with pytest.raises(InvalidInputError, match=r"^seed must be an integer >= 0, got -1$"):
        check_integer("seed", -1, minimum=0)
    assert check_integer("seed", -1) == -1  # no minimum: any integer
    with pytest.raises(InvalidInputError, match=r"^seed must be an integer, got 1\.5$"):
        check_integer("seed", 1.5)


# ---- check_choice -----------------------------------------------------------------------------
def test_choice_returns_the_value_and_lists_choices_in_order():
    assert check_choice("init", "uniform", ("normal", "uniform")) == "uniform"
    assert check_choice("init", np.str_("normal"), ["normal", "uniform"]) == "normal"
    assert check_choice("sigma", None, (None, "auto")) is None
    with pytest.raises(InvalidInputError) as info:
        check_choice("threshold", "avg", ("zero", "mean", "median"))
    assert str(info.value) == "threshold must be one of zero, mean, median; got 'avg'"


def test_choice_suggests_a_close_spelling():
    with pytest.raises(InvalidInputError,
                       match=re.escape("got 'medain' (did you mean 'median'?)")):
        check_choice("threshold", "medain", ("mean", "median", "zero"))


@pytest.mark.parametrize("value", [["mean"], np.array(["mean", "zero"]), 1, None, True])
def test_choice_refuses_unhashable_and_other_types(value):
    with pytest.raises(InvalidInputError, match=r"^threshold must be one of mean, zero; got "):
        check_choice("threshold", value, ("mean", "zero"))


def test_choice_accepts_any_iterable_of_choices():
    assert check_choice("affinity", "heat", (c for c in ("heat", "binary"))) == "heat"


# ---- check_bool -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)])
def test_bool_accepts_python_and_numpy_bools(value):
    got = check_bool("normalize", value)
    assert type(got) is bool and got == bool(value)


@pytest.mark.parametrize("value", [0, 1, 1.0, "yes", "True", None, np.array([True])])
def test_bool_refuses_everything_else(value):
    with pytest.raises(InvalidInputError) as info:
        check_bool("normalize", value)
    assert str(info.value) == f"normalize must be True or False, got {value!r}"


def test_errors_are_value_errors_for_callers_that_catch_those():
    with pytest.raises(ValueError):
        check_number("x", "a")


# ---- declared constraints ----------------------------------------------------------------
from mmhash.params import Choice, Flag, Integer, Number  # noqa: E402


@pytest.mark.parametrize("constraint, checker", [
    (Number(low=0, low_open=True), lambda v: check_number("x", v, minimum=0, exclusive=True)),
    (Number(0, 1), lambda v: check_number("x", v, minimum=0, maximum=1)),
    (Integer(minimum=1), lambda v: check_integer("x", v, minimum=1)),
    (Choice(("a", "b")), lambda v: check_choice("x", v, ("a", "b"))),
    (Flag(), lambda v: check_bool("x", v)),
])
def test_a_constraint_refuses_its_invalid_values_with_the_checkers_message(constraint, checker):
    for bad in constraint.invalid_values():
        with pytest.raises(InvalidInputError) as declared:
            constraint.check("x", bad)
        if bad is not None:  # the checkers do not know "None allowed"
            with pytest.raises(InvalidInputError) as direct:
                checker(bad)
            assert str(declared.value) == str(direct.value)


def test_half_open_interval_names_the_end_broken_and_none_when_allowed():
    fraction = Number(0, 1, high_open=True)
    assert fraction.describe() == "number in [0, 1)"
    with pytest.raises(InvalidInputError, match="momentum must be a finite number < 1, got 1"):
        fraction.check("momentum", 1)
    with pytest.raises(InvalidInputError, match=">= 0"):
        fraction.check("momentum", -0.5)
    fraction.check("momentum", 0.0)
    width = Integer(minimum=1, none=True)
    width.check("width", None)
    assert width.describe() == "integer >= 1 or None" and None not in width.invalid_values()


def test_declarations_merge_along_the_class_hierarchy():
    pytest.importorskip("torch")
    from mmhash.registry import get_hasher_class

    djsrh = get_hasher_class("djsrh").declared_constraints()
    # the deep base's training parameters and the base's random_state, declared once each
    assert {"n_epochs", "batch_size", "optimizer", "learning_rate", "momentum", "weight_decay",
            "validation_fraction", "random_state"} <= set(djsrh)
    assert djsrh["batch_size"] == Integer(minimum=2)
    cvh = get_hasher_class("cvh").declared_constraints()
    assert list(cvh) == ["random_state", "reg", "max_features"]  # __init__'s order
