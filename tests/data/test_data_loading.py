"""load_dataset / list_datasets without real data: cards, synthetic sets, users' files, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mmhash
from mmhash.data import PARTS, list_datasets, load_dataset, make_synthetic
from mmhash.data.cards import all_cards, parse_card
from mmhash.data.splits import generated_split, stored_split, validation_subset
from mmhash.errors import DataError, UnknownNameError

RNG = np.random.default_rng(3)
REGISTERED = {"synthetic", "synthetic3", "synthetic-mirflickr", "synthetic-nuswide", "wiki",
              "wiki3", "cub10", "mfeat"}
# The field's benchmark releases: read from the user's files, never shipped.
RELEASES = {"mirflickr25k", "mirflickr25k-vgg", "nuswide10", "nuswide10-vgg", "mscoco-vgg",
            "iapr12-cnnf"}
# Cards whose views fit in this (64 MiB) are loaded by the default tests; the larger ones
# (synthetic-nuswide: 7.6 GB) only by the slow full-size test.
SMALL_LOAD = 64 << 20
GENERATED_SMALL = sorted(name for name, card in all_cards().items()
                         if card.synthetic and not card.files and card.nbytes <= SMALL_LOAD)


# --- cards -------------------------------------------------------------------------------------


def test_every_registered_dataset_has_a_card():
    assert set(all_cards()) == REGISTERED | RELEASES
    assert {name for name, card in all_cards().items() if card.release} == RELEASES


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_release_card_is_complete_and_its_split_is_its_protocols(name):
    from mmhash.data.formats import READERS
    from mmhash.data.protocols import PROTOCOLS
    from mmhash.data.splits import validation_subset

    card = all_cards()[name]
    assert card.reader in READERS and card.raw["protocol"] in PROTOCOLS
    assert card.split["protocol"] == card.raw["protocol"] and card.split["source"] == "protocol"
    assert card.n > 0 and card.classes > 0 and card.raw["citation"] and card.raw["source"]
    for f in card.files:  # the common release's sha256 where known, else empty
        assert f["sha256"] == "" or len(f["sha256"]) == 64
        assert f["path"].startswith(card.folder + "/")
    sizes = {p: card.split[p] for p in PARTS}
    assert sizes["query"] + sizes["retrieval"] == card.n
    assert sizes["validation"] == len(validation_subset(np.arange(sizes["train"])))
    if card.raw["protocol"] == "ucch":  # training = retrieval = everything but the queries
        assert sizes["train"] == sizes["retrieval"]


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_card_is_complete(name):  # the release cards: the test above
    card = all_cards()[name]
    assert card.description and card.views and card.n > 0 and card.classes > 0
    for spec in card.views.values():
        assert spec["dim"] > 0 and spec["description"]
    assert card.split["definition"]
    if card.files or not card.synthetic:  # a synthetic set's real files too
        assert card.folder and card.files
        for f in card.files:
            assert len(f["sha256"]) == 64 and int(f["sha256"], 16) >= 0
            assert f["upstream"] and f["path"].startswith(card.folder.split("/")[0])
    if "file" in card.split:
        # The stored split file has exactly the sizes the card declares.
        split = stored_split(card.split["file"])
        assert {p: len(getattr(split, p)) for p in PARTS} == {p: card.split[p] for p in PARTS}


def test_malformed_card_is_a_data_error():
    with pytest.raises(DataError, match=r"dataset card x\.toml lacks reader"):
        parse_card('name = "x"\ndescription = "d"\nsynthetic = true\nn = 1\nclasses = 1\n'
                   '[views.a]\ndim = 1\n[split]\nquery = 1\n', "x.toml")
    with pytest.raises(DataError, match=r"not valid TOML"):
        parse_card("name = ", "y.toml")


def test_small_generated_sets_are_the_usual_ones():
    # The selection below goes by the cards' declared sizes; make sure it still picks these.
    assert {"synthetic", "synthetic3"} <= set(GENERATED_SMALL)
    assert "synthetic-nuswide" not in GENERATED_SMALL


@pytest.mark.parametrize("name", GENERATED_SMALL)
def test_synthetic_cards_describe_what_is_generated(name):
    ds = load_dataset(name)
    card = all_cards()[name]
    assert ds.synthetic and ds.name == name
    assert ds.summary()["views"] == card.dims
    assert ds.n_samples == card.n and ds.labels.shape[1] == card.classes
    assert {p: len(getattr(ds.split, p)) for p in PARTS} == {p: card.split[p] for p in PARTS}
    assert ds.info["split_generated"] and ds.info["reader"] == "synthetic"


def test_synthetic_is_make_synthetic_defaults():
    a, b = load_dataset("synthetic"), make_synthetic()
    for v in b.views:
        np.testing.assert_array_equal(a.views[v], b.views[v])
    np.testing.assert_array_equal(a.split.query, b.split.query)


def test_synthetic3_has_three_views():
    assert load_dataset("synthetic3").view_names == ["image", "text", "tags"]


def test_top_level_load_dataset_delegates():
    assert mmhash.load_dataset("synthetic").name == "synthetic"


# --- stored splits --------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["wiki.npz", "cub10.npz", "mfeat.npz"])
def test_stored_split_is_sound(filename):
    split = stored_split(filename)
    for part in PARTS:
        idx = getattr(split, part)
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert np.intersect1d(split.query, split.train).size == 0
    assert np.intersect1d(split.query, split.retrieval).size == 0
    assert np.isin(split.validation, split.train).all()
    assert len(split.validation) == round(0.1 * len(split.train))
    np.testing.assert_array_equal(split.validation, validation_subset(split.train))


def test_wiki_stored_split_is_the_original_rows():
    split = stored_split("wiki.npz")
    np.testing.assert_array_equal(split.query, np.arange(2173, 2866))
    np.testing.assert_array_equal(split.train, np.arange(2173))
    np.testing.assert_array_equal(split.retrieval, np.arange(2173))


def test_generated_split_is_deterministic_and_disjoint():
    a, b = generated_split(50), generated_split(50)
    for part in PARTS:
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert len(a.query) == 10 and len(a.train) == 40 and len(a.validation) == 4
    assert np.intersect1d(a.query, a.train).size == 0
    np.testing.assert_array_equal(np.union1d(a.query, a.train), np.arange(50))


# --- a user's files -----------------------------------------------------------------------------


def _wikidata(n_tr=20, n_te=5):
    return {"I_tr": RNG.random((n_tr, 6)), "T_tr": RNG.random((n_tr, 4)),
            "L_tr": RNG.integers(1, 4, (n_tr, 1)).astype(np.uint8),
            "I_te": RNG.random((n_te, 6)), "T_te": RNG.random((n_te, 4)),
            "L_te": RNG.integers(1, 4, (n_te, 1)).astype(np.uint8)}


def test_user_file_with_train_test_keeps_its_split(tmp_path, mat_writer):
    path = mat_writer(tmp_path / "wikiData.mat", _wikidata())
    ds = load_dataset(str(path))
    assert ds.name == "wikiData" and not ds.synthetic
    np.testing.assert_array_equal(ds.split.query, np.arange(20, 25))
    np.testing.assert_array_equal(ds.split.train, np.arange(20))
    np.testing.assert_array_equal(ds.split.retrieval, np.arange(20))
    assert len(ds.split.validation) == 2 and np.isin(ds.split.validation, ds.split.train).all()
    assert ds.info["split_generated"] is False and ds.info["split"]["source"] == "file"
    assert ds.info["path"] == str(path) and ds.info["reader"] == "wikidata"
    assert len(ds.info["source_files"][0]["sha256"]) == 64


def test_user_triple_uses_database_as_retrieval(tmp_path, write_mat73):
    for part, s, n in (("train", "tr", 12), ("query", "te", 3), ("database", "db", 12)):
        write_mat73(tmp_path / f"nus_{part}.mat", {
            f"I_{s}": RNG.random((n, 5)), f"T_{s}": RNG.random((n, 4)),
            f"L_{s}": (RNG.random((n, 6)) < 0.5).astype(np.uint8)})
    ds = load_dataset(tmp_path / "nus_query.mat")
    assert ds.name == "nus" and ds.n_samples == 27
    np.testing.assert_array_equal(ds.split.train, np.arange(12))
    np.testing.assert_array_equal(ds.split.query, np.arange(12, 15))
    np.testing.assert_array_equal(ds.split.retrieval, np.arange(15, 27))
    assert ds.labels.shape == (27, 6)


def test_user_file_without_split_gets_a_recorded_generated_split(tmp_path, write_mat5, make_cell):
    gt = np.repeat(np.arange(1, 6, dtype=np.uint8), 8)[:, None]
    path = write_mat5(tmp_path / "mv.mat", {"X": make_cell(RNG.random((40, 3)),
                                                           RNG.random((40, 2))), "gt": gt})
    a, b = load_dataset(path), load_dataset(str(path))
    assert a.info["split_generated"] is True and a.info["split"]["source"] == "generated"
    assert "20%" in a.info["split"]["definition"]
    assert len(a.split.query) == 8 and len(a.split.train) == 32
    for part in PARTS:
        np.testing.assert_array_equal(getattr(a.split, part), getattr(b.split, part))


def test_returned_arrays_are_copies(tmp_path, write_mat5):
    path = write_mat5(tmp_path / "w.mat", _wikidata())
    first = load_dataset(path)
    original = first.views["image"].copy()
    first.views["image"][:] = -1.0  # a caller scribbling on its dataset ...
    np.testing.assert_array_equal(load_dataset(path).views["image"], original)  # ... not the cache


def test_changed_file_is_read_again(tmp_path, write_mat5):
    path = write_mat5(tmp_path / "w.mat", _wikidata())
    load_dataset(path)
    changed = _wikidata(n_tr=21)  # a different size too: robust to coarse file-system clocks
    write_mat5(path, changed)
    np.testing.assert_array_equal(load_dataset(path).views["image"][:21], changed["I_tr"])


def test_missing_user_file(tmp_path):
    with pytest.raises(DataError, match=r"file not found: .*missing\.mat"):
        load_dataset(str(tmp_path / "missing.mat"))


# --- names, data directory, listing --------------------------------------------------------------


def test_unknown_name_suggests_a_registered_one():
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'wikki'; did you mean 'wiki'\? "
                                               r"\(choose from: cub10, iapr12-cnnf, mfeat"):
        load_dataset("wikki")


def test_absent_registered_dataset_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.delenv("MMHASH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        load_dataset("wiki")
    msg = str(err.value)
    assert "wikipedia/raw_features.mat" in msg
    assert str(tmp_path / "data" / "wikipedia" / "raw_features.mat") in msg
    assert "MMHASH_DATA" in msg and "default ./data" in msg


def test_relative_mmhash_data_resolves_against_cwd(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MMHASH_DATA", "sub")
    entry = {e["name"]: e for e in list_datasets()}["cub10"]
    assert entry["path"] == str(tmp_path / "sub" / "cub10")
    with pytest.raises(DataError, match=r"from \$MMHASH_DATA"):
        load_dataset("cub10")


def test_list_datasets_entries(tmp_path):
    entries = {e["name"]: e for e in list_datasets(data_dir=tmp_path)}
    assert set(entries) == REGISTERED | RELEASES
    for e in entries.values():
        for key in ("name", "present", "path", "n", "views", "classes", "description",
                    "synthetic"):
            assert key in e
    wiki = entries["wiki"]
    assert wiki["present"] is False and wiki["views"] is None and wiki["n"] is None
    assert wiki["declared"]["views"] == {"image": 128, "text": 10}
    assert wiki["path"] == str(tmp_path / "wikipedia")
    assert str(tmp_path / "wikipedia" / "raw_features.mat") in wiki["missing"]
    syn = entries["synthetic"]
    assert syn["present"] is True and syn["synthetic"] is True
    assert syn["views"] == {"image": 128, "text": 64} and syn["classes"] == 12
    nus = entries["synthetic-nuswide"]
    assert nus["present"] is True and nus["path"] == "(generated)" and nus["n"] == 186_577
    # real tags and labels with a generated image: present only where its files are
    mir = entries["synthetic-mirflickr"]
    assert mir["synthetic"] is True and mir["present"] is False
    assert str(tmp_path / "mirflickr25k" / "mirflickr25k-lall.mat") in mir["missing"]


def test_sha256_mismatch_is_an_error(tmp_path):
    # A fake cub10 file at the expected place: present for list_datasets, refused by load.
    path = tmp_path / "cub10" / "cub_googlenet_doc2vec_c10.mat"
    path.parent.mkdir()
    path.write_bytes(b"not the pinned file")
    assert {e["name"]: e for e in list_datasets(data_dir=tmp_path)}["cub10"]["present"]
    with pytest.raises(DataError, match=r"cub_googlenet_doc2vec_c10\.mat is not the pinned version "
                                        r"\(sha256 expected 3ab7dc99.*, actual [0-9a-f]{64}\)"):
        load_dataset("cub10", data_dir=tmp_path)


def test_path_object_is_always_a_path(tmp_path):
    with pytest.raises(DataError, match=r"file not found"):
        load_dataset(Path("wiki"))


def test_non_string_name():
    with pytest.raises(UnknownNameError):
        load_dataset(42)  # type: ignore[arg-type]


def test_user_mfeat_folder(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    y = np.repeat(np.arange(4), 5)
    for v, d in (("fou", 3), ("pix", 4)):
        rows = [",".join(str(i) for i in range(d)) + ",0"]
        rows += [",".join(f"{x:.5f}" for x in RNG.random(d)) + f",{t}" for t in y]
        (folder / f"mfeat-{v}.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(folder)
    assert ds.name == "digits" and ds.view_names == ["fou", "pix"]
    assert ds.info["reader"] == "mfeat" and ds.info["split_generated"] is True
    assert len(ds.info["source_files"]) == 2


def test_user_triple_by_prefix(tmp_path, write_mat5):
    for part, s, n in (("train", "tr", 6), ("query", "te", 2), ("database", "db", 6)):
        write_mat5(tmp_path / f"coco_{part}.mat", {
            f"I_{s}": RNG.random((n, 3)), f"T_{s}": RNG.random((n, 2)),
            f"L_{s}": (RNG.random((n, 4)) < 0.5).astype(np.uint8)})
    ds = load_dataset(str(tmp_path / "coco"))
    assert ds.name == "coco" and len(ds.split.query) == 2 and len(ds.split.retrieval) == 6
