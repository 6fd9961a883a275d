"""Readers on small files written here in each upstream format (MATLAB v5 and v7.3 layouts)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from mmhash.data.formats import (
    detect_format,
    read_cell,
    read_cnn,
    read_mfeat,
    read_npz,
    read_path,
    read_svcl,
    read_triple,
    read_wikidata,
)
from mmhash.data.formats.matfile import open_keyed
from mmhash.errors import DataError

RNG = np.random.default_rng(7)


def _feats(n, d):
    return RNG.random((n, d))


def _multi_hot(n, c):
    y = (RNG.random((n, c)) < 0.4).astype(np.uint8)
    y[np.arange(n), RNG.integers(0, c, n)] = 1  # every item has at least one label
    return y


# --- MATLAB v7.3 detection -------------------------------------------------------------------


def test_v73_test_files_are_what_scipy_refuses(tmp_path, write_mat73):
    # The writer must produce a real v7.3 layout: scipy rejects it exactly as it does MATLAB's.
    path = write_mat73(tmp_path / "a.mat", {"A": np.ones((3, 2))})
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(path)
    with open_keyed(path) as f:
        assert f.format == "mat-v7.3"
        assert f.keys() == ["A"]
        assert f.read(["A"])["A"].shape == (3, 2)  # transposed back from HDF5's (2, 3)


def test_v73_arrays_equal_v5_arrays(tmp_path, write_mat5, write_mat73, make_cell):
    A = _feats(5, 3)
    S = scipy.sparse.random(5, 4, density=0.3, random_state=0, format="csc")
    L = np.array([[1], [2], [3], [1], [2]], dtype=np.uint8)
    variables = {"A": A, "S": S, "L": L, "C": make_cell(_feats(5, 2), _feats(5, 6))}
    with open_keyed(write_mat5(tmp_path / "v5.mat", variables)) as f5, \
            open_keyed(write_mat73(tmp_path / "v73.mat", variables)) as f73:
        a5, a73 = f5.read(["A", "S", "L", "C"]), f73.read(["A", "S", "L", "C"])
    np.testing.assert_array_equal(a5["A"], a73["A"])
    np.testing.assert_array_equal(a5["S"].toarray(), a73["S"].toarray())
    np.testing.assert_array_equal(a5["L"], a73["L"])
    assert a5["C"].shape == a73["C"].shape == (1, 2)
    for i in range(2):
        np.testing.assert_array_equal(a5["C"][0, i], a73["C"][0, i])


# --- wikiData.mat -----------------------------------------------------------------------------


def _wikidata_vars(one_hot: bool):
    ids_tr = np.array([1, 2, 3, 1, 2, 3, 1, 2], dtype=np.uint8)[:, None]
    ids_te = np.array([3, 1, 2], dtype=np.uint8)[:, None]
    if one_hot:
        ids_tr, ids_te = np.eye(3, dtype=np.uint8)[ids_tr[:, 0] - 1], np.eye(3, dtype=np.uint8)[
            ids_te[:, 0] - 1
        ]
    return {"I_tr": _feats(8, 6), "T_tr": _feats(8, 4), "L_tr": ids_tr,
            "I_te": _feats(3, 6), "T_te": _feats(3, 4), "L_te": ids_te}


@pytest.mark.parametrize("one_hot", [False, True], ids=["class-column", "one-hot"])
def test_wikidata_reads_both_label_layouts(tmp_path, mat_writer, one_hot):
    v = _wikidata_vars(one_hot)
    raw = read_wikidata(mat_writer(tmp_path / "wikiData.mat", v))
    assert raw.reader == "wikidata"
    np.testing.assert_array_equal(raw.views["image"], np.vstack([v["I_tr"], v["I_te"]]))
    np.testing.assert_array_equal(raw.views["text"], np.vstack([v["T_tr"], v["T_te"]]))
    expected = np.eye(3, dtype=np.uint8)[[0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1]]
    np.testing.assert_array_equal(raw.labels, expected)
    np.testing.assert_array_equal(raw.parts["train"], np.arange(8))
    np.testing.assert_array_equal(raw.parts["test"], np.arange(8, 11))


def test_wikidata_class_ids_keep_columns_of_absent_classes(tmp_path, write_mat5):
    # Classes 1..4 in MATLAB ids, class 3 never occurs: the one-hot still has 4 columns.
    v = _wikidata_vars(False)
    v["L_tr"] = np.array([1, 2, 4, 1, 2, 4, 1, 2], dtype=np.uint8)[:, None]
    v["L_te"] = np.array([4, 1, 2], dtype=np.uint8)[:, None]
    raw = read_wikidata(write_mat5(tmp_path / "w.mat", v))
    assert raw.labels.shape == (11, 4)
    assert raw.labels[:, 2].sum() == 0
    assert raw.notes["first_class_id"] == 1


def test_wikidata_extra_complete_groups_become_views(tmp_path, write_mat5):
    v = _wikidata_vars(False)
    v["T_tfidf_tr"], v["T_tfidf_te"] = _feats(8, 9), _feats(3, 9)
    v["X_tr"] = _feats(8, 2)  # no X_te: not a complete group, not a view
    raw = read_wikidata(write_mat5(tmp_path / "w.mat", v))
    assert list(raw.views) == ["image", "text", "tfidf"]
    assert raw.views["tfidf"].shape == (11, 9)


def test_wikidata_missing_key_names_expected_and_found(tmp_path, mat_writer):
    v = _wikidata_vars(False)
    del v["L_te"]
    path = mat_writer(tmp_path / "w.mat", v)
    with pytest.raises(DataError, match=r"missing key\(s\) L_te; expected .*L_te.*; found I_te"):
        read_wikidata(path)


def test_wikidata_row_mismatch(tmp_path, mat_writer):
    v = _wikidata_vars(False)
    v["T_tr"] = _feats(7, 4)
    with pytest.raises(DataError, match=r"I_tr: 8 rows, T_tr: 7 rows, L_tr: 8 rows"):
        read_wikidata(mat_writer(tmp_path / "w.mat", v))


def test_wikidata_label_row_mismatch(tmp_path, write_mat5):
    v = _wikidata_vars(False)
    v["L_te"] = v["L_te"][:2]
    with pytest.raises(DataError, match=r"part 'test' has mismatched row counts"):
        read_wikidata(write_mat5(tmp_path / "w.mat", v))


def test_nan_in_mat_features_is_named(tmp_path, mat_writer):
    v = _wikidata_vars(False)
    v["I_te"][1, 2] = np.nan
    with pytest.raises(DataError, match=r"I_te has NaN or infinite values \(first at row 1, "
                                        r"column 2\)"):
        read_wikidata(mat_writer(tmp_path / "w.mat", v))


def test_raw_image_arrays_are_refused_with_a_hint(tmp_path, write_mat5):
    v = _wikidata_vars(False)
    v["I_tr"] = RNG.random((8, 4, 4, 3))
    with pytest.raises(DataError, match=r"raw images\?"):
        read_wikidata(write_mat5(tmp_path / "w.mat", v))


# --- corrupt and missing files -----------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"not found: .*nothere\.mat"):
        read_wikidata(tmp_path / "nothere.mat")


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_truncated_mat_file(tmp_path, write_mat5, write_mat73, fmt):
    writer = write_mat5 if fmt == "v5" else write_mat73
    path = writer(tmp_path / "w.mat", _wikidata_vars(False))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"w\.mat: not a readable MATLAB file; is it corrupt or "
                                        r"truncated\?"):
        read_wikidata(path)


def test_garbage_mat_file(tmp_path):
    path = tmp_path / "junk.mat"
    path.write_bytes(b"this is not a MATLAB file at all" * 20)
    with pytest.raises(DataError, match=r"junk\.mat: not a readable MATLAB file"):
        read_wikidata(path)


def test_corrupt_npz(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(DataError, match=r"bad\.npz: not a readable NumPy \.npz file"):
        read_npz(path)


# --- BMC-SDNU *_cnn.mat and the CIRH/UJSAH triple ---------------------------------------------


def _three_parts():
    n_tr, n_te = 10, 4
    I_tr, T_tr, L_tr = _feats(n_tr, 7), _feats(n_tr, 5), _multi_hot(n_tr, 4)
    return {
        "tr": (I_tr, T_tr, L_tr),
        "te": (_feats(n_te, 7), _feats(n_te, 5), _multi_hot(n_te, 4)),
        "db": (I_tr.copy(), T_tr.copy(), L_tr.copy()),  # the database repeats the training items
    }


def test_bmc_sdnu_cnn(tmp_path, mat_writer):
    parts = _three_parts()
    variables = {f"{p}_{s}": arrays[i] for s, arrays in parts.items()
                 for i, p in enumerate("ITL")}
    path = mat_writer(tmp_path / "mir_cnn.mat", variables)
    assert detect_format(path)[0] == "cnn"
    raw = read_cnn(path)
    assert {k: len(v) for k, v in raw.parts.items()} == {"train": 10, "query": 4, "database": 10}
    np.testing.assert_array_equal(raw.labels, np.vstack([parts[s][2] for s in ("tr", "te", "db")]))
    np.testing.assert_array_equal(raw.views["image"][raw.parts["query"]], parts["te"][0])
    np.testing.assert_array_equal(raw.views["text"][raw.parts["database"]], parts["db"][1])
    assert raw.notes["label_format"] == "label matrix"


def _write_triple(tmp_path, writer, prefix="mir"):
    parts = _three_parts()
    names = {"tr": "train", "te": "query", "db": "database"}
    for s, (I, T, L) in parts.items():
        writer(tmp_path / f"{prefix}_{names[s]}.mat", {f"I_{s}": I, f"T_{s}": T, f"L_{s}": L})
    return parts


def test_triple_from_any_member(tmp_path, mat_writer):
    parts = _write_triple(tmp_path, mat_writer)
    for member in ("mir_train.mat", "mir_query.mat", "mir_database.mat"):
        assert detect_format(tmp_path / member) == ("triple", tmp_path / member)
        raw = read_triple(tmp_path / member)
        assert raw.reader == "triple"
        assert [len(raw.parts[p]) for p in ("train", "query", "database")] == [10, 4, 10]
        np.testing.assert_array_equal(raw.views["image"][raw.parts["train"]], parts["tr"][0])
        np.testing.assert_array_equal(raw.labels[raw.parts["query"]], parts["te"][2])


def test_triple_missing_sibling(tmp_path, write_mat5):
    _write_triple(tmp_path, write_mat5)
    (tmp_path / "mir_database.mat").unlink()
    with pytest.raises(DataError, match=r"database file of the triple not found: .*"
                                        r"mir_database\.mat"):
        read_triple(tmp_path / "mir_train.mat")


def test_triple_wrong_keys(tmp_path, write_mat5):
    _write_triple(tmp_path, write_mat5)
    write_mat5(tmp_path / "mir_query.mat", {"I_q": _feats(4, 7)})
    with pytest.raises(DataError, match=r"missing key\(s\) I_te, T_te, L_te"):
        read_triple(tmp_path / "mir_train.mat")


# --- CUB-style cell .mat --------------------------------------------------------------------


def test_cell_mat(tmp_path, mat_writer, make_cell):
    X1, X2 = _feats(12, 8), _feats(12, 3)
    gt = np.repeat(np.arange(1, 5, dtype=np.uint8), 3)[:, None]
    path = mat_writer(tmp_path / "cub.mat", {"X": make_cell(X1, X2), "gt": gt})
    assert detect_format(path)[0] == "cell"
    raw = read_cell(path)
    assert list(raw.views) == ["image", "text"]
    np.testing.assert_array_equal(raw.views["image"], X1)
    np.testing.assert_array_equal(raw.views["text"], X2)
    np.testing.assert_array_equal(raw.labels.argmax(1), gt[:, 0] - 1)
    assert raw.parts == {}


def test_cell_mat_views_stored_as_columns_are_transposed(tmp_path, write_mat5, make_cell):
    X1, X2, X3 = _feats(12, 8), _feats(12, 3), _feats(12, 5)
    gt = np.repeat(np.arange(1, 5, dtype=np.uint8), 3)[:, None]
    path = write_mat5(tmp_path / "mv.mat", {"X": make_cell(X1, X2.T, X3), "gt": gt})
    raw = read_cell(path)
    assert list(raw.views) == ["view0", "view1", "view2"]
    np.testing.assert_array_equal(raw.views["view1"], X2)
    assert raw.notes["transposed"] == ["view1"]


def test_cell_mat_missing_labels(tmp_path, write_mat5, make_cell):
    path = write_mat5(tmp_path / "mv.mat", {"X": make_cell(_feats(4, 2), _feats(4, 3))})
    with pytest.raises(DataError, match=r"missing key\(s\); expected a cell 'X' and labels"):
        read_cell(path)


def test_cell_mat_row_mismatch(tmp_path, write_mat5, make_cell):
    gt = np.arange(1, 7, dtype=np.uint8)[:, None]
    path = write_mat5(tmp_path / "mv.mat", {"X": make_cell(_feats(6, 2), _feats(5, 3)), "gt": gt})
    with pytest.raises(DataError, match=r"view 'image': 6, view 'text': 5, labels: 6"):
        read_cell(path)


# --- SVCL release -------------------------------------------------------------------------------


def _write_svcl(folder, writer, n_tr=6, n_te=3):
    folder.mkdir(exist_ok=True)
    v = {"I_tr": _feats(n_tr, 4), "I_te": _feats(n_te, 4), "T_tr": _feats(n_tr, 3),
         "T_te": _feats(n_te, 3), "T_tfidf_tr": _feats(n_tr, 9), "T_tfidf_te": _feats(n_te, 9)}
    writer(folder / "raw_features.mat", v)
    cats = {"train": [1, 2, 3, 10, 1, 2][:n_tr], "test": [3, 10, 1][:n_te]}
    for part, c in cats.items():
        lines = [f"t{part}{i}\ti{part}{i}\t{k}" for i, k in enumerate(c)]
        (folder / f"{part}set_txt_img_cat.list").write_text("\n".join(lines) + "\n")
    return v, cats


def test_svcl(tmp_path, mat_writer):
    v, cats = _write_svcl(tmp_path / "wikipedia", mat_writer)
    assert detect_format(tmp_path / "wikipedia") == ("svcl",
                                                      tmp_path / "wikipedia" / "raw_features.mat")
    raw = read_svcl(tmp_path / "wikipedia" / "raw_features.mat")
    assert list(raw.views) == ["image", "text", "tfidf"]
    assert raw.labels.shape == (9, 10)  # categories 1..10
    np.testing.assert_array_equal(raw.labels.argmax(1) + 1, cats["train"] + cats["test"])
    np.testing.assert_array_equal(raw.views["tfidf"], np.vstack([v["T_tfidf_tr"],
                                                                  v["T_tfidf_te"]]))
    assert len(raw.parts["train"]) == 6 and len(raw.parts["test"]) == 3


def test_svcl_list_row_mismatch(tmp_path, write_mat5):
    _write_svcl(tmp_path, write_mat5)
    lst = tmp_path / "testset_txt_img_cat.list"
    lst.write_text("\n".join(lst.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(DataError, match=r"I_te has 3 rows but .*testset_txt_img_cat\.list lists 2"):
        read_svcl(tmp_path / "raw_features.mat")


def test_svcl_malformed_list_line(tmp_path, write_mat5):
    _write_svcl(tmp_path, write_mat5)
    (tmp_path / "trainset_txt_img_cat.list").write_text("a\tb\tart\n")
    with pytest.raises(DataError, match=r"line 1: expected 'text_id<TAB>image_id<TAB>category'"):
        read_svcl(tmp_path / "raw_features.mat")


def test_svcl_missing_list(tmp_path, write_mat5):
    _write_svcl(tmp_path, write_mat5)
    (tmp_path / "testset_txt_img_cat.list").unlink()
    with pytest.raises(DataError, match=r"test list file .* not found"):
        read_svcl(tmp_path / "raw_features.mat")


# --- UCI mfeat ------------------------------------------------------------------------------------


def _write_mfeat_csv(path, X, y):
    header = ",".join(str(i) for i in range(X.shape[1])) + ",0"
    rows = [",".join(f"{x:.6g}" for x in row) + f",{int(t)}" for row, t in zip(X, y)]
    path.write_text("\n".join([header, *rows]) + "\n")


def test_mfeat_csv_folder(tmp_path):
    y = np.repeat(np.arange(3), 4)
    data = {"pix": _feats(12, 5), "fou": _feats(12, 3)}
    for v, X in data.items():
        _write_mfeat_csv(tmp_path / f"mfeat-{v}.csv", X, y)
    assert detect_format(tmp_path / "mfeat-pix.csv") == ("mfeat", tmp_path)
    raw = read_mfeat(tmp_path)
    assert list(raw.views) == ["fou", "pix"]  # UCI's order, whatever the listing order
    np.testing.assert_allclose(raw.views["pix"], data["pix"], rtol=1e-5)
    np.testing.assert_array_equal(raw.labels.argmax(1), y)
    assert raw.labels.shape == (12, 3)


def test_mfeat_uci_text_files(tmp_path):
    X = _feats(2000, 3)
    np.savetxt(tmp_path / "mfeat-mor", X)
    np.savetxt(tmp_path / "mfeat-zer", X[:, :2] * 2)
    raw = read_mfeat(tmp_path)
    assert list(raw.views) == ["zer", "mor"]
    np.testing.assert_allclose(raw.views["mor"], X)
    assert raw.labels.shape == (2000, 10)
    assert (raw.labels.sum(0) == 200).all() and raw.labels[199, 0] == 1 and raw.labels[200, 1] == 1


def test_mfeat_nan_value(tmp_path):
    X = _feats(6, 3)
    X[4, 1] = np.nan
    _write_mfeat_csv(tmp_path / "mfeat-fou.csv", X, np.arange(6) % 2)
    with pytest.raises(DataError, match=r"mfeat-fou\.csv: features has NaN or infinite values "
                                        r"\(first at row 4, column 1\)"):
        read_mfeat(tmp_path)


def test_mfeat_unparseable_value(tmp_path):
    _write_mfeat_csv(tmp_path / "mfeat-fou.csv", _feats(4, 2), np.arange(4) % 2)
    text = (tmp_path / "mfeat-fou.csv").read_text().replace("\n", "\nabc,", 2)
    (tmp_path / "mfeat-fou.csv").write_text(text)
    with pytest.raises(DataError, match=r"mfeat-fou\.csv: not a readable mfeat table"):
        read_mfeat(tmp_path)


def test_mfeat_files_disagree(tmp_path):
    _write_mfeat_csv(tmp_path / "mfeat-fou.csv", _feats(6, 2), np.arange(6) % 2)
    _write_mfeat_csv(tmp_path / "mfeat-pix.csv", _feats(5, 2), np.arange(5) % 2)
    with pytest.raises(DataError, match=r"mfeat-pix\.csv: rows do not match .*mfeat-fou\.csv"):
        read_mfeat(tmp_path)


# --- .npz ----------------------------------------------------------------------------------------


def test_named_view_npz(tmp_path):
    image, text, Y = _feats(10, 4), _feats(10, 3), _multi_hot(10, 5)
    np.savez(tmp_path / "d.npz", image=image, text=text, Y=Y, label=np.arange(10),
             query_idx=np.array([1, 5]), train_idx=np.array([0, 2, 3, 4, 6, 7, 8, 9]))
    raw = read_path(tmp_path / "d.npz")
    assert raw.reader == "npz" and list(raw.views) == ["image", "text"]
    np.testing.assert_array_equal(raw.labels, Y)
    np.testing.assert_array_equal(raw.parts["query"], [1, 5])


def test_keyed_npz_is_read_like_wikidata(tmp_path):
    np.savez(tmp_path / "w.npz", **_wikidata_vars(False))
    assert detect_format(tmp_path / "w.npz")[0] == "wikidata"
    assert read_path(tmp_path / "w.npz").labels.shape == (11, 3)


# --- detection failures -----------------------------------------------------------------------


def test_unknown_layout_lists_formats(tmp_path, write_mat5):
    path = write_mat5(tmp_path / "odd.mat", {"features": _feats(3, 2)})
    with pytest.raises(DataError, match=r"keys features match no known layout; mmhash reads: "
                                        r"SVCL Wikipedia folder"):
        detect_format(path)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match=r"unsupported file type '\.parquet'"):
        detect_format(path)
