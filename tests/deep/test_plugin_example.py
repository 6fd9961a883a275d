"""The README's deep-plugin example runs as written and passes the conformance suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("torch")

from mmhash.testing import check_hasher  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    section = README.read_text().split("### A deep plugin", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_deep_plugin_passes_the_conformance_suite():
    namespace: dict = {}
    exec(compile(_example(), "README.md (deep plugin)", "exec"), namespace)  # noqa: S102
    cls = namespace["TinyJointHasher"]
    results = check_hasher(cls, raise_on_failure=False)
    assert [f"{r.check}: {r.message}" for r in results if not r.passed] == []
    assert cls().device == "auto" and cls.name == "tiny-joint"
