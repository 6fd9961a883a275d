"""Readers and registered datasets on the real files under $MMHASH_DATA (skipped without them).

Expected numbers come from each folder's SOURCE.md.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mmhash.data import PARTS, load_dataset
from mmhash.data.formats import (
    read_cell,
    read_mfeat,
    read_npz,
    read_path,
    read_svcl,
    read_wikidata,
)
from mmhash.data.protocols import apply_protocol
from mmhash.data.splits import stored_split
from mmhash.errors import DataError

pytestmark = pytest.mark.data

WIKI = ("wikipedia/raw_features.mat", "wikipedia/trainset_txt_img_cat.list",
        "wikipedia/testset_txt_img_cat.list")
CUB = "cub10/cub_googlenet_doc2vec_c10.mat"
MFEAT = tuple(f"uci_mfeat/csv/mfeat-{v}.csv" for v in ("fou", "fac", "kar", "pix", "zer", "mor"))
WIKI_TRAIN_COUNTS = [138, 272, 244, 248, 202, 178, 186, 144, 214, 347]
WIKI_TEST_COUNTS = [34, 88, 96, 85, 65, 58, 51, 41, 71, 104]


# --- Wikipedia -------------------------------------------------------------------------------


def test_svcl_reader_on_the_release(need):
    features, _, _ = need(*WIKI)
    raw = read_svcl(features)
    assert {v: X.shape for v, X in raw.views.items()} == {
        "image": (2866, 128), "text": (2866, 10), "tfidf": (2866, 1000)}
    assert len(raw.parts["train"]) == 2173 and len(raw.parts["test"]) == 693
    assert raw.labels.shape == (2866, 10) and (raw.labels.sum(1) == 1).all()
    assert raw.labels[raw.parts["train"]].sum(0).tolist() == WIKI_TRAIN_COUNTS
    assert raw.labels[raw.parts["test"]].sum(0).tolist() == WIKI_TEST_COUNTS
    # SIFT BoVW and LDA rows are distributions (SOURCE.md): a wrong key or orientation breaks it.
    np.testing.assert_allclose(raw.views["image"].sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(raw.views["text"].sum(1), 1.0, atol=1e-6)


def test_raw_features_and_wiki_data_mat_are_identical(need):
    features, _, _, wikidata = need(*WIKI, "wikipedia/wiki_data.mat")
    a, b = read_svcl(features, views=["image", "text"]), read_wikidata(wikidata)
    for v in ("image", "text"):
        np.testing.assert_array_equal(a.views[v], b.views[v])
    np.testing.assert_array_equal(a.labels, b.labels)  # .list categories == L_tr/L_te
    for part in ("train", "test"):
        np.testing.assert_array_equal(a.parts[part], b.parts[part])


def test_wiki_data_mat_one_hot_keys_agree(need):
    # wiki_data.mat also holds L_train/L_test one-hot: the same labels as the class columns.
    (wikidata,) = need("wikipedia/wiki_data.mat")
    import scipy.io

    m = scipy.io.loadmat(wikidata)
    raw = read_wikidata(wikidata)
    np.testing.assert_array_equal(raw.labels, np.vstack([m["L_train"], m["L_test"]]))


def test_wiki_data_mat_as_v73_reads_the_same(need, tmp_path, write_mat73):
    # The SCRATCH copy of wiki_data.mat is v7.3: write the real arrays in that layout.
    (wikidata,) = need("wikipedia/wiki_data.mat")
    import scipy.io

    m = {k: v for k, v in scipy.io.loadmat(wikidata).items() if not k.startswith("__")}
    v73 = read_wikidata(write_mat73(tmp_path / "wiki_data.mat", m))
    v5 = read_wikidata(wikidata)
    for v in v5.views:
        np.testing.assert_array_equal(v5.views[v], v73.views[v])
    np.testing.assert_array_equal(v5.labels, v73.labels)


def test_wiki_registered(real_data, need):
    need(*WIKI)
    ds = load_dataset("wiki", data_dir=real_data)
    assert ds.summary()["views"] == {"image": 128, "text": 10}
    assert ds.n_samples == 2866 and ds.labels.shape == (2866, 10)
    np.testing.assert_array_equal(ds.split.query, np.arange(2173, 2866))
    np.testing.assert_array_equal(ds.split.train, np.arange(2173))
    np.testing.assert_array_equal(ds.split.retrieval, ds.split.train)
    assert len(ds.split.validation) == 217
    assert np.intersect1d(ds.split.query, ds.split.train).size == 0
    assert ds.labels[ds.split.query].sum(0).tolist() == WIKI_TEST_COUNTS
    assert ds.info["reader"] == "svcl" and ds.info["split"]["source"] == "original"
    assert [f["sha256"][:8] for f in ds.info["source_files"]] == ["047ebad0", "ca19aec0",
                                                                    "ec3123ee"]


def test_wiki3_adds_tfidf_to_the_same_rows(real_data, need):
    need(*WIKI)
    wiki, wiki3 = load_dataset("wiki", data_dir=real_data), load_dataset("wiki3",
                                                                         data_dir=real_data)
    assert wiki3.view_names == ["image", "text", "tfidf"]
    assert wiki3.views["tfidf"].shape == (2866, 1000)
    for v in wiki.views:
        np.testing.assert_array_equal(wiki.views[v], wiki3.views[v])
    np.testing.assert_array_equal(wiki.split.query, wiki3.split.query)


def test_wiki_loads_fast_after_the_first_time(real_data, need):
    need(*WIKI)
    load_dataset("wiki", data_dir=real_data)
    start = time.perf_counter()
    for _ in range(3):
        load_dataset("wiki", data_dir=real_data)
    assert (time.perf_counter() - start) / 3 < 0.25


def test_fixed_split_identical_across_loads(real_data, need):
    need(CUB)
    a, b = load_dataset("cub10", data_dir=real_data), load_dataset("cub10", data_dir=real_data)
    for part in PARTS:
        np.testing.assert_array_equal(getattr(a.split, part), getattr(b.split, part))


# --- CUB-10 and mfeat ------------------------------------------------------------------------


def test_cub10(real_data, need):
    (mat,) = need(CUB)
    ds = load_dataset("cub10", data_dir=real_data)
    assert ds.summary()["views"] == {"image": 1024, "text": 300}
    assert ds.n_samples == 600 and (ds.labels.sum(0) == 60).all()
    assert (ds.labels.argmax(1) == np.repeat(np.arange(10), 60)).all()  # ordered by class
    assert [len(getattr(ds.split, p)) for p in PARTS] == [120, 480, 480, 48]
    assert np.intersect1d(ds.split.query, ds.split.train).size == 0
    assert (ds.labels[ds.split.query].sum(0) == 12).all()  # the suggested split is stratified
    np.testing.assert_array_equal(read_cell(mat).views["image"], ds.views["image"])


def test_cub10_matches_staged_npz(need):
    mat, npz = need(CUB, "cub10/cub10.npz")
    a, b = read_cell(mat), read_npz(npz)
    for v in ("image", "text"):
        np.testing.assert_array_equal(a.views[v], b.views[v])
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(stored_split("cub10.npz").query, b.parts["query"])
    np.testing.assert_array_equal(stored_split("cub10.npz").train, b.parts["train"])


def test_mfeat(real_data, need):
    need(*MFEAT)
    ds = load_dataset("mfeat", data_dir=real_data)
    assert ds.summary()["views"] == {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47,
                                     "mor": 6}
    assert ds.n_samples == 2000 and (ds.labels.sum(0) == 200).all()
    assert [len(getattr(ds.split, p)) for p in PARTS] == [400, 1600, 1600, 160]
    assert np.intersect1d(ds.split.query, ds.split.train).size == 0


def test_mfeat_csv_matches_staged_npz(real_data, need):
    need(*MFEAT)
    (npz,) = need("uci_mfeat/uci_mfeat.npz")
    a, b = read_mfeat(real_data / "uci_mfeat" / "csv"), read_npz(npz)
    assert list(a.views) == list(b.views)
    for v in a.views:
        np.testing.assert_array_equal(a.views[v], b.views[v])
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(stored_split("mfeat.npz").query, b.parts["query"])


def test_user_npz_keeps_its_split(need):
    (npz,) = need("uci_mfeat/uci_mfeat.npz")
    ds = load_dataset(npz)
    assert ds.info["split_generated"] is False
    np.testing.assert_array_equal(ds.split.query, stored_split("mfeat.npz").query)


def test_make_splits_reproduces_the_stored_splits(real_data, need, tmp_path):
    need(*WIKI, CUB, "cub10/cub10.npz", *MFEAT, "uci_mfeat/uci_mfeat.npz")
    # a maintainer's script in the source tree (datasets/), not part of the installed package
    script = Path(__file__).resolve().parents[2] / "datasets" / "make_splits.py"
    spec = importlib.util.spec_from_file_location("make_splits", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = module.make_all(real_data, tmp_path)
    for filename, split in made.items():
        stored = stored_split(filename)
        for part in PARTS:
            np.testing.assert_array_equal(getattr(split, part), getattr(stored, part))


# --- pinned versions ---------------------------------------------------------------------------


def _copy_wiki(real_data, tmp_path):
    (tmp_path / "wikipedia").mkdir()
    for rel in WIKI:
        shutil.copy(real_data / rel, tmp_path / rel)
    return tmp_path


def test_altered_byte_is_a_sha256_mismatch(real_data, need, tmp_path):
    need(*WIKI)
    root = _copy_wiki(real_data, tmp_path)
    lst = root / "wikipedia" / "testset_txt_img_cat.list"
    data = bytearray(lst.read_bytes())
    data[0] = ord("0") if data[0] != ord("0") else ord("1")  # one id character: still parses
    lst.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"testset_txt_img_cat\.list is not the pinned version "
                                        r"\(sha256 expected ec3123ee[0-9a-f]{56}, actual "
                                        r"[0-9a-f]{64}\)"):
        load_dataset("wiki", data_dir=root)


def test_copy_with_a_missing_file(real_data, need, tmp_path):
    need(*WIKI)
    root = _copy_wiki(real_data, tmp_path)
    (root / "wikipedia" / "trainset_txt_img_cat.list").unlink()
    with pytest.raises(DataError, match=r"needs wikipedia/trainset_txt_img_cat\.list, expected at "
                                        r".*; .* the data_dir argument"):
        load_dataset("wiki", data_dir=root)


def test_intact_copy_loads_like_the_original(real_data, need, tmp_path):
    need(*WIKI)
    root = _copy_wiki(real_data, tmp_path)
    a, b = load_dataset("wiki", data_dir=root), load_dataset("wiki", data_dir=real_data)
    np.testing.assert_array_equal(a.views["image"], b.views["image"])
    assert a.info["data_dir"] == str(root)


def test_wikipedia_folder_as_a_user_path(real_data, need):
    need(*WIKI)
    ds = load_dataset(real_data / "wikipedia")
    assert ds.info["reader"] == "svcl" and ds.info["split_generated"] is False
    assert ds.view_names == ["image", "text", "tfidf"]
    stored = stored_split("wiki.npz")
    for part in PARTS:
        np.testing.assert_array_equal(getattr(ds.split, part), getattr(stored, part))


# --- MIRFlickr-25K, DCMH files ------------------------------------------------------------------
MIR = ("mirflickr25k/mirflickr25k-yall.mat", "mirflickr25k/mirflickr25k-lall.mat")


def _mirflickr_with_images(need, tmp_path, writer, image_dim=16):
    """The real YAll and LAll beside an IAll the test writes in the same layout (the image
    file itself cannot be had here): a (20015, image_dim) float32 matrix."""
    yall, lall = need(*MIR)
    for real in (yall, lall):
        shutil.copy(real, tmp_path / real.name)
    images = np.random.default_rng(0).random((20015, image_dim), dtype=np.float32)
    writer(tmp_path / "mirflickr25k-iall.mat", {"IAll": images})
    return tmp_path, images


def test_dcmh_reader_on_the_real_tag_and_label_files(need, tmp_path, mat_writer):
    folder, images = _mirflickr_with_images(need, tmp_path, mat_writer)
    for given in ("iall", "yall", "lall"):  # any of the three names the set
        raw = read_path(folder / f"mirflickr25k-{given}.mat")
        assert raw.reader == "dcmh"
    assert {v: X.shape for v, X in raw.views.items()} == {"image": (20015, 16),
                                                          "text": (20015, 1386)}
    np.testing.assert_array_equal(raw.views["image"], images)  # float32, as stored
    # SOURCE.md: 3.78 labels and 4.64 tags per item on average, every item labelled
    assert raw.labels.shape == (20015, 24) and raw.labels.sum(1).min() == 1
    assert round(raw.labels.sum(1).mean(), 2) == 3.78
    assert round(raw.views["text"].sum(1).mean(), 2) == 4.64
    assert raw.labels.sum(0)[1] == 179 and raw.labels.sum(0).max() == 8463  # baby, structures
    assert raw.parts == {} and raw.notes["collection"] == "mirflickr25k"  # a protocol splits
    split, name, _ = apply_protocol(raw)
    assert name == "dcmh" and split.query.tolist() == list(range(2000))
    assert split.retrieval[0] == 2000 and len(split.retrieval) == 18015
    assert len(split.train) == 5000 and split.train.min() >= 2000


def test_dcmh_set_loads_as_a_dataset_with_the_stored_split(need, tmp_path, write_mat5):
    folder, _ = _mirflickr_with_images(need, tmp_path, write_mat5)
    data = load_dataset(folder / "mirflickr25k-iall.mat")
    assert data.name == "mirflickr25k@dcmh" and data.view_names == ["image", "text"]
    stored = stored_split("mirflickr25k.npz")
    for part in PARTS:
        np.testing.assert_array_equal(getattr(data.split, part), getattr(stored, part))
    assert "training = stored: 5000 rows" in data.info["split"]["definition"]
    assert len(data.info["source_files"]) == 3


def test_dcmh_set_names_a_missing_file(need, tmp_path):
    yall, lall = need(*MIR)
    shutil.copy(yall, tmp_path / yall.name)
    with pytest.raises(DataError, match=r"three files side by side; missing: .*iall\.mat"):
        read_path(tmp_path / "mirflickr25k-yall.mat")
    shutil.copy(lall, tmp_path / lall.name)
    shutil.copy(lall, tmp_path / "mirflickr25k-iall.mat")  # the wrong variable inside
    with pytest.raises(DataError, match=r"no variable 'IAll' \(found: LAll\)"):
        read_path(tmp_path / "mirflickr25k-yall.mat")
