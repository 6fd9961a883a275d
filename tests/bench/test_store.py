"""The SQLite result store: atomic cells, newest-wins reads, clear errors on bad files."""

from __future__ import annotations

import sqlite3

import pytest

from mmhash.bench.cell import CellKey, CellRecord
from mmhash.bench.store import SCHEMA_VERSION, ResultStore
from mmhash.errors import DataError


def _key(seed=0, params="{}", fingerprint="abc", run_views=("image", "text")):
    return CellKey("synthetic", fingerprint, "rp", params, 16, seed, run_views)


def _record(value=0.5, seed=0, status="done", results=None, **key):
    rows = results if results is not None else [("image->text", "map", "expected", value),
                                                 ("text->image", "map", "expected", value + 0.1)]
    return CellRecord(_key(seed, **key), status, None if status == "done" else "boom", 0.1,
                      0.01, rows)


def test_cells_round_trip_and_newest_wins(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        run = store.start_run({"methods": ["rp"]})
        store.add_cell(run, _record(0.5))
        store.add_cell(run, _record(0.7))  # same key, later: the newer value is reported
        store.add_cell(run, _record(0.2, seed=1))
        rows = store.results()
        assert {(r["seed"], r["task"], round(r["value"], 6)) for r in rows} == {
            (0, "image->text", 0.7), (0, "text->image", 0.8),
            (1, "image->text", 0.2), (1, "text->image", 0.3)}
        assert store.finished_keys() == {_key(0), _key(1)}


def test_failed_cell_is_kept_but_not_reported(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        run = store.start_run({})
        store.add_cell(run, _record(status="failed", results=[]))
        assert store.results() == []
        assert store.failures(run)[0]["error"] == "boom"
        assert store.finished_keys() == set()


def test_cell_and_results_are_one_transaction(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        run = store.start_run({})
        duplicate = [("image->text", "map", "expected", 0.1)] * 2  # violates the primary key
        with pytest.raises(sqlite3.IntegrityError):
            store.add_cell(run, _record(results=duplicate))
        count = store._db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        assert count == 0  # the cell row was rolled back with its results


def test_runs_record_versions_and_machine(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        run = store.start_run({"bits": [16]}, command="mmhash bench")
        row = store._db.execute("SELECT versions, machine, config FROM runs WHERE run_id=?",
                                (run,)).fetchone()
    assert '"mmhash"' in row[0] and '"python"' in row[1] and '"bits"' in row[2]


def test_newer_schema_and_corrupt_file_are_clear_errors(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(DataError, match="newer than this mmhash"):
        ResultStore(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match="not a usable mmhash result store"):
        ResultStore(junk)


def test_version_1_store_is_migrated_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    for statement in _VERSION_1_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO runs (started, config, versions, machine) "
               "VALUES ('t', '{}', '{}', '{}')")
    db.execute("INSERT INTO cells (run_id, dataset, method, params, bits, seed, views, status, "
               "finished) VALUES (1, 'synthetic', 'rp', '{}', 16, 0, 'image,text', 'done', 't')")
    db.execute("INSERT INTO results VALUES (1, 'image->text', 'map', 'expected', 0.25)")
    db.commit()
    db.close()
    with ResultStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        old = store.results()
        assert [r["value"] for r in old] == [0.25]  # old results intact
        assert old[0]["fingerprint"] is None and old[0]["database"] == "per-view"
        run = store.start_run({})
        curve = ("image->text", "pr", "none", [0, 1], [1.0, 0.5], [0.2, 1.0])
        store.add_cell(run, CellRecord(_key(1, fingerprint="x"), "done", None, 0.1, 0.1,
                                       [("image->text", "map", "expected", 0.3)], [curve]))
        got = store.curves(kind="pr")
        assert got[0]["precision"] == [1.0, 0.5] and got[0]["recall"] == [0.2, 1.0]
        assert store.stored_cells()[0][1].fingerprint is None  # keys with NULL still match


# The version-1 schema exactly as mmhash 0.1.0's store module created it (before the curves).
_VERSION_1_SCHEMA = """
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
