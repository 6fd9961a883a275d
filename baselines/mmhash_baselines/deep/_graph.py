"""What DGCPN and CIRH share: a similarity graph over the whole training set, built once.

Used by DGCPN and CIRH (every function) and UDCMH (:func:`training_tensors` only, for its
signed kNN graph).

Both methods build one dense ``n x n`` target similarity from the features of every training row
(fit and held-out rows alike: features only, no labels), truncate each row to its most similar
items, and read each mini-batch's targets out of it by the rows' positions (``with_row_ids``).
The pieces here are the ones :mod:`mmhash.deep` does not have (the truncation and a batch's
block are :func:`mmhash.deep.keep_largest` / :func:`mmhash.deep.pair_block`, and the
neighbour selection behind both truncations is :func:`mmhash.deep.knn_indices`):

* :func:`neighbours_for` -- the neighbour count ``k`` for ``n`` training rows: the given one, or
  by default the official codes' share of their training set (2,000 of 5,000: 40%);
* :func:`check_neighbours` -- the refusals that depend on the training-set size (``max_samples``
  and ``n_neighbors``), before any ``n x n`` allocation;
* :func:`training_tensors` -- the training views as float32 tensors on the training device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmhash.deep import check_pairwise_size
from mmhash.errors import InvalidInputError

#: The official codes keep 2,000 of their 5,000 training items per row (DGCPN knn_number=3000,
#: CIRH K=3000 on MIRFlickr): ``n_neighbors=None`` keeps the same share of any training set.
DEFAULT_NEIGHBOUR_SHARE = 2000 / 5000


def neighbours_for(n: int, n_neighbors: int | None, minimum: int = 1) -> int:
    """``n_neighbors``, or for None ``round(0.4 n)`` (at least ``minimum``): the official codes'
    2,000 of 5,000 at any training-set size, so a default never refuses a small training set
    (cub10 has 480 pairs, a user's set 1,700) and equals the code's value at its ``n``."""
    if n_neighbors is not None:
        return int(n_neighbors)
    return max(minimum, int(round(DEFAULT_NEIGHBOUR_SHARE * n)))


def check_neighbours(n: int, *, n_neighbors: int, max_samples: int, method: str,
                     n_matrices: int, minimum: int = 1) -> None:
    """Refuse ``n`` training rows above ``max_samples`` (the memory of the ``n_matrices`` dense
    float32 ``n x n`` matrices alive at the peak of the similarity construction is named), and an
    ``n_neighbors`` outside ``[minimum, n]`` (``k`` counts the row's own item, see the methods)."""
    check_pairwise_size(n, max_samples, method=method, n_matrices=n_matrices)
    if not minimum <= n_neighbors <= n:
        raise InvalidInputError(
            f"n_neighbors={n_neighbors} must be between {minimum} and the {n} training rows "
            f"({method} keeps the n_neighbors most similar training items of each row, the item "
            "itself included); lower n_neighbors")


def training_tensors(arrays: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """The views (float64 ``(n, d_m)``) as float32 tensors on ``device`` (the official codes
    build their similarities in float32)."""
    return [torch.from_numpy(np.array(X, dtype=np.float32)).to(device) for X in arrays]
