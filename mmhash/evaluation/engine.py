"""The fast engine behind :mod:`mmhash.evaluation`: packed codes, fused numba kernels.

Inputs are validated and bit-packed once (:func:`prepare`); the kernels of
:mod:`mmhash.evaluation.kernels` then produce, per query, the counts of items and relevant items
at each Hamming distance (XOR + popcount fused with the histogram, no Q x N matrix), or the walk
in index order that the ``index`` tie policy needs. Queries are handed to the kernels in blocks
of ``QUERY_BLOCK`` so the per-query outputs (and the float temporaries of the tie formulas) stay
bounded however many queries there are; the kernels themselves keep O(n_bits) state per query.

Threads: numba's, over blocks of queries; ``NUMBA_NUM_THREADS`` (or ``numba.set_num_threads``)
sets how many.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mmhash.errors import InvalidInputError
from mmhash.evaluation.packing import PackedLabels, n_words, pack_codes, pack_label_pair

# Queries per kernel call. The outputs of one call are O(QUERY_BLOCK * n_bits) -- a few MB even
# at 1,024 bits -- and a call is long enough that thread start-up does not show.
QUERY_BLOCK = 4096


# Below this many query-item pairs a kernel runs on the calling thread alone: the work takes
# about a millisecond, while waking the other threads can take tens of milliseconds on a busy
# machine (a worker that is not scheduled holds up the whole parallel region).
PARALLEL_MIN_PAIRS = 1 << 22


def kernels():
    """The numba kernels module, imported on first use (keeps ``import mmhash`` light)."""
    from mmhash.evaluation import kernels as module

    return module


def _run(kernel, n_pairs: int, *args):
    """Call ``kernel(*args)``, on one thread if ``n_pairs`` is small (see PARALLEL_MIN_PAIRS)."""
    if n_pairs >= PARALLEL_MIN_PAIRS:
        return kernel(*args)
    from numba import get_num_threads, set_num_threads

    before = get_num_threads()
    set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        set_num_threads(before)


def queries_per_task(n_queries: int) -> int:
    """Queries per parallel task: up to 16 share each tile of the retrieval set, but small query
    sets are split finer so every thread gets work."""
    from numba import get_num_threads

    return int(min(16, max(1, n_queries // (4 * get_num_threads()))))


@dataclass(frozen=True)
class PackedEval:
    """Validated, packed evaluation inputs.

    ``query_codes`` uint64 (Q, W); ``retrieval_codes_t`` uint64 (W, N) (word-major);
    ``labels`` the packed labels of both sides; ``n_bits`` the code length.
    """

    query_codes: np.ndarray
    retrieval_codes_t: np.ndarray
    labels: PackedLabels
    n_bits: int

    @property
    def n_queries(self) -> int:
        return self.query_codes.shape[0]

    @property
    def n_items(self) -> int:
        return self.retrieval_codes_t.shape[1]


def pack_code_pair(query_codes, retrieval_codes) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate and pack both code sets: ``(uint64 (Q, W), uint64 (W, N) word-major, n_bits)``."""
    q = pack_codes(query_codes, "query_codes")
    r = pack_codes(retrieval_codes, "retrieval_codes")
    q_bits, r_bits = np.shape(query_codes)[1], np.shape(retrieval_codes)[1]
    if q_bits != r_bits:
        raise InvalidInputError(
            "query_codes and retrieval_codes must have the same number of bits, "
            f"got {q_bits} and {r_bits}"
        )
    return q, np.ascontiguousarray(r.T), int(q_bits)


def prepare(query_codes, retrieval_codes, query_labels, retrieval_labels) -> PackedEval:
    """Validate the four evaluation arrays together and pack them (see :mod:`mmhash.evaluation`)."""
    q, rt, n_bits = pack_code_pair(query_codes, retrieval_codes)
    labels = pack_label_pair(query_labels, retrieval_labels)
    for side, codes, lab in (("query", q, labels.query), ("retrieval", rt.T, labels.retrieval_t.T)):
        if codes.shape[0] != lab.shape[0]:
            raise InvalidInputError(
                f"{side}_labels has {lab.shape[0]} rows but {side}_codes has {codes.shape[0]}; "
                "row i of both must describe the same item"
            )
    return PackedEval(q, rt, labels, n_bits)


def _blocks(n_queries: int) -> Iterator[slice]:
    for start in range(0, n_queries, QUERY_BLOCK):
        yield slice(start, min(start + QUERY_BLOCK, n_queries))


def iter_histograms(data: PackedEval) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield ``(rows, n, r)`` for consecutive blocks of queries.

    ``n[q, g]``: int64 (b, n_bits + 1) items at distance ``g``; ``r[q, g]`` relevant ones among
    them -- the same histograms as :func:`mmhash.evaluation.reference.histograms`.
    """
    k = kernels()
    for rows in _blocks(data.n_queries):
        counts = _run(k.key_histograms, *_block_args(data, rows))
        yield rows, counts.sum(axis=2), counts[:, :, 1].copy()


def _block_args(data: PackedEval, rows: slice) -> tuple:
    """``(pairs, qc, rct, ql, rlt, ids, n_bits, qb)``: the pair count :func:`_run` needs, then the
    leading arguments both walking kernels take for a block of queries."""
    qc = data.query_codes[rows]
    return (len(qc) * data.n_items, qc, data.retrieval_codes_t, data.labels.query[rows],
            data.labels.retrieval_t, data.labels.ids, data.n_bits, queries_per_task(len(qc)))


def index_metrics(data: PackedEval, ks: list[int]) -> dict:
    """AP and top-K values of every query with ties broken by retrieval index (stable sort).

    Parameters
    ----------
    data : packed inputs.
    ks : cut-offs in ``1..N`` (any order, repeats allowed).

    Returns
    -------
    dict with float64 (Q,) ``"ap"`` (full AP, 0 without relevant items) and, for each K of
    ``ks``, ``("ap", K)`` -- AP@K normalised by the relevant items in the top K -- and
    ``("hits", K)``, the relevant items among the first K positions.
    """
    out: dict = {}
    for rows, n, r in iter_histograms(data):
        for key, values in index_walk(data, rows, n, r, ks).items():
            out.setdefault(key, np.empty(data.n_queries))[rows] = values
    return out


def index_walk(data: PackedEval, rows: slice, n: np.ndarray, r: np.ndarray,
               ks: list[int], ap_ks: list[int] | None = None) -> dict:
    """:func:`index_metrics` for one block of queries whose histograms ``n``, ``r`` (int64
    (b, n_bits + 1), from :func:`iter_histograms`) are already known: the walk in index order
    places each relevant item after the items of smaller distance, so it needs them.

    ``ks``: the cut-offs of ``("hits", K)``; ``ap_ks`` (default: ``ks``; a subset of them):
    those of ``("ap", K)``. Returns those keys and ``"ap"``, each float64 (b,); every value is
    the same whatever other cut-offs are asked for (see :func:`kernels.index_precision_sums`).
    """
    k = kernels()
    cuts = np.array(sorted(set(ks)), dtype=np.int64)
    ap_cuts = cuts if ap_ks is None else np.array(sorted(set(ap_ks)), dtype=np.int64)
    if not np.isin(ap_cuts, cuts).all():
        raise ValueError("every AP cut-off must also be a hit cut-off")
    n_before = np.cumsum(n, axis=1) - n
    r_before = np.cumsum(r, axis=1) - r
    total, hits, prefix = _run(k.index_precision_sums, *_block_args(data, rows), n_before,
                               r_before, cuts, ap_cuts)
    found = r.sum(axis=1)  # every relevant item: the histograms count them all
    out = {"ap": np.divide(total, found, out=np.zeros(len(found)), where=found > 0)}
    cum_hits = np.cumsum(hits, axis=1)  # integers: exact in any grouping
    for b, cut in enumerate(cuts):
        out[("hits", int(cut))] = cum_hits[:, b].astype(np.float64)
    for a, cut in enumerate(ap_cuts):
        got = cum_hits[:, int(np.searchsorted(cuts, cut))]  # AP@K's own hit count
        out[("ap", int(cut))] = np.divide(prefix[:, a], got, out=np.zeros(len(got)),
                                          where=got > 0)
    return out


def hamming_distance(query_codes, retrieval_codes) -> np.ndarray:
    """int32 (Q, N) Hamming distances of validated ±1 codes (see the public function)."""
    q, rt, _ = pack_code_pair(query_codes, retrieval_codes)
    return _run(kernels().distance_matrix, q.size * rt.shape[1], q, rt, queries_per_task(len(q)))


def relevance(query_labels, retrieval_labels) -> np.ndarray:
    """bool (Q, N): shared label (or equal class id), from packed labels."""
    labels = pack_label_pair(query_labels, retrieval_labels)
    n_pairs = len(labels.query) * labels.retrieval_t.shape[1]
    return _run(
        kernels().relevance_matrix, n_pairs, labels.query, labels.retrieval_t, labels.ids
    )


# Up to this k, search keeps a buffer of candidates (one pass over the items, most tiles skipped
# on their minimum distance); beyond it, two counting passes whose memory does not grow with k.
BUFFERED_K = 1024


def search(query_words: np.ndarray, db_words_t: np.ndarray, n_bits: int, k: int):
    """Exact k nearest by Hamming distance, ties by index, of packed inputs.

    ``query_words`` uint64 (Q, W); ``db_words_t`` uint64 (W, N); ``1 <= k``; k >= N ranks all.
    Returns int32 (Q, min(k, N)) distances and int64 (Q, min(k, N)) indices, ascending distance
    then index.
    """
    kern = kernels()
    n_items = db_words_t.shape[1]
    n_pairs = len(query_words) * n_items
    qb = queries_per_task(len(query_words))
    if k <= BUFFERED_K and k < n_items:
        return _run(kern.top_k, n_pairs, query_words, db_words_t, n_bits, k, qb)
    return _run(kern.ranking, n_pairs, query_words, db_words_t, n_bits, min(k, n_items), qb)


def radius_search(query_words: np.ndarray, db_words_t: np.ndarray, n_bits: int, radius: int):
    """Items within ``radius`` of each query, by distance then index (CSR form).

    Returns ``(offsets, distances, indices)``: int64 (Q + 1,), int32 (M,), int64 (M,); the
    results of query ``q`` are ``[offsets[q]:offsets[q + 1]]``.
    """
    kern = kernels()
    n_pairs = len(query_words) * db_words_t.shape[1]
    qb = queries_per_task(len(query_words))
    radius = min(int(radius), n_bits)
    counts = _run(kern.radius_counts, n_pairs, query_words, db_words_t, n_bits, radius, qb)
    per_query = counts.sum(axis=1)
    offsets = np.zeros(len(query_words) + 1, dtype=np.int64)
    np.cumsum(per_query, out=offsets[1:])
    starts = np.cumsum(counts, axis=1)[:, :-1] + offsets[:-1, None]
    out_d = np.empty(offsets[-1], dtype=np.int32)
    out_i = np.empty(offsets[-1], dtype=np.int64)
    _run(kern.radius_fill, n_pairs, query_words, db_words_t, radius, qb, starts, out_d, out_i)
    return offsets, out_d, out_i


__all__ = [
    "QUERY_BLOCK",
    "PackedEval",
    "hamming_distance",
    "index_metrics",
    "index_walk",
    "iter_histograms",
    "n_words",
    "pack_code_pair",
    "prepare",
    "radius_search",
    "relevance",
    "search",
]
