"""Numba kernels of the engine: XOR + popcount fused with histograms, ranking and top-k.

Importing this module imports numba (about 0.5 s) and loads or compiles the kernels, so only
:mod:`mmhash.evaluation.engine` imports it, lazily. Compiled code is cached on disk
(``cache=True``); the first call in a fresh checkout compiles each kernel once.

Layout shared by every kernel (see :mod:`mmhash.evaluation.packing`):

* ``qc`` uint64 (Q, W): packed query codes, one row per query;
* ``rct`` uint64 (W, N): packed retrieval codes, *word-major*, so a tile of items is a contiguous
  run of each word and the XOR + popcount loop over items vectorises (AVX-512 ``vpopcntq`` where
  the CPU has it);
* ``ql`` uint64 (Q, L) / ``rlt`` uint64 (L, N): packed labels, ``ids`` selecting equality of
  class ids (L = 1) or a non-zero AND of bitmasks.

Work is split over blocks of ``qb`` queries with ``prange`` (one block per task); inside a block
the retrieval set is walked in tiles of ``TILE`` items, and each tile is used by all queries of
the block while it is in L1/L2. Per-query state is O(n_bits) (plus O(k) for top-k), so memory does
not grow with Q x N.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

# Items per tile: 2,048 items x 8 bytes per word stay in L1/L2 while a block of queries uses them.
TILE = 2048


@intrinsic
def _popcount(typingctx, x):
    """``llvm.ctpop.i64``: one instruction, and vectorisable by LLVM's loop vectoriser."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, boundscheck=False)
def _tile_distances(qc, q, rct, s, e, out):
    """``out[i] = popcount(qc[q] ^ rct[:, s + i])`` for ``i < e - s`` (uint32)."""
    n = e - s
    row = rct[0, s:e]
    qw = qc[q, 0]
    for i in range(n):
        out[i] = np.uint32(_popcount(qw ^ row[i]))
    for w in range(1, rct.shape[0]):
        row = rct[w, s:e]
        qw = qc[q, w]
        for i in range(n):
            out[i] += np.uint32(_popcount(qw ^ row[i]))


@njit(cache=True, boundscheck=False)
def _tile_keys(qc, ql, q, rct, rlt, ids, s, e, key):
    """``key[i] = 2 * distance + relevant`` for the items ``s..e-1`` of query ``q`` (uint32)."""
    _tile_distances(qc, q, rct, s, e, key)
    n = e - s
    row = rlt[0, s:e]
    lw = ql[q, 0]
    if ids:
        for i in range(n):
            key[i] = key[i] * np.uint32(2) + np.uint32(1 if row[i] == lw else 0)
        return
    if rlt.shape[0] == 1:
        for i in range(n):
            key[i] = key[i] * np.uint32(2) + np.uint32(1 if (row[i] & lw) != 0 else 0)
        return
    # several label words: OR the per-word overlaps first, then add the flag
    for i in range(n):
        key[i] = key[i] * np.uint32(2)
    anyw = np.zeros(n, np.uint64)
    for w in range(rlt.shape[0]):
        row = rlt[w, s:e]
        lw = ql[q, w]
        for i in range(n):
            anyw[i] |= row[i] & lw
    for i in range(n):
        key[i] += np.uint32(1 if anyw[i] != 0 else 0)


@njit(cache=True, inline="always", boundscheck=False)
def _count_keys(h, key, n):
    """Add the first ``n`` keys of a tile to a query's four sub-histograms ``h`` (4, n_keys),
    round-robin: consecutive items with the same key would otherwise wait on each other's
    increment (store-to-load forwarding), the bottleneck of a one-bin-per-item scatter."""
    n4 = n - n % 4
    for i in range(0, n4, 4):
        h[0, key[i]] += 1
        h[1, key[i + 1]] += 1
        h[2, key[i + 2]] += 1
        h[3, key[i + 3]] += 1
    for i in range(n4, n):
        h[0, key[i]] += 1


@njit(cache=True, parallel=True, boundscheck=False)
def key_histograms(qc, rct, ql, rlt, ids, n_bits, qb):
    """Counts of irrelevant and relevant items at each distance, for every query.

    Returns int64 (Q, n_bits + 1, 2): ``[q, d, 0]`` irrelevant and ``[q, d, 1]`` relevant items
    at distance ``d``.
    """
    n_q = qc.shape[0]
    n_items = rct.shape[1]
    n_keys = 2 * (n_bits + 1)
    out = np.zeros((n_q, n_bits + 1, 2), np.int64)
    for b in prange((n_q + qb - 1) // qb):
        q0 = b * qb
        q1 = min(n_q, q0 + qb)
        # four sub-histograms per query: consecutive items with the same key would otherwise
        # wait on each other's increment (store-to-load forwarding), the bottleneck of a
        # one-bin-per-item scatter
        hist = np.zeros((q1 - q0, 4, n_keys), np.int64)
        key = np.empty(TILE, np.uint32)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            n = e - s
            for q in range(q0, q1):
                _tile_keys(qc, ql, q, rct, rlt, ids, s, e, key)
                h = hist[q - q0]
                _count_keys(h, key, n)
        for q in range(q0, q1):
            h = hist[q - q0]
            for j in range(n_keys):
                out[q, j // 2, j % 2] = h[0, j] + h[1, j] + h[2, j] + h[3, j]
    return out


@njit(cache=True, parallel=True, boundscheck=False)
def index_precision_sums(qc, rct, ql, rlt, ids, n_bits, qb, n_before, r_before, ks, ap_ks):
    """Precision sums of the ranking with ties broken by retrieval index, for every query.

    ``n_before``, ``r_before``: int64 (Q, n_bits + 1), items / relevant items at distances below
    each distance (from :func:`key_histograms`). ``ks``: int64 (K,) strictly increasing cut-offs
    in ``1..N`` at which relevant items are counted; ``ap_ks``: int64 (A,) strictly increasing
    cut-offs at which the precision sum (for AP@K) is needed.

    A relevant item at distance ``d`` with ``c`` items and ``j - 1`` relevant items before it at
    ``d`` (in index order) sits at position ``n_before[d] + c + 1`` of the stable ranking, where
    the precision is ``(r_before[d] + j) / position``. One walk in index order per query finds
    ``c`` and ``j`` without sorting: a counter per key ``2 d + relevant`` (so one increment per
    item, like a histogram) gives both, and the relevant items' counts are appended branch-free
    to a small buffer whose precisions are summed after each tile.

    Every float sum is accumulated over its own items in one fixed order (index order, per
    tile), never assembled from the sums of other cut-offs, so a value does not depend on which
    other cut-offs are asked for in the same call: the bench and a later recomputation from
    stored codes agree to the last bit.

    Returns ``(total, hits, prefix)``: float64 (Q,) the precision sum over the whole ranking;
    int64 (Q, K + 1) with column ``b`` the relevant items at positions in ``(ks[b-1], ks[b]]``
    (column K: beyond the last cut-off; cumulative sums give the counts at each cut-off);
    float64 (Q, A) the precision sum over positions ``<= ap_ks[a]``.
    """
    n_q = qc.shape[0]
    n_items = rct.shape[1]
    n_k = ks.shape[0]
    n_a = ap_ks.shape[0]
    width = n_bits + 1
    total = np.zeros(n_q, np.float64)
    hits = np.zeros((n_q, n_k + 1), np.int64)
    prefix = np.zeros((n_q, n_a), np.float64)
    for b in prange((n_q + qb - 1) // qb):
        q0 = b * qb
        q1 = min(n_q, q0 + qb)
        seen = np.zeros((q1 - q0, 2 * width), np.int64)  # items seen so far per key
        bucket = np.zeros((q1 - q0, width), np.int64)  # first cut-off >= next position at d
        key = np.empty(TILE, np.uint32)
        rel_d = np.empty(TILE + 1, np.int64)  # per relevant item of the tile: distance,
        rel_c = np.empty(TILE + 1, np.int64)  # items before it at that distance,
        rel_j = np.empty(TILE + 1, np.int64)  # relevant items before it there, plus one
        prec = np.empty(TILE + 4, np.float64)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            for q in range(q0, q1):
                _tile_keys(qc, ql, q, rct, rlt, ids, s, e, key)
                sq = seen[q - q0]
                m = 0
                for i in range(e - s):
                    k = key[i]
                    v = sq[k]
                    sq[k] = v + 1
                    # written for every item, kept (m advances) only for relevant ones
                    rel_d[m] = k >> 1
                    rel_c[m] = v + sq[k ^ 1]
                    rel_j[m] = v + 1
                    m += k & 1
                nb, rb = n_before[q], r_before[q]
                # precisions first (a loop LLVM vectorises: gathers and packed divisions),
                # then four running sums, so additions do not wait on each other
                for x in range(m):
                    d = rel_d[x]
                    prec[x] = (rb[d] + rel_j[x]) / (nb[d] + rel_c[x] + 1)
                prec[m : m + 3] = 0.0
                acc0 = acc1 = acc2 = acc3 = 0.0
                for x in range(0, m, 4):
                    acc0 += prec[x]
                    acc1 += prec[x + 1]
                    acc2 += prec[x + 2]
                    acc3 += prec[x + 3]
                total[q] += (acc0 + acc1) + (acc2 + acc3)
                if n_k == 0 and n_a == 0:
                    hits[q, 0] += m
                    continue
                bq = bucket[q - q0]
                for x in range(m):
                    d = rel_d[x]
                    pos = nb[d] + rel_c[x] + 1
                    t = bq[d]
                    while t < n_k and ks[t] < pos:
                        t += 1
                    bq[d] = t
                    hits[q, t] += 1
                    a = n_a - 1  # the AP cut-offs at or after pos are a suffix of ap_ks
                    while a >= 0 and ap_ks[a] >= pos:
                        prefix[q, a] += prec[x]
                        a -= 1
    return total, hits, prefix


@njit(cache=True, parallel=True, boundscheck=False)
def distance_matrix(qc, rct, qb):
    """int32 (Q, N) Hamming distances."""
    n_q = qc.shape[0]
    n_items = rct.shape[1]
    out = np.empty((n_q, n_items), np.int32)
    for b in prange((n_q + qb - 1) // qb):
        key = np.empty(TILE, np.uint32)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            for q in range(b * qb, min(n_q, b * qb + qb)):
                _tile_distances(qc, q, rct, s, e, key)
                for i in range(e - s):
                    out[q, s + i] = key[i]
    return out


@njit(cache=True, parallel=True, boundscheck=False)
def relevance_matrix(ql, rlt, ids):
    """bool (Q, N): query and item share a label (``ids``: have the same class id)."""
    n_q = ql.shape[0]
    n_items = rlt.shape[1]
    out = np.zeros((n_q, n_items), np.bool_)
    for q in prange(n_q):
        for w in range(rlt.shape[0]):
            lw = ql[q, w]
            row = rlt[w]
            for i in range(n_items):
                if ids:
                    out[q, i] = row[i] == lw
                else:
                    out[q, i] |= (row[i] & lw) != 0
    return out


@njit(cache=True, parallel=True, boundscheck=False)
def top_k(qc, rct, n_bits, k, qb):
    """The ``k`` nearest items of every query, ties broken by index (``1 <= k < N``).

    One pass in index order per query keeps a bound ``D``: the smallest distance at which the
    items kept so far already fill ``k`` places. An item is kept iff its distance is below ``D``
    (an item at ``D`` or beyond can never enter: ``k`` items at most as near and earlier in index
    order are already kept). ``D`` only falls, so after the first tiles most tiles are skipped
    on their minimum distance alone. Kept items go to a buffer in index order, compacted to ``k``
    when full; the result is a counting sort of the buffer by distance, stable in index.

    Returns ``(distances, indices)``: int32 (Q, k), int64 (Q, k), ascending distance, then index.
    """
    n_q = qc.shape[0]
    n_items = rct.shape[1]
    width = n_bits + 1
    cap = k + max(k, 1024)
    out_d = np.empty((n_q, k), np.int32)
    out_i = np.empty((n_q, k), np.int64)
    for b in prange((n_q + qb - 1) // qb):
        q0 = b * qb
        q1 = min(n_q, q0 + qb)
        m = q1 - q0
        kept = np.zeros((m, width), np.int64)  # kept items per distance
        bound = np.full(m, width, np.int64)  # D: items at distance >= D are refused
        below = np.zeros(m, np.int64)  # kept items at distance < D
        size = np.zeros(m, np.int64)
        buf_d = np.empty((m, cap), np.int32)
        buf_i = np.empty((m, cap), np.int64)
        dist = np.empty(TILE, np.uint32)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            for q in range(q0, q1):
                t = q - q0
                if bound[t] == 0:
                    continue
                _tile_distances(qc, q, rct, s, e, dist)
                lo = dist[0]
                for i in range(1, e - s):
                    lo = min(lo, dist[i])
                if lo >= bound[t]:
                    continue
                for i in range(e - s):
                    d = np.int64(dist[i])
                    if d < bound[t]:
                        buf_d[t, size[t]] = d
                        buf_i[t, size[t]] = s + i
                        size[t] += 1
                        kept[t, d] += 1
                        below[t] += 1
                        while bound[t] > 0 and below[t] >= k:
                            bound[t] -= 1
                            below[t] -= kept[t, bound[t]]
                        if size[t] == cap:
                            _compact(buf_d[t], buf_i[t], size, t, kept[t], bound[t], k - below[t])
        for q in range(q0, q1):
            t = q - q0
            _compact(buf_d[t], buf_i[t], size, t, kept[t], bound[t], k - below[t])
            start = np.zeros(width, np.int64)
            for d in range(1, width):
                start[d] = start[d - 1] + kept[t, d - 1]
            for j in range(size[t]):
                d = buf_d[t, j]
                out_d[q, start[d]] = d
                out_i[q, start[d]] = buf_i[t, j]
                start[d] += 1
    return out_d, out_i


@njit(cache=True, boundscheck=False)
def _compact(buf_d, buf_i, size, t, kept, bound, take):
    """Keep every buffered item below ``bound`` and the first ``take`` at ``bound`` (in order)."""
    j = 0
    at_bound = 0
    for x in range(size[t]):
        d = buf_d[x]
        if d < bound or (d == bound and at_bound < take):
            if d == bound:
                at_bound += 1
            buf_d[j] = d
            buf_i[j] = buf_i[x]
            j += 1
    size[t] = j
    if bound < kept.shape[0]:
        kept[bound] = at_bound
        for d in range(bound + 1, kept.shape[0]):
            kept[d] = 0


@njit(cache=True, parallel=True, boundscheck=False)
def ranking(qc, rct, n_bits, k, qb):
    """The first ``k`` places of every query's ranking by distance, then index (``k <= N``).

    A counting sort, no comparison sort: a first pass counts the items at each distance, which
    gives every distance its first output position; a second pass writes the items in index
    order, each at the next free position of its distance, skipping positions ``>= k``. Memory
    beyond the output is O(n_bits) per query, whatever ``k``.

    Returns ``(distances, indices)``: int32 (Q, k), int64 (Q, k).
    """
    n_q = qc.shape[0]
    n_items = rct.shape[1]
    width = n_bits + 1
    out_d = np.empty((n_q, k), np.int32)
    out_i = np.empty((n_q, k), np.int64)
    for b in prange((n_q + qb - 1) // qb):
        q0 = b * qb
        q1 = min(n_q, q0 + qb)
        start = np.zeros((q1 - q0, width + 1), np.int64)
        dist = np.empty(TILE, np.uint32)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            for q in range(q0, q1):
                _tile_distances(qc, q, rct, s, e, dist)
                h = start[q - q0]
                for i in range(e - s):
                    h[dist[i] + 1] += 1
        # start[t, d]: first position of distance d; distances whose block begins at or after k
        # are not needed, and the scan below stops once no needed distance is left
        last = np.zeros(q1 - q0, np.int64)
        for t in range(q1 - q0):
            for d in range(1, width + 1):
                start[t, d] += start[t, d - 1]
            for d in range(width):
                if start[t, d] < k:
                    last[t] = d
        filled = np.zeros(q1 - q0, np.int64)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            for q in range(q0, q1):
                t = q - q0
                if filled[t] == k:  # every position is written: the rest of the items is out
                    continue
                h = start[t]
                lim = last[t]
                _tile_distances(qc, q, rct, s, e, dist)
                for i in range(e - s):
                    d = dist[i]
                    if d <= lim:
                        p = h[d]
                        if p < k:
                            out_d[q, p] = d
                            out_i[q, p] = s + i
                            filled[t] += 1
                        h[d] = p + 1
    return out_d, out_i


@njit(cache=True, parallel=True, boundscheck=False)
def radius_counts(qc, rct, n_bits, radius, qb):
    """int64 (Q, n_bits + 2): ``[q, d + 1]`` items at distance ``d <= radius`` (0 beyond)."""
    n_q = qc.shape[0]
    n_items = rct.shape[1]
    out = np.zeros((n_q, n_bits + 2), np.int64)
    for b in prange((n_q + qb - 1) // qb):
        dist = np.empty(TILE, np.uint32)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            for q in range(b * qb, min(n_q, b * qb + qb)):
                _tile_distances(qc, q, rct, s, e, dist)
                for i in range(e - s):
                    if dist[i] <= radius:
                        out[q, dist[i] + 1] += 1
    return out


@njit(cache=True, parallel=True, boundscheck=False)
def radius_fill(qc, rct, radius, qb, starts, out_d, out_i):
    """Write the items within ``radius`` of each query, by distance then index.

    ``starts``: int64 (Q, n_bits + 1), the output position of each query's first item at each
    distance (consumed: it is advanced as items are written). ``out_d`` int32, ``out_i`` int64:
    flat outputs sized by :func:`radius_counts`.
    """
    n_q = qc.shape[0]
    n_items = rct.shape[1]
    for b in prange((n_q + qb - 1) // qb):
        dist = np.empty(TILE, np.uint32)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            for q in range(b * qb, min(n_q, b * qb + qb)):
                _tile_distances(qc, q, rct, s, e, dist)
                st = starts[q]
                for i in range(e - s):
                    d = dist[i]
                    if d <= radius:
                        p = st[d]
                        st[d] = p + 1
                        out_d[p] = d
                        out_i[p] = s + i


# --- graded relevance (NDCG, ACG): the gain of an item is the number of labels it shares ---


@njit(cache=True, boundscheck=False)
def _tile_gains(ql, q, rlt, ids, s, e, gain):
    """``gain[i]`` = labels shared by query ``q`` and item ``s + i`` (uint32): popcount of the
    AND of their bitmask words, or 1 / 0 for equal / different class ids."""
    n = e - s
    row = rlt[0, s:e]
    lw = ql[q, 0]
    if ids:
        for i in range(n):
            gain[i] = np.uint32(1 if row[i] == lw else 0)
        return
    for i in range(n):
        gain[i] = np.uint32(_popcount(row[i] & lw))
    for w in range(1, rlt.shape[0]):
        row = rlt[w, s:e]
        lw = ql[q, w]
        for i in range(n):
            gain[i] += np.uint32(_popcount(row[i] & lw))


@njit(cache=True, parallel=True, boundscheck=False)
def gain_histograms(qc, rct, ql, rlt, ids, n_bits, max_gain, qb):
    """Counts of items at each distance with each gain, for every query.

    ``max_gain``: at least the number of labels on any row of ``ql`` (1 for class ids), so no
    gain exceeds it. Returns int64 (Q, n_bits + 1, max_gain + 1): ``[q, d, g]`` items at
    distance ``d`` sharing ``g`` labels with query ``q``.
    """
    n_q = qc.shape[0]
    n_items = rct.shape[1]
    n_g = max_gain + 1
    n_keys = (n_bits + 1) * n_g
    out = np.zeros((n_q, n_bits + 1, n_g), np.int64)
    for b in prange((n_q + qb - 1) // qb):
        q0 = b * qb
        q1 = min(n_q, q0 + qb)
        # four sub-histograms per query, as in key_histograms: consecutive items with the same
        # key would otherwise wait on each other's increment
        hist = np.zeros((q1 - q0, 4, n_keys), np.int64)
        key = np.empty(TILE, np.uint32)
        gain = np.empty(TILE, np.uint32)
        width = np.uint32(n_g)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            n = e - s
            for q in range(q0, q1):
                _tile_distances(qc, q, rct, s, e, key)
                _tile_gains(ql, q, rlt, ids, s, e, gain)
                for i in range(n):
                    key[i] = key[i] * width + gain[i]
                h = hist[q - q0]
                _count_keys(h, key, n)
        for q in range(q0, q1):
            h = hist[q - q0]
            for j in range(n_keys):
                out[q, j // n_g, j % n_g] = h[0, j] + h[1, j] + h[2, j] + h[3, j]
    return out


@njit(cache=True, parallel=True, boundscheck=False)
def index_gain_sums(qc, rct, ql, rlt, ids, n_bits, qb, n_before, ks, disc):
    """Discounted and plain gain sums of the top K of the ranking with ties broken by retrieval
    index, for every query and every cut-off.

    ``n_before``: int64 (Q, n_bits + 1), items at distances below each distance (from
    :func:`gain_histograms`). ``ks``: int64 (K,) strictly increasing cut-offs in ``1..N``.
    ``disc``: float64 (ks[-1],), ``disc[p - 1]`` the discount of position ``p``.

    An item at distance ``d`` with ``c`` items before it at ``d`` (in index order) sits at
    position ``n_before[d] + c + 1`` of the stable ranking; one walk in index order with a
    counter per distance finds ``c`` without sorting. Each sum is accumulated over its own items
    in index order, never assembled from the sums of other cut-offs, so a value does not depend
    on which other cut-offs are asked for. A query whose first ``ks[-1]`` positions are all
    filled skips the rest of the retrieval set.

    Returns ``(dcg, total)``: float64 (Q, K) the sum of ``gain * disc[position - 1]`` and int64
    (Q, K) the sum of gains over positions ``<= ks[k]``.
    """
    n_q = qc.shape[0]
    n_items = rct.shape[1]
    n_k = ks.shape[0]
    k_max = ks[n_k - 1] if n_k > 0 else 0
    width = n_bits + 1
    dcg = np.zeros((n_q, n_k), np.float64)
    total = np.zeros((n_q, n_k), np.int64)
    for b in prange((n_q + qb - 1) // qb):
        q0 = b * qb
        q1 = min(n_q, q0 + qb)
        seen = np.zeros((q1 - q0, width), np.int64)  # items seen so far per distance
        filled = np.zeros(q1 - q0, np.int64)  # positions <= k_max taken so far
        dist = np.empty(TILE, np.uint32)
        gain = np.empty(TILE, np.uint32)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            for q in range(q0, q1):
                t = q - q0
                if filled[t] == k_max:  # the top k_max is complete: later items fall beyond
                    continue
                _tile_distances(qc, q, rct, s, e, dist)
                _tile_gains(ql, q, rlt, ids, s, e, gain)
                sq = seen[t]
                nb = n_before[q]
                for i in range(e - s):
                    d = dist[i]
                    c = sq[d]
                    sq[d] = c + 1
                    pos = nb[d] + c + 1
                    if pos <= k_max:
                        filled[t] += 1
                        g = gain[i]
                        if g != 0:
                            v = np.float64(g) * disc[pos - 1]
                            a = n_k - 1  # the cut-offs at or after pos are a suffix of ks
                            while a >= 0 and ks[a] >= pos:
                                dcg[q, a] += v
                                total[q, a] += g
                                a -= 1
    return dcg, total


@njit(cache=True, parallel=True, boundscheck=False)
def gain_matrix(ql, rlt, ids):
    """int32 (Q, N): labels shared by each query and item (class ids: 1 if equal, else 0)."""
    n_q = ql.shape[0]
    n_items = rlt.shape[1]
    out = np.empty((n_q, n_items), np.int32)
    for q in prange(n_q):
        gain = np.empty(TILE, np.uint32)
        for s in range(0, n_items, TILE):
            e = min(n_items, s + TILE)
            _tile_gains(ql, q, rlt, ids, s, e, gain)
            for i in range(e - s):
                out[q, s + i] = gain[i]
    return out
