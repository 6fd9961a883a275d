"""synthetic-nuswide and synthetic-mirflickr: the generators at tiny sizes, the cards, the loader.

Everything here is fast except ``test_full_size_sets_load_with_the_protocols_shapes`` (marked
``slow``: 8.5 GB and about a minute; run it with ``--runslow``). The mirflickr tests read the real
tag and label files from $MMHASH_DATA and are skipped without them.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io

from mmhash.data import PARTS, load_dataset
from mmhash.data.cards import all_cards
from mmhash.data.formats.dcmh import family_parts
from mmhash.data.loading import GENERATORS
from mmhash.data.splits import stored_split, validation_subset
from mmhash.data.standard_shaped import (
    SEED_BLOCK,
    make_synthetic_mirflickr,
    make_synthetic_nuswide,
)
from mmhash.errors import DataError, InvalidInputError
from mmhash.evaluation import mean_average_precision
from mmhash.hashers.rp import RandomProjectionHasher

MIR = ("mirflickr25k/mirflickr25k-yall.mat", "mirflickr25k/mirflickr25k-lall.mat")
# 2.4 seed blocks (the last one partial), the real text width, a small image.
TINY = {"n": 2500, "dims": (256, 1000), "n_query": 210, "n_train": 1050}


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic_nuswide(**TINY)


def _mir_files(need):
    yall, lall = need(*MIR)
    return {"text": yall, "labels": lall}


def _sizes(ds):
    return {p: len(getattr(ds.split, p)) for p in PARTS}


def _assert_same(a, b):
    for v in a.views:
        np.testing.assert_array_equal(a.views[v], b.views[v])
    np.testing.assert_array_equal(a.labels, b.labels)
    for p in PARTS:
        np.testing.assert_array_equal(getattr(a.split, p), getattr(b.split, p))


def _assert_protocol_split(ds, n_query, n_train):
    s, n = ds.split, ds.n_samples
    assert _sizes(ds) == {"query": n_query, "retrieval": n - n_query, "train": n_train,
                          "validation": round(0.1 * n_train)}
    assert np.intersect1d(s.query, s.train).size == 0
    assert np.intersect1d(s.query, s.retrieval).size == 0
    np.testing.assert_array_equal(np.union1d(s.query, s.retrieval), np.arange(n))
    assert np.isin(s.train, s.retrieval).all() and np.isin(s.validation, s.train).all()
    np.testing.assert_array_equal(s.validation, validation_subset(s.train))


# --- synthetic-nuswide ---------------------------------------------------------------------------


def test_nuswide_is_deterministic_in_its_seed(tiny):
    _assert_same(tiny, make_synthetic_nuswide(**TINY))
    other = make_synthetic_nuswide(**TINY, random_state=1)
    assert not np.array_equal(other.views["image"], tiny.views["image"])
    assert not np.array_equal(other.split.query, tiny.split.query)


def test_whole_seed_blocks_do_not_depend_on_the_size():
    # Draws and products run per block of SEED_BLOCK rows: a longer set starts with the same rows.
    small = make_synthetic_nuswide(**{**TINY, "n": 2 * SEED_BLOCK})
    large = make_synthetic_nuswide(**TINY)
    for v in small.views:
        np.testing.assert_array_equal(small.views[v], large.views[v][: 2 * SEED_BLOCK])
    np.testing.assert_array_equal(small.labels, large.labels[: 2 * SEED_BLOCK])


def test_nuswide_shapes_dtypes_and_ranges(tiny):
    image, text = tiny.views["image"], tiny.views["text"]
    assert tiny.synthetic and tiny.name == "synthetic-nuswide"
    assert image.shape == (2500, 256) and text.shape == (2500, 1000)
    assert image.dtype == text.dtype == np.float32 and tiny.labels.dtype == np.uint8
    assert image.min() == 0.0 and 0.6 < (image == 0).mean() < 0.8  # ReLU-like, many zeros
    assert set(np.unique(text)) == {0.0, 1.0} and text.sum(axis=1).min() >= 1
    assert 0.005 < text.mean() < 0.015  # about 1% of the 1,000 tags, "a handful" per item


def test_nuswide_labels_look_like_the_10_class_protocol(tiny):
    per_item = tiny.labels.sum(axis=1)
    assert tiny.labels.shape[1] == 10 and per_item.min() >= 1
    assert 0.9 < np.isin(per_item, (1, 2)).mean() < 1.0  # most items 1-2 labels, some more
    frequency = tiny.labels.mean(axis=0)
    assert frequency.min() > 0.03 and frequency.max() < 0.5 and frequency[0] > frequency[-1]


def test_nuswide_split(tiny):
    _assert_protocol_split(tiny, 210, 1050)


@pytest.mark.parametrize("bad", [{"n_query": 0}, {"n_train": 2400}, {"dims": (256, 0)}])
def test_impossible_sizes_are_refused(bad):
    with pytest.raises(InvalidInputError):
        make_synthetic_nuswide(**{**TINY, **bad})


def _cca_codes(ds, bits, reg=0.1):
    """Linear CCA (relative ridge, as CVH) fitted on train; sign codes of query and retrieval."""
    views, _ = ds.part("train")
    means = {v: A.mean(axis=0) for v, A in views.items()}
    Xc, Yc = views["image"] - means["image"], views["text"] - means["text"]

    def whitener(A):
        C = A.T @ A / len(A)
        C += reg * np.trace(C) / len(C) * np.eye(len(C))
        return np.linalg.inv(np.linalg.cholesky(C))

    Wx, Wy = whitener(Xc), whitener(Yc)
    U, _, Vt = np.linalg.svd(Wx @ (Xc.T @ Yc / len(Xc)) @ Wy.T)
    proj = {"image": Wx.T @ U[:, :bits], "text": Wy.T @ Vt[:bits].T}
    return lambda part, v: np.where((ds.part(part)[0][v] - means[v]) @ proj[v] >= 0, 1, -1)


def test_generated_views_carry_the_labels_but_not_trivially():
    # Image -> text retrieval at 16 bits: linear CCA clearly beats the random-projection floor
    # (the pairing carries the labels) and stays far from perfect (noise the labels do not fix).
    # 3,000 training pairs: with fewer than the 1,000 tag dimensions CCA fits noise.
    ds = make_synthetic_nuswide(n=4000, dims=(256, 1000), n_query=300, n_train=3000)
    (queries, q_labels), (retrieval, r_labels) = ds.part("query"), ds.part("retrieval")
    cca = _cca_codes(ds, 16)
    cca_map = mean_average_precision(cca("query", "image"), cca("retrieval", "text"),
                                     q_labels, r_labels)
    rp = RandomProjectionHasher(n_bits=16).fit(ds.part("train")[0])
    rp_map = mean_average_precision(rp.encode(queries["image"], "image"),
                                    rp.encode(retrieval["text"], "text"), q_labels, r_labels)
    # measured: rp 0.28 (the share of relevant pairs), CCA 0.42
    assert rp_map < 0.33 and cca_map > rp_map + 0.1 and cca_map < 0.7, (cca_map, rp_map)


# --- synthetic-mirflickr ---------------------------------------------------------------------


@pytest.mark.data
def test_mirflickr_keeps_the_real_rows_and_generates_the_image(need):
    files = _mir_files(need)
    ds = make_synthetic_mirflickr(files, n=3000, image_dim=128, n_query=200, n_train=500)
    assert ds.synthetic and ds.view_names == ["image", "text"]
    # The real rows, read independently of the reader under test.
    yall = scipy.io.loadmat(files["text"])["YAll"][:3000]
    lall = scipy.io.loadmat(files["labels"])["LAll"][:3000]
    np.testing.assert_array_equal(ds.views["text"], yall.astype(np.float64))
    np.testing.assert_array_equal(ds.labels, (lall > 0).astype(np.uint8))
    image = ds.views["image"]
    assert image.shape == (3000, 128) and image.dtype == np.float32
    assert image.min() == 0.0 and 0.6 < (image == 0).mean() < 0.8
    _assert_same(ds, make_synthetic_mirflickr(files, n=3000, image_dim=128, n_query=200,
                                              n_train=500))
    _assert_protocol_split(ds, 200, 500)
    np.testing.assert_array_equal(ds.split.query, np.arange(200))  # the family's query rows
    assert ds.info["params"]["sha256"]["labels"].startswith("173eec1f")


@pytest.mark.data
def test_mirflickr_at_standard_rows_has_the_dcmh_readers_split(need):
    # All 20,015 rows with a tiny image: the split is the stored draw the DCMH reader uses.
    ds = make_synthetic_mirflickr(_mir_files(need), image_dim=4)
    stored = stored_split("mirflickr25k.npz")
    for part in PARTS:
        np.testing.assert_array_equal(getattr(ds.split, part), getattr(stored, part))
    parts, note = family_parts(20015)
    np.testing.assert_array_equal(ds.split.train, parts["train"])
    assert note.startswith("stored: 5000 rows")


def test_mirflickr_without_the_files_names_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MMHASH_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"'synthetic-mirflickr' needs mirflickr25k/mirflickr25k-"
                                        r"yall\.mat \(and 1 more file\(s\)\), expected at .*; "
                                        r".*from \$MMHASH_DATA"):
        load_dataset("synthetic-mirflickr")


@pytest.mark.data
def test_mirflickr_with_one_file_or_an_altered_one(need, tmp_path):
    yall, lall = need(*MIR)
    (tmp_path / "mirflickr25k").mkdir()
    shutil.copy(yall, tmp_path / MIR[0])
    with pytest.raises(DataError, match=r"needs mirflickr25k/mirflickr25k-lall\.mat, expected"):
        load_dataset("synthetic-mirflickr", data_dir=tmp_path)
    (tmp_path / MIR[1]).write_bytes(b"not LAll")
    with pytest.raises(DataError, match=r"mirflickr25k-lall\.mat is not the pinned version"):
        load_dataset("synthetic-mirflickr", data_dir=tmp_path)


# --- cards -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["synthetic-mirflickr", "synthetic-nuswide"])
def test_cards_say_synthetic_and_declare_the_protocol_sizes(name):
    card = all_cards()[name]
    assert card.synthetic and card.description.startswith("SYNTHETIC")
    assert card.reader in GENERATORS and card.multi_label
    assert "GENERATED" in card.views["image"]["description"]
    p = card.params
    assert card.split["query"] == p["n_query"] and card.split["train"] == p["n_train"]
    assert card.split["retrieval"] == card.n - p["n_query"]
    assert card.split["validation"] == round(0.1 * p["n_train"])


def test_card_sizes_are_the_protocols():
    mir, nus = all_cards()["synthetic-mirflickr"], all_cards()["synthetic-nuswide"]
    assert (mir.n, mir.classes, mir.dims) == (20015, 24, {"image": 4096, "text": 1386})
    assert "REAL" in mir.views["text"]["description"] and len(mir.files) == 2
    assert (nus.n, nus.classes, nus.dims) == (186_577, 10, {"image": 4096, "text": 1000})
    assert not nus.files and nus.nbytes > 7e9  # why the default tests never load it


# --- full size ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.data
def test_full_size_sets_load_with_the_protocols_shapes(need):
    need(*MIR)
    for name in ("synthetic-mirflickr", "synthetic-nuswide"):
        card = all_cards()[name]
        ds = load_dataset(name)
        assert ds.synthetic and ds.name == name
        assert {v: X.shape for v, X in ds.views.items()} == {
            v: (card.n, d) for v, d in card.dims.items()}
        assert ds.views["image"].dtype == np.float32  # as the released VGG files hold it
        assert ds.labels.shape == (card.n, card.classes)
        assert _sizes(ds) == {p: card.split[p] for p in PARTS}
        assert np.intersect1d(ds.split.query, ds.split.train).size == 0
        del ds  # one 3.8 GB set at a time
