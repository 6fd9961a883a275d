"""mmhash report (Markdown, LaTeX, CSV, PNG) and mmhash regress on a worsened method."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import mmhash
from mmhash.cli import main
from mmhash.hashers.rp import RandomProjectionHasher


class Degradable(RandomProjectionHasher):
    """Cross-covariance (PLS-SVD) codes that flip a fraction ``CORRUPT`` of the text bits: a
    method one can make worse on purpose. ``CORRUPT`` is a class attribute, not a parameter, so
    changing it stands for a change in the method's code: same cell keys, other values (a
    changed parameter would be another cell, as the store keys cells by their params)."""

    name = "degradable"
    supported_views = (2, 2)
    CORRUPT = 0.0

    def __init__(self, n_bits=32, random_state=0):
        self.n_bits, self.random_state = n_bits, random_state

    def _fit(self, views):
        (_, a), (_, b) = views.items()
        k = min(self.n_bits, a.shape[1], b.shape[1])
        self.mean0_, self.mean1_ = a.mean(0), b.mean(0)
        u, _, vt = np.linalg.svd((a - self.mean0_).T @ (b - self.mean1_), full_matrices=False)
        rot = np.random.default_rng(self.random_state).standard_normal((k, self.n_bits))
        self.proj0_, self.proj1_ = u[:, :k] @ rot, vt[:k].T @ rot
        self.flip_ = np.random.default_rng(99).random(self.n_bits) < self.CORRUPT

    def _encode(self, X, modality):
        scores = super()._encode(X, modality)
        if modality == self.modalities_[1]:
            scores[:, self.flip_] *= -1  # corrupt the text side only: cross-modal mAP drops
        return scores


@pytest.fixture
def degradable():
    mmhash.register(Degradable)
    yield
    mmhash.registry.unregister("degradable")


@pytest.fixture
def suites(tmp_path, monkeypatch):
    folder = tmp_path / "benchmarks" / "suites"
    folder.mkdir(parents=True)
    monkeypatch.setenv("MMHASH_SUITES", str(folder))

    def write(corrupt):
        monkeypatch.setattr(Degradable, "CORRUPT", corrupt)
        (folder / "tiny.toml").write_text(
            'datasets = ["synthetic"]\nmethods = ["degradable", "rp"]\nbits = [16]\n'
            'seeds = [0, 1]\n')
        return folder / "tiny.toml"

    return write


def test_report_formats_and_plots(tmp_path):
    store = str(tmp_path / "s.sqlite")
    runner = CliRunner()
    ran = runner.invoke(main, ["bench", "--methods", "rp,cvh", "--bits", "8,16", "--seeds",
                               "0,1", "--store", store])
    assert ran.exit_code == 0, ran.output
    md = runner.invoke(main, ["report", "--store", store])
    assert md.exit_code == 0, md.output
    assert "| method" in md.output and "**" in md.output and "mAP@all" in md.output
    assert "± " in md.output  # two seeds: mean ± std
    tex = runner.invoke(main, ["report", "--store", store, "--format", "latex"])
    assert "\\toprule" in tex.output and "\\textbf{" in tex.output
    assert "\\multicolumn{2}{c}{image$\\to$text}" in tex.output
    csv_path = tmp_path / "r.csv"
    runner.invoke(main, ["report", "--store", store, "--format", "csv", "--output",
                         str(csv_path)])
    frame = pd.read_csv(csv_path)
    assert list(frame.columns) == ["dataset", "fingerprint", "method", "params", "bits", "seed",
                                   "views", "database", "task", "metric", "tie", "value",
                                   "degenerate", "warnings", "threads"]
    assert frame["degenerate"].isna().all()  # rp and cvh at 8 and 16 bits fill their bits
    assert frame["threads"].str.contains("threads").all()  # every cell's thread pools
    assert len(frame) == 16
    plots = tmp_path / "plots"
    res = runner.invoke(main, ["report", "--store", store, "--plot", str(plots)])
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in plots.iterdir())
    assert len(files) == 8  # 2 tasks x 2 bits x (PR, P@K)
    assert all((plots / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)


def test_report_without_store_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["report", "--store", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 2 and "no result store" in res.output


def test_regress_catches_a_worsened_method(tmp_path, suites, degradable):
    runner = CliRunner()
    suite = suites(0.0)
    reference = suite.with_suffix(".json")  # the reference lives beside its suite
    accepted = runner.invoke(main, ["regress", "--suite", "tiny", "--accept"])
    assert accepted.exit_code == 0, accepted.output
    cells = json.loads(reference.read_text())["cells"]
    assert {c["method"] for c in cells} == {"degradable", "rp"} and len(cells) == 4

    same = runner.invoke(main, ["regress", "--suite", "tiny"])
    assert same.exit_code == 0, same.output
    assert "0 dropped" in same.output

    suites(0.5)  # the method got worse: half of its text bits flipped
    worse = runner.invoke(main, ["regress", "--suite", "tiny", "--tolerance", "0.01"])
    assert worse.exit_code == 4, worse.output  # a regression, not a failed cell (1)
    assert "Dropped below reference" in worse.output
    assert "2 dropped" in worse.output  # image->text and text->image of degradable
    dropped = worse.output.split("Dropped below reference")[1]
    assert "degradable" in dropped and "rp " not in dropped.split("dropped,")[0]


def test_regress_reports_improvement_with_accept_command(tmp_path, suites, degradable):
    runner = CliRunner()
    suites(0.5)
    assert runner.invoke(main, ["regress", "--suite", "tiny", "--accept"]).exit_code == 0
    suites(0.0)
    better = runner.invoke(main, ["regress", "--suite", "tiny"])
    assert better.exit_code == 0, better.output
    assert "improved" in better.output and "mmhash regress --suite tiny --accept" in better.output


def test_regress_without_reference_says_how_to_create_it(suites):
    suites(0.0)
    res = CliRunner().invoke(main, ["regress", "--suite", "tiny"])
    assert res.exit_code == 2 and "--accept" in res.output


def test_tables_of_many_views_hold_one_view_pair_each():
    from mmhash.bench.report import tables

    views = ["a", "b", "c"]
    tasks = [f"{q}->{r}" for q in views for r in views if q != r]  # a->b, a->c, b->a, ...
    rows = [{"dataset": "d", "fingerprint": "f", "method": m, "params": "{}",
             "views": "a,b,c", "database": "per-view", "task": t, "metric": "map",
             "tie": "expected", "bits": b, "seed": 0, "value": 0.1 * i + 0.01 * j}
            for i, m in enumerate(["x", "y"]) for j, t in enumerate(tasks) for b in (16, 32)]
    out = tables(rows)
    assert [t.tasks for t in out] == [["a->b", "b->a"], ["a->c", "c->a"], ["b->c", "c->b"]]
    assert all(len(t.cells) == 2 * 2 * 2 for t in out), "each table keeps its own cells only"
    assert all("table" in t.caption and "of 3" in t.caption for t in out)
    assert out[0].cells[("y", "b->a", 32)] == (0.1 + 0.02, 0.0, 1)
    two_views = tables([r for r in rows if r["task"] in ("a->b", "b->a")])
    assert len(two_views) == 1 and "table 1" not in two_views[0].caption


def test_a_suite_narrowed_by_methods_drops_the_others_params(suites, degradable):
    from mmhash.bench.plan import make_plan

    folder = suites(0.0).parent
    (folder / "withparams.toml").write_text(
        'datasets = ["synthetic"]\nmethods = ["degradable", "rp"]\nbits = [16]\nseeds = [0]\n'
        '[params.degradable]\nn_bits_typo_free = 1\n')
    plan = make_plan(suite="withparams", methods="rp")
    assert {c.method for _, cells in plan.grids for c in cells} == {"rp"}
    with pytest.raises(mmhash.UnknownNameError, match="parameter of degradable"):
        make_plan(suite="withparams")  # the suite itself still has to be right
