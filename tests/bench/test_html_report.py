"""mmhash report --format html: one self-contained page, checked as text and in a real browser.

The browser test renders the page with headless Chromium (Debian's ``chromium`` package; .ci/run
installs it) and checks the screenshot and the rendered DOM; it is skipped, saying why, where no
Chromium binary is found.
"""

from __future__ import annotations

import base64
import html
import os
import platform
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mmhash
from mmhash.cli import main
from mmhash.hashers.rp import RandomProjectionHasher

BOOM = "boom <script>alert(1)</script> & <b>co</b>"


class Broken(RandomProjectionHasher):
    """A hasher whose fit always raises: its cells are stored as failed, with the error."""

    name = "broken-html"

    def _fit(self, views):
        raise RuntimeError(BOOM)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small store (rp, cvh, the cca-real reference, a failing method; 16 bits, seeds 0 and 1)
    and the page rendered from it."""
    folder = tmp_path_factory.mktemp("html")
    store, cells, page = folder / "s.sqlite", folder / "cells.csv", folder / "results.html"
    runner = CliRunner()
    mmhash.register(Broken)
    try:
        ran = runner.invoke(main, ["bench", "--methods", "rp,cvh,cca-real,broken-html",
                                   "--bits", "16", "--seeds", "0,1", "--store", str(store),
                                   "-o", str(cells)])
        assert ran.exit_code == 1, ran.output  # the broken cells failed, the rest stored
        assert cells.is_file()  # bench's -o/--output: the run's cells as a table
        made = runner.invoke(main, ["report", "--store", str(store), "--format", "html",
                                    "-o", str(page)])
        assert made.exit_code == 0, made.output
    finally:
        mmhash.registry.unregister("broken-html")
    return folder, store, page, page.read_text(encoding="utf-8")


def _rows_of(text: str) -> list[str]:
    return re.findall(r"<tr[^>]*>.*?</tr>", text, flags=re.S)


def test_page_has_the_tables_with_caption_best_and_reference(built):
    *_, text = built
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text
    results = text[text.index('<table class="results">'):text.index("</table>")]
    assert "mAP@all on synthetic, tie policy: expected; mean ± std over 2 seeds" in text
    assert "image&rarr;text" in results and "16 bits" in results
    body = _rows_of(results.split("<tbody>")[1])
    names = [re.search(r'<th scope="row">(.*?)</th>', row).group(1) for row in body]
    assert names[0] == "cca-real [reference]" and sorted(names[1:]) == ["cvh", "rp"]
    assert body[0].startswith('<tr class="reference">')  # on top, marked, never best
    assert 'class="best"' not in body[0]
    best = [row for row in body if 'class="best"' in row]
    assert sum(row.count('class="best"') for row in best) == 2  # one per column (2 tasks)
    assert re.search(r'<td class="best"><strong>\d\.\d{3} ± \d\.\d{3}</strong></td>', text)
    # the table of contents links to the dataset's section and its pair of tasks
    assert 'href="#d1"' in text and 'id="d1"' in text and 'href="#d1-1"' in text


def test_page_is_self_contained_with_inline_figures(built):
    *_, text = built
    for remote in ("http://", "https://", 'src="/', "<script", "<link", "url("):
        assert remote not in text, remote
    figures = re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(figures) == 4  # PR and P@K for image->text and text->image at 16 bits
    assert all(b"<svg" in base64.b64decode(f) for f in figures)
    # cca-real ranks by real-valued distances: a line of the P@K figures only
    assert "No PR curve" in text and "cca-real" in text.split("No PR curve")[1][:300]


def test_page_lists_failed_cells_escaped(built):
    *_, text = built
    failed = text[text.index('id="failed"'):text.index('id="provenance"')]
    assert "Failed cells (2)" in text
    assert failed.count("broken-html") == 2  # seeds 0 and 1
    assert "RuntimeError: boom &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;co" in failed
    assert "<script>" not in text and "<b>co</b>" not in text
    assert "no: missing from the tables" in failed


def test_page_shows_the_stored_provenance(built):
    _, store, _, text = built
    from mmhash.bench.store import ResultStore

    provenance = text[text.index('id="provenance"'):]
    with ResultStore(store) as results:
        fingerprint = results.results()[0]["fingerprint"]
    with sqlite3.connect(store) as db:
        command, revision = db.execute("SELECT command, git_revision FROM runs").fetchone()
    assert fingerprint in provenance
    assert html.escape(command) in provenance  # as stored (here: pytest's command line)
    assert (revision or "not recorded") in provenance
    assert f"<td>{np.__version__}</td>" in provenance
    assert f"<td>{platform.python_version()}</td>" in provenance
    assert f"<td>{mmhash.__version__}</td>" in provenance


def test_page_renders_png_figures_too(built):
    _, store, _, _ = built
    from mmhash.bench.html import render_page
    from mmhash.bench.store import ResultStore

    with ResultStore(store) as results:
        rows, curves = results.results(), results.curves()
    text = render_page(rows, curves, figure_format="png")
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(pngs) == 4 and base64.b64decode(pngs[0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_needs_an_output_file_in_an_existing_folder(built, tmp_path):
    _, store, _, _ = built
    runner = CliRunner()
    res = runner.invoke(main, ["report", "--store", str(store), "--format", "html"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "-o/--output" in res.output
    res = runner.invoke(main, ["report", "--store", str(store), "--format", "html",
                               "-o", str(tmp_path / "missing" / "r.html")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert "does not exist" in res.output
    assert not (tmp_path / "missing").exists()
    res = runner.invoke(main, ["report", "--store", str(store), "-o", str(tmp_path / "r.md")])
    assert res.exit_code == 0 and "| method" in (tmp_path / "r.md").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]  # no temporary file left


# ---- a real browser -------------------------------------------------------------------------
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``page`` with ``args`` (e.g. ``--dump-dom``); skips the test when
    no Chromium binary is on PATH. Sandbox off (CI runs as root), no network, a fresh profile."""
    binary = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    if binary is None:
        why = (f"no Chromium binary on PATH (looked for {', '.join(CHROMIUM_NAMES)}; "
               "Debian: apt-get install chromium)")
        if os.environ.get("CI"):  # .ci/run installs it: on CI the page must really render
            pytest.fail(why)
        pytest.skip(why)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args, page.resolve().as_uri()], capture_output=True,
                          text=True, timeout=120)


def test_page_renders_in_headless_chromium(built, tmp_path):
    _, _, page, _ = built
    shot = tmp_path / "shot.png"
    chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,2400")
    assert shot.is_file(), "chromium wrote no screenshot"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)
    assert pixels.shape[:2] == (2400, 1400)
    drawn = (pixels < 250).any(axis=-1)
    assert drawn.mean() > 0.02  # not blank
    blue = (np.abs(pixels - [31, 119, 180]).sum(axis=-1) < 30).sum()  # matplotlib's first line
    assert blue > 100, "the inline figures were not drawn"
    green = (np.abs(pixels - [0xda, 0xfb, 0xe1]).sum(axis=-1) < 6).sum()  # best-cell background
    assert green > 100, "the stylesheet was not applied"

    dom = chromium(page, tmp_path / "profile2", "--dump-dom").stdout
    assert '<td class="best"><strong>' in dom and '<tr class="reference">' in dom
    assert len(re.findall(r'<img src="data:image/svg\+xml;base64,', dom)) == 4
    cells = re.findall(r"<td[^>]*>(.*?)</td>", dom)
    assert len([c for c in cells if re.search(r"\d\.\d{3} ± \d\.\d{3}", c)]) == 6  # 3 rows x 2
    assert "broken-html" in dom and "RuntimeError: boom" in dom


def test_page_puts_a_suites_published_values_beside_the_run(built):
    # rows relabelled as a run on UCCH's MIRFlickr files: the page shows, under the run's table,
    # one comparison table per source (ours, published, difference), as `report --published`.
    _, store, _, _ = built
    from mmhash.bench.html import render_page
    from mmhash.bench.published import DIFFERENCE_MARK, PUBLISHED_MARK, load_published
    from mmhash.bench.store import ResultStore

    with ResultStore(store) as results:
        rows = [{**r, "dataset": "mirflickr25k-vgg@ucch"} for r in results.results()]
    plain = render_page(rows)
    page = render_page(rows, published=load_published("paper-mirflickr"))
    assert PUBLISHED_MARK not in plain
    for mark in (f"cvh {PUBLISHED_MARK}", f"cvh {DIFFERENCE_MARK}", f"ucch {PUBLISHED_MARK}"):
        assert html.escape(mark) in page
    assert "P. Hu" in page and page.count("<table") > plain.count("<table")
