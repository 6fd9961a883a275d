"""Hamming distances and label relevance as explicit Q x N matrices.

Both functions run on the packed engine (:mod:`mmhash.evaluation.engine`): codes packed into
64-bit words and compared by XOR + popcount, labels as bitmasks (or class ids). The metrics never
build these matrices; they are here for users who want them.
"""

from __future__ import annotations

import numpy as np

# Query-item pairs per block of the *reference* engine (:mod:`mmhash.evaluation.reference`), the
# test oracle: rows of a query block are chosen so that block_rows * N stays near this many
# elements, which bounds its float32 products, distances, relevance and sort order to a few tens
# of MB. The fast engine needs no such block: its kernels keep O(n_bits) state per query.
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
    from mmhash.evaluation import engine

    return engine.hamming_distance(query_codes, retrieval_codes)


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
    from mmhash.evaluation import engine

    return engine.relevance(query_labels, retrieval_labels)
