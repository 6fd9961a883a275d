"""The front door: mmhash fit / encode / index build / search, end to end and on bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.io import savemat

import mmhash
from mmhash.cli import main
from mmhash.codefiles import read_codes
from mmhash.evaluation import hamming_distance


def _run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A CVH model fitted on synthetic through the CLI, the query and retrieval features as
    files, and the retrieval (image) codes with their index."""
    root = tmp_path_factory.mktemp("frontdoor")
    _run("fit", "cvh", "--dataset", "synthetic", "--bits", "32", "-o", root / "model.npz")
    data = mmhash.load_dataset("synthetic")
    (queries, _), (items, _) = data.part("query"), data.part("retrieval")
    np.save(root / "items.npy", items["image"])
    np.save(root / "queries.npy", queries["text"])
    _run("encode", root / "model.npz", root / "items.npy", "--view", "image",
         "-o", root / "items-codes.npz")
    _run("index", "build", root / "items-codes.npz", "-o", root / "db.index")
    return root, queries, items


def _brute_force_hits(query_codes, item_codes, k):
    distances = hamming_distance(query_codes, item_codes)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(distances, order, axis=1)


def test_fit_encode_index_search_equals_a_stable_argsort_of_hamming_distances(workspace):
    root, queries, items = workspace
    model = mmhash.load_hasher(root / "model.npz")
    item_codes = model.encode(items["image"], "image")
    query_codes = model.encode(queries["text"], "text")
    np.testing.assert_array_equal(read_codes(root / "items-codes.npz").codes, item_codes)

    out = _run("search", root / "db.index", root / "queries.npy", "--model", root / "model.npz",
               "--view", "text", "-k", "7")
    hits = pd.read_csv(pd.io.common.StringIO(out.output))
    assert list(hits.columns) == ["query", "rank", "item", "distance"]
    order, distances = _brute_force_hits(query_codes, item_codes, 7)
    np.testing.assert_array_equal(hits["item"].to_numpy().reshape(-1, 7), order)
    np.testing.assert_array_equal(hits["distance"].to_numpy().reshape(-1, 7), distances)
    np.testing.assert_array_equal(hits["rank"].to_numpy().reshape(-1, 7)[0], np.arange(1, 8))
    np.testing.assert_array_equal(hits["query"].to_numpy()[::7], np.arange(len(query_codes)))

    # already-encoded queries (int8 this time) give the same hits
    _run("encode", root / "model.npz", root / "queries.npy", "--view", "text", "--format",
         "int8", "-o", root / "query-codes.npz")
    again = _run("search", root / "db.index", root / "query-codes.npz", "-k", "7")
    assert again.output == out.output


def test_radius_search_keeps_whole_balls_up_to_k_and_writes_json(workspace):
    root, queries, items = workspace
    model = mmhash.load_hasher(root / "model.npz")
    distances = hamming_distance(model.encode(queries["text"][:20], "text"),
                                 model.encode(items["image"], "image"))
    np.save(root / "few.npy", queries["text"][:20])
    _run("search", root / "db.index", root / "few.npy", "--model", root / "model.npz",
         "--view", "text", "--radius", "9", "-k", "1000", "-o", root / "hits.json")
    hits = pd.DataFrame(json.loads((root / "hits.json").read_text()))
    assert len(hits) == int((distances <= 9).sum())
    assert (hits["distance"] <= 9).all()


def test_row_ids_of_npz_mat_and_csv_files_name_the_hits(workspace, tmp_path):
    root, queries, _ = workspace
    X = queries["text"][:4]
    ids = np.array(["a", "b", "c", "d"])
    np.savez(tmp_path / "q.npz", feats=X, ids=ids)
    savemat(tmp_path / "q.mat", {"feats": X})
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame.insert(0, "id", ids)
    frame.to_csv(tmp_path / "q.csv", index=False)
    outputs = {}
    for name, key in (("q.npz", ["--key", "feats"]), ("q.mat", ["--key", "feats"]),
                      ("q.csv", [])):
        out = _run("search", root / "db.index", tmp_path / name, "--model", root / "model.npz",
                   "--view", "text", "-k", "3", *key)
        outputs[name] = pd.read_csv(pd.io.common.StringIO(out.output))
    assert list(outputs["q.npz"]["query"][::3]) == ["a", "b", "c", "d"]
    assert list(outputs["q.csv"]["query"][::3]) == ["a", "b", "c", "d"]
    assert list(outputs["q.mat"]["query"][::3]) == [0, 1, 2, 3]  # no ids: row positions
    for name in ("q.mat", "q.csv"):
        np.testing.assert_array_equal(outputs[name]["item"], outputs["q.npz"]["item"])


def _bad_cases(root, tmp):
    np.save(tmp / "nan.npy", np.where(np.eye(5, 64) > 0, np.nan, 1.0))
    np.save(tmp / "empty.npy", np.zeros((0, 64)))
    (tmp / "junk.npz").write_bytes(b"not a zip file")
    meta = json.loads(str(np.load(root / "model.npz")["__meta__"]))
    with np.load(root / "model.npz") as saved:
        arrays = {k: saved[k] for k in saved.files}
    arrays["__meta__"] = np.array(json.dumps({**meta, "format": "mmhash-hasher/9"}))
    np.savez(tmp / "future.npz", **arrays)
    _run("fit", "cvh", "--bits", "16", "-o", tmp / "m16.npz")
    model, index = root / "model.npz", root / "db.index"
    return {
        "model of another view": (["encode", model, root / "queries.npy", "--view", "image",
                                   "-o", tmp / "out.npz"], "fitted on 128"),
        "unknown view": (["encode", model, root / "queries.npy", "--view", "audio",
                          "-o", tmp / "out.npz"], "audio"),
        "not a model file": (["encode", tmp / "junk.npz", root / "queries.npy", "--view",
                              "text", "-o", tmp / "out.npz"], "not an mmhash model file"),
        "newer model schema": (["encode", tmp / "future.npz", root / "queries.npy", "--view",
                                "text", "-o", tmp / "out.npz"], "newer mmhash"),
        "query bits differ from the index": (["search", index, root / "queries.npy",
                                              "--model", tmp / "m16.npz", "--view", "text"],
                                             "16-bit codes but the index holds 32-bit"),
        "k <= 0": (["search", index, root / "queries.npy", "--model", model, "--view", "text",
                    "-k", "0"], "k must be a positive integer"),
        "NaN features": (["encode", model, tmp / "nan.npy", "--view", "text",
                          "-o", tmp / "out.npz"], "row 0 holds NaN"),
        "empty features": (["encode", model, tmp / "empty.npy", "--view", "text",
                            "-o", tmp / "out.npz"], "no feature rows"),
        "output in a missing folder": (["encode", model, root / "queries.npy", "--view", "text",
                                        "-o", tmp / "nowhere" / "out.npz"], "does not exist"),
        "index of a codes file": (["search", root / "items-codes.npz", root / "queries.npy",
                                   "--model", model, "--view", "text"], "not an mmhash index"),
        "codes are not an index": (["index", "build", model, "-o", tmp / "i.index"],
                                   "not an mmhash codes file"),
    }


def test_bad_input_is_one_clear_line_exit_2_and_nothing_written(workspace, tmp_path):
    root, _, _ = workspace
    for what, (args, message) in _bad_cases(root, tmp_path).items():
        before = sorted(p.name for p in tmp_path.iterdir())
        result = _run(*args, ok=False)
        assert result.exit_code == 2, (what, result.output)
        assert message in result.output, (what, result.output)
        assert "Traceback" not in result.output and result.output.count("\n") == 1, what
        assert sorted(p.name for p in tmp_path.iterdir()) == before, what
