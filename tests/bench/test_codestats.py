"""Degenerate results are flagged wherever they are shown: the statistics of a cell's codes
(distinct codes, bit balance, constant bits), the warnings a cell raised and the thread pools it
ran with, stored with the cell and shown by bench and every report format."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import mmhash
from mmhash.bench.cell import CellKey, CellRecord
from mmhash.bench.codes import CodeSet
from mmhash.bench.codestats import cell_statistics, code_statistics, problems
from mmhash.bench.report import DEGENERATE_MARK, WARNING_MARK
from mmhash.bench.store import SCHEMA_VERSION, ResultStore
from mmhash.cli import main
from mmhash.hashers.rp import RandomProjectionHasher


def _brute_force(codes: np.ndarray) -> dict:
    rows = {tuple(row) for row in codes.tolist()}
    n, bits = codes.shape
    balance = [sum(1 for row in codes.tolist() if row[b] == 1) / n for b in range(bits)]
    constant = [b for b in range(bits) if len({row[b] for row in codes.tolist()}) == 1]
    return {"rows": n, "bits": bits, "distinct": len(rows),
            "balance": [round(v, 4) for v in balance], "constant": constant}


@pytest.mark.parametrize("case", ["random", "all-equal", "one-constant-bit", "few-codes",
                                  "long-codes", "few-long-codes", "one-row"])
def test_statistics_match_brute_force(case):
    rng = np.random.default_rng(3)
    # 72 bits: packed rows of 9 bytes, two 64-bit words (the mixed path), not a word size
    bits = 72 if "long" in case else 16
    codes = np.where(rng.random((50, bits)) < 0.5, 1, -1).astype(np.int8)
    if case == "all-equal":
        codes[:] = codes[0]
    elif case == "one-constant-bit":
        codes[:, 5] = -1
    elif case.startswith("few"):
        codes = codes[rng.integers(0, 3, 50)]
    elif case == "one-row":
        codes = codes[:1]
    stats = code_statistics(codes)
    assert stats == _brute_force(codes)
    if case == "all-equal":
        assert stats["distinct"] == 1 and stats["constant"] == list(range(bits))
    if case == "one-constant-bit":
        assert stats["constant"] == [5] and stats["balance"][5] == 0.0


def test_problems_name_the_blocks_a_task_ranks():
    rng = np.random.default_rng(0)
    good = np.where(rng.random((40, 8)) < 0.5, 1, -1).astype(np.int8)
    stuck = np.ones((40, 8), dtype=np.int8)
    codes = CodeSet(("image", "text"), {"image": good[:10], "text": good[:10]},
                    {"image": good, "text": stuck})
    stats = cell_statistics(codes, n_classes=4)
    assert problems(stats, "text->image") == []  # text queries, image items: both fine
    found = problems(stats, "image->text")
    assert found == ["text retrieval codes: 1 distinct codes for 40 items (4 classes)",
                     "text retrieval codes: 8 of 8 bits constant"]
    assert problems(stats) == found and problems(None) == []


class Collapsing(RandomProjectionHasher):
    """Random projections for every view but text, whose codes are one and the same: a method
    that collapsed (as DGCPN did on a real set: one code for every retrieval text)."""

    name = "collapsing"
    supported_views = (2, 2)

    def _encode(self, X, modality):
        scores = super()._encode(X, modality)
        return np.ones_like(scores) if modality == "text" else scores


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory):
    """A bench run of rp, the collapsing method and CVH at 128 bits on the synthetic set
    (text has 64 dimensions: CVH cannot fill 128 bits), and its printed output."""
    folder = tmp_path_factory.mktemp("flags")
    store = folder / "s.sqlite"
    mmhash.register(Collapsing)
    try:
        ran = CliRunner().invoke(main, ["bench", "--methods", "rp,collapsing,cvh", "--bits",
                                        "16,128", "--store", str(store)])
    finally:
        mmhash.registry.unregister("collapsing")
    assert ran.exit_code == 0, ran.output
    return folder, store, ran.output


def _table_lines(text: str) -> dict[str, str]:
    """Printed or Markdown table rows by method name."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.replace("│", "|").strip("|").split("|")]
        if len(cells) > 1 and cells[0] in ("rp", "collapsing", "cvh"):
            out[cells[0]] = line
    return out


def test_bench_marks_a_collapsed_cell_and_says_why(collapsed):
    _, _, output = collapsed
    rows = _table_lines(output)
    assert DEGENERATE_MARK in rows["collapsing"] and DEGENERATE_MARK not in rows["rp"]
    line = next(line for line in output.splitlines()
                if line.startswith(f"{DEGENERATE_MARK} degenerate codes: collapsing, 16 bits: "))
    assert "text retrieval codes: 1 distinct codes for 1800 items (12 classes)" in line
    assert "text query codes: 16 of 16 bits constant" in line
    assert "image" not in line  # the image codes are fine


def test_stored_statistics_round_trip(collapsed):
    _, store, _ = collapsed
    with ResultStore(store) as results:
        assert results.schema_version == SCHEMA_VERSION == 4
        cells = {key.method + str(key.bits): cell_id
                 for cell_id, key, _ in results.stored_cells()}
        checks = results.cell_checks()
        codes = results.codes(cells["collapsing16"])
        rows = results.results(methods=["collapsing"])
    stats = checks[cells["collapsing16"]]["code_stats"]
    assert stats == json.loads(json.dumps(cell_statistics(codes, 12)))  # as computed from codes
    assert stats["retrieval"]["text"]["distinct"] == 1
    assert stats["retrieval"]["image"]["constant"] == []
    assert checks[cells["rp16"]]["warnings"] == []
    by_task = {(r["task"], r["bits"]): r["degenerate"] for r in rows}
    assert by_task[("image->text", 16)] == ["text retrieval codes: 1 distinct codes for 1800 items "
                                            "(12 classes)",
                                            "text retrieval codes: 16 of 16 bits constant"]


def test_cvh_beyond_a_views_rank_warns_and_the_warning_is_stored_and_shown(collapsed):
    _, store, output = collapsed
    with ResultStore(store) as results:
        ids = {(key.method, key.bits): cell_id for cell_id, key, _ in results.stored_cells()}
        checks = results.cell_checks()
    stored = checks[ids[("cvh", 128)]]["warnings"]
    assert any(w.startswith("DegenerateCodesWarning: cvh with n_bits=128: 64 bits come from "
                            "degenerate eigenvectors") and "'text' has rank 64" in w
               for w in stored), stored
    assert checks[ids[("cvh", 16)]]["warnings"] == []  # 16 bits: within both views' rank
    assert f"{WARNING_MARK} warnings while the cell ran: cvh, 128 bits: " in output
    assert WARNING_MARK in _table_lines(output)["cvh"]


def test_cells_record_their_thread_pools(collapsed):
    _, store, _ = collapsed
    from threadpoolctl import threadpool_info

    with ResultStore(store) as results:
        checks = results.cell_checks()
        rows = results.results(methods=["rp"])
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    for found in checks.values():
        pools = found["threads"]["pools"]
        assert {p["library"] for p in pools if p["api"] == "blas"} == \
            {p["internal_api"] for p in blas}
        assert all(isinstance(p["threads"], int) and p["threads"] >= 1 for p in pools)
    assert f"{blas[0]['internal_api']} " in rows[0]["threads"] and "threads" in rows[0]["threads"]


def test_reports_flag_the_collapsed_cell_in_every_format(collapsed):
    folder, store, _ = collapsed
    runner = CliRunner()
    md = runner.invoke(main, ["report", "--store", str(store)])
    assert md.exit_code == 0, md.output
    assert DEGENERATE_MARK in _table_lines(md.output)["collapsing"]
    assert "degenerate codes: collapsing, 16 bits" in md.output
    tex = runner.invoke(main, ["report", "--store", str(store), "--format", "latex"])
    assert "$^{\\dagger}$" in tex.output and "\\footnotesize $^{\\dagger}$ degenerate" in tex.output
    recomputed = runner.invoke(main, ["report", "--store", str(store), "--recompute"])
    assert DEGENERATE_MARK in _table_lines(recomputed.output)["collapsing"]

    page = folder / "r.html"
    made = runner.invoke(main, ["report", "--store", str(store), "--format", "html", "-o",
                                str(page)])
    assert made.exit_code == 0, made.output
    text = page.read_text(encoding="utf-8")
    assert 'class="flagged" title="text retrieval codes: 1 distinct' in text \
        or 'class="best flagged" title="text retrieval codes: 1 distinct' in text
    assert '<p class="footnote">' + DEGENERATE_MARK + " degenerate codes: collapsing" in text
    assert WARNING_MARK + " warnings while the cell ran: cvh, 128 bits" in text
    provenance = text[text.index('id="provenance"'):]
    assert "threads of the shown cells" in provenance and " threads" in provenance

    csv = folder / "r.csv"
    assert runner.invoke(main, ["report", "--store", str(store), "--format", "csv", "-o",
                                str(csv)]).exit_code == 0
    frame = pd.read_csv(csv, keep_default_na=False)
    flagged = frame[frame["degenerate"] != ""]
    assert set(flagged["method"]) == {"collapsing", "cvh"}  # cvh 128: 64 constant text bits
    assert set(frame.loc[frame["method"] == "rp", "degenerate"]) == {""}
    assert frame.loc[(frame["method"] == "cvh") & (frame["bits"] == 128),
                     "warnings"].str.contains("DegenerateCodesWarning").all()


def _record(method="rp"):
    key = CellKey("synthetic", "abc", method, "{}", 16, 0, ("image", "text"))
    return CellRecord(key, "done", None, 0.1, 0.01, [("image->text", "map", "expected", 0.5)])


def test_a_version_3_store_is_migrated_and_its_cells_read_unflagged(tmp_path):
    path = tmp_path / "old.sqlite"
    with ResultStore(path) as store:
        store.add_cell(store.start_run({}), _record())
    db = sqlite3.connect(path)  # back to schema 3: the cells table without the new columns
    for column in ("code_stats", "warnings", "threads"):
        db.execute(f"ALTER TABLE cells DROP COLUMN {column}")
    db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    db.commit()
    db.close()
    with ResultStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        (row,) = store.results()
        assert row["degenerate"] == [] and row["warnings"] == [] and row["threads"] == ""
        store.add_cell(store.start_run({}), _record("cvh"))
        assert store.cell_checks()[1] == {"code_stats": None, "warnings": None,
                                          "threads": None}
