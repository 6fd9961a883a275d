"""Every registered method at the standard protocols' sizes: it fits, encodes every query and
retrieval item and is evaluated, or it refuses before fitting with one clear line that names
the limit and the parameter that raises it.

Slow (the NUS-WIDE-shaped set is 7.6 GB in memory; the shallow methods take minutes): run with
``pytest --runslow tests/test_standard_sizes.py``. Deep methods train one epoch here; their
per-epoch times and every method's fit/encode/evaluate seconds and peak memory are measured by
``benchmarks/studies/standard_sizes.py``.
"""

from __future__ import annotations

import functools
import math
import re

import pytest

from mmhash.base import EPOCH_PROGRESS, declares
from mmhash.bench.cell import CellKey, Evaluation, canonical_params, run_cell
from mmhash.data import load_dataset
from mmhash.errors import InvalidInputError
from mmhash.registry import get_hasher_class, list_hashers

STANDARD_SETS = ("synthetic-mirflickr", "synthetic-nuswide")


@functools.lru_cache(maxsize=1)  # one set in memory at a time: nuswide alone is 7.6 GB
def _load(name: str):
    return load_dataset(name)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", STANDARD_SETS)
@pytest.mark.parametrize("method", [h.name for h in list_hashers() if h.available])
def test_fits_or_refuses_at_the_standard_sizes(dataset, method):
    data = _load(dataset)
    params = {"n_epochs": 1} if declares(get_hasher_class(method), EPOCH_PROGRESS) else {}
    key = CellKey(data.name, "standard-size", method, canonical_params(params), 64, 0,
                  tuple(data.view_names))
    try:
        record = run_cell(data, key, Evaluation(("map",), ("expected",)))
    except InvalidInputError as exc:
        # a refusal names the limit as NAME=VALUE and says how to raise it
        assert re.search(r"\w+=\d", str(exc)) and "raise" in str(exc), str(exc)
        return
    values = [value for *_, value in record.results]
    assert len(values) == 2 and all(math.isfinite(v) and 0 < v <= 1 for v in values)
    for view in data.view_names:
        assert len(record.codes.retrieval_for(view)) == len(data.split.retrieval)
