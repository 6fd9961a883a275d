"""Hostile files: nothing lost, nothing overwritten, no traceback.

Feature CSVs without a header or with text in a number column; outputs that are inputs, in a
missing or read-only folder, or of the wrong extension; truncated, foreign and text files given
as models, codes or indexes; empty, foreign and read-only result stores; plugins whose learned
state is a dict or list of arrays. Each bad case ends in one line on stderr and exit code 2,
before any work, with its inputs unchanged and no partial output.

Everything runs on the embedded ``synthetic`` set with ``rp``/``cvh`` at 16 bits.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from mmhash_baselines.cvh import CVH

import mmhash
from mmhash.bench.store import SCHEMA_VERSION, ResultStore
from mmhash.cli import main
from mmhash.errors import DataError, InvalidInputError, MMHashError
from mmhash.features import open_features
from mmhash.registry import load_hasher, unregister

FAST = ["--dataset", "synthetic", "--bits", "16"]
RELEASE_STORE = Path(__file__).parents[1] / "bench" / "data" / "store-v2-release-0.1.0.sqlite"


def _cli(*args) -> None:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def _write_csv(path: Path, rows: np.ndarray, header: list[str] | None) -> None:
    lines = [",".join(header)] if header is not None else []
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The files every case starts from: a model, codes, an index, a store, feature CSVs and
    damaged copies of them."""
    root = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(128)]
    _cli("fit", "rp", *FAST, "-o", root / "model.npz")
    _write_csv(root / "queries.csv", rng.normal(size=(5, 128)).round(4), names)
    _write_csv(root / "headerless.csv", rng.normal(size=(5, 128)).round(4), None)
    text = rng.normal(size=(5, 128)).round(4).astype(object)
    text[2, 3] = "abc"
    _write_csv(root / "text-value.csv", text, names)
    _cli("encode", root / "model.npz", root / "queries.csv", "--view", "image",
         "-o", root / "codes.npz")
    _cli("index", "build", root / "codes.npz", "-o", root / "db.index")
    _cli("bench", "--methods", "rp", "--bits", "16", "--store", root / "results.sqlite")
    for name in ("model.npz", "codes.npz", "db.index"):
        data = (root / name).read_bytes()
        (root / f"truncated-{name}").write_bytes(data[:len(data) // 2])
    (root / "notes.npz").write_text("a text file, not a model\n")
    (root / "empty.sqlite").write_bytes(b"")
    (root / "notes.sqlite").write_text("not a database\n" * 20)
    (root / "params.toml").write_text("[params.cvh]\nreg = 0.001\n")
    (root / "tiny.toml").write_text('datasets = ["synthetic"]\nmethods = ["rp"]\nbits = [16]\n'
                                    'seeds = [0]\n')
    np.savez(root / "tags.npz", YAll=np.eye(4, dtype=np.float32))
    (root / "read-only").mkdir()
    return root


@pytest.fixture
def ws(built, tmp_path) -> Path:
    """A fresh copy of the built files, so that a case that damages one harms no other."""
    return Path(shutil.copytree(built, tmp_path / "ws"))


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only. Root ignores file modes, so there the folder is also reported
    unwritable by ``os.access``, as on a read-only mount."""
    made = []

    def make(folder: Path) -> Path:
        folder.chmod(0o555)
        made.append(folder)
        if os.access(folder, os.W_OK):
            real = os.access

            def access(path, mode, *args, **kwargs):
                inside = Path(path).resolve().is_relative_to(folder.resolve())
                return False if inside and mode & os.W_OK else real(path, mode, *args, **kwargs)

            monkeypatch.setattr(os, "access", access)
        return folder

    yield make
    for folder in made:
        folder.chmod(0o755)


class DictStateCVH(CVH):
    """CVH whose learned state is the natural per-view shape: a dict of projections by view and
    a tuple of means."""

    name = "dict-state-cvh"

    def _fit(self, views, **kwargs):
        super()._fit(views, **kwargs)
        self.projections_ = {m: getattr(self, f"proj{k}_") for k, m in enumerate(self.modalities_)}
        self.means_ = tuple(getattr(self, f"mean{k}_") for k in range(len(self.modalities_)))
        for k in range(len(self.modalities_)):
            delattr(self, f"proj{k}_")
            delattr(self, f"mean{k}_")

    def _encode(self, X, modality):
        k = self.modalities_.index(modality)
        return (X - self.means_[k]) @ self.projections_[modality]


class SetStateCVH(CVH):
    """CVH with a learned set, which no model file keeps."""

    name = "set-state-cvh"

    def _fit(self, views, **kwargs):
        super()._fit(views, **kwargs)
        self.seen_ = {"image", "text"}


@pytest.fixture
def plugins():
    mmhash.register(DictStateCVH)
    mmhash.register(SetStateCVH)
    yield
    unregister(DictStateCVH.name)
    unregister(SetStateCVH.name)


# (id, argv with {ws} for the case's folder and {ro} for a read-only folder inside it, inputs
#  that must stay unchanged, outputs that must not exist, substring of the one stderr line)
CASES = [
    # ---- feature CSVs
    ("csv-without-header",
     ["encode", "{ws}/model.npz", "{ws}/headerless.csv", "--view", "image",
      "-o", "{ws}/out.npz"], ["headerless.csv"], ["out.npz"],
     "headerless.csv: the first row holds only numbers, but a feature CSV starts with a header"),
    ("csv-without-header-as-search-queries",
     ["search", "{ws}/db.index", "{ws}/headerless.csv", "--model", "{ws}/model.npz", "--view",
      "image"], ["headerless.csv"], [], "a feature CSV starts with a header row"),
    ("csv-text-in-a-number-column",
     ["encode", "{ws}/model.npz", "{ws}/text-value.csv", "--view", "image",
      "-o", "{ws}/out.npz"], ["text-value.csv"], ["out.npz"],
     "column(s) f3 are not numbers (line 4, column f3: 'abc')"),
    # ---- outputs checked before any work
    ("bench-export-in-a-missing-folder",
     ["bench", "--methods", "rp", "--bits", "16", "--store", "{ws}/new.sqlite",
      "-o", "{ws}/missing/cells.csv"], [], ["new.sqlite", "missing"],
     "-o {ws}/missing/cells.csv cannot be written: the folder {ws}/missing does not exist"),
    ("bench-export-onto-its-store",
     ["bench", "--methods", "rp", "--bits", "16", "--store", "{ws}/runs.csv",
      "--export", "{ws}/runs.csv"], [], ["runs.csv"], "that is the input"),  # old name of -o
    ("bench-store-in-a-read-only-folder",
     ["bench", "--methods", "rp", "--bits", "16", "--store", "{ro}/results.sqlite"], [],
     ["read-only/results.sqlite"], "--store {ro}/results.sqlite cannot be written: the folder"),
    ("tune-output-in-a-missing-folder",
     ["tune", "cvh", *FAST, "--trials", "1", "--store", "{ws}/t.sqlite",
      "-o", "{ws}/missing/best.toml"], [], ["t.sqlite", "missing"], "does not exist"),
    ("tune-output-of-the-wrong-kind",
     ["tune", "cvh", *FAST, "--trials", "1", "--store", "{ws}/t.sqlite", "-o", "{ws}/best.json"],
     [], ["t.sqlite", "best.json"], "tuned settings are .toml files"),
    ("fit-output-of-the-wrong-kind",
     ["fit", "rp", *FAST, "-o", "{ws}/model.txt"], [], ["model.txt"],
     "model files are .npz files"),
    ("fit-output-in-a-read-only-folder",
     ["fit", "rp", *FAST, "-o", "{ro}/model.npz"], [], ["read-only/model.npz"],
     "the folder {ro} is read-only"),
    ("encode-output-onto-its-features",
     ["encode", "{ws}/model.npz", "{ws}/queries.csv", "--view", "image",
      "-o", "{ws}/queries.csv"], ["queries.csv", "model.npz"], [],
     "-o {ws}/queries.csv: that is the input"),
    ("encode-output-onto-its-model",
     ["encode", "{ws}/model.npz", "{ws}/queries.csv", "--view", "image",
      "-o", "{ws}/model.npz"], ["queries.csv", "model.npz"], [], "that is the input"),
    ("encode-output-of-the-wrong-kind",
     ["encode", "{ws}/model.npz", "{ws}/queries.csv", "--view", "image",
      "-o", "{ws}/codes.csv"], [], ["codes.csv"], "codes files are .npz files"),
    ("search-output-onto-its-queries",
     ["search", "{ws}/db.index", "{ws}/queries.csv", "--model", "{ws}/model.npz", "--view",
      "image", "-o", "{ws}/queries.csv"], ["queries.csv", "db.index"], [],
     "that is the input"),
    ("search-output-of-the-wrong-kind",
     ["search", "{ws}/db.index", "{ws}/codes.npz", "-o", "{ws}/hits.npz"], [], ["hits.npz"],
     "search hits are .csv or .json files"),
    ("index-output-onto-its-codes",
     ["index", "build", "{ws}/codes.npz", "-o", "{ws}/codes.npz"], ["codes.npz"], [],
     "that is the input"),
    ("report-output-onto-its-store",
     ["report", "--store", "{ws}/runs.csv", "--format", "csv", "-o", "{ws}/runs.csv"],
     ["runs.csv"], [], "that is the input"),
    ("report-output-in-a-read-only-folder",
     ["report", "--store", "{ws}/results.sqlite", "-o", "{ro}/report.md"], ["results.sqlite"],
     ["read-only/report.md"], "is read-only"),
    ("report-plots-in-a-read-only-folder",
     ["report", "--store", "{ws}/results.sqlite", "--plot", "{ro}/plots"], ["results.sqlite"],
     ["read-only/plots"], "--plot {ro}/plots cannot be written"),
    ("features-output-in-a-read-only-folder",
     ["features", "{ws}/tags.npz", "--extractor", "bow", "-o", "{ro}/tags.npz"], ["tags.npz"],
     ["read-only/tags.npz"], "is read-only"),
    ("regress-reference-in-a-read-only-folder",
     ["regress", "--suite", "{ws}/tiny.toml", "--reference", "{ro}/tiny.json", "--accept"],
     ["tiny.toml"], ["read-only/tiny.json"], "--reference {ro}/tiny.json cannot be written"),
    # ---- models, codes and indexes that are not
    ("encode-with-a-truncated-model",
     ["encode", "{ws}/truncated-model.npz", "{ws}/queries.csv", "--view", "image",
      "-o", "{ws}/out.npz"], ["truncated-model.npz"], ["out.npz"],
     "truncated-model.npz is not an mmhash model file (not a complete .npz archive"),
    ("encode-with-a-text-file-as-model",
     ["encode", "{ws}/notes.npz", "{ws}/queries.csv", "--view", "image", "-o", "{ws}/out.npz"],
     ["notes.npz"], ["out.npz"], "notes.npz is not an mmhash model file (not an .npz archive)"),
    ("search-with-a-truncated-model",
     ["search", "{ws}/db.index", "{ws}/queries.csv", "--model", "{ws}/truncated-model.npz",
      "--view", "image"], ["truncated-model.npz"], [], "is not an mmhash model file"),
    ("index-of-truncated-codes",
     ["index", "build", "{ws}/truncated-codes.npz", "-o", "{ws}/out.index"],
     ["truncated-codes.npz"], ["out.index"], "truncated-codes.npz is not an mmhash codes file"),
    ("search-a-truncated-index",
     ["search", "{ws}/truncated-db.index", "{ws}/codes.npz"], ["truncated-db.index"], [],
     "truncated-db.index is not an mmhash index file"),
    # ---- result stores
    ("report-on-an-empty-file",
     ["report", "--store", "{ws}/empty.sqlite"], ["empty.sqlite"], [],
     "empty.sqlite is not an mmhash result store (an empty file)"),
    ("report-on-a-text-file",
     ["report", "--store", "{ws}/notes.sqlite"], ["notes.sqlite"], [],
     "notes.sqlite is not an mmhash result store"),
    # ---- plugins
    ("fit-a-plugin-with-a-set-in-its-state",
     ["fit", "set-state-cvh", *FAST, "-o", "{ws}/set.npz"], [], ["set.npz"],
     "SetStateCVH state 'seen_' is a set, which a model file cannot keep; supported: numpy"),
]


@pytest.mark.parametrize("args, inputs, outputs, match", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_files_are_one_line_and_leave_everything_as_it_was(ws, read_only, plugins, hostile,
                                                               args, inputs, outputs, match):
    if any("{ro}" in a for a in args):
        read_only(ws / "read-only")
    paths = {"ws": ws, "ro": ws / "read-only"}
    if "runs.csv" in inputs:  # a store that is named like a CSV table
        shutil.copy(ws / "results.sqlite", ws / "runs.csv")
    outcome = hostile([a.format(**paths) for a in args], inputs=[ws / p for p in inputs],
                      outputs=[ws / p for p in outputs], code=2, match=match.format(**paths))
    assert "pickle" not in outcome.line and "Traceback" not in outcome.stderr


# ---- what works where it failed ---------------------------------------------------------------
def test_a_plugin_with_dict_and_tuple_state_passes_check_and_fits(ws, plugins, hostile):
    hostile(["check", "dict-state-cvh"], code=0)
    hostile(["fit", "dict-state-cvh", *FAST, "-o", ws / "dict.npz"], code=0)
    loaded = load_hasher(ws / "dict.npz")
    assert isinstance(loaded.projections_, dict) and isinstance(loaded.means_, tuple)
    fitted = DictStateCVH(n_bits=16).fit(mmhash.load_dataset("synthetic").part("train")[0])
    X = np.random.default_rng(1).normal(size=(7, loaded.n_features_["text"]))
    np.testing.assert_array_equal(loaded.encode(X, "text"), fitted.encode(X, "text"))


def test_nested_state_round_trips_exactly(tmp_path):
    hasher = CVH(n_bits=16).fit(mmhash.load_dataset("synthetic").part("train")[0])
    state = {"image": np.arange(6.0).reshape(2, 3), 3: [np.int16(7), (np.ones(2, np.int8), None)],
             "empty": []}
    hasher.extra_ = state
    hasher.weights_ = [np.zeros(3, np.float32), {"deep": np.array([True, False])}]
    hasher.save(tmp_path / "m.npz")
    loaded = load_hasher(tmp_path / "m.npz")
    assert list(loaded.extra_) == ["image", 3, "empty"]
    np.testing.assert_array_equal(loaded.extra_["image"], state["image"])
    scalar, (ones, none) = loaded.extra_[3]
    assert type(scalar) is np.int16 and scalar == 7 and none is None
    assert ones.dtype == np.int8 and isinstance(loaded.extra_[3][1], tuple)
    assert loaded.extra_["empty"] == [] and loaded.weights_[0].dtype == np.float32
    np.testing.assert_array_equal(loaded.weights_[1]["deep"], [True, False])
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:  # no pickle anywhere
        assert all(npz[k].dtype != object for k in npz.files)


def test_a_model_without_nested_state_keeps_the_first_format(tmp_path):
    from mmhash.base import read_saved

    CVH(n_bits=16).fit(mmhash.load_dataset("synthetic").part("train")[0]).save(tmp_path / "m.npz")
    assert read_saved(tmp_path / "m.npz")[0]["format"] == "mmhash-hasher/1"


def test_unsavable_state_names_the_attribute_and_the_supported_types(tmp_path):
    hasher = CVH(n_bits=16).fit(mmhash.load_dataset("synthetic").part("train")[0])
    hasher.per_view_ = {"image": np.zeros(2), "text": object()}
    with pytest.raises(InvalidInputError, match=r"CVH state 'per_view_'\['text'\] is a object.*"
                                                r"supported: numpy arrays"):
        hasher.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("content", [b"PK\x03\x04 cut short", b"plain text\n", b""],
                         ids=["truncated", "text", "empty"])
def test_load_hasher_raises_an_mmhash_error_for_files_that_are_not_models(built, tmp_path,
                                                                          content):
    path = tmp_path / "model.npz"
    path.write_bytes(content or (built / "truncated-model.npz").read_bytes())
    with pytest.raises(MMHashError, match="is not an mmhash model file") as caught:
        load_hasher(path)
    assert isinstance(caught.value, DataError) and "pickle" not in str(caught.value)


def test_a_csv_header_of_column_positions_is_a_header(tmp_path):
    """``pandas.DataFrame(X).to_csv(index=False)`` names the columns 0, 1, ...: a header."""
    _write_csv(tmp_path / "f.csv", np.ones((5, 4)), ["0", "1", "2", "3"])
    features = open_features(tmp_path / "f.csv")
    assert features.n_rows == 5 and next(features.chunks()).shape == (5, 4)


def test_report_reads_the_store_read_only_and_leaves_an_older_one_as_it_was(ws, hostile,
                                                                             monkeypatch):
    """Reports open stores with SQLite's mode=ro; a store of an older schema is upgraded in a
    copy in memory, never in the file."""
    old = ws / "old.sqlite"
    shutil.copy(RELEASE_STORE, old)
    opened = []
    connect = sqlite3.connect

    def spy(database, *args, **kwargs):
        opened.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spy)
    out = hostile(["report", "--store", old, "--store", ws / "results.sqlite"],
                  inputs=[old, ws / "results.sqlite"], code=0)
    assert "cvh (reg=0.001)" in out.stdout and "| rp" in out.stdout
    # every store is first opened read-only; a plain connection follows only to have SQLite
    # remove the WAL files the read-only one left
    first = {p.split("?")[0].removeprefix("file:"): p for p in reversed(opened)}
    assert {Path(p) for p in first} >= {old, ws / "results.sqlite"}
    assert all(p.endswith("mode=ro") for k, p in first.items() if k != ":memory:"), opened
    assert sorted(p.name for p in ws.glob("*.sqlite-*")) == []
    assert sqlite3.connect(old).execute("SELECT value FROM meta").fetchone()[0] == "2"
    with ResultStore(old, read_only=True) as store:
        assert store.schema_version == SCHEMA_VERSION


def test_report_works_on_a_store_in_a_read_only_folder(ws, read_only, hostile):
    folder = ws / "read-only"
    folder.chmod(0o755)
    shutil.copy(ws / "results.sqlite", folder / "results.sqlite")
    read_only(folder)
    out = hostile(["report", "--store", folder / "results.sqlite"],
                  inputs=[folder / "results.sqlite"], code=0)
    assert "| rp" in out.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["results.sqlite"]
