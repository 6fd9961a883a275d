"""HammingIndex: exact top-k and radius search (ties by index), persistence, errors, FAISS."""

from __future__ import annotations

import numpy as np
import pytest

from mmhash.errors import DataError, InvalidInputError, UnknownNameError
from mmhash.evaluation import HammingIndex, engine, pack_codes, reference
from mmhash.evaluation.kernels import TILE


def codes(seed, n, n_bits, *, n_base=0):
    """Random ±1 codes; with ``n_base`` half of them repeat a few base codes (big tie groups)."""
    rng = np.random.default_rng(seed)
    out = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, n_bits))
    if n_base:
        base = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_base, n_bits))
        tied = rng.random(n) < 0.5
        out[tied] = base[rng.integers(0, n_base, int(tied.sum()))]
    return out


def stable_ranking(queries, database):
    """Brute force: distances by the reference engine, order by a stable argsort."""
    dist = reference.hamming_distance(queries, database)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), order


@pytest.mark.parametrize("n_bits", [8, 64, 72, 130])
def test_search_equals_a_stable_sort_of_the_distances(n_bits):
    db = codes(1, 2 * TILE + 301, n_bits, n_base=6)
    queries = np.vstack([codes(2, 9, n_bits), db[:4]])  # some queries with exact matches
    index = HammingIndex(n_bits)
    index.add(db)
    want_d, want_i = stable_ranking(queries, db)
    for k in (1, 2, 50, engine.BUFFERED_K, engine.BUFFERED_K + 1, len(db) - 1, len(db)):
        got_d, got_i = index.search(queries, k)
        assert got_d.dtype == np.int32 and got_i.dtype == np.int64
        assert got_d.shape == got_i.shape == (len(queries), k)
        np.testing.assert_array_equal(got_i, want_i[:, :k], err_msg=f"k={k}")
        np.testing.assert_array_equal(got_d, want_d[:, :k], err_msg=f"k={k}")


def test_parallel_and_single_thread_paths_agree(monkeypatch):
    db = codes(19, TILE + 500, 72, n_base=5)
    queries = np.vstack([codes(20, 40, 72), db[:5]])
    index = HammingIndex(72)
    index.add(db)
    single = [index.search(queries, k) for k in (5, 2000, len(db))]
    single.append(index.radius_search(queries, 30))
    monkeypatch.setattr(engine, "PARALLEL_MIN_PAIRS", 0)  # small inputs go parallel too
    parallel = [index.search(queries, k) for k in (5, 2000, len(db))]
    parallel.append(index.radius_search(queries, 30))
    for a, b in zip(single, parallel):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_k_beyond_the_index_returns_everything():
    db = codes(3, 40, 16, n_base=3)
    index = HammingIndex(16)
    index.add(db)
    got_d, got_i = index.search(db[:3], 1000)
    want_d, want_i = stable_ranking(db[:3], db)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_d, want_d)


def test_top_k_buffer_compaction_keeps_the_first_items_of_each_tie_group():
    # items get nearer to the query as the index grows, each distance repeated 150 times, so the
    # one-pass top-k keeps accepting items and must compact its buffer many times
    n_bits, k = 64, 100
    query = np.ones((1, n_bits), dtype=np.int8)
    db = np.ones((n_bits * 150, n_bits), dtype=np.int8)
    for i, d in enumerate(np.repeat(np.arange(n_bits, 0, -1), 150)):
        db[i, :d] = -1
    index = HammingIndex(n_bits)
    index.add(db)
    got_d, got_i = index.search(query, k)
    want_d, want_i = stable_ranking(query, db)
    np.testing.assert_array_equal(got_i, want_i[:, :k])
    np.testing.assert_array_equal(got_d, want_d[:, :k])


def test_adding_in_chunks_numbers_items_in_order():
    db = codes(4, 500, 24, n_base=4)
    whole, parts = HammingIndex(24), HammingIndex(24)
    whole.add(db)
    for chunk in np.array_split(db, 5):
        parts.add(chunk)
    assert len(parts) == parts.ntotal == 500
    for a, b in zip(whole.search(db[:7], 30), parts.search(db[:7], 30)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(parts.words, pack_codes(db))


@pytest.mark.parametrize("radius", [0, 3, 20, 24, 100])
def test_radius_search_equals_brute_force(radius):
    db = codes(5, TILE + 99, 24, n_base=5)
    queries = np.vstack([codes(6, 5, 24), db[:2]])
    index = HammingIndex(24)
    index.add(db)
    offsets, dist, idx = index.radius_search(queries, radius)
    assert offsets.dtype == np.int64 and dist.dtype == np.int32 and idx.dtype == np.int64
    assert offsets[0] == 0 and offsets[-1] == len(dist) == len(idx)
    want_d, want_i = stable_ranking(queries, db)
    for q in range(len(queries)):
        inside = want_d[q] <= radius
        np.testing.assert_array_equal(idx[offsets[q] : offsets[q + 1]], want_i[q][inside])
        np.testing.assert_array_equal(dist[offsets[q] : offsets[q + 1]], want_d[q][inside])


def test_packed_codes_are_accepted_as_declared():
    db = codes(7, 300, 72)
    plain, packed = HammingIndex(72), HammingIndex(72)
    plain.add(db)
    packed.add(pack_codes(db), packed=True)
    for a, b in zip(plain.search(db[:5], 10), packed.search(pack_codes(db[:5]), 10, packed=True)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InvalidInputError, match="uint64"):
        packed.add(db, packed=True)  # ±1 codes declared as packed
    with pytest.raises(InvalidInputError, match=r"shape \(n, 2\)"):
        packed.add(pack_codes(codes(8, 3, 64)), packed=True)
    words = pack_codes(db[:2])
    words[0, 1] |= np.uint64(1) << np.uint64(63)  # bit 127 of a 72-bit code
    with pytest.raises(InvalidInputError, match="bits set above bit 72"):
        packed.search(words, 3, packed=True)


def test_save_and_load_round_trip(tmp_path):
    db = codes(9, 1000, 130, n_base=3)
    index = HammingIndex(130)
    index.add(db)
    path = tmp_path / "index.npz"
    index.save(path)
    with np.load(path, allow_pickle=False) as f:  # plain arrays, no pickled objects
        assert set(f.files) == {"format", "version", "n_bits", "backend", "words"}
    loaded = HammingIndex.load(path)
    assert (loaded.n_bits, loaded.ntotal, loaded.backend) == (130, 1000, "numba")
    for a, b in zip(index.search(db[:6], 25), loaded.search(db[:6], 25)):
        np.testing.assert_array_equal(a, b)


def test_load_refuses_other_files(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(DataError, match="not a saved HammingIndex"):
        HammingIndex.load(other)
    with pytest.raises(DataError, match="cannot read"):
        HammingIndex.load(tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    np.savez(corrupt, format=np.array("mmhash.HammingIndex"), version=np.array(1),
             n_bits=np.array(8), backend=np.array("numba"), words=np.full((2, 1), 2**40, np.uint64))
    with pytest.raises(DataError, match="corrupt"):
        HammingIndex.load(corrupt)


def test_bad_input_raises_clear_errors():
    index = HammingIndex(32)
    with pytest.raises(InvalidInputError, match="index is empty"):
        index.search(codes(10, 2, 32), 5)
    with pytest.raises(InvalidInputError, match="only -1 and \\+1"):
        index.add(np.zeros((3, 32)))
    with pytest.raises(InvalidInputError, match="codes have 16 bits but the index holds 32-bit"):
        index.add(codes(11, 3, 16))
    index.add(codes(12, 20, 32))
    with pytest.raises(InvalidInputError, match="queries have 64 bits"):
        index.search(codes(13, 2, 64), 5)
    for k in (0, -1, 2.0, True):
        with pytest.raises(InvalidInputError, match="k must be a positive integer"):
            index.search(codes(14, 2, 32), k)
    for radius in (-1, 1.5, None):
        with pytest.raises(InvalidInputError, match="radius must be a non-negative integer"):
            index.radius_search(codes(15, 2, 32), radius)
    with pytest.raises(InvalidInputError, match="2-D"):
        index.search(codes(16, 1, 32)[0], 3)
    for n_bits in (0, -8, 8.0, "64"):
        with pytest.raises(InvalidInputError, match="n_bits must be a positive integer"):
            HammingIndex(n_bits)
    with pytest.raises(UnknownNameError, match="choose from: faiss, numba"):
        HammingIndex(32, backend="annoy")


def test_faiss_backend_agrees_with_the_kernels():
    pytest.importorskip("faiss")
    db = codes(17, 3000, 72, n_base=8)
    queries = np.vstack([codes(18, 6, 72), db[:3]])
    ours, theirs = HammingIndex(72), HammingIndex(72, backend="faiss")
    ours.add(db)
    theirs.add(db)
    for k in (1, 10, 200):
        (d1, _), (d2, i2) = ours.search(queries, k), theirs.search(queries, k)
        np.testing.assert_array_equal(d2, d1)  # same distances; tie members are FAISS's choice
        exact = reference.hamming_distance(queries, db)
        np.testing.assert_array_equal(np.take_along_axis(exact, i2, axis=1), d2)
        assert all(len(set(row)) == k for row in i2.tolist())
    for radius in (0, 20, 40):
        for a, b in zip(ours.radius_search(queries, radius), theirs.radius_search(queries, radius)):
            np.testing.assert_array_equal(a, b)
