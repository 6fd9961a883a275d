"""Shared checks of the hostile-use table: every command run against bad input ends in one clear
line on stderr and a known exit code, with no traceback, its inputs unchanged byte for byte and
no partial output left behind."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmhash.cli import main


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


@dataclass
class Outcome:
    """What one command did: its exit code, stdout, stderr and the exception it raised."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def line(self) -> str:
        return self.stderr.strip()


def run_hostile(args: Sequence[str], *, inputs: Sequence[Path] = (),
                outputs: Sequence[Path] = (), code: int = 2, match: str | None = None,
                stdin: str | None = None) -> Outcome:
    """Run ``mmhash ARGS`` and assert the hostile-use contract.

    ``inputs``: files that must be byte-for-byte unchanged afterwards. ``outputs``: paths that
    must not exist afterwards (no partial output). ``code``: the expected exit code. ``match``:
    a substring the one stderr line must contain (case-sensitive).
    """
    before = {p: _digest(Path(p)) for p in inputs}
    result = CliRunner().invoke(main, [str(a) for a in args], input=stdin)
    outcome = Outcome(result.exit_code, result.stdout, result.stderr,
                      None if isinstance(result.exception, SystemExit) else result.exception)
    assert outcome.exception is None, f"raised {outcome.exception!r}: {result.stderr}"
    assert "Traceback" not in result.output, result.output
    assert outcome.exit_code == code, (outcome.exit_code, result.output)
    if code != 0:
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, outcome.stderr
        if match is not None:
            assert match in lines[0], lines[0]
    for path, digest in before.items():
        assert _digest(Path(path)) == digest, f"{path} was changed"
    for path in outputs:
        assert not Path(path).exists(), f"{path} was left behind"
    return outcome


@pytest.fixture
def hostile():
    return run_hostile
