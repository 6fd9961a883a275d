"""Test-suite options: ``slow`` tests (full-size data, minutes, gigabytes) run only on request.

``pytest`` skips every test marked ``slow`` and says so in the summary; ``pytest --runslow`` runs
them too (e.g. ``pytest --runslow tests/data/test_standard_shaped.py -k full_size``).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (full-size data; minutes, GBs)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: full-size run; pass --runslow to include it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
