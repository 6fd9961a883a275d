"""One cell identity: params, data fingerprint and database protocol separate results; stored
codes recompute every metric exactly; stores of the previous release migrate and report."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import mmhash
from mmhash.base import UNIFIED_DATABASE
from mmhash.bench.cell import KEY_FIELDS, SERIES_FIELDS, CellKey, Evaluation, canonical_params
from mmhash.bench.codes import CodeSet
from mmhash.bench.plan import execute_plan, make_plan
from mmhash.bench.recompute import recompute
from mmhash.bench.report import row_labels, tables
from mmhash.bench.store import SCHEMA_VERSION, ResultStore
from mmhash.cli import main
from mmhash.errors import DataError
from mmhash.evaluation import TIE_POLICIES
from mmhash.hashers.rp import RandomProjectionHasher

RELEASE_STORE = Path(__file__).parent / "data" / "store-v2-release-0.1.0.sqlite"
SMALL = ["--bits", "16", "--seeds", "0"]


def _bench(store, *args):
    result = CliRunner().invoke(main, ["bench", "--store", str(store), *args])
    assert result.exit_code == 0, result.output
    return result


def test_runs_with_other_params_are_other_rows_not_seeds(tmp_path):
    """Bug 1: cvh reg=1e-4 and reg=1000 (both seed 0) were averaged as '2 seeds'."""
    store = tmp_path / "s.sqlite"
    _bench(store, "--methods", "cvh", *SMALL, "--param", "cvh.reg=1e-4")
    _bench(store, "--methods", "cvh", *SMALL, "--param", "cvh.reg=1000")
    report = CliRunner().invoke(main, ["report", "--store", str(store)])
    assert report.exit_code == 0, report.output
    assert "cvh (reg=0.0001)" in report.output and "cvh (reg=1000)" in report.output
    assert "±" not in report.output and "2 seeds" not in report.output
    csv = CliRunner().invoke(main, ["report", "--store", str(store), "--format", "csv"])
    frame = pd.read_csv(pd.io.common.StringIO(csv.output))
    assert sorted(frame["params"].unique()) == ['{"reg": 0.0001}', '{"reg": 1000}']
    assert frame["fingerprint"].nunique() == 1 and len(frame["fingerprint"][0]) == 64


def test_curves_of_a_run_after_a_rerun(tmp_path):
    """Bug 2: curves(run_id=1) looked for the newest cell of any run, so after a rerun the
    report of run 1 had no curves (and --plot silently wrote no figure)."""
    store = tmp_path / "s.sqlite"
    _bench(store, "--methods", "rp", *SMALL)
    _bench(store, "--methods", "rp", *SMALL)
    with ResultStore(store) as results:
        first, second = results.curves(run_id=1), results.curves(run_id=2)
        assert first and len(first) == len(second)
        assert len(results.curves()) == len(second)  # newest per key overall
    plots = tmp_path / "plots"
    res = CliRunner().invoke(main, ["report", "--store", str(store), "--run", "1", "--plot",
                                    str(plots)])
    assert res.exit_code == 0, res.output
    assert len(list(plots.iterdir())) == 4  # 2 tasks x (PR, P@K)


def test_one_definition_of_the_key():
    assert KEY_FIELDS == ("dataset", "fingerprint", "method", "params", "bits", "seed", "views",
                          "database")
    assert SERIES_FIELDS == tuple(f for f in KEY_FIELDS if f != "seed")
    key = CellKey("wiki", "f" * 64, "cvh", canonical_params({"reg": np.float64(2.0)}), 16, 0,
                  ("image", "text"))
    assert key.params == '{"reg": 2.0}'
    assert CellKey.from_row(key.as_row()) == key
    assert key.label() == "cvh (reg=2.0) 16 bits seed 0 on wiki [image+text]"


def test_same_dataset_name_with_other_data_is_another_table():
    row = {"dataset": "wiki", "method": "cvh", "params": "{}", "views": "image,text",
           "database": "per-view", "task": "image->text", "metric": "map", "tie": "expected",
           "bits": 16, "seed": 0}
    rows = [{**row, "fingerprint": "a" * 64, "value": 0.2},
            {**row, "fingerprint": "b" * 64, "value": 0.4}]
    out = tables(rows)
    assert len(out) == 2
    assert "[data aaaaaaaaaaaa]" in out[0].caption and "[data bbbbbbbbbbbb]" in out[1].caption
    assert [t.cells[("cvh", "image->text", 16)][2] for t in out] == [1, 1]  # never one mean


def test_row_labels_show_only_what_differs():
    labels = row_labels([("cvh", "{}", "a,b", "per-view"),
                         ("cvh", '{"reg": 1000}', "a,b", "per-view"),
                         ("cmfh", '{"mu": 1}', "a,b", "unified"),
                         ("ujsah", '{"n_epochs": 5}', "a,b", "per-view"),
                         ("ujsah", '{"n_epochs": 5}', "a,b,c", "per-view")])
    assert list(labels.values()) == ["cvh", "cvh (reg=1000)", "cmfh [unified db]",
                                     "ujsah (views=a+b)", "ujsah (views=a+b+c)"]


@pytest.fixture(scope="module")
def fresh_store(tmp_path_factory):
    """Every metric form under every tie policy, for rp and cvh, stored with their codes."""
    store = tmp_path_factory.mktemp("fresh") / "s.sqlite"
    plan = make_plan(methods="rp,cvh", bits="16,24", seeds="0,1",
                     metrics="map,map@50,p@20,map@5000", ties=",".join(TIE_POLICIES))
    with ResultStore(store) as results:
        execute_plan(plan, results)
    return store


def test_recompute_equals_the_fresh_run_exactly(fresh_store):
    with ResultStore(fresh_store) as store:
        stored = store.results()
        again = recompute(store, metrics=("map", "map@50", "p@20", "map@5000"),
                          ties=TIE_POLICIES)
        stored_curves = store.curves()
    assert not again.without_codes
    fields = (*KEY_FIELDS, "task", "metric", "tie")
    want = {tuple(r[f] for f in fields): r["value"] for r in stored}
    got = {tuple(r[f] for f in fields): r["value"] for r in again.rows}
    assert len(want) == 2 * 2 * 2 * 2 * 4 * 4 and got == want  # bit-identical floats
    key = (*KEY_FIELDS, "task", "kind", "tie")

    def curves(rows):  # as JSON text: NaN (no query retrieves anything) compares equal
        return {tuple(c[f] for f in key): json.dumps([c["x"], c["precision"], c["recall"]])
                for c in rows}

    assert curves(again.curves) == curves(stored_curves)


def test_recompute_with_a_new_metric_and_policy_from_the_cli(fresh_store):
    res = CliRunner().invoke(main, ["report", "--store", str(fresh_store), "--recompute",
                                    "--metrics", "map@100,p@50", "--tie", "index"])
    assert res.exit_code == 0, res.output
    assert "mAP@100" in res.output and "P@50" in res.output and "tie policy: index" in res.output
    bad = CliRunner().invoke(main, ["report", "--store", str(fresh_store), "--recompute",
                                    "--metrics", "ndcg"])
    assert bad.exit_code == 2 and "metric" in bad.output and "map@K" in bad.output


def test_stored_codes_are_the_cells_codes(fresh_store):
    data = mmhash.load_dataset("synthetic")
    train, _ = data.part("train")
    (queries, _), (items, _) = data.part("query"), data.part("retrieval")
    hasher = mmhash.get_hasher("cvh", n_bits=24, random_state=1).fit(train)
    with ResultStore(fresh_store) as store:
        cell_id = next(i for i, k, _ in store.stored_cells(methods=["cvh"])
                       if k.bits == 24 and k.seed == 1)
        codes = store.codes(cell_id)
    np.testing.assert_array_equal(codes.query["text"], hasher.encode(queries["text"], "text"))
    np.testing.assert_array_equal(codes.retrieval["image"],
                                  hasher.encode(items["image"], "image"))


def test_code_blobs_round_trip_and_refuse_junk():
    rng = np.random.default_rng(0)
    codes = {v: np.where(rng.random((7, 24)) < 0.5, -1, 1).astype(np.int8) for v in "ab"}
    db = np.where(rng.random((5, 24)) < 0.5, -1, 1).astype(np.int8)
    back = CodeSet.from_bytes(CodeSet(("a", "b"), codes, {}, db).to_bytes())
    np.testing.assert_array_equal(back.database, db)
    np.testing.assert_array_equal(back.query["b"], codes["b"])
    assert back.retrieval == {} and back.retrieval_for("a") is back.database
    with pytest.raises(DataError, match="stored codes cannot be read"):
        CodeSet.from_bytes(b"not an npz")


def test_release_store_is_migrated_reported_and_says_what_cannot_be_recomputed(tmp_path):
    """A store written by mmhash 0.1.0 (schema 2; cvh with reg=0.001 at seeds 0 and 1 and
    reg=1000 at seed 0, which that release averaged as seeds)."""
    path = tmp_path / "old.sqlite"
    shutil.copy(RELEASE_STORE, path)
    assert sqlite3.connect(path).execute("SELECT value FROM meta").fetchone()[0] == "2"
    report = CliRunner().invoke(main, ["report", "--store", str(path)])
    assert report.exit_code == 0, report.output
    assert "cvh (reg=0.001)" in report.output and "cvh (reg=1000)" in report.output
    with ResultStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert {k.database for _, k, _ in store.stored_cells()} == {"per-view"}
        assert {k.fingerprint for _, k, _ in store.stored_cells()} != {None}
    again = CliRunner().invoke(main, ["report", "--store", str(path), "--recompute"])
    assert again.exit_code == 2
    assert "9 cell(s) have no stored codes" in again.output
    # new cells in the migrated store keep their codes and resume against the old keys
    _bench(path, "--methods", "rp,cvh", "--bits", "16,32", "--seeds", "0,1", "--param",
           "cvh.reg=0.001", "--resume", "--tie", "expected,index")
    with ResultStore(path) as store:
        assert store._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3
        assert store._db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 9  # all skipped


class UnifiedProjection(RandomProjectionHasher):
    """Random projections with a unified database code (the sum of both views' scores)."""

    name = "unified-rp"
    capabilities = frozenset({UNIFIED_DATABASE})

    def _encode_database(self, views):
        return sum(self._encode(X, m) for m, X in views.items())


@pytest.fixture
def unified_rp():
    mmhash.register(UnifiedProjection)
    yield
    mmhash.registry.unregister("unified-rp")


def test_unified_database_protocol_is_keyed_stored_and_captioned(tmp_path, unified_rp):
    store = tmp_path / "s.sqlite"
    printed = _bench(store, "--methods", "unified-rp,rp", *SMALL, "--database", "unified")
    assert "unified-rp [unified db]" in printed.output  # not swallowed as rich markup
    _bench(store, "--methods", "unified-rp", *SMALL)
    with ResultStore(store) as results:
        cells = results.stored_cells()
        protocols = sorted((k.method, k.database) for _, k, _ in cells)
        assert protocols == [("rp", "per-view"), ("unified-rp", "per-view"),
                             ("unified-rp", "unified")]
        unified = next(i for i, k, _ in cells if k.database == "unified")
        codes = results.codes(unified)
    assert codes.database is not None and codes.retrieval == {}
    report = CliRunner().invoke(main, ["report", "--store", str(store)])
    assert "unified-rp [unified db]" in report.output and "| unified-rp " in report.output
    assert "rows marked [unified db] rank against one code per item" in report.output


def test_evaluation_tokens_are_parsed_not_tried():
    assert Evaluation.parse(["map@50", "map", "map@50"], ["index"]) == Evaluation(
        ("map@50", "map"), ("index",))
    with pytest.raises(mmhash.UnknownNameError, match="tie policy"):
        Evaluation.parse(["map"], ["random"])
    with pytest.raises(mmhash.InvalidInputError, match="K must be a positive integer"):
        Evaluation.parse(["p@0"], ["expected"])


def test_large_sets_are_encoded_in_slices_with_the_same_codes(monkeypatch):
    from mmhash.bench import cell

    data = mmhash.load_dataset("synthetic")
    train, _ = data.part("train")
    (items, _) = data.part("retrieval")
    hasher = mmhash.get_hasher("cvh", n_bits=16).fit(train)
    whole = cell.encode_in_chunks(hasher.encode, items["image"], "image")
    monkeypatch.setattr(cell, "ENCODE_ROWS", 7)
    calls = []
    sliced = cell.encode_in_chunks(lambda X, v: calls.append(len(X)) or hasher.encode(X, v),
                                   items["image"], "image")
    np.testing.assert_array_equal(sliced, whole)
    assert max(calls) == 7 and sum(calls) == len(items["image"])
    # by row positions of the whole array: the same codes, gathered a slice at a time
    calls.clear()
    by_rows = cell.encode_in_chunks(lambda X, v: calls.append(len(X)) or hasher.encode(X, v),
                                    data.views["image"], "image", rows=data.split.retrieval)
    np.testing.assert_array_equal(by_rows, whole)
    assert max(calls) == 7 and sum(calls) == len(data.split.retrieval)


def test_a_real_valued_ranking_cell_is_evaluated_from_its_distances(tmp_path):
    """A reference ranks by cosine: its cell holds the values evaluate_ranking gives for its
    distances, P@K curves but no PR curve, no codes (so recompute lists it), and --plot and
    report still work."""
    from mmhash.evaluation import evaluate_ranking

    store = tmp_path / "s.sqlite"
    _bench(store, "--methods", "cca-real,cvh", *SMALL, "--tie", "expected,index")
    data = mmhash.load_dataset("synthetic")
    train, _ = data.part("train")
    (queries, q_labels), (items, r_labels) = data.part("query"), data.part("retrieval")
    cca = mmhash.get_hasher("cca-real", n_bits=16).fit(train)
    D = cca.distances(cca.represent(queries["text"], "text"),
                      cca.represent(items["image"], "image", "database"))
    want = evaluate_ranking(D, q_labels, r_labels, ties=["expected", "index"]).values
    with ResultStore(store) as results:
        got = {(r["tie"]): r["value"] for r in results.results(methods=["cca-real"])
               if r["task"] == "text->image"}
        kinds = {c["kind"] for c in results.curves() if c["method"] == "cca-real"}
        again = recompute(results)
    assert got == {"expected": want[("map", "expected")], "index": want[("map", "index")]}
    assert kinds == {"p@k"}
    assert [k.method for k in again.without_codes] == ["cca-real"]
    report = CliRunner().invoke(main, ["report", "--store", str(store), "--plot",
                                       str(tmp_path / "fig")])
    assert report.exit_code == 0, report.output
    assert "cca-real [reference]" in report.output


def test_report_combines_stores_and_a_cell_in_two_stores_counts_once(tmp_path):
    one, two = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    _bench(one, "--methods", "rp,cvh", *SMALL)
    _bench(two, "--methods", "cvh", *SMALL)
    both = CliRunner().invoke(main, ["report", "--store", str(one), "--store", str(two)])
    assert both.exit_code == 0, both.output
    assert "| rp " in both.output and "| cvh " in both.output
    assert "±" not in both.output and "single seed" in both.output
    missing = CliRunner().invoke(main, ["report", "--store", str(one), "--store",
                                        str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 2 and "no result store at" in missing.output
