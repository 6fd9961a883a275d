"""Intervals, paired tests, instance-level and graded metrics and cost columns, end to end:
``mmhash bench --metrics``, ``mmhash report --ci/--cost``, ``mmhash compare``."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from click.testing import CliRunner

from mmhash.bench.regress import compare as regress_compare
from mmhash.bench.report import Table
from mmhash.bench.tune import Trial, TuneResult
from mmhash.cli import main

METRICS = "map,recall@1,recall@5,medr,ndcg@20,acg@20"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("sig") / "s.sqlite")
    ran = CliRunner().invoke(main, ["bench", "--methods", "rp,cvh,cca-real", "--bits", "16",
                                    "--seeds", "0,1", "--metrics", METRICS, "--store", path])
    assert ran.exit_code == 0, ran.output
    return path


def _run(*args) -> object:
    return CliRunner().invoke(main, list(args))


def test_bench_stores_instance_and_graded_metrics_for_codes_and_references(store):
    res = _run("report", "--store", store, "--format", "csv")
    frame = pd.read_csv(io.StringIO(res.stdout))
    assert set(frame["metric"]) == set(METRICS.split(","))
    for method in ("rp", "cvh", "cca-real"):  # the reference ranks by cosine: pairs too
        mine = frame[frame["method"] == method].set_index(["task", "metric", "seed"])["value"]
        assert (mine.xs("medr", level="metric") >= 1).all()
        assert mine.xs("recall@1", level="metric").between(0, 1).all()
    # recomputing the stored codes gives exactly the stored values
    again = _run("report", "--store", store, "--recompute", "--metrics", METRICS,
                 "--format", "csv")
    redone = pd.read_csv(io.StringIO(again.stdout))
    keys = ["method", "seed", "task", "metric"]
    joined = frame.merge(redone, on=keys, suffixes=("", "_again"))
    assert len(joined) == len(frame[frame["method"] != "cca-real"])  # references keep no codes
    assert (joined["value"] == joined["value_again"]).all()


def test_report_ci_adds_intervals_tests_and_is_reproducible(store):
    first = _run("report", "--store", store, "--ci", "95", "--metrics", "map,medr")
    assert first.exit_code == 0, first.output
    assert ("95% percentile bootstrap interval (2,000 resamples, seed 0) over the queries"
            in first.output)
    assert "mean over 2 seeds" in first.output and "mean ± std" not in first.output
    assert "Holm-adjusted over the 4 column tests of this report" in first.output
    assert first.output.count(" bits: ") >= 4  # one test line per column
    assert "[" in first.output and ("**" in first.output or "*0." in first.output)
    again = _run("report", "--store", store, "--ci", "95", "--metrics", "map,medr")
    assert again.output == first.output  # a fixed resampling seed
    other = _run("report", "--store", store, "--ci", "95", "--ci-seed", "7", "--metrics",
                 "map,medr")
    assert other.output != first.output
    tex = _run("report", "--store", store, "--ci", "0.9", "--format", "latex")
    assert "90\\% percentile bootstrap interval" in tex.output and ("\\textbf{" in tex.output
                                              or "\\textit{" in tex.output)


def test_report_ci_exports_the_bounds(store):
    res = _run("report", "--store", store, "--ci", "95", "--format", "csv")
    frame = pd.read_csv(io.StringIO(res.stdout))
    assert list(frame.columns[-3:]) == ["ci_low", "ci_high", "ci_level"]
    series = frame.groupby(["method", "task"]).agg(
        mean=("value", "mean"), low=("ci_low", "first"), high=("ci_high", "first"))
    assert ((series["low"] <= series["mean"] + 1e-12)
            & (series["mean"] <= series["high"] + 1e-12)).all()
    assert (frame["ci_level"] == 0.95).all()


def test_report_ci_html_marks_best_bold_or_italic(store, tmp_path):
    page = tmp_path / "r.html"
    res = _run("report", "--store", store, "--ci", "95", "--format", "html", "-o", str(page))
    assert res.exit_code == 0, res.output
    text = page.read_text()
    assert "bootstrap interval" in text and ("<strong>" in text or "<em>" in text)
    assert "Holm-adjusted" in text


@pytest.mark.parametrize("level", ["150", "0.2", "abc", "0"])
def test_a_bad_confidence_level_is_one_line(store, level):
    res = _run("report", "--store", store, "--ci", level)
    assert res.exit_code == 2 and "--ci must be a confidence level" in res.output
    assert "Traceback" not in res.output


def test_compare_prints_a_verdict_per_task(store):
    res = _run("compare", "cvh", "rp", "--store", store, "--metrics", "map,recall@5")
    assert res.exit_code == 0, res.output
    verdicts = [line for line in res.output.splitlines() if line.startswith("synthetic ")]
    assert len(verdicts) == 4  # 2 tasks x 2 metrics
    for line in verdicts:
        assert "cvh - rp = " in line and "p = " in line and "Holm" in line
        assert "significant at 0.05" in line


def test_compare_of_a_method_with_itself_is_never_significant(store):
    res = _run("compare", "cvh", "cvh", "--store", store)
    assert res.exit_code == 0, res.output
    assert "p = 1.0000" in res.output and "not significant" in res.output


def test_compare_without_common_cells_is_a_clear_error(store):
    res = _run("compare", "cvh", "nosuch", "--store", store)
    assert res.exit_code == 2
    assert "no task where both cvh and nosuch have stored codes" in res.output


def test_report_cost_table(store):
    res = _run("report", "--store", store, "--cost")
    assert res.exit_code == 0, res.output
    table = res.output[res.output.index("Cost on synthetic"):]
    for column in ("fit s 16", "encode µs/item 16", "bytes/item 16", "query µs/1k items 16"):
        assert column in table
    assert "**" not in table  # costs are not ranked
    bad = _run("report", "--store", store, "--cost", "--format", "csv")
    assert bad.exit_code == 2 and "--cost adds tables" in bad.output


def test_lower_is_better_for_median_rank_everywhere():
    cells = {("a", "x->y", 16): (3.0, 0.0, 1), ("b", "x->y", 16): (9.0, 0.0, 1)}
    table = Table("", ["x->y"], [16], ["a", "b"], cells, metric="medr")
    assert table.best("x->y", 16) == "a" and table.ranked("x->y", 16) == ["a", "b"]
    assert Table("", ["x->y"], [16], ["a", "b"], cells, metric="map").best("x->y", 16) == "b"
    entry = {"dataset": "d", "fingerprint": "f", "method": "a", "params": "{}", "bits": 16,
             "views": "x,y", "database": "per-view", "task": "x->y", "tie": "expected"}
    reference = [{**entry, "metric": "medr", "value": 10.0}, {**entry, "metric": "map",
                                                               "value": 0.5}]
    now = [{**entry, "metric": "medr", "value": 5.0, "n_seeds": 1},
           {**entry, "metric": "map", "value": 0.4, "n_seeds": 1}]
    found = regress_compare(now, reference)
    assert [c["metric"] for c in found.improved] == ["medr"]  # a lower rank is better
    assert [c["metric"] for c in found.dropped] == ["map"]
    tuned = TuneResult("cvh", "d", 16, "medr", "expected", {},
                       [Trial({"reg": 1}, 7.0), Trial({"reg": 2}, 3.0)])
    assert tuned.best.params == {"reg": 2}
