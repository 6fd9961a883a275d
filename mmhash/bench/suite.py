"""Named benchmark grids: ``NAME.toml`` files, with their accepted regression values beside them
(``NAME.json``, see :mod:`mmhash.bench.regress`).

Suites are looked up by name in ``$MMHASH_SUITES``, then ``./benchmarks/suites`` (a project's own
suites), then the suites that ship inside the installed mmhash (:mod:`mmhash.suites`); any
``.toml`` path works too. A suite file::

    description = "All shallow methods on Wikipedia, as in the papers"
    datasets = ["wiki"]
    methods = ["cvh", "cmfh"]
    bits = [16, 32, 64, 128]
    seeds = [0, 1, 2]
    metrics = ["map"]            # optional, default ["map"]
    ties = ["expected", "index"] # optional, default ["expected"]
    database = "unified"         # optional, default "per-view" (see mmhash.bench.cell)
    protocol = "ucch"            # optional: split protocol of the field's benchmark files
                                 # (mmhash.data.protocols), default each dataset's own

    [params.cmfh]                # optional per-method hyperparameters
    n_iter = 50
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmhash.errors import DataError, InvalidInputError, UnknownNameError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_KEYS = {"description", "datasets", "methods", "bits", "seeds", "metrics", "ties", "params",
         "database", "protocol"}


@dataclass
class Suite:
    name: str
    datasets: list[str]
    methods: list[str]
    bits: list[int]
    seeds: list[int]
    metrics: list[str] = field(default_factory=lambda: ["map"])
    ties: list[str] = field(default_factory=lambda: ["expected"])
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    database: str | None = None
    protocol: str | None = None
    description: str = ""
    path: str = ""


def suite_dirs() -> list[Path]:
    """Where suite names are looked up: ``$MMHASH_SUITES``, ``./benchmarks/suites``, and the
    suites installed with mmhash."""
    from importlib.resources import files

    dirs = []
    if os.environ.get("MMHASH_SUITES"):
        dirs.append(Path(os.environ["MMHASH_SUITES"]))
    dirs.append(Path.cwd() / "benchmarks" / "suites")
    dirs.append(Path(str(files("mmhash.suites"))))
    return list(dict.fromkeys(d.resolve() for d in dirs))


def available_suites() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in suite_dirs():
        for path in sorted(d.glob("*.toml")) if d.is_dir() else []:
            found.setdefault(path.stem, path)
    return found


def _protocol(raw: dict[str, Any], path: Path) -> str | None:
    if "protocol" not in raw:
        return None
    from mmhash.data.protocols import PROTOCOLS

    if raw["protocol"] not in PROTOCOLS:
        raise UnknownNameError(f"protocol in suite {path.name}", str(raw["protocol"]), PROTOCOLS)
    return str(raw["protocol"])


def load_suite(name_or_path: str) -> Suite:
    """Read a suite by name (see :func:`suite_dirs`) or from a ``.toml`` path."""
    from mmhash.bench.grid import parse_bits, parse_database, parse_names, parse_seeds

    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.is_file()):
        suites = available_suites()
        if name_or_path not in suites:
            raise UnknownNameError("suite", name_or_path, suites)
        path = suites[name_or_path]
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"suite file {path} cannot be read: {exc}") from None
    unknown = set(raw) - _KEYS
    if unknown:
        raise UnknownNameError(f"key in suite {path.name}", sorted(unknown)[0], _KEYS)
    for key in ("datasets", "methods", "bits", "seeds"):
        if not raw.get(key):
            raise InvalidInputError(f"suite {path.name} must set a non-empty {key!r} list")
    params = raw.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise InvalidInputError(f"suite {path.name}: [params.METHOD] tables expected")
    return Suite(
        name=path.stem, datasets=parse_names(raw["datasets"], f"suite {path.name} datasets"),
        methods=parse_names(raw["methods"], f"suite {path.name} methods"),
        bits=parse_bits(raw["bits"]),
        seeds=parse_seeds([str(s) for s in raw["seeds"]]),
        metrics=[str(m) for m in raw.get("metrics", ["map"])],
        ties=[str(t) for t in raw.get("ties", ["expected"])], params=params,
        database=parse_database(raw["database"]) if "database" in raw else None,
        protocol=_protocol(raw, path),
        description=str(raw.get("description", "")), path=str(path),
    )
