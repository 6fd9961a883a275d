"""The published values shipped with the paper suites, and the tables that put them beside a
run's (mmhash.bench.published)."""

from __future__ import annotations

import pytest

from mmhash.bench.published import (
    DIFFERENCE_MARK,
    PUBLISHED_MARK,
    comparison_tables,
    load_published,
    published_for,
)
from mmhash.bench.report import Table
from mmhash.bench.suite import load_suite
from mmhash.data.cards import get_card
from mmhash.data.formats._common import collection_of
from mmhash.evaluation import parse_metrics

SUITES = {"paper-mirflickr": "mirflickr25k", "paper-nuswide": "nuswide10",
          "paper-coco": "mscoco", "paper-iapr": "iapr12"}
TASKS = ["image->text", "text->image"]


@pytest.mark.parametrize("suite, collection", sorted(SUITES.items()))
def test_each_paper_suite_carries_sourced_values_for_its_collection(suite, collection):
    spec, published = load_suite(suite), load_published(suite)
    assert [collection_of(d) for d in spec.datasets] == [collection]
    assert get_card(spec.datasets[0]).release
    assert published.values and published.unreachable
    for source in published.sources.values():
        assert source["citation"] and source["table"] and source["location"]
        assert source["metric"] in ("", *(m.token for m in parse_metrics(spec.metrics)))
        assert source["protocol"] in ("", "ucch", "djsrh")
    for row in published.values:
        assert row["collection"] == collection and row["task"] in TASKS
        assert row["bits"] in (16, 32, 64, 128) and 0 < row["value"] < 1
        assert row["source"] in published.sources
    # one value per method, task, bits and source: no cell read twice
    keys = [(r["method"], r["task"], r["bits"], r["source"]) for r in published.values]
    assert len(keys) == len(set(keys))


def test_ucch_table_1_as_read_from_its_readme():
    # penghu-cs/UCCH README at a13af77, Table 1, MIRFlickr-25K, rows DJSRH and UCCH
    published = load_published("paper-mirflickr")
    got = {(r["method"], r["task"], r["bits"]): r["value"] for r in published.values
           if r["source"] == "ucch-tpami2023:Table 1"}
    expected = {"djsrh": ([.652, .697, .700, .716], [.662, .691, .683, .695]),
                "ucch": ([.739, .744, .754, .760], [.725, .725, .743, .747])}
    for method, per_task in expected.items():
        for task, values in zip(TASKS, per_task):
            assert [got[(method, task, b)] for b in (16, 32, 64, 128)] == values


def _run_table(dataset, metric, cvh=(.70, .60), bits=(16, 32)):
    cells = {("cvh", t, b): (v, 0.0, 1) for t, v in zip(TASKS, cvh) for b in bits}
    cells.update({("cca-real [reference]", t, b): (.9, 0.0, 1) for t in TASKS for b in bits})
    return Table("ours", TASKS, list(bits), ["cca-real [reference]", "cvh"], cells,
                 frozenset({"cca-real [reference]"}), dataset, metric)


def test_comparison_rows_are_ours_published_and_the_difference():
    published = load_published("paper-mirflickr")
    table = _run_table("mirflickr25k-vgg@ucch", "map")
    [ucch] = comparison_tables(table, published, "ucch-tpami2023:Table 1")
    assert ucch.methods[:3] == ["cvh", f"cvh {PUBLISHED_MARK}", f"cvh {DIFFERENCE_MARK}"]
    value = {(r["task"], r["bits"]): r["value"] for r in published.values
             if r["source"] == "ucch-tpami2023:Table 1" and r["method"] == "cvh"}
    for task, ours in zip(TASKS, (.70, .60)):
        assert ucch.cells[(f"cvh {PUBLISHED_MARK}", task, 16)][0] == value[(task, 16)]
        assert ucch.cells[(f"cvh {DIFFERENCE_MARK}", task, 16)][0] == pytest.approx(
            ours - value[(task, 16)])
    # methods mmhash did not run are shown as published only; no published row competes
    assert f"ucch {PUBLISHED_MARK}" in ucch.methods and "ucch" not in ucch.methods
    assert ucch.references == frozenset(m for m in ucch.methods if m != "cvh")
    assert "Same metric and split protocol" in ucch.caption and "a13af77" in ucch.caption


def test_caption_says_what_differs_from_the_run():
    published = load_published("paper-mirflickr")
    [djsrh] = comparison_tables(_run_table("mirflickr25k-vgg@ucch", "map"), published,
                                "djsrh-iccv2019:Table 2")
    assert "NOT like for like" in djsrh.caption
    assert "metric (map@50 published, map here)" in djsrh.caption
    assert "split protocol (djsrh published, ucch here)" in djsrh.caption
    [synthetic] = comparison_tables(_run_table("synthetic-mirflickr", "map"), published,
                                    "ucch-tpami2023:Table 1")
    assert "SYNTHETIC stand-in" in synthetic.caption
    [dgcpn] = comparison_tables(_run_table("mirflickr25k-vgg@ucch", "map", bits=(64,)),
                                published, "dgcpn-aaai2021:abstract")  # its one value: 64 bits
    assert "metric (not stated by the source)" in dgcpn.caption


def test_each_source_is_compared_in_its_own_metric_when_the_run_has_it():
    published = load_published("paper-mirflickr")
    run = [_run_table("mirflickr25k-vgg@djsrh", "map", (.7, .6)),
           _run_table("mirflickr25k-vgg@djsrh", "map@50", (.8, .75))]
    shown = {t.caption.split(": ", 1)[1].split(",", 1)[0]: t for t in published_for(
        run, published)}
    djsrh = next(t for c, t in shown.items() if c.startswith("S. Su"))
    ucch = next(t for c, t in shown.items() if c.startswith("P. Hu"))
    assert djsrh.cells[("cvh", "image->text", 16)][0] == .8  # mAP@50, as DJSRH reports
    assert ucch.cells[("cvh", "image->text", 16)][0] == .7  # whole-ranking mAP, as UCCH
    assert "Same metric and split protocol" in djsrh.caption
    # another collection's run gets no comparison
    assert published_for([_run_table("wiki", "map")], published) == []


def test_a_suites_protocol_splits_its_datasets_and_a_bad_one_is_refused(tmp_path, monkeypatch):
    import numpy as np
    import scipy.io

    from mmhash.bench.plan import make_plan
    from mmhash.errors import UnknownNameError

    n = 7200  # more rows than dcmh's 2,000 queries + 5,000 training rows
    rng = np.random.default_rng(0)
    labels = (rng.random((n, 24)) < .2).astype(np.uint8)
    labels[labels.sum(1) == 0, 0] = 1
    folder = tmp_path / "data" / "mirflickr25k"
    folder.mkdir(parents=True)
    scipy.io.savemat(folder / "mirflickr25k-iall-vgg.mat", {"XAll": rng.random((n, 8))})
    scipy.io.savemat(folder / "mirflickr25k-yall.mat", {"YAll": (rng.random((n, 6)) < .3) * 1.})
    scipy.io.savemat(folder / "mirflickr25k-lall.mat", {"LAll": labels})
    suite = tmp_path / "s.toml"
    suite.write_text('datasets = ["mirflickr25k-vgg"]\nmethods = ["rp"]\nbits = [16]\n'
                     'seeds = [0]\nprotocol = "dcmh"\n')
    plan = make_plan(suite=str(suite), data_dir=tmp_path / "data")
    [(data, _)] = plan.grids
    assert data.name == "mirflickr25k-vgg@dcmh" and plan.config["protocol"] == "dcmh"
    assert list(data.split.query) == list(range(2000))
    # --protocol over the suite's
    plan = make_plan(suite=str(suite), data_dir=tmp_path / "data", protocol="ucch")
    assert plan.grids[0][0].name == "mirflickr25k-vgg@ucch"
    suite.write_text(suite.read_text().replace('"dcmh"', '"dcmhh"'))
    with pytest.raises(UnknownNameError, match=r"unknown protocol in suite s\.toml 'dcmhh'"):
        load_suite(str(suite))
