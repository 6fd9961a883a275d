"""Result storage in one SQLite file (stdlib sqlite3, WAL, one transaction per cell).

Schema (version 4):

* ``runs``: one row per ``mmhash bench`` invocation -- config, versions, git revision, machine;
* ``cells``: one row per finished (or failed) cell of a run -- the fields of its
  :class:`~mmhash.bench.cell.CellKey` (dataset, fingerprint, method, params, bits, seed, views,
  database), status, error, train/encode seconds, and the device a deep method trained on;
  since version 4 also, as JSON, the statistics of its codes per role and view
  (``code_stats``: distinct codes, bit balance, constant bits; :mod:`mmhash.bench.codestats`),
  the warnings raised while it ran (``warnings``) and its thread pools (``threads``: BLAS /
  OpenMP library, version and thread count, torch threads; :mod:`mmhash.bench.provenance`);
* ``results``: the metric values of a cell -- task, metric, tie policy, value;
* ``curves`` (since version 2): per cell and task, the PR curve by Hamming radius and the P@K
  curve, as JSON arrays;
* ``codes`` (since version 3): per cell, its codes, bit-packed and compressed
  (:class:`~mmhash.bench.codes.CodeSet`), so every metric can be recomputed without refitting;
* ``labels`` (since version 3): per dataset (name and fingerprint: the validation protocol of a
  dataset has other queries than the dataset), the query and retrieval labels the codes are
  evaluated against.

Opening a file of an older version migrates it in place, in one transaction (:data:`MIGRATIONS`):
version 2 -> 3 renames ``dataset_sha256`` to ``fingerprint`` and adds ``database`` (older cells
ran ``per-view``) and ``device``; their cells have no codes, which
:func:`mmhash.bench.recompute.recompute` reports. Version 3 -> 4 adds the three JSON columns;
older cells have none of them (NULL: not recorded), and read as unflagged.

A cell and its results are written in one transaction, so a run killed at any point loses only
the cell in flight, and earlier runs are never modified. Reports read the newest finished cell of
each key (:data:`~mmhash.bench.cell.KEY_FIELDS`).
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mmhash.bench.cell import KEY_FIELDS, VALUE_FIELDS, CellKey, CellRecord
from mmhash.bench.codes import CodeSet, labels_from_bytes, labels_to_bytes
from mmhash.errors import DataError

SCHEMA_VERSION = 4
DEFAULT_STORE = "mmhash-results.sqlite"

_KEY_COLUMNS = ", ".join(KEY_FIELDS)

_SCHEMA = f"""
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
    fingerprint TEXT,
    method TEXT NOT NULL,
    params TEXT NOT NULL,
    bits INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    views TEXT NOT NULL,
    database TEXT NOT NULL DEFAULT 'per-view',
    device TEXT,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error TEXT,
    train_seconds REAL,
    encode_seconds REAL,
    finished TEXT NOT NULL,
    code_stats TEXT,
    warnings TEXT,
    threads TEXT
);
CREATE INDEX IF NOT EXISTS cells_by_key ON cells ({_KEY_COLUMNS});
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

_CODES = [
    """CREATE TABLE IF NOT EXISTS codes (
        cell_id INTEGER PRIMARY KEY REFERENCES cells(cell_id),
        codes BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS labels (
        dataset TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        labels BLOB NOT NULL,
        PRIMARY KEY (dataset, fingerprint)
    )""",
]

#: The JSON columns of a cell beyond its results (schema 4): what flags a degenerate result
#: and where the cell ran (see :meth:`ResultStore.cell_checks`).
_CHECK_COLUMNS = ("code_stats", "warnings", "threads")

#: version -> statements that bring a store of that version to the next one.
MIGRATIONS: dict[int, list[str]] = {
    1: [_CURVES],
    2: ["ALTER TABLE cells RENAME COLUMN dataset_sha256 TO fingerprint",
        "ALTER TABLE cells ADD COLUMN database TEXT NOT NULL DEFAULT 'per-view'",
        "ALTER TABLE cells ADD COLUMN device TEXT",
        "DROP INDEX IF EXISTS cells_key",
        f"CREATE INDEX IF NOT EXISTS cells_by_key ON cells ({_KEY_COLUMNS})",
        *_CODES],
    3: [f"ALTER TABLE cells ADD COLUMN {column} TEXT" for column in _CHECK_COLUMNS],
}

#: The columns of a tidy result row, as exported: the cell key, then the value's fields.
RESULT_COLUMNS = (*KEY_FIELDS, *VALUE_FIELDS)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _newest_done(alias: str, same_run: bool) -> str:
    """SQL: ``alias`` is the newest finished cell of its key (within its run if ``same_run``)."""
    same = " AND ".join(f"c2.{f} IS {alias}.{f}" for f in KEY_FIELDS)
    run = f" AND c2.run_id = {alias}.run_id" if same_run else ""
    return (f"{alias}.cell_id = (SELECT MAX(c2.cell_id) FROM cells c2 "
            f"WHERE c2.status = 'done' AND {same}{run})")


class ResultStore:
    """A SQLite result file. Use as a context manager or call :meth:`close`.

    ``read_only=True`` (what reports use) never writes to the file or its folder's store: the
    file is opened with SQLite's ``mode=ro`` (``immutable`` on a read-only folder, where SQLite
    cannot make the WAL index), must already be an mmhash store -- an empty or foreign file is
    one :class:`DataError`, never given a schema -- and a store of an older schema is migrated in
    a copy in memory, leaving the file as it was.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_STORE, *, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        if self.path.exists() and self.path.is_dir():
            raise DataError(f"result store {self.path} is a directory, expected a SQLite file")
        if read_only:
            self._db = self._open_read_only()
            return
        try:
            self._db = self._open_writable()
        except sqlite3.OperationalError as exc:
            # "unable to open database file", "attempt to write a readonly database": the
            # folder or the file cannot be written (a read-only mount, permissions)
            raise DataError(f"result store {self.path} cannot be written ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path} is not a usable mmhash result store ({exc})") from None

    def _open_writable(self, wait: float = 60.0) -> sqlite3.Connection:
        """A writing connection in WAL mode with the schema in place. Two processes opening a
        new store at once race to create it, and SQLite answers the loser's switch to WAL with
        "database is locked" without waiting on its busy timeout: retried until ``wait``
        seconds have passed."""
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            db = sqlite3.connect(self.path, timeout=wait, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA foreign_keys=ON")
                self._db = db
                self._migrate()
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _open_read_only(self) -> sqlite3.Connection:
        from urllib.parse import quote

        if not self.path.is_file():
            raise DataError(f"no result store at {self.path}")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        quiet = not any(Path(f"{self.path}{end}").exists() for end in ("-wal", "-shm"))
        writable_folder = os.access(self.path.parent, os.W_OK)
        # SQLite's read-only connections make the WAL files but cannot remove them on close:
        # when this one makes them, close() has SQLite remove them (see _remove_wal_files)
        self._made_wal_files = quiet and writable_folder
        # In a folder nobody here can write, with no WAL beside it, no one is writing the store,
        # and SQLite could not make the WAL index a WAL store needs: read the file as it is.
        immutable = "&immutable=1" if quiet and not writable_folder else ""
        not_a_store = f"{self.path} is not an mmhash result store"
        try:
            try:
                db = sqlite3.connect(uri + immutable, uri=True, timeout=60,
                                     isolation_level=None)
                row = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                                 "name='meta'").fetchone()
            except sqlite3.OperationalError:
                if writable_folder or immutable:
                    raise
                # WAL files left in a read-only folder whose index cannot be opened
                db = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
                row = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                                 "name='meta'").fetchone()
            if not row:
                empty = " (an empty file)" if self.path.stat().st_size == 0 else ""
                db.close()
                raise DataError(f"{not_a_store}{empty}: it has no mmhash tables")
            found = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{not_a_store} ({exc})") from None
        if not found:
            db.close()
            raise DataError(f"{not_a_store}: it records no schema version")
        version = int(found[0])
        if version > SCHEMA_VERSION:
            db.close()
            raise DataError(f"{self.path} has schema version {version}, newer than this mmhash "
                            f"({SCHEMA_VERSION}); upgrade mmhash to read it")
        if version < SCHEMA_VERSION:  # read an upgraded copy; the file stays as it is
            memory = sqlite3.connect(":memory:", isolation_level=None)
            db.backup(memory)
            db.close()
            db = memory
            self._db = db
            self._migrate()
        return db

    # ---- schema -----------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._transaction():
            has_meta = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            row = has_meta and self._db.execute(
                "SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if not row:  # a new file: the current schema at once
                for statement in [*_SCHEMA.split(";"), _CURVES, *_CODES]:
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

    @property
    def schema_version(self) -> int:
        return int(self._db.execute(
            "SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

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

    def add_labels(self, dataset: str, fingerprint: str, query_labels: np.ndarray,
                   retrieval_labels: np.ndarray) -> None:
        """Keep a dataset's labels (once per name and fingerprint) for recomputing metrics from
        codes."""
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO labels (dataset, fingerprint, labels) VALUES (?, ?, ?)",
                (dataset, fingerprint, labels_to_bytes(query_labels, retrieval_labels)))

    def add_cell(self, run_id: int, record: CellRecord) -> int:
        """Store one cell, its results, curves and codes atomically; returns the cell id."""
        key = record.key.as_row()
        columns = [*KEY_FIELDS, "run_id", "status", "error", "train_seconds", "encode_seconds",
                   "device", "finished", *_CHECK_COLUMNS]
        values = [*(key[f] for f in KEY_FIELDS), run_id, record.status, record.error,
                  record.train_seconds, record.encode_seconds, record.device, _now(),
                  _json_or_none(record.code_stats), _json_or_none(list(record.warnings)),
                  _json_or_none(record.threads)]
        with self._transaction():
            cur = self._db.execute(
                f"INSERT INTO cells ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})", values)
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
            if record.codes is not None:
                self._db.execute("INSERT INTO codes (cell_id, codes) VALUES (?, ?)",
                                 (cell_id, record.codes.to_bytes()))
        return cell_id

    # ---- reading ----------------------------------------------------------------------------
    def finished_keys(self) -> set[CellKey]:
        """The keys of every cell stored as done."""
        rows = self._db.execute(f"SELECT {_KEY_COLUMNS} FROM cells WHERE status='done'")
        return {CellKey.from_row(dict(zip(KEY_FIELDS, row))) for row in rows}

    def _filters(self, run_id, dataset, methods, extra=()) -> tuple[list[str], list]:
        where, args = ["c.status='done'"], []
        for column, value in (("c.run_id", run_id), ("c.dataset", dataset), *extra):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if methods is not None:
            methods = list(methods)
            where.append(f"c.method IN ({','.join('?' * len(methods))})")
            args.extend(methods)
        where.append(_newest_done("c", same_run=run_id is not None))
        return where, args

    def results(self, *, run_id: int | None = None, dataset: str | None = None,
                methods: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Tidy rows (dict per value) of the newest finished cell per key, optionally filtered
        (with ``run_id``: the newest of that run).

        Keys of each row: the :data:`~mmhash.bench.cell.KEY_FIELDS`, task, metric, tie, value,
        train_seconds, encode_seconds, device, run_id, cell_id, and the cell's flags and
        provenance as :data:`FLAG_FIELDS` (see :func:`flag_row`).
        """
        where, args = self._filters(run_id, dataset, methods)
        extra = ("train_seconds", "encode_seconds", "device", "run_id", "cell_id")
        sql = f"""
            SELECT {', '.join(f'c.{f}' for f in KEY_FIELDS)}, r.task, r.metric, r.tie, r.value,
                   {', '.join(f'c.{f}' for f in extra)}
            FROM cells c JOIN results r ON r.cell_id = c.cell_id
            WHERE {' AND '.join(where)}
            ORDER BY c.dataset, c.method, c.params, c.bits, c.seed, r.task, r.metric, r.tie
        """
        names = (*KEY_FIELDS, *VALUE_FIELDS, *extra)
        rows = [dict(zip(names, row)) for row in self._db.execute(sql, args)]
        checks = self.cell_checks({r["cell_id"] for r in rows})
        return [flag_row(r, checks.get(r["cell_id"])) for r in rows]

    def cell_checks(self, cell_ids=None) -> dict[int, dict[str, Any]]:
        """Per cell id (all cells, or those in ``cell_ids``): ``code_stats`` (dict), ``warnings``
        (list of str) and ``threads`` (dict) as stored, each None where not recorded (cells of
        stores older than schema 4)."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(cells)")}
        if not set(_CHECK_COLUMNS) <= present:  # a store not migrated to schema 4
            return {}
        select = f"SELECT cell_id, {', '.join(_CHECK_COLUMNS)} FROM cells"
        if cell_ids is None:
            rows = list(self._db.execute(select))
        else:  # only the JSON of the cells asked for, in batches below SQLite's variable limit
            ids = sorted(set(cell_ids))
            batches = [ids[start:start + 500] for start in range(0, len(ids), 500)]
            rows = [row for batch in batches for row in self._db.execute(
                f"{select} WHERE cell_id IN ({','.join('?' * len(batch))})", batch)]
        return {row[0]: {name: None if text is None else json.loads(text)
                         for name, text in zip(_CHECK_COLUMNS, row[1:])} for row in rows}

    def curves(self, *, dataset: str | None = None, kind: str | None = None,
               run_id: int | None = None, methods: Iterable[str] | None = None
               ) -> list[dict[str, Any]]:
        """Stored curves of the newest finished cell per key (within ``run_id`` when given):
        dicts with the key fields, task, kind, tie and the arrays x, precision, recall (lists;
        recall None for p@k)."""
        where, args = self._filters(run_id, dataset, methods, extra=(("k.kind", kind),))
        sql = f"""
            SELECT {', '.join(f'c.{f}' for f in KEY_FIELDS)}, k.task, k.kind, k.tie,
                   k.x, k.precision, k.recall
            FROM cells c JOIN curves k ON k.cell_id = c.cell_id
            WHERE {' AND '.join(where)}
            ORDER BY c.dataset, c.method, c.params, c.bits, c.seed, k.task
        """
        out = []
        names = (*KEY_FIELDS, "task", "kind", "tie")
        for row in self._db.execute(sql, args):
            *head, x, p, r = row
            out.append({**dict(zip(names, head)), "x": json.loads(x), "precision": json.loads(p),
                        "recall": None if r is None else json.loads(r)})
        return out

    def stored_cells(self, *, run_id: int | None = None, dataset: str | None = None,
                     methods: Iterable[str] | None = None) -> list[tuple[int, CellKey, bool]]:
        """``(cell_id, key, has_codes)`` of the newest finished cell per key (as
        :meth:`results`)."""
        where, args = self._filters(run_id, dataset, methods)
        sql = f"""
            SELECT c.cell_id, {', '.join(f'c.{f}' for f in KEY_FIELDS)},
                   EXISTS (SELECT 1 FROM codes k WHERE k.cell_id = c.cell_id)
            FROM cells c WHERE {' AND '.join(where)}
            ORDER BY c.dataset, c.method, c.params, c.bits, c.seed
        """
        return [(row[0], CellKey.from_row(dict(zip(KEY_FIELDS, row[1:-1]))), bool(row[-1]))
                for row in self._db.execute(sql, args)]

    def codes(self, cell_id: int) -> CodeSet | None:
        """The stored codes of a cell, or None for a cell stored without them."""
        row = self._db.execute("SELECT codes FROM codes WHERE cell_id=?", (cell_id,)).fetchone()
        return None if row is None else CodeSet.from_bytes(row[0])

    def labels(self, dataset: str, fingerprint: str | None
               ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(query_labels, retrieval_labels)`` stored for a dataset, or None."""
        row = self._db.execute("SELECT labels FROM labels WHERE dataset=? AND fingerprint=?",
                               (dataset, fingerprint)).fetchone()
        return None if row is None else labels_from_bytes(row[0])

    def runs(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """The runs recorded (or only ``run_id``): dicts with run_id, started, finished, command,
        config, versions, git_revision and machine as stored (JSON text where JSON)."""
        names = ("run_id", "started", "finished", "command", "config", "versions",
                 "git_revision", "machine")
        rows = self._db.execute(f"SELECT {', '.join(names)} FROM runs ORDER BY run_id")
        return [dict(zip(names, r)) for r in rows if run_id is None or r[0] == run_id]

    def cell_origins(self) -> dict[int, dict[str, Any]]:
        """Per finished cell id: the run it belongs to and the device it trained on."""
        rows = self._db.execute("SELECT cell_id, run_id, device FROM cells WHERE status='done'")
        return {r[0]: {"cell_id": r[0], "run_id": r[1], "device": r[2]} for r in rows}

    def failures(self, run_id: int) -> list[dict[str, Any]]:
        names = (*KEY_FIELDS, "error")
        rows = self._db.execute(
            f"SELECT {_KEY_COLUMNS}, error FROM cells WHERE run_id=? AND status='failed'",
            (run_id,))
        return [dict(zip(names, r)) for r in rows]

    def close(self) -> None:
        self._db.close()
        if getattr(self, "_made_wal_files", False):
            self._remove_wal_files()

    def _remove_wal_files(self) -> None:
        """Remove the ``-wal``/``-shm`` files a read-only connection left beside the store.
        SQLite does it itself when a connection that may write closes last: it checkpoints an
        empty WAL (the store is not changed) and deletes both, and leaves them to any
        connection still open."""
        if not (Path(f"{self.path}-wal").exists() and os.access(self.path.parent, os.W_OK)):
            return
        try:
            db = sqlite3.connect(self.path, timeout=1)
            try:
                db.execute("PRAGMA query_only=ON")
                db.execute("SELECT 1 FROM sqlite_master").fetchone()
            finally:
                db.close()
        except sqlite3.Error:  # tidying is a courtesy; the store is read either way
            pass

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


#: What :func:`flag_row` adds to a tidy result row: ``degenerate`` (list of the problems of the
#: codes the row's task ranks; empty: none), ``warnings`` (list of the warnings the cell raised)
#: and ``threads`` (the thread pools it ran with, one line; "" where not recorded).
FLAG_FIELDS = ("degenerate", "warnings", "threads")


def flag_row(row: dict[str, Any], checks: dict[str, Any] | None) -> dict[str, Any]:
    """``row`` (a tidy result row with ``task``) with :data:`FLAG_FIELDS` from its cell's
    stored ``checks`` (:meth:`ResultStore.cell_checks`; None: nothing recorded, all "")."""
    from mmhash.bench.codestats import problems
    from mmhash.bench.provenance import describe_threads

    checks = checks or {}
    return {**row, "degenerate": problems(checks.get("code_stats"), row.get("task")),
            "warnings": list(checks.get("warnings") or []),
            "threads": describe_threads(checks.get("threads"))}


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
