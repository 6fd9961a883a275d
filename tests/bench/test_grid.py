"""Grid expansion and validation of what users type."""

from __future__ import annotations

import pytest

from mmhash.bench.cell import task_name, tasks
from mmhash.bench.grid import expand, parse_bits, parse_seeds, view_groups
from mmhash.data.synthetic import make_synthetic
from mmhash.errors import InvalidInputError, UnknownNameError


def test_bits_are_sorted_unique_multiples_of_8():
    assert parse_bits("64,16,32,16") == [16, 32, 64]
    assert parse_bits([8, 1024]) == [8, 1024]


@pytest.mark.parametrize("bad", ["12", "0", "-8", "2048", "abc", "16.0", ""])
def test_bad_bits_name_the_rule(bad):
    with pytest.raises(InvalidInputError, match="--bits"):
        parse_bits(bad)


@pytest.mark.parametrize("bad", ["a", "-1", "1.5", ""])
def test_bad_seeds_are_refused(bad):
    with pytest.raises(InvalidInputError, match="--seeds"):
        parse_seeds(bad)


def test_tasks_are_every_ordered_pair():
    assert tasks(["image", "text"]) == [("image", "text"), ("text", "image")]
    assert len(tasks(["a", "b", "c"])) == 6
    assert task_name("image", "text") == "image->text"


def test_two_view_method_on_three_views_runs_each_pair():
    assert view_groups((2, 2), ["a", "b", "c"], "m") == [("a", "b"), ("a", "c"), ("b", "c")]
    assert view_groups((2, None), ["a", "b", "c"], "m") == [("a", "b", "c")]
    with pytest.raises(InvalidInputError, match="needs 3"):
        view_groups((3, None), ["a", "b"], "m")


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n=60, dims=(8, 6), n_labels=3, random_state=0)


def test_expand_gives_one_cell_per_bits_seed(data):
    cells = expand(data, ["rp"], [16, 32], [0, 1, 2])
    assert len(cells) == 6
    assert {(c.bits, c.seed) for c in cells} == {(b, s) for b in (16, 32) for s in (0, 1, 2)}
    assert len(set(cells)) == 6


def test_expand_refuses_unknown_method_and_param(data):
    with pytest.raises(UnknownNameError, match="did you mean 'rp'"):
        expand(data, ["rpp"], [16], [0])
    with pytest.raises(UnknownNameError, match="parameter of rp"):
        expand(data, ["rp"], [16], [0], {"rp": {"nope": 1}})
    with pytest.raises(InvalidInputError, match="--bits/--seeds"):
        expand(data, ["rp"], [16], [0], {"rp": {"n_bits": 8}})
    with pytest.raises(UnknownNameError, match="database"):
        expand(data, ["rp"], [16], [0], database="joint")
