"""Refactoring guard: every registered method gives, bit for bit, the query codes it gave at
commit 4cb0d6b (before hyperparameters were declared once), on cub10 and wiki at 16 and 64 bits,
seed 0 (``codes_guard.py`` wrote the reference from that commit, each cell in a fresh process;
deep methods at their conformance settings on one thread). LSSH, and IMH on wiki, take a
minute or more: they run with ``--runslow``. Cells changed on purpose since
(``codes_guard.CHANGED_ON_PURPOSE``, with the reason) are compared with the codes written after
the change, in ``data/codes-guard-updates.npz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from codes_guard import (
    BITS,
    CHANGED_ON_PURPOSE,
    DATASETS,
    ROUND_OFF,
    SLOW,
    guarded_methods,
    run_cell,
)

REFERENCE = Path(__file__).parent / "data" / "codes-guard-4cb0d6b.npz"
UPDATES = Path(__file__).parent / "data" / "codes-guard-updates.npz"


def _cells():
    for dataset in DATASETS:
        for method in guarded_methods():
            marks = [pytest.mark.slow] if (dataset, method) in SLOW else []
            if (dataset, method) in ROUND_OFF:
                marks.append(pytest.mark.skip(reason="codes depend on round-off (BLAS memory "
                                              "alignment), not only on the code and seed"))
            marks.append(pytest.mark.data)
            yield pytest.param(dataset, method, id=f"{dataset}-{method}", marks=marks)


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as z:
        codes = dict(z)
    with np.load(UPDATES) as z:
        updates = dict(z)
    for dataset, method in CHANGED_ON_PURPOSE:
        stale = [key for key in codes if key.startswith(f"{dataset}/{method}/")]
        assert stale and all(key in updates for key in stale), \
            f"{dataset}/{method} is changed on purpose but has no updated reference codes"
        codes.update({key: updates[key] for key in stale})
    return codes


@pytest.mark.parametrize("dataset_name, method", list(_cells()))
def test_codes_equal_the_reference(dataset_name, method, reference, tmp_path):
    pytest.importorskip("torch")
    from mmhash.data import load_dataset
    from mmhash.errors import DataError

    try:
        load_dataset(dataset_name)
    except DataError as exc:  # the real set is not under MMHASH_DATA here
        pytest.skip(str(exc))
    if not any(key.startswith(f"{dataset_name}/{method}/") for key in reference):
        pytest.skip(f"{method} was added after the reference was written")
    codes = run_cell(str(tmp_path / "cell.npz"), dataset_name, method)  # a fresh process
    assert len(codes) == 2 * len(BITS)  # two views, every bit length
    for key, value in codes.items():
        np.testing.assert_array_equal(value, reference[key], err_msg=f"{key} changed")
