"""Result storage in one SQLite file (stdlib sqlite3, WAL, one transaction per cell).

Schema (version 2):

* ``runs``: one row per ``mmhash bench`` invocation — config, versions, git revision, machine;
* ``cells``: one row per finished (or failed) cell of a run — dataset (+ sha256 of its files),
  method, params, bits, seed, views, status, error, train/encode seconds;
* ``results``: the metric values of a cell — task, metric, tie policy, value;
* ``curves`` (added in version 2): per cell and task, the PR curve by Hamming radius and the
  P@K curve, as JSON arrays.

Opening a file of an older version migrates it in place, in one transaction (:data:`MIGRATIONS`).

A cell and its results are written in one transaction, so a run killed at any point loses only
the cell in flight, and earlier runs are never modified. Reports read the newest finished cell of
each (dataset, method, params, bits, seed, views).
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmhash.errors import DataError

SCHEMA_VERSION = 2
DEFAULT_STORE = "mmhash-results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    finished TEXT,
    command TEXT,
    config TEXT NOT NULL,
    versions TEXT NOT NULL,
    git_revision TEXT,
    machine TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    cell_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    dataset TEXT NOT NULL,
    dataset_sha256 TEXT,
    method TEXT NOT NULL,
    params TEXT NOT NULL,
    bits INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    views TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error TEXT,
    train_seconds REAL,
    encode_seconds REAL,
    finished TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cells_key ON cells (dataset, method, params, bits, seed, views);
CREATE TABLE IF NOT EXISTS results (
    cell_id INTEGER NOT NULL REFERENCES cells(cell_id),
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    tie TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (cell_id, task, metric, tie)
);
"""

_CURVES = """
CREATE TABLE IF NOT EXISTS curves (
    cell_id INTEGER NOT NULL REFERENCES cells(cell_id),
    task TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('pr', 'p@k')),
    tie TEXT NOT NULL,
    x TEXT NOT NULL,
    precision TEXT NOT NULL,
    recall TEXT,
    PRIMARY KEY (cell_id, task, kind, tie)
)
"""

#: version -> statements that bring a store of that version to the next one.
MIGRATIONS: dict[int, list[str]] = {1: [_CURVES]}

RESULT_COLUMNS = ("dataset", "method", "bits", "seed", "task", "metric", "tie", "value")


@dataclass(frozen=True)
class CellRecord:
    """What the runner hands the store for one cell."""

    dataset: str
    dataset_sha256: str | None
    method: str
    params: str  # canonical JSON
    bits: int
    seed: int
    views: str  # comma-joined view names
    status: str
    error: str | None
    train_seconds: float | None
    encode_seconds: float | None
    results: Sequence[tuple[str, str, str, float]]  # (task, metric, tie, value)
    # (task, kind "pr" | "p@k", tie, x, precision, recall or None); x = radius or K
    curves: Sequence[tuple[str, str, str, list, list, list | None]] = ()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class ResultStore:
    """A SQLite result file. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike = DEFAULT_STORE):
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise DataError(f"result store {self.path} is a directory, expected a SQLite file")
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path} is not a usable mmhash result store ({exc})") from None

    # ---- schema -----------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._transaction():
            has_meta = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            row = has_meta and self._db.execute(
                "SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if not row:  # a new file: the current schema at once
                for statement in [*_SCHEMA.split(";"), _CURVES]:
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                 (str(SCHEMA_VERSION),))
                return
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise DataError(
                    f"{self.path} has schema version {version}, newer than this mmhash "
                    f"({SCHEMA_VERSION}); upgrade mmhash to read it"
                )
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    self._db.execute(statement)
                version += 1
            self._db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self_inner):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, exc, tb):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()

    # ---- writing ----------------------------------------------------------------------------
    def start_run(self, config: dict[str, Any], command: str | None = None) -> int:
        """Record a new run and return its id."""
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO runs (started, command, config, versions, git_revision, machine) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (_now(), command, json.dumps(config, sort_keys=True), json.dumps(_versions()),
                 _git_revision(), json.dumps(_machine())),
            )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int) -> None:
        with self._transaction():
            self._db.execute("UPDATE runs SET finished=? WHERE run_id=?", (_now(), run_id))

    def add_cell(self, run_id: int, record: CellRecord) -> int:
        """Store one cell and its results atomically; returns the cell id."""
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO cells (run_id, dataset, dataset_sha256, method, params, bits, seed, "
                "views, status, error, train_seconds, encode_seconds, finished) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, record.dataset, record.dataset_sha256, record.method, record.params,
                 record.bits, record.seed, record.views, record.status, record.error,
                 record.train_seconds, record.encode_seconds, _now()),
            )
            cell_id = int(cur.lastrowid)
            self._db.executemany(
                "INSERT INTO results (cell_id, task, metric, tie, value) VALUES (?, ?, ?, ?, ?)",
                [(cell_id, *row) for row in record.results],
            )
            self._db.executemany(
                "INSERT INTO curves (cell_id, task, kind, tie, x, precision, recall) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(cell_id, task, kind, tie, json.dumps(list(x)), json.dumps(list(p)),
                  None if r is None else json.dumps(list(r)))
                 for task, kind, tie, x, p, r in record.curves],
            )
        return cell_id

    # ---- reading ----------------------------------------------------------------------------
    def finished_keys(self) -> set[tuple]:
        """Keys (dataset, method, params, bits, seed, views) of every cell stored as done."""
        rows = self._db.execute(
            "SELECT dataset, method, params, bits, seed, views FROM cells WHERE status='done'"
        )
        return {tuple(r) for r in rows}

    def results(self, *, run_id: int | None = None, dataset: str | None = None,
                methods: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Tidy rows (dict per value) of the newest finished cell per key, optionally filtered.

        Keys of each row: dataset, method, params, bits, seed, views, task, metric, tie, value,
        train_seconds, encode_seconds, run_id.
        """
        where, args = ["c.status='done'"], []
        if run_id is not None:
            where.append("c.run_id=?")
            args.append(run_id)
        if dataset is not None:
            where.append("c.dataset=?")
            args.append(dataset)
        if methods is not None:
            methods = list(methods)
            where.append(f"c.method IN ({','.join('?' * len(methods))})")
            args.extend(methods)
        sql = f"""
            SELECT c.dataset, c.method, c.params, c.bits, c.seed, c.views, r.task, r.metric,
                   r.tie, r.value, c.train_seconds, c.encode_seconds, c.run_id
            FROM cells c JOIN results r ON r.cell_id = c.cell_id
            WHERE {' AND '.join(where)} AND c.cell_id = (
                SELECT MAX(c2.cell_id) FROM cells c2
                WHERE c2.status='done' AND c2.dataset=c.dataset AND c2.method=c.method
                  AND c2.params=c.params AND c2.bits=c.bits AND c2.seed=c.seed
                  AND c2.views=c.views {'AND c2.run_id=c.run_id' if run_id is not None else ''})
            ORDER BY c.dataset, c.method, c.bits, c.seed, r.task, r.metric, r.tie
        """
        names = ("dataset", "method", "params", "bits", "seed", "views", "task", "metric", "tie",
                 "value", "train_seconds", "encode_seconds", "run_id")
        return [dict(zip(names, row)) for row in self._db.execute(sql, args)]

    def curves(self, *, dataset: str | None = None, kind: str | None = None,
               run_id: int | None = None) -> list[dict[str, Any]]:
        """Stored curves of the newest finished cell per key: dicts with dataset, method, bits,
        seed, task, kind, tie and the arrays x, precision, recall (lists; recall None for p@k)."""
        where, args = ["c.status='done'"], []
        for column, value in (("c.dataset", dataset), ("k.kind", kind), ("c.run_id", run_id)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        sql = f"""
            SELECT c.dataset, c.method, c.params, c.bits, c.seed, c.views, k.task, k.kind, k.tie,
                   k.x, k.precision, k.recall
            FROM cells c JOIN curves k ON k.cell_id = c.cell_id
            WHERE {' AND '.join(where)} AND c.cell_id = (
                SELECT MAX(c2.cell_id) FROM cells c2
                WHERE c2.status='done' AND c2.dataset=c.dataset AND c2.method=c.method
                  AND c2.params=c.params AND c2.bits=c.bits AND c2.seed=c.seed
                  AND c2.views=c.views)
            ORDER BY c.dataset, c.method, c.bits, c.seed, k.task
        """
        out = []
        for row in self._db.execute(sql, args):
            *head, x, p, r = row
            names = ("dataset", "method", "params", "bits", "seed", "views", "task", "kind", "tie")
            out.append({**dict(zip(names, head)), "x": json.loads(x), "precision": json.loads(p),
                        "recall": None if r is None else json.loads(r)})
        return out

    def failures(self, run_id: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT dataset, method, bits, seed, views, error FROM cells "
            "WHERE run_id=? AND status='failed'", (run_id,))
        names = ("dataset", "method", "bits", "seed", "views", "error")
        return [dict(zip(names, r)) for r in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("mmhash", "mmhash-baselines", "numpy", "scipy", "scikit-learn", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git_revision() -> str | None:
    """The git revision of the mmhash source tree, when it is a checkout (editable installs)."""
    import subprocess

    src = Path(__file__).resolve().parents[2]
    if not (src / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _machine() -> dict[str, Any]:
    return {"node": platform.node(), "system": platform.system(), "machine": platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count()}
