"""The field's benchmark families on small files written here in each family's exact layout.

Layouts follow what the official loaders read (file:line in the reader modules' docstrings):
the DCMH family's ``<prefix>-iall.mat`` / ``-yall.mat`` / ``-lall.mat`` (MIRFlickr's v5 uint8
YAll/LAll; NUS-WIDE's YAll in v7.3, which DJSRH reads with h5py and transposes), UCCH's
``-iall-vgg.mat`` / ``-xall-vgg.mat`` (XAll), UCCH's MS-COCO ``.h5py`` (plain HDF5 stored
items-first, no MATLAB header), UCCH's IAPR TC-12 database/test file, UCMFH's three pickles.
Sizes are the smallest the protocols accept (7,100 MIRFlickr-like rows, 12,700 NUS-like rows)
with narrow views, so the whole file runs in seconds.
"""

from __future__ import annotations

import json
import pickle
import shutil
import tracemalloc

import h5py
import numpy as np
import pytest
import scipy.io

from mmhash.bench.cell import dataset_fingerprint
from mmhash.data import load_dataset
from mmhash.data.formats import FAMILIES_HELP, _items, detect_format, read_path
from mmhash.data.formats.matfile import _Mat73, open_keyed
from mmhash.data.protocols import _DJSRH_COUNTS, apply_protocol, djsrh_rows
from mmhash.errors import DataError, UnknownNameError

MIR_N, NUS_N, COCO_N = 7100, 12700, 5200
IAPR_DB, IAPR_TEST = 1000, 2000


# --- data in each family's layout ------------------------------------------------------------


def _labels(rng, n, c, density=0.15, rare=()):
    """Multi-hot uint8 (n, c); the columns in ``rare`` hold only a few dozen rows (so DJSRH's
    per-label draws come up short and MIRFlickr's top-up has work to do)."""
    p = np.full(c, density)
    for col in rare:
        if col < c:
            p[col] = 40 / n
    y = (rng.random((n, c)) < p).astype(np.uint8)
    y[y.sum(1) == 0, 1] = 1  # every item labelled, as in the releases
    return y


def _set(n, c, d_image=16, d_text=12, seed=0, rare=(3, 10)):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((n, d_image)).astype(np.float32)
    text = (rng.random((n, d_text)) < 0.3).astype(np.uint8)  # binary tags, uint8 as released
    return image, text, _labels(rng, n, c, rare=rare)


def _write_family(folder, prefix, image, text, labels, writers, image_file=("iall", "IAll")):
    """``<prefix>-<image suffix>.mat``, ``-yall.mat``, ``-lall.mat``; ``writers`` is one writer
    or role -> writer."""
    if callable(writers):
        writers = dict.fromkeys(("image", "text", "labels"), writers)
    folder.mkdir(parents=True, exist_ok=True)
    suffix, key = image_file
    paths = {"image": folder / f"{prefix}-{suffix}.mat", "text": folder / f"{prefix}-yall.mat",
             "labels": folder / f"{prefix}-lall.mat"}
    writers["image"](paths["image"], {key: image})
    writers["text"](paths["text"], {"YAll": text})
    writers["labels"](paths["labels"], {"LAll": labels})
    return paths


def _write_h5py(path, **arrays):
    """A plain HDF5 file (no MATLAB header), every array stored as given: UCCH's MS-COCO file
    is read with h5py ``[()]`` and no transpose, i.e. items first."""
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    return path


def _coco(folder, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((COCO_N, 16)).astype(np.float32)
    text = rng.standard_normal((COCO_N, 10)).astype(np.float32)  # Doc2Vec (300-d in UCCH's)
    labels = _labels(rng, COCO_N, 80, density=0.05)
    folder.mkdir(parents=True, exist_ok=True)
    path = _write_h5py(folder / "MSCOCO_deep_doc2vec_data_rand.h5py", XAll=image, YAll=text,
                       LAll=labels)
    return path, image, text, labels


def _iapr(folder, writer, seed=0):
    rng = np.random.default_rng(seed)
    n = IAPR_DB + IAPR_TEST
    image = rng.standard_normal((n, 16))  # UCCH casts V*/Y* to float32 itself
    text = (rng.random((n, 12)) < 0.3).astype(np.float64)
    labels = _labels(rng, n, 255, density=0.02).astype(np.float64)
    folder.mkdir(parents=True, exist_ok=True)
    db, te = slice(0, IAPR_DB), slice(IAPR_DB, n)
    path = writer(folder / "iapr-tc12-rand.mat", {
        "VDatabase": image[db], "YDatabase": text[db], "databaseL": labels[db],
        "VTest": image[te], "YTest": text[te], "testL": labels[te]})
    return path, image, text, labels


def _ucmfh(folder, sizes=(120, 30, 200), c=24, seed=0, protocol=pickle.DEFAULT_PROTOCOL):
    """UCMFH's train.pkl, query.pkl, retrieval.pkl: dicts of float32 (n, 512) image and text
    and int64 labels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {}
    for part, n in zip(("train", "query", "retrieval"), sizes):
        parts[part] = {"image": rng.standard_normal((n, 512)).astype(np.float32),
                       "text": rng.standard_normal((n, 512)).astype(np.float32),
                       "label": _labels(rng, n, c, density=0.2).astype(np.int64)}
        (folder / f"{part}.pkl").write_bytes(pickle.dumps(parts[part], protocol=protocol))
    return parts


def _savemat(path, variables):
    """MATLAB v5, as the releases' loadmat-read files are."""
    scipy.io.savemat(path, variables)
    return path


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg and msg, msg
    return msg


def _assert_views(raw, image, text, labels):
    assert raw.views["image"].dtype == np.float32 and raw.views["text"].dtype == np.float32
    assert raw.views["image"].flags.c_contiguous and raw.views["text"].flags.c_contiguous
    np.testing.assert_array_equal(raw.views["image"], np.asarray(image, dtype=np.float32))
    np.testing.assert_array_equal(raw.views["text"], np.asarray(text, dtype=np.float32))
    assert raw.labels.dtype == np.uint8
    np.testing.assert_array_equal(raw.labels, labels)


@pytest.fixture(scope="module")
def mir():
    return _set(MIR_N, 24)


@pytest.fixture(scope="module")
def nus():
    return _set(NUS_N, 10, d_image=8, d_text=6, rare=(7,))


@pytest.fixture(scope="module")
def mir_vgg_dir(tmp_path_factory, mir):
    """UCCH's MIRFlickr feature files (v5, as loadmat reads them)."""
    folder = tmp_path_factory.mktemp("ucch") / "MIRFLICKR25K"
    _write_family(folder, "mirflickr25k", *mir, _savemat,
                  image_file=("iall-vgg", "XAll"))
    return folder


# --- 1. every family read from its own layout ------------------------------------------------


def test_dcmh_mirflickr_read_from_any_of_its_files(tmp_path, mat_writer, mir):
    paths = _write_family(tmp_path, "mirflickr25k", *mir, mat_writer)
    for path in paths.values():
        assert detect_format(path) == ("dcmh", path)
        raw = read_path(path)
        assert raw.reader == "dcmh"
        _assert_views(raw, *mir)
    assert raw.views["image"].shape == (MIR_N, 16) and raw.views["text"].shape == (MIR_N, 12)
    assert raw.labels.shape == (MIR_N, 24)
    assert raw.notes["collection"] == "mirflickr25k" and raw.parts == {}
    assert sorted(raw.files) == sorted(paths.values())
    fmt = "mat-v5" if mat_writer.__name__ == "_write_mat5" else "mat-v7.3"
    assert set(raw.notes["formats"].values()) == {fmt}


def test_dcmh_nuswide_in_djsrhs_mixed_layout(tmp_path, write_mat5, write_mat73, nus):
    # DJSRH: LAll via loadmat (v5), YAll via h5py (v7.3) then transposed; a 2-D feature IAll.
    paths = _write_family(tmp_path, "nus-wide-tc10", *nus,
                          {"image": write_mat73, "text": write_mat73, "labels": write_mat5})
    with h5py.File(paths["text"], "r") as f:  # what DJSRH's h5py sees before its transpose
        assert f["YAll"].shape == (6, NUS_N)
    for path in paths.values():
        assert detect_format(path) == ("dcmh", path)
    raw = read_path(paths["labels"])
    _assert_views(raw, *nus)
    assert raw.labels.shape == (NUS_N, 10) and raw.notes["collection"] == "nuswide10"
    assert raw.notes["formats"] == {"labels": "mat-v5", "image": "mat-v7.3", "text": "mat-v7.3"}


@pytest.mark.parametrize("collection", ["mirflickr", "nus"])
def test_ucch_vgg_files_read_from_any_of_their_files(tmp_path, mat_writer, mir, nus, collection):
    data, prefix, suffix = ((mir, "mirflickr25k", "iall-vgg") if collection == "mirflickr"
                            else (nus, "nus-wide-tc10", "xall-vgg"))
    paths = _write_family(tmp_path, prefix, *data, mat_writer, image_file=(suffix, "XAll"))
    assert not (tmp_path / f"{prefix}-iall.mat").exists()
    for path in paths.values():
        assert detect_format(path) == ("ucch-vgg", path)
        raw = read_path(path)
        assert raw.reader == "ucch-vgg"
        _assert_views(raw, *data)
    assert raw.notes["collection"] == {"mirflickr": "mirflickr25k", "nus": "nuswide10"}[
        collection]
    assert raw.notes["files"]["image"] == str(paths["image"])
    # the folder alone names the set through its -lall file
    assert detect_format(tmp_path) == ("ucch-vgg", paths["labels"])


def test_a_folder_of_family_files_is_read_and_two_sets_in_one_are_refused(tmp_path, write_mat5,
                                                                          mir):
    paths = _write_family(tmp_path, "mirflickr25k", *mir, write_mat5)
    assert detect_format(tmp_path) == ("dcmh", paths["labels"])
    _write_family(tmp_path, "other", *mir, write_mat5)
    with pytest.raises(DataError, match="holds 2 sets of the DCMH family"):
        detect_format(tmp_path)


def test_plain_iall_wins_over_vgg_file_unless_the_vgg_file_is_named(tmp_path, write_mat5, mir):
    image, text, labels = mir
    paths = _write_family(tmp_path, "mirflickr25k", *mir, write_mat5)
    other = image[:, ::-1] * 2
    write_mat5(tmp_path / "mirflickr25k-iall-vgg.mat", {"XAll": other})
    assert detect_format(paths["text"])[0] == "dcmh"
    np.testing.assert_array_equal(read_path(paths["text"]).views["image"], image)
    assert detect_format(tmp_path / "mirflickr25k-iall-vgg.mat")[0] == "ucch-vgg"
    np.testing.assert_array_equal(
        read_path(tmp_path / "mirflickr25k-iall-vgg.mat").views["image"], other)


def test_xyl_mscoco_plain_hdf5_items_first(tmp_path):
    path, image, text, labels = _coco(tmp_path)
    with h5py.File(path, "r") as f:  # UCCH reads it with h5py [()] and no transpose
        assert f["XAll"].shape == (COCO_N, 16) and f["LAll"].shape == (COCO_N, 80)
    assert open(path, "rb").read(8) == b"\x89HDF\r\n\x1a\n"  # no MATLAB header
    assert detect_format(path) == ("xyl", path)
    raw = read_path(path)
    assert raw.reader == "xyl" and raw.parts == {}
    _assert_views(raw, image, text, labels)
    assert raw.notes["collection"] == "mscoco"


def test_xyl_written_by_matlab_reads_the_same(tmp_path, mat_writer):
    rng = np.random.default_rng(3)
    image, text = rng.random((300, 7)).astype(np.float32), rng.random((300, 5))
    labels = _labels(rng, 300, 8)
    path = mat_writer(tmp_path / "coco-features.mat", {"XAll": image, "YAll": text,
                                                       "LAll": labels})
    assert detect_format(path) == ("xyl", path)
    _assert_views(read_path(path), image, text, labels)


def test_dbtest_iapr_database_then_test(tmp_path, mat_writer):
    path, image, text, labels = _iapr(tmp_path, mat_writer)
    assert detect_format(path) == ("dbtest", path)
    raw = read_path(path)
    assert raw.reader == "dbtest" and raw.notes["collection"] == "iapr12"
    _assert_views(raw, image, text, labels.astype(np.uint8))
    assert raw.labels.shape == (IAPR_DB + IAPR_TEST, 255)
    np.testing.assert_array_equal(raw.parts["database"], np.arange(IAPR_DB))
    np.testing.assert_array_equal(raw.parts["test"], np.arange(IAPR_DB, IAPR_DB + IAPR_TEST))


def test_ucmfh_folder_read_from_the_folder_or_any_pickle(tmp_path):
    folder = tmp_path / "mirflickr"
    parts = _ucmfh(folder)
    for given in (folder, folder / "train.pkl", folder / "query.pkl", folder / "retrieval.pkl"):
        assert detect_format(given) == ("ucmfh", folder)
    raw = read_path(folder / "query.pkl")
    assert raw.reader == "ucmfh" and raw.notes["collection"] == "mirflickr25k"
    stacked = [np.concatenate([parts[p][k] for p in ("train", "query", "retrieval")])
               for k in ("image", "text", "label")]
    _assert_views(raw, *stacked)
    assert raw.views["image"].shape == (350, 512)
    start = 0
    for part, n in zip(("train", "query", "retrieval"), (120, 30, 200)):
        np.testing.assert_array_equal(raw.parts[part], np.arange(start, start + n))
        start += n


@pytest.mark.parametrize("name,collection", [("nus-wide", "nuswide10"), ("mscoco", "mscoco")])
def test_ucmfh_collections_from_the_folder_name(tmp_path, name, collection):
    _ucmfh(tmp_path / name, sizes=(20, 10, 30))
    assert read_path(tmp_path / name).notes["collection"] == collection


# --- 2. protocols ----------------------------------------------------------------------------


def _check_split(split, n):
    for part in ("query", "retrieval", "train", "validation"):
        idx = getattr(split, part)
        assert idx.dtype == np.int64 and (np.diff(idx) > 0).all() and idx.min() >= 0
        assert idx.max() < n
    assert not np.intersect1d(split.query, split.train).size
    assert np.isin(split.validation, split.train).all()


def _ucch_raw(kind, tmp_path, mir, nus, mir_vgg_dir):
    if kind == "mirflickr":
        return read_path(mir_vgg_dir / "mirflickr25k-yall.mat"), 2000
    if kind == "nus":
        _write_family(tmp_path, "nus-wide-tc10", *nus, _savemat,
                      image_file=("xall-vgg", "XAll"))
        return read_path(tmp_path / "nus-wide-tc10-xall-vgg.mat"), 2100
    if kind == "coco":
        return read_path(_coco(tmp_path)[0]), 5000
    return read_path(_iapr(tmp_path, _savemat)[0]), 2000


@pytest.mark.parametrize("kind", ["mirflickr", "nus", "coco", "iapr"])
def test_ucch_protocol_last_rows_query_train_equals_retrieval(tmp_path, mir, nus, mir_vgg_dir,
                                                             kind):
    raw, queries = _ucch_raw(kind, tmp_path, mir, nus, mir_vgg_dir)
    split, name, definition = apply_protocol(raw, "ucch")
    assert name == "ucch" and f"last {queries:,} rows" in definition
    np.testing.assert_array_equal(split.query, np.arange(raw.n - queries, raw.n))
    np.testing.assert_array_equal(split.train, np.arange(raw.n - queries))
    np.testing.assert_array_equal(split.retrieval, split.train)
    assert not np.intersect1d(split.query, split.retrieval).size
    _check_split(split, raw.n)
    if kind == "iapr":  # the queries are exactly the file's test rows
        np.testing.assert_array_equal(split.query, raw.parts["test"])
    if kind in ("coco", "iapr"):  # their reader's default protocol
        assert apply_protocol(raw)[1] == "ucch"


@pytest.mark.parametrize("kind,queries,train", [("mirflickr", 2000, 5000),
                                                ("nus", 2100, 10500)])
def test_dcmh_protocol_first_rows_query_drawn_training(tmp_path, write_mat5, mir, nus, kind,
                                                       queries, train):
    data, prefix = (mir, "mirflickr25k") if kind == "mirflickr" else (nus, "nus-wide-tc10")
    paths = _write_family(tmp_path, prefix, *data, write_mat5)
    raw = read_path(paths["image"])
    split, name, definition = apply_protocol(raw)  # dcmh is the family's default
    assert name == "dcmh" and "drawn" in definition
    np.testing.assert_array_equal(split.query, np.arange(queries))
    np.testing.assert_array_equal(split.retrieval, np.arange(queries, raw.n))
    assert len(split.train) == train and np.isin(split.train, split.retrieval).all()
    _check_split(split, raw.n)
    again, _, _ = apply_protocol(read_path(paths["labels"]), "dcmh")  # fixed: same rows again
    for part in ("query", "retrieval", "train", "validation"):
        np.testing.assert_array_equal(getattr(split, part), getattr(again, part))


def test_dcmh_protocol_needs_more_rows_than_queries_plus_training(tmp_path, write_mat5, mir):
    image, text, labels = (a[:7000] for a in mir)
    paths = _write_family(tmp_path, "mirflickr25k", image, text, labels, write_mat5)
    with pytest.raises(DataError) as e:
        apply_protocol(read_path(paths["image"]), "dcmh")
    assert "2000 queries + 5000 training" in _one_line(e) and "7000" in str(e.value)


def _djsrh_reference(labels, counts, rng):
    """DJSRH's loop (zs-zhong/DJSRH@6041c2d datasets.py:108-134, NUS-WIDE 206-222) as written,
    with ``np.random.permutation`` replaced by ``rng.permutation`` and list membership by the
    equivalent set membership (the list version is quadratic)."""
    first_test, first_train, test_each, train_each, top_up = counts
    first = True
    for label in range(labels.shape[1]):
        index = np.where(labels[:, label] == 1)[0]
        N = index.shape[0]
        perm = rng.permutation(N)
        index = index[perm]
        if first:
            test_index = index[:first_test]
            train_index = index[first_test:first_test + first_train]
            first = False
        else:
            taken = set(train_index.tolist()) | set(test_index.tolist())
            ind = np.array([i for i in list(index) if i not in taken], dtype=np.int64)
            test_index = np.concatenate((test_index, ind[:test_each]))
            train_index = np.concatenate((train_index, ind[test_each:test_each + train_each]))
    in_test = set(test_index.tolist())
    database_index = np.array([i for i in range(labels.shape[0]) if i not in in_test])
    if top_up is not None and train_index.shape[0] < top_up:
        in_train = set(train_index.tolist())
        pick = np.array([i for i in list(database_index) if i not in in_train])
        N = pick.shape[0]
        perm = rng.permutation(N)
        pick = pick[perm]
        res = top_up - train_index.shape[0]
        train_index = np.concatenate((train_index, pick[:res]))
    return test_index, train_index, database_index


def _assert_djsrh_rule(labels, counts, seed=0):
    test, train = djsrh_rows(labels, counts, seed=seed)
    ref_test, ref_train, ref_db = _djsrh_reference(labels, counts, np.random.default_rng(seed))
    np.testing.assert_array_equal(test, np.sort(ref_test))
    np.testing.assert_array_equal(train, np.sort(ref_train))
    assert len(np.unique(ref_test)) == len(ref_test) == len(test)
    assert len(np.unique(ref_train)) == len(ref_train) == len(train)
    return test, train, ref_db


def test_djsrh_mirflickr_like_per_label_counts_and_top_up(mir):
    labels = mir[2]
    counts = _DJSRH_COUNTS["mirflickr25k"]
    test, train, database = _assert_djsrh_rule(labels, counts)
    assert len(test) <= 160 + 23 * 80 and len(train) == 5000
    # the first label's draw counts in full: 160 test and 400 training rows carry it
    assert labels[test, 0].sum() >= 160 and labels[train, 0].sum() >= 400
    # the rare labels (about 40 rows) come up short: the top-up is what made 5,000
    rare_short = min(labels[:, 3].sum(), labels[:, 10].sum()) < 80 + 200
    assert rare_short and len(test) < 2000
    assert not np.intersect1d(test, train).size
    np.testing.assert_array_equal(database, np.setdiff1d(np.arange(MIR_N), test))


def test_djsrh_protocol_on_a_mirflickr_set(mir_vgg_dir, mir):
    raw = read_path(mir_vgg_dir / "mirflickr25k-iall-vgg.mat")
    split, name, definition = apply_protocol(raw, "djsrh")
    assert name == "djsrh" and "topped up to 5,000" in definition
    assert len(split.query) <= 2000 and len(split.train) == 5000
    assert np.isin(split.train, split.retrieval).all()
    assert not np.intersect1d(split.query, split.retrieval).size
    np.testing.assert_array_equal(np.union1d(split.query, split.retrieval), np.arange(MIR_N))
    _check_split(split, raw.n)
    test, train = djsrh_rows(mir[2], _DJSRH_COUNTS["mirflickr25k"])
    np.testing.assert_array_equal(split.query, test)
    np.testing.assert_array_equal(split.train, train)
    again = apply_protocol(read_path(mir_vgg_dir / "mirflickr25k-lall.mat"), "djsrh")[0]
    np.testing.assert_array_equal(again.query, split.query)  # seeded: the same split twice
    np.testing.assert_array_equal(again.train, split.train)
    other = djsrh_rows(mir[2], _DJSRH_COUNTS["mirflickr25k"], seed=1)[0]
    assert not np.array_equal(other, split.query)  # ... and the seed is what fixes it


def test_djsrh_nuswide_200_500_per_label_without_top_up(tmp_path, write_mat5, nus):
    labels = nus[2]
    counts = _DJSRH_COUNTS["nuswide10"]
    assert counts == (200, 500, 200, 500, None)
    test, train, _ = _assert_djsrh_rule(labels, counts)
    assert len(test) <= 2000 and len(train) < 5000  # label 7 is rare and nothing tops it up
    assert labels[test, 0].sum() >= 200 and labels[train, 0].sum() >= 500
    paths = _write_family(tmp_path, "nus-wide-tc10", *nus, write_mat5)
    split, _, definition = apply_protocol(read_path(paths["image"]), "djsrh")
    assert "no top-up" in definition
    np.testing.assert_array_equal(split.query, test)
    np.testing.assert_array_equal(split.train, train)
    np.testing.assert_array_equal(split.retrieval, np.setdiff1d(np.arange(NUS_N), test))


@pytest.mark.data
def test_djsrh_rows_on_the_real_mirflickr_labels(need):
    (lall,) = need("mirflickr25k/mirflickr25k-lall.mat")
    labels = scipy.io.loadmat(lall)["LAll"]
    assert labels.shape == (20015, 24)
    test, train, database = _assert_djsrh_rule(labels, _DJSRH_COUNTS["mirflickr25k"])
    assert len(test) == 2000 and len(train) == 5000
    assert not np.intersect1d(test, train).size
    assert np.isin(train, database).all() and len(database) == 18015


def test_ucmfh_protocol_parts_are_the_three_files(tmp_path):
    folder = tmp_path / "mirflickr"
    _ucmfh(folder)
    raw = read_path(folder)
    split, name, _ = apply_protocol(raw)
    assert name == "ucmfh"
    np.testing.assert_array_equal(split.train, np.arange(0, 120))
    np.testing.assert_array_equal(split.query, np.arange(120, 150))
    np.testing.assert_array_equal(split.retrieval, np.arange(150, 350))
    _check_split(split, raw.n)
    file_split, _, _ = apply_protocol(raw, "file")  # the file's own parts: the same split
    for part in ("query", "retrieval", "train", "validation"):
        np.testing.assert_array_equal(getattr(file_split, part), getattr(split, part))


def test_file_protocol_takes_a_carried_split_else_generates_one(tmp_path, write_mat5, mir):
    iapr = read_path(_iapr(tmp_path / "iapr", write_mat5)[0])
    split, name, definition = apply_protocol(iapr, "file")
    assert name == "file" and "test rows" in definition
    np.testing.assert_array_equal(split.query, iapr.parts["test"])
    np.testing.assert_array_equal(split.retrieval, iapr.parts["database"])
    paths = _write_family(tmp_path / "mir", "mirflickr25k", *mir, write_mat5)
    raw = read_path(paths["image"])
    split, _, definition = apply_protocol(raw, "file")
    assert "generated" in definition
    assert abs(len(split.query) - 0.2 * MIR_N) <= 1
    np.testing.assert_array_equal(split.train, split.retrieval)
    _check_split(split, raw.n)
    np.testing.assert_array_equal(apply_protocol(raw, "file")[0].query, split.query)


@pytest.mark.parametrize("protocol,kind", [("djsrh", "coco"), ("dcmh", "iapr"),
                                           ("djsrh", "iapr"), ("dcmh", "unknown"),
                                           ("ucch", "unknown")])
def test_a_protocol_on_data_it_is_not_defined_for(tmp_path, write_mat5, protocol, kind):
    if kind == "coco":
        raw = read_path(_coco(tmp_path)[0])
    elif kind == "iapr":
        raw = read_path(_iapr(tmp_path, write_mat5)[0])
    else:  # a DCMH-named set of no known collection
        paths = _write_family(tmp_path, "myset", *_set(300, 5), write_mat5)
        raw = read_path(paths["image"])
    with pytest.raises(DataError) as e:
        apply_protocol(raw, protocol)
    msg = _one_line(e)
    assert f"protocol {protocol!r}" in msg
    valid = {"djsrh": ("mirflickr25k", "nuswide10"), "dcmh": ("mirflickr25k", "nuswide10"),
             "ucch": ("mirflickr25k", "nuswide10", "mscoco", "iapr12")}[protocol]
    assert all(c in msg for c in valid), msg
    assert "file" in msg  # a protocol that does apply


def test_ucmfh_protocol_on_a_dcmh_set_names_valid_choices(tmp_path, write_mat5):
    paths = _write_family(tmp_path, "mirflickr25k", *_set(300, 5), write_mat5)
    with pytest.raises(DataError) as e:
        apply_protocol(read_path(paths["image"]), "ucmfh")
    msg = _one_line(e)
    assert "train.pkl" in msg
    assert "file" in msg.replace("train.pkl", "").replace("files", "")


def test_ucmfh_protocol_on_a_dcmh_set_is_refused(tmp_path, write_mat5):
    paths = _write_family(tmp_path, "mirflickr25k", *_set(300, 5), write_mat5)
    with pytest.raises(DataError) as e:
        apply_protocol(read_path(paths["image"]), "ucmfh")
    assert "train.pkl, query.pkl and retrieval.pkl" in _one_line(e)


def test_an_unknown_protocol_lists_the_protocols(mir_vgg_dir):
    raw = read_path(mir_vgg_dir / "mirflickr25k-lall.mat")
    with pytest.raises(UnknownNameError) as e:
        apply_protocol(raw, "ucc")
    msg = _one_line(e)
    assert "did you mean 'ucch'" in msg
    assert all(p in msg for p in ("dcmh", "djsrh", "ucch", "ucmfh", "file"))


# --- 3. load_dataset: names, fingerprints, float32 -------------------------------------------


def test_load_dataset_names_the_collection_and_protocol(tmp_path, write_mat5, mir, mir_vgg_dir):
    cases = [(mir_vgg_dir / "mirflickr25k-iall-vgg.mat", "ucch", "mirflickr25k-vgg@ucch"),
             (mir_vgg_dir / "mirflickr25k-yall.mat", "djsrh", "mirflickr25k-vgg@djsrh"),
             (mir_vgg_dir / "mirflickr25k-lall.mat", "dcmh", "mirflickr25k-vgg@dcmh")]
    paths = _write_family(tmp_path / "dcmh", "mirflickr25k", *mir, write_mat5)
    cases.append((paths["image"], None, "mirflickr25k@dcmh"))
    cases.append((paths["text"], "file", "mirflickr25k@file"))
    cases.append((_coco(tmp_path / "coco")[0], None, "mscoco-vgg@ucch"))
    cases.append((_iapr(tmp_path / "iapr", write_mat5)[0], None, "iapr12-cnnf@ucch"))
    _ucmfh(tmp_path / "mirflickr")
    cases.append((tmp_path / "mirflickr", None, "mirflickr25k-clip@ucmfh"))
    cases.append((tmp_path / "mirflickr" / "train.pkl", None, "mirflickr25k-clip@ucmfh"))
    fingerprints = set()
    for path, protocol, name in cases:
        ds = load_dataset(path, protocol=protocol)
        assert ds.name == name, (path, protocol)
        assert ds.info["protocol"]["name"] == name.split("@")[1]
        assert {X.dtype for X in ds.views.values()} == {np.dtype(np.float32)}, name
        assert ds.labels.dtype == np.uint8
        fingerprints.add(dataset_fingerprint(ds))
    assert len(fingerprints) == len(cases) - 1  # the two ucmfh entries are one dataset
    assert load_dataset(str(tmp_path / "mirflickr")).name == "mirflickr25k-clip@ucmfh"


def test_fingerprint_separates_protocols_and_files_of_one_name(tmp_path, write_mat5, mir,
                                                               mir_vgg_dir):
    by_protocol = {p: load_dataset(mir_vgg_dir / "mirflickr25k-iall-vgg.mat", protocol=p)
                   for p in ("ucch", "djsrh", "dcmh", "file")}
    prints = {p: dataset_fingerprint(ds) for p, ds in by_protocol.items()}
    assert len(set(prints.values())) == 4
    # the same files (named by another of them) and protocol: the same fingerprint and split
    again = load_dataset(mir_vgg_dir / "mirflickr25k-yall.mat", protocol="djsrh")
    assert dataset_fingerprint(again) == prints["djsrh"]
    np.testing.assert_array_equal(again.split.query, by_protocol["djsrh"].split.query)
    # another copy of the files that differs in one value: the same name, other data
    image, text, labels = mir
    changed = image.copy()
    changed[5, 3] += 1
    other = tmp_path / "MIRFLICKR25K"
    _write_family(other, "mirflickr25k", changed, text, labels, write_mat5,
                  image_file=("iall-vgg", "XAll"))
    ds = load_dataset(other / "mirflickr25k-iall-vgg.mat", protocol="ucch")
    assert ds.name == by_protocol["ucch"].name == "mirflickr25k-vgg@ucch"
    assert dataset_fingerprint(ds) != prints["ucch"]
    for part in ("query", "train"):
        np.testing.assert_array_equal(getattr(ds.split, part),
                                      getattr(by_protocol["ucch"].split, part))


def test_ucch_vgg_files_default_to_the_ucch_protocol(mir_vgg_dir):
    ds = load_dataset(mir_vgg_dir / "mirflickr25k-iall-vgg.mat")
    assert ds.name == "mirflickr25k-vgg@ucch"
    assert len(ds.split.query) == 2000


# --- 4. orientation --------------------------------------------------------------------------


def test_matrices_stored_items_second_read_the_same(tmp_path, mat_writer, mir):
    image, text, labels = mir
    straight = read_path(_write_family(tmp_path / "a", "mirflickr25k", *mir,
                                       mat_writer)["image"])
    flipped = read_path(_write_family(tmp_path / "b", "mirflickr25k", image.T.copy(),
                                      text.T.copy(), labels.T.copy(), mat_writer)["image"])
    for view in ("image", "text"):
        np.testing.assert_array_equal(flipped.views[view], straight.views[view])
        assert flipped.views[view].flags.c_contiguous
    np.testing.assert_array_equal(flipped.labels, straight.labels)


def test_a_matrix_with_no_axis_of_the_item_count(tmp_path, mat_writer):
    image, text, labels = _set(300, 5)
    paths = _write_family(tmp_path, "mirflickr25k", image, text[:7, :11].copy(), labels,
                          mat_writer)
    with pytest.raises(DataError) as e:
        read_path(paths["image"])
    msg = _one_line(e)
    assert "(7, 11)" in msg and "300 items" in msg and "YAll" in msg
    assert str(paths["text"]) in msg


# --- 5. bad input ----------------------------------------------------------------------------


def test_raw_image_iall_is_refused_with_the_features_command(tmp_path, monkeypatch, write_mat5,
                                                             write_mat73):
    image, text, labels = _set(40, 5)
    raw_images = np.random.default_rng(0).integers(0, 255, (8, 8, 3, 40), dtype=np.uint8)
    paths = _write_family(tmp_path, "mirflickr25k", raw_images, text, labels,
                          {"image": write_mat73, "text": write_mat5, "labels": write_mat5})
    with h5py.File(paths["image"], "r") as f:  # what the official loaders' h5py sees
        assert f["IAll"].shape == (40, 3, 8, 8) and f["IAll"].dtype == np.uint8
    import mmhash.data.formats.matfile as matfile

    real_h5_value = matfile._h5_value

    def no_image_data(h5, obj):  # only the shape may be read: the real IAll is ~28 GB
        assert obj.name != "/IAll", "IAll's data was read"
        return real_h5_value(h5, obj)

    monkeypatch.setattr(matfile, "_h5_value", no_image_data)
    for given in paths.values():
        with pytest.raises(DataError) as e:
            read_path(given)
        msg = _one_line(e)
        assert "raw images" in msg and "mmhash features" in msg and str(paths["image"]) in msg
    with pytest.raises(DataError) as e:
        load_dataset(paths["labels"])
    assert "mmhash features" in _one_line(e)


def test_files_whose_rows_disagree(tmp_path, mat_writer):
    image, text, labels = _set(300, 5)
    paths = _write_family(tmp_path, "mirflickr25k", image[:299], text, labels, mat_writer)
    with pytest.raises(DataError) as e:
        read_path(paths["text"])
    msg = _one_line(e)
    assert "(299, 16)" in msg and "300 items" in msg and "disagree" in msg


def test_labels_that_are_not_multi_hot(tmp_path, mat_writer):
    image, text, labels = _set(300, 5)
    labels = labels * np.random.default_rng(1).integers(1, 4, labels.shape).astype(np.uint8)
    assert labels.max() == 3
    paths = _write_family(tmp_path, "mirflickr25k", image, text, labels, mat_writer)
    with pytest.raises(DataError) as e:
        read_path(paths["image"])
    msg = _one_line(e)
    assert "LAll" in msg and "multi-hot" in msg and "0, 1, 2, 3" in msg
    assert str(paths["labels"]) in msg
    folder = tmp_path / "mscoco"
    parts = _ucmfh(folder, sizes=(20, 10, 30))
    parts["query"]["label"][0, :2] = [2, 3]
    (folder / "query.pkl").write_bytes(pickle.dumps(parts["query"]))
    with pytest.raises(DataError) as e:
        read_path(folder)
    assert "multi-hot" in _one_line(e) and "query.pkl" in str(e.value)


def test_nan_in_xall_names_the_item(tmp_path, mat_writer, monkeypatch):
    monkeypatch.setattr(_items, "BLOCK_ROWS", 64)  # the NaN is in a later block of a v7.3 file
    image, text, labels = _set(300, 5)
    image[211, 4] = np.nan
    paths = _write_family(tmp_path, "mirflickr25k", image, text, labels, mat_writer,
                          image_file=("iall-vgg", "XAll"))
    with pytest.raises(DataError) as e:
        read_path(paths["image"])
    msg = _one_line(e)
    assert "XAll" in msg and "NaN" in msg and "item 211, column 4" in msg
    # items-first plain HDF5 (UCCH's COCO file): the item is the row as stored
    x = np.ones((300, 6), dtype=np.float32)
    x[123, 2] = np.inf
    path = _write_h5py(tmp_path / "coco.h5py", XAll=x, YAll=np.ones((300, 3), np.float32),
                       LAll=_labels(np.random.default_rng(0), 300, 8))
    with pytest.raises(DataError) as e:
        read_path(path)
    assert "item 123, column 2" in _one_line(e)


def test_a_missing_sibling_file(tmp_path, mat_writer):
    paths = _write_family(tmp_path, "nus-wide-tc10", *_set(300, 5), mat_writer)
    paths["text"].unlink()
    for given in (paths["image"], paths["labels"]):
        with pytest.raises(DataError) as e:
            read_path(given)
        msg = _one_line(e)
        assert "missing" in msg and str(paths["text"]) in msg
        assert str(paths["image"]) not in msg.split("missing")[1]


def test_a_missing_key_names_the_keys_found(tmp_path, mat_writer):
    image, text, labels = _set(300, 5)
    paths = _write_family(tmp_path, "mirflickr25k", image, text, labels, mat_writer)
    mat_writer(paths["text"], {"Y": text, "tags": text})
    with pytest.raises(DataError) as e:
        read_path(paths["image"])
    msg = _one_line(e)
    assert "'YAll'" in msg and "Y, tags" in msg and str(paths["text"]) in msg
    # one-file layouts: read_xyl / read_dbtest name the missing and the found keys
    from mmhash.data.formats import read_dbtest, read_xyl

    path = mat_writer(tmp_path / "coco.mat", {"XAll": image, "YAll": text})
    with pytest.raises(DataError) as e:
        read_xyl(path)
    msg = _one_line(e)
    assert "missing key(s) LAll" in msg and "found XAll, YAll" in msg
    path = mat_writer(tmp_path / "iapr.mat", {"VDatabase": image, "YDatabase": text})
    with pytest.raises(DataError) as e:
        read_dbtest(path)
    assert "databaseL" in _one_line(e) and "found VDatabase, YDatabase" in str(e.value)


def test_an_unknown_mat_layout_lists_the_families(tmp_path, mat_writer):
    path = mat_writer(tmp_path / "features.mat", {"feats": np.ones((4, 3)), "y": np.ones(4)})
    with pytest.raises(DataError) as e:
        detect_format(path)
    msg = _one_line(e)
    assert FAMILIES_HELP in msg and "feats, y" in msg
    assert "\n" not in FAMILIES_HELP
    for family in ("-iall.mat", "-xall-vgg.mat", "XAll, YAll, LAll", "VDatabase", "train.pkl"):
        assert family in FAMILIES_HELP
    with pytest.raises(DataError) as e:
        load_dataset(path)
    assert FAMILIES_HELP in _one_line(e)


def test_a_pickle_not_named_as_ucmfhs(tmp_path):
    path = tmp_path / "features.pkl"
    path.write_bytes(pickle.dumps({"image": np.ones((3, 2), np.float32)}))
    with pytest.raises(DataError) as e:
        detect_format(path)
    msg = _one_line(e)
    assert str(path) in msg and "train.pkl, query.pkl, retrieval.pkl" in msg
    with pytest.raises(DataError):
        load_dataset(path)


def test_a_missing_ucmfh_pickle_and_a_pickle_of_the_wrong_shape(tmp_path):
    folder = tmp_path / "mirflickr"
    _ucmfh(folder, sizes=(20, 10, 30))
    (folder / "retrieval.pkl").unlink()
    with pytest.raises(DataError) as e:
        read_path(folder / "train.pkl")
    assert "retrieval.pkl" in _one_line(e)
    (folder / "retrieval.pkl").write_bytes(pickle.dumps({"image": np.ones((3, 512), "f4")}))
    with pytest.raises(DataError) as e:
        read_path(folder)
    msg = _one_line(e)
    assert "missing key(s) text, label" in msg and "found image" in msg


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_v73_file(tmp_path, write_mat5, write_mat73, keep):
    image, text, labels = _set(2000, 5, d_image=64)
    paths = _write_family(tmp_path, "mirflickr25k", image, text, labels,
                          {"image": write_mat73, "text": write_mat5, "labels": write_mat5},
                          image_file=("iall-vgg", "XAll"))
    data = paths["image"].read_bytes()
    paths["image"].write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError) as e:
        read_path(paths["labels"])
    msg = _one_line(e)
    assert str(paths["image"]) in msg and "truncated" in msg


# --- 6. HDF5 read by blocks ------------------------------------------------------------------


@pytest.mark.parametrize("items_first", [False, True])
def test_blockwise_v73_reads_identically(tmp_path, write_mat73, monkeypatch, items_first):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1000, 16)).astype(np.float32)
    y = rng.standard_normal((1000, 5))  # float64 on disk: float32 in memory
    labels = _labels(rng, 1000, 8)
    if items_first:  # UCCH's COCO layout
        path = _write_h5py(tmp_path / "coco.h5py", XAll=x, YAll=y, LAll=labels)
    else:
        path = write_mat73(tmp_path / "coco.mat", {"XAll": x, "YAll": y, "LAll": labels})
    whole = read_path(path)
    calls = []
    real = _Mat73.read_block

    def counted(self, key, axis, start, stop):
        calls.append((key, start, stop))
        return real(self, key, axis, start, stop)

    monkeypatch.setattr(_Mat73, "read_block", counted)
    monkeypatch.setattr(_items, "BLOCK_ROWS", 7)
    blocks = read_path(path)
    assert len([c for c in calls if c[0] == "XAll"]) == -(-1000 // 7)
    assert max(stop - start for _, start, stop in calls) == 7
    for view in ("image", "text"):
        np.testing.assert_array_equal(blocks.views[view], whole.views[view])
        assert blocks.views[view].dtype == np.float32
    np.testing.assert_array_equal(whole.views["image"], x)
    np.testing.assert_array_equal(whole.views["text"], y.astype(np.float32))


def test_reading_a_v73_float32_matrix_allocates_little_beyond_the_result(tmp_path, write_mat73,
                                                                        monkeypatch):
    monkeypatch.setattr(_items, "BLOCK_ROWS", 1024)
    n, d = 40000, 32
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    path = write_mat73(tmp_path / "x.mat", {"XAll": x})
    with open_keyed(path) as f:
        assert f.blockwise("XAll")
        tracemalloc.start()
        try:
            out = _items.item_matrix(f, "XAll", n, str(path))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    np.testing.assert_array_equal(out, x)
    assert peak < 1.3 * x.nbytes, f"peak {peak / x.nbytes:.2f}x the float32 matrix"


@pytest.mark.data
def test_copied_release_files_read_like_the_originals(tmp_path, need, write_mat5):
    # The real MIRFlickr tags and labels beside a small feature file of the same rows.
    yall, lall = need("mirflickr25k/mirflickr25k-yall.mat", "mirflickr25k/mirflickr25k-lall.mat")
    for real in (yall, lall):
        shutil.copy(real, tmp_path / real.name)
    x = np.random.default_rng(0).standard_normal((20015, 4)).astype(np.float32)
    write_mat5(tmp_path / "mirflickr25k-iall-vgg.mat", {"XAll": x})
    ds = load_dataset(tmp_path / "mirflickr25k-lall.mat", protocol="djsrh")
    assert ds.name == "mirflickr25k-vgg@djsrh"
    assert len(ds.split.query) == 2000 and len(ds.split.train) == 5000
    assert len(ds.split.retrieval) == 18015 and ds.views["text"].dtype == np.float32


# --- features made with `mmhash features` from a raw-image IAll ------------------------------


def _features_file(path, features, source, extractor="vgg19-fc7"):
    """An ``mmhash features`` output: float32 ``features`` and its JSON provenance, whose
    source is the raw-image ``IAll`` file (as mmhash.extract.run writes it)."""
    provenance = {"format": "mmhash-features/1", "extractor": extractor,
                  "weights": {"sha256": "random-init", "seed": 0},
                  "preprocessing": [{"step": "resize", "size": 256}],
                  "source": {"kind": "image-array", "key": "IAll",
                             "files": [{"path": str(source), "name": source.name,
                                        "sha256": "0" * 64}]}}
    np.savez(path, features=features, provenance=np.array(json.dumps(provenance)))
    return path


def test_features_of_a_raw_iall_pair_with_their_sets_tags_and_labels(tmp_path, write_mat5,
                                                                     write_mat73, mir):
    image, text, labels = mir
    paths = _write_family(tmp_path, "mirflickr25k", np.zeros((MIR_N, 3, 2, 2), np.uint8), text,
                          labels, {"image": write_mat73, "text": write_mat5,
                                   "labels": write_mat5})
    with pytest.raises(DataError) as e:  # the raw images themselves: the command to run
        load_dataset(paths["image"])
    assert "mmhash features" in _one_line(e)
    out = _features_file(tmp_path / "mirflickr25k-iall-vgg19.npz", image, paths["image"])
    assert detect_format(out) == ("extracted", out)
    data = load_dataset(out)
    assert data.name == "mirflickr25k-vgg19-fc7@dcmh" and data.views["image"].dtype == np.float32
    np.testing.assert_array_equal(data.views["image"], image)
    np.testing.assert_array_equal(data.labels, labels)
    assert len(data.split.query) == 2000 and len(data.split.train) == 5000
    assert data.info["reader_notes"]["image_features"]["extractor"] == "vgg19-fc7"
    # features of the same images by another extractor are other data; a feature file kept
    # elsewhere finds the tags and labels beside the IAll file its provenance names
    (tmp_path / "elsewhere").mkdir()
    other = _features_file(tmp_path / "elsewhere" / "mirflickr25k-iall-clip.npz", image,
                           paths["image"], extractor="clip-vit-b32")
    other_data = load_dataset(other)
    assert other_data.name == "mirflickr25k-clip-vit-b32@dcmh"
    assert dataset_fingerprint(other_data) != dataset_fingerprint(data)


def test_a_sparse_v73_tag_matrix_reads_as_its_dense_items(tmp_path, write_mat73, mir):
    # MATLAB saves bag-of-words sparse; in v7.3 that is a group, not a dense dataset
    import scipy.sparse

    image, text, labels = mir
    paths = _write_family(tmp_path, "mirflickr25k", image,
                          scipy.sparse.csc_matrix(text.astype(np.float64)), labels, write_mat73)
    raw = read_path(paths["text"])
    np.testing.assert_array_equal(raw.views["text"], text.astype(np.float32))
