"""Hamming distances, label relevance and per-query distance histograms (reference engine).

Distances come from one float32 matrix product: for codes in {-1, +1},
``hamming(q, x) = (n_bits - q . x) / 2``. Every partial sum is an integer of magnitude at most
``n_bits`` (< 2**24), so float32 BLAS is exact. Relevance (``Lq @ Lr.T > 0``) likewise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mmhash.evaluation._validate import check_code_pair, check_label_pair, check_rows

# Rows of a query block are chosen so that block_rows * N stays near this many elements: the
# float32 products, int distances, bool relevance and (index policy) an int64 sort order of one
# block then take a few tens of MB, whatever the sizes of the query and retrieval sets.
BLOCK_ELEMENTS = 1 << 22


def hamming_distance(query_codes, retrieval_codes) -> np.ndarray:
    """Hamming distance between every query and every retrieval item.

    Parameters
    ----------
    query_codes : (Q, n_bits) int array with values in {-1, +1}.
    retrieval_codes : (N, n_bits) int array with values in {-1, +1}.

    Returns
    -------
    int32 (Q, N): number of differing bits, in ``0..n_bits``.
    """
    q, r = check_code_pair(query_codes, retrieval_codes)
    return _distances(q.astype(np.float32), r.astype(np.float32))


def relevance(query_labels, retrieval_labels) -> np.ndarray:
    """Whether each query and retrieval item share at least one label.

    Parameters
    ----------
    query_labels : (Q, C) multi-hot (0/1, any int/bool/float dtype), or (Q,) integer class ids.
    retrieval_labels : (N, C) multi-hot, or (N,) class ids (same form as ``query_labels``).

    Returns
    -------
    bool (Q, N).
    """
    lq, lr = check_label_pair(query_labels, retrieval_labels)
    return _relevance(lq.astype(np.float32), lr.astype(np.float32))


def _distances(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``q``: float32 (b, B), ``r``: float32 (N, B), both +-1 -> int32 (b, N)."""
    dots = q @ r.T
    return ((q.shape[1] - dots) * 0.5).astype(np.int32)


def _relevance(lq: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """``lq``: float32 0/1 (b, C), ``lr``: float32 0/1 (N, C) -> bool (b, N)."""
    return (lq @ lr.T) > 0


@dataclass(frozen=True)
class Prepared:
    """Validated evaluation inputs in the dtypes the block loop uses.

    ``query_codes`` float32 (Q, B), ``retrieval_codes`` float32 (N, B), ``query_labels`` float32
    (Q, C), ``retrieval_labels`` float32 (N, C) with 0/1 entries.
    """

    query_codes: np.ndarray
    retrieval_codes: np.ndarray
    query_labels: np.ndarray
    retrieval_labels: np.ndarray

    @property
    def n_bits(self) -> int:
        return self.query_codes.shape[1]

    @property
    def n_queries(self) -> int:
        return self.query_codes.shape[0]

    @property
    def n_items(self) -> int:
        return self.retrieval_codes.shape[0]


def prepare(query_codes, retrieval_codes, query_labels, retrieval_labels) -> Prepared:
    """Validate the four evaluation arrays together (see :mod:`mmhash.evaluation`)."""
    q, r = check_code_pair(query_codes, retrieval_codes)
    lq, lr = check_label_pair(query_labels, retrieval_labels)
    check_rows(q, lq, "query")
    check_rows(r, lr, "retrieval")
    return Prepared(
        q.astype(np.float32),
        r.astype(np.float32),
        lq.astype(np.float32),
        lr.astype(np.float32),
    )


def iter_blocks(data: Prepared) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Yield ``(rows, distances, relevant)`` for consecutive blocks of queries.

    ``distances`` is int32 (b, N), ``relevant`` bool (b, N), for the queries ``rows``.
    """
    step = max(1, BLOCK_ELEMENTS // data.n_items)
    for start in range(0, data.n_queries, step):
        rows = slice(start, min(start + step, data.n_queries))
        yield (
            rows,
            _distances(data.query_codes[rows], data.retrieval_codes),
            _relevance(data.query_labels[rows], data.retrieval_labels),
        )


def histograms(distances: np.ndarray, relevant: np.ndarray, n_bits: int):
    """Per-query counts of items and of relevant items at each distance.

    Parameters
    ----------
    distances : int (b, N) in ``0..n_bits``.
    relevant : bool (b, N).

    Returns
    -------
    ``(n, r)``: int64 (b, n_bits + 1) each; ``n[q, g]`` items at distance ``g``, ``r[q, g]`` of
    them relevant.
    """
    b = distances.shape[0]
    width = n_bits + 1
    # One bincount over the whole block: bin (row, distance, relevant) of each pair is
    # row * 2 * width + 2 * distance + relevant. intp input avoids a slow cast inside bincount.
    code = distances.astype(np.intp) * 2 + relevant
    code += (2 * width * np.arange(b, dtype=np.intp))[:, None]
    counts = np.bincount(code.ravel(), minlength=b * 2 * width).reshape(b, width, 2)
    return counts.sum(axis=2), counts[:, :, 1].copy()
