"""The command line: bench end to end on the synthetic set, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

import mmhash
from mmhash.cli import main
from mmhash.hashers.rp import RandomProjectionHasher

FAST = ["--dataset", "synthetic", "--methods", "rp", "--bits", "8,16", "--seeds", "0,1"]


def _count_cells(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "results.sqlite")


def test_bench_prints_paper_layout_and_stores_every_cell(store, tmp_path):
    export = tmp_path / "cells.csv"
    result = CliRunner().invoke(main, ["bench", *FAST, "--store", store, "--output", str(export)])
    assert result.exit_code == 0, result.output
    assert "mAP@all" in result.output and "tie policy: expected" in result.output
    assert "image->text" in result.output and "text->image" in result.output
    assert "synthetic" in result.output
    # 2 bits x 2 seeds x 2 tasks x 1 metric x 1 tie
    assert _count_cells(store) == 8
    frame = pd.read_csv(export)
    assert list(frame.columns) == ["dataset", "fingerprint", "method", "params", "bits", "seed",
                                   "views", "database", "task", "metric", "tie", "value",
                                   "degenerate", "warnings", "threads"]
    assert len(frame) == 8
    assert set(frame["task"]) == {"image->text", "text->image"}
    assert frame["value"].between(0, 1).all()


def test_same_seed_gives_same_map(store, tmp_path):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, flag in zip(paths, ("-o", "--export")):  # --export: -o's old name, kept hidden
        result = CliRunner().invoke(main, ["bench", *FAST, "--store", store, flag, str(path)])
        assert result.exit_code == 0, result.output
    a, b = (json.loads(p.read_text()) for p in paths)
    assert a == b


def test_resume_skips_finished_cells(store):
    runner = CliRunner()
    assert runner.invoke(main, ["bench", *FAST, "--store", store]).exit_code == 0
    before = _count_cells(store)
    result = runner.invoke(main, ["bench", *FAST, "--store", store, "--resume"])
    assert result.exit_code == 0, result.output
    assert _count_cells(store) == before  # nothing recomputed
    assert "image->text" in result.output  # but the table still shows the whole grid


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "rpp"], "unknown method 'rpp'; did you mean 'rp'?"),
        (["--dataset", "wikki"], "unknown dataset 'wikki'"),
        (["--bits", "12"], "multiple of 8"),
        (["--bits", "2048"], "multiple of 8"),
        (["--seeds", "x"], "--seeds"),
        (["--tie", "random"], "unknown tie policy"),
        (["--views", "image,audio"], "unknown modality 'audio'"),
        (["--param", "rp.nope=1"], "parameter of rp"),
        (["-o", "out.xlsx"], ".csv or .json"),
    ],
)
def test_bad_input_is_one_line_and_keeps_stored_results(store, args, message):
    runner = CliRunner()
    assert runner.invoke(main, ["bench", *FAST, "--store", store]).exit_code == 0
    before = _count_cells(store)
    base = dict(zip(FAST[::2], FAST[1::2]))
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["bench", "--store", store, *[x for kv in base.items() for x in kv]]
    result = runner.invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert _count_cells(store) == before


def test_bench_output_is_named_once():
    runner = CliRunner()
    both = runner.invoke(main, ["bench", *FAST, "-o", "a.csv", "--export", "b.csv"])
    assert both.exit_code == 2 and "name the output once" in both.output
    shown = runner.invoke(main, ["bench", "--help"]).output
    assert "-o, --output" in shown and "--export" not in shown


def test_help_lists_the_exit_codes():
    shown = CliRunner().invoke(main, ["--help"]).output
    for code, meaning in (("0", "ok"), ("1", "cells failed"), ("2", "bad input"),
                          ("3", "conformance checks failed"), ("4", "regression"),
                          ("130", "interrupted")):
        assert any(line.split()[:1] == [code] and meaning in line
                   for line in shown.splitlines()), (code, shown)


class _FitReturnsNone(RandomProjectionHasher):
    """Fails the conformance check that fit returns the hasher."""

    name = "cli-fit-returns-none"

    def fit(self, views):
        super().fit(views)


def test_failed_checks_exit_3():
    mmhash.register(_FitReturnsNone)
    try:
        result = CliRunner().invoke(main, ["check", _FitReturnsNone.name])
    finally:
        mmhash.registry.unregister(_FitReturnsNone.name)
    assert result.exit_code == 3, result.output
    assert "FAIL" in result.output and "0 failed" not in result.output


def test_single_method_commands_take_both_param_spellings(tmp_path):
    from mmhash.registry import load_hasher

    for i, item in enumerate(("reg=0.5", "cvh.reg=0.5")):
        path = tmp_path / f"m{i}.npz"
        result = CliRunner().invoke(main, ["fit", "cvh", "--bits", "16", "--param", item,
                                           "-o", str(path)])
        assert result.exit_code == 0, result.output
        assert load_hasher(path).reg == 0.5


def test_real_process_prints_no_traceback(tmp_path):
    cmd = [sys.executable, "-m", "mmhash.cli", "bench", "--methods", "nope", "--store",
           str(tmp_path / "s.sqlite")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ},
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown method 'nope'")
    assert "Traceback" not in proc.stderr


def test_nan_in_a_user_file_is_a_clear_error(tmp_path, store):
    import numpy as np
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    image = rng.standard_normal((60, 8))
    image[3, 2] = np.nan
    path = tmp_path / "mine.mat"  # the common wikiData.mat layout
    savemat(path, dict(I_tr=image[:40], T_tr=rng.standard_normal((40, 5)),
             L_tr=rng.integers(0, 2, (40, 3)), I_te=image[40:],
             T_te=rng.standard_normal((20, 5)), L_te=rng.integers(0, 2, (20, 3))))
    result = CliRunner().invoke(main, ["bench", "--dataset", str(path), "--methods", "rp",
                                       "--bits", "8", "--store", store])
    assert result.exit_code == 2, result.output
    assert "NaN" in result.output and "Traceback" not in result.output


def test_list_and_check_and_datasets():
    runner = CliRunner()
    listed = runner.invoke(main, ["list"])
    assert listed.exit_code == 0 and "rp" in listed.output and "available" in listed.output
    checked = runner.invoke(main, ["check", "rp"])
    assert checked.exit_code == 0, checked.output
    assert "0 failed" in checked.output
    unknown = runner.invoke(main, ["check", "rpp"])
    assert unknown.exit_code == 2 and "did you mean 'rp'" in unknown.output
    datasets = runner.invoke(main, ["datasets"])
    assert datasets.exit_code == 0 and "synthetic" in datasets.output and "wiki" in datasets.output


def test_error_text_with_brackets_is_printed_literally(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    store = str(tmp_path / "s.sqlite")
    runner = CliRunner()
    assert runner.invoke(main, ["bench", *FAST, "--store", store]).exit_code == 0
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = runner.invoke(main, ["report", "--store", store, "--plot", str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "pip install 'mmhash[plot]'" in result.output


def test_bench_jobs_takes_auto_and_says_what_it_chose(store):
    result = CliRunner().invoke(main, ["bench", *FAST, "--store", store, "--jobs", "auto"])
    assert result.exit_code == 0, result.output
    # rp has no epochs: serial, in this process
    assert "--jobs auto: cells run here" in result.output
    assert _count_cells(store) == 8
    for bad, message in (("0", "not in the range"), ("two", "neither a positive integer")):
        result = CliRunner().invoke(main, ["bench", *FAST, "--store", store, "--jobs", bad])
        assert result.exit_code != 0 and message in result.output
