"""Every registered hasher through every conformance check, with ids like ``cvh-deterministic``."""

from __future__ import annotations

import os

import pytest

from mmhash.registry import get_hasher_class, list_hashers
from mmhash.testing import iter_checks

#: Checks a method is known to fail, with why: each an open problem, not a hidden one. Strict:
#: a fix that makes the check pass turns the expected failure into a reminder to drop it here.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def _cases():
    for info in list_hashers():
        if not info.available:
            yield pytest.param(info.name, None, None, id=f"{info.name}-import",
                               marks=pytest.mark.unavailable(info.reason))
            continue
        cls = get_hasher_class(info.name)
        for check_name, run in iter_checks(cls):
            known = KNOWN_FAILURES.get((info.name, check_name))
            marks = [pytest.mark.xfail(reason=known, strict=True)] if known else []
            yield pytest.param(info.name, check_name, run, id=f"{info.name}-{check_name}",
                               marks=marks)


@pytest.mark.parametrize(("hasher", "check", "run"), list(_cases()))
def test_conformance(hasher, check, run, request):
    marker = request.node.get_closest_marker("unavailable")
    if marker is not None:
        # On CI every plugin must import; elsewhere a missing extra (torch) only skips.
        if os.environ.get("CI"):
            pytest.fail(f"{hasher} is unavailable on CI: {marker.args[0]}")
        pytest.skip(f"{hasher} unavailable: {marker.args[0]}")
    run()
