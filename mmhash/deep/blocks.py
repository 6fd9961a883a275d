"""The building blocks the deep unsupervised cross-modal hashing family shares, each written once.

Most methods of the DJSRH family build a target similarity from the input features and pull the
cosine similarities of the codes towards it; they differ in how the target is made and weighted.
These are the pieces, for mmhash's UJSAH and UMHA, the deep baselines and third-party plugins:

Target similarities (float tensors ``(n, n)``, no gradients needed)
    :func:`feature_similarity` -- the cosine of L2-normalised rows, rescaled to ``2 cos - 1``;
    :func:`fused_similarity` -- ``sum_m w_m S^m`` over views (DJSRH's ``S~``, UJSAH's Eq. 1);
    :func:`second_order` -- the batch-wise second-order term ``S T^T / n``, averaged over
    pairs of matrices (DJSRH's ``S~ S~^T / m``, UJSAH's cross-modal ``S^v S^t^T / n`` and its
    M-view mean over view pairs);
    :func:`knn_graph` and :func:`graph_term` -- the row-normalised kNN-truncated graph ``P`` of a
    similarity over the whole training set and its neighbourhood term ``P P^T`` (DGCPN);
    :func:`keep_largest` -- the truncation alone (CIRH); :func:`pair_block` -- a batch's block of
    such a whole-training-set matrix, by the rows' positions (UMHA, DGCPN, CIRH);
    :func:`pairwise_memory` / :func:`check_pairwise_size` -- what n x n matrices cost, and a
    clear refusal before they are built.

Neighbours
    :func:`knn_indices` -- each row's ``k`` nearest other rows (and optionally its farthest), by
    cosine, Euclidean distance or a given similarity, computed a block of rows at a time: the one
    nearest-neighbour selection of :func:`knn_graph` / :func:`keep_largest` (DGCPN, CIRH), UMHA's
    kNN agreement, UDCMH's signed graph and MGAH's correlation graph.

Losses
    :func:`cosine` -- ``cos(A, B)`` of two code sets, ``(n, m)``;
    :func:`cosine_mse` -- ``MSE(cos(codes_a, codes_b), target)``, the term of every
    image-image / image-text / text-text pair (II / IT / TT).

Inputs
    :class:`Standardize` -- per-column standardisation with the training rows' mean and standard
    deviation (constant columns left unscaled): the statistics (numpy), a fitted layer (saved with
    the encoder) and the same map on numpy arrays; AGCH's and DBRC's encoders, the baselines'
    :class:`~mmhash_baselines.deep._scaling.ColumnScaling` (DGCPN, JDSH, DJSRH, MGAH, UDCMH) and
    UMHA's encoders (statistics only).

Networks
    :func:`mlp` -- a fully connected head (ReLU, optional dropout / batch norm / input
    normalisation), flat ``nn.Sequential`` so its saved state is stable;
    :class:`ScaledTanh` -- ``tanh(alpha h)`` with ``alpha`` set by a schedule
    (:func:`sqrt_schedule`: DJSRH's ``alpha = sqrt(epoch)``, epochs counted from 1).

All functions work on any device and dtype of their inputs (:func:`knn_indices` also on numpy
arrays).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmhash.errors import InvalidInputError


# ---- target similarities ---------------------------------------------------------------------
def feature_similarity(X: torch.Tensor, rescale: bool = True) -> torch.Tensor:
    """Cosine similarity ``(n, n)`` of the rows of ``X`` ``(n, d)``; ``2 cos - 1`` when
    ``rescale`` (the family's convention: non-negative features such as bags of words have
    cosines in ``[0, 1]``, which would ask every pair of codes to agree). An all-zero row has
    cosine 0 to everything before rescaling."""
    Xn = F.normalize(X, dim=1)
    C = Xn @ Xn.T
    return 2.0 * C - 1.0 if rescale else C


def fused_similarity(sims: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """``sum_m weights[m] sims[m]``: the views' similarities fused with one weight per view
    (DJSRH's ``beta S_I + (1 - beta) S_T``). Shapes ``(n, n)``."""
    if len(sims) != len(weights):
        raise InvalidInputError(f"{len(weights)} weights for {len(sims)} similarity matrices")
    return sum(w * S for w, S in zip(weights, sims))


def second_order(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The batch-wise second-order term: the mean over ``pairs`` ``(S, T)`` of ``S T^T / n``,
    how alike two rows' similarity profiles are over the ``n`` rows of the batch; one pair
    ``(S, S)`` is DJSRH's ``S~ S~^T / m``. Computed as ``sum(S T^T) / (P n)``. ``(n, n)``."""
    if not pairs:
        raise InvalidInputError("second_order needs at least one pair of matrices")
    n = pairs[0][0].shape[0]
    return sum(S @ T.T for S, T in pairs) / (len(pairs) * n)


def knn_graph(S: torch.Tensor, k: int, *, include_self: bool = False) -> torch.Tensor:
    """``P``: each row of the similarity ``S`` ``(n, n)`` kept at its ``k`` largest entries (the
    row's own item excluded unless ``include_self``), the rest set to zero, then divided by its
    sum -- a row-stochastic kNN graph (DGCPN's truncation). Rows whose kept entries sum to zero
    stay zero. The entries kept are :func:`knn_indices`'s (``metric="precomputed"``)."""
    n = S.shape[0]
    if not 1 <= k <= n - (0 if include_self else 1):
        raise InvalidInputError(f"k={k} nearest neighbours need k between 1 and "
                                f"{n - (0 if include_self else 1)} for {n} rows")
    P = _kept(S, knn_indices(S, k, metric="precomputed", exclude_self=not include_self))
    total = P.sum(dim=1, keepdim=True)
    return P / torch.where(total != 0, total, torch.ones_like(total))


def keep_largest(S: torch.Tensor, k: int) -> torch.Tensor:
    """Each row of ``S`` ``(n, n)`` kept at its ``k`` largest entries (the diagonal competes
    like any other entry), every other entry 0, no normalisation: CIRH keeps the truncated
    cosines themselves, :func:`knn_graph` normalises them. A new ``(n, n)`` tensor.

    The official codes sort each row ascending and zero the ``n - k`` smallest; ``topk``
    (:func:`knn_indices`) keeps the same entries up to the order of ties."""
    return _kept(S, knn_indices(S, k, metric="precomputed", exclude_self=False))


def _kept(S: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``S`` at the entries ``(i, columns[i, j])``, zero elsewhere: a new ``(n, n)`` tensor."""
    return torch.zeros_like(S).scatter_(1, columns, S.gather(1, columns))


def pair_block(S: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``S[rows][:, rows]``: the ``(b, b)`` block of a whole-training-set matrix for the batch
    whose positions in the training set are ``rows`` (int64 ``(b,)``), in the batch's order."""
    return S.index_select(0, rows).index_select(1, rows)


def graph_term(P: torch.Tensor) -> torch.Tensor:
    """``P P^T``: the share of kNN-graph neighbourhood two rows have in common. ``(n, n)``."""
    return P @ P.T


# ---- neighbours ------------------------------------------------------------------------------
#: Entries of one block of rows of the similarities (distances) :func:`knn_indices` holds at a
#: time by default: 64 MiB in float32.
KNN_CHUNK_ENTRIES = 2**24
#: What :func:`knn_indices` ranks rows by.
KNN_METRICS = ("cosine", "euclidean", "precomputed")


def knn_indices(X: np.ndarray | torch.Tensor, k: int, *, metric: str = "cosine",
                exclude_self: bool = True, chunk_rows: int | None = None,
                farthest: int | None = None):
    """Each row's ``k`` nearest rows, nearest first: int64 ``(n, k)`` (numpy for a numpy ``X``,
    a tensor on ``X``'s device for a tensor). The one selection of :func:`knn_graph` /
    :func:`keep_largest` (DGCPN, CIRH), UMHA's kNN agreement, UDCMH's signed graph and MGAH's
    correlation graph.

    ``X`` ``(n, d)`` holds features -- ``"cosine"`` of the L2-normalised rows (an all-zero row
    has cosine 0 to all), ``"euclidean"`` ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j`` -- or, for
    ``"precomputed"``, an ``(n, n)`` similarity (larger = nearer). ``exclude_self``: row ``i``
    is never its own neighbour (by position: a duplicate row still counts). With ``farthest``
    (an int) returns ``(nearest, farthest_rows)``, the latter int64 ``(n, farthest)``: the least
    similar rows, least similar first, among those neither the row itself (with
    ``exclude_self``) nor its ``k`` nearest (UDCMH's far neighbours).

    Computed ``chunk_rows`` rows at a time (default: :data:`KNN_CHUNK_ENTRIES` entries a block):
    memory ``O(chunk_rows n)`` besides ``X``. A block's matrix product, and so the result, may
    depend on ``chunk_rows``: a caller reproducing earlier results keeps its value.

    Ties: numpy input is computed in float64 and ranked by a stable argsort (ties: the lower row
    index first); a tensor in its dtype on its device, ranked by ``torch.topk`` (``largest=False``
    for the farthest), whose choice among tied entries is deterministic on the CPU for a given
    input but not documented as the lower index.
    """
    if metric not in KNN_METRICS:
        raise InvalidInputError(f"metric={metric!r}: expected one of {', '.join(KNN_METRICS)}")
    n = X.shape[0]
    if metric == "precomputed" and tuple(X.shape) != (n, n):
        raise InvalidInputError(f"metric='precomputed' needs a square similarity, got "
                                f"{tuple(X.shape)}")
    available = n - 1 if exclude_self else n
    far = 0 if farthest is None else int(farthest)
    if not 0 <= k <= available or not 0 <= far <= available - k:
        itself = "the row itself excluded" if exclude_self else "the row itself included"
        raise InvalidInputError(f"k={k} nearest and {far} farthest neighbours of each of {n} "
                                f"rows: at most {available} in all ({itself})")
    chunk = max(1, int(chunk_rows) if chunk_rows else KNN_CHUNK_ENTRIES // max(n, 1))
    numpy = isinstance(X, np.ndarray)
    if numpy:
        X = np.asarray(X, dtype=np.float64)
        arange, cat, int64 = np.arange, np.concatenate, np.int64
    else:
        arange, cat = functools.partial(torch.arange, device=X.device), torch.cat
        int64 = torch.int64

    def empty(r: int, c: int):  # an int64 (r, c) block with r * c == 0
        return arange(0, dtype=int64).reshape(r, c)

    if metric == "cosine":
        X = F.normalize(X, dim=1) if not numpy else X / np.maximum(
            np.linalg.norm(X, axis=1, keepdims=True), 1e-12)  # F.normalize's rule
    elif metric == "euclidean":
        sq = (X * X).sum(1)
    nearest, farthest_rows = [empty(0, k)], [empty(0, far)]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        rows, local = arange(start, stop), arange(stop - start)
        block = X[start:stop] if numpy else X[rows]  # each replaced copy's own arithmetic
        if metric == "cosine":
            score = block @ X.T
        elif metric == "euclidean":  # minus the distance: larger = nearer
            score = -((sq[start:stop] if numpy else sq[rows])[:, None] + sq[None, :]
                      - 2.0 * (block @ X.T))
        else:
            score = block.copy() if numpy else block  # a copy: the masks below leave X alone
        if exclude_self:
            score[local, rows] = -math.inf  # never one's own neighbour
        near = (np.argsort(-score, axis=1, kind="stable")[:, :k] if numpy
                else score.topk(k, dim=1).indices)
        nearest.append(near)
        if not far:
            farthest_rows.append(empty(stop - start, 0))
            continue
        if numpy:
            score[local[:, None], near] = math.inf  # taken: never also a farthest neighbour
        else:
            score.scatter_(1, near, math.inf)
        if exclude_self:
            score[local, rows] = math.inf
        farthest_rows.append(np.argsort(score, axis=1, kind="stable")[:, :far] if numpy
                             else score.topk(far, dim=1, largest=False).indices)
    nearest = cat(nearest)
    return nearest if farthest is None else (nearest, cat(farthest_rows))


def pairwise_memory(n: int, n_matrices: int = 1, bytes_per_entry: int = 4) -> int:
    """Bytes of ``n_matrices`` dense ``n x n`` matrices."""
    return n * n * n_matrices * bytes_per_entry


def check_pairwise_size(n: int, max_samples: int, *, method: str, n_matrices: int = 1,
                        bytes_per_entry: int = 4) -> None:
    """Refuse, before anything is built, a training set whose ``n x n`` similarity matrices a
    method would hold over the whole set, naming the memory they need and the parameter that
    raises the limit."""
    if n > max_samples:
        need = pairwise_memory(n, n_matrices, bytes_per_entry) / 2**30
        raise InvalidInputError(
            f"{n} training rows exceed max_samples={max_samples}: {method} holds {n_matrices} "
            f"dense {n} x {n} similarity matrix(es) ({need:.1f} GiB); subsample the training "
            "set or raise max_samples")


# ---- losses ----------------------------------------------------------------------------------
def cosine(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``cos(a_i, b_j)`` of the rows of ``A`` ``(n, k)`` and ``B`` ``(m, k)``: ``(n, m)``."""
    return F.normalize(A, dim=1) @ F.normalize(B, dim=1).T


def cosine_mse(codes_a: torch.Tensor, codes_b: torch.Tensor, target: torch.Tensor, *,
               normalized: bool = False, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``MSE(cos(codes_a, codes_b), target)``, the mean over the ``(n, m)`` entries; with
    ``weight`` ``(n, m)``, the mean of the weighted squared errors.

    ``normalized=True`` says the rows are already L2-normalised (a loss with several terms
    normalises each code set once and passes it to every term, so their gradients meet in one
    normalisation)."""
    cos = codes_a @ codes_b.T if normalized else cosine(codes_a, codes_b)
    if weight is None:
        return F.mse_loss(cos, target)
    return (weight * (cos - target) ** 2).mean()


# ---- inputs ----------------------------------------------------------------------------------
class Standardize(nn.Module):
    """``(x - shift) / scale`` per column, float ``(n, d) -> (n, d)``: the columns standardised
    with a training set's mean and standard deviation (AGCH's and DBRC's encoders; the numpy form
    for :class:`~mmhash_baselines.deep._scaling.ColumnScaling` of DGCPN, JDSH, DJSRH, MGAH and
    UDCMH; the statistics for UMHA's encoders).

    ``shift`` and ``scale`` ``(d,)`` are buffers, saved with the module (an encoder's state), the
    identity (0 and 1) until :meth:`fit`; whether to standardise at all is the caller's rule.
    :meth:`statistics` and :meth:`transform` are the same map on numpy arrays, for state kept
    outside a network.
    """

    def __init__(self, d: int):
        super().__init__()
        self.register_buffer("shift", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))

    @staticmethod
    def statistics(X: np.ndarray, *, min_std: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of the columns of the training rows ``X`` (float ``(n, d)``, numpy's
        arithmetic in ``X``'s dtype), each ``(d,)``; a column whose standard deviation is not
        above ``min_std`` gets 1: a constant column is only centred (it stays 0), never divided
        by 0."""
        std = X.std(axis=0)
        return X.mean(axis=0), np.where(std > min_std, std, 1.0)

    @staticmethod
    def transform(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """``(X - mean) / std`` on a numpy array ``(n, d)``: the layer's map, in numpy."""
        return (X - mean) / std

    def fit(self, X: np.ndarray, *, min_std: float = 0.0) -> Standardize:
        """Set ``shift`` and ``scale`` to the :meth:`statistics` of the training rows ``X`` (cast
        to the buffers' dtype); returns the module."""
        mean, std = self.statistics(X, min_std=min_std)
        with torch.no_grad():
            self.shift.copy_(torch.from_numpy(mean))
            self.scale.copy_(torch.from_numpy(std))
        return self

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.shift) / self.scale


# ---- networks --------------------------------------------------------------------------------
class RowNormalize(nn.Module):
    """L2-normalise each row (an all-zero row stays zero); no parameters."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return F.normalize(X, dim=1)


def mlp(d_in: int, hidden: Sequence[int], d_out: int, *, dropout: float = 0.0,
        batch_norm: bool = False, normalize_input: bool = False,
        dropout_last_only: bool = False, output: nn.Module | None = None) -> nn.Sequential:
    """A fully connected network ``d_in -> hidden... -> d_out`` with ReLU after every hidden
    layer (batch norm before it when ``batch_norm``), dropout after each hidden activation (only
    the last one with ``dropout_last_only``), the input row L2-normalised first when
    ``normalize_input``, and ``output`` (e.g. a :class:`ScaledTanh` for codes) after the last
    layer; none by default.

    One flat ``nn.Sequential``, layers created in order: the initialisation drawn from a seed
    and the names of the saved tensors depend only on these arguments.
    """
    layers: list[nn.Module] = [RowNormalize()] if normalize_input else []
    size = d_in
    for i, width in enumerate(hidden):
        layers.append(nn.Linear(size, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        if dropout > 0 and (not dropout_last_only or i == len(hidden) - 1):
            layers.append(nn.Dropout(dropout))
        size = width
    layers.append(nn.Linear(size, d_out))
    if output is not None:
        layers.append(output)
    return nn.Sequential(*layers)


class ScaledTanh(nn.Module):
    """``tanh(alpha h)``, the relaxed sign of hashing networks; ``alpha`` is a plain attribute
    (not a parameter, not saved) that a schedule raises during training so the outputs approach
    ±1. ``sign(tanh(alpha h)) = sign(h)``: the codes never depend on ``alpha``."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(h if self.alpha == 1.0 else self.alpha * h)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"


def sqrt_schedule(epoch: int) -> float:
    """DJSRH's and JDSH's ``alpha = sqrt(epoch + 1)`` for their epochs counted from 0, i.e.
    ``sqrt(epoch)`` for mmhash's epochs counted from 1."""
    return math.sqrt(epoch)


def set_alpha(model: nn.Module, alpha: float) -> None:
    """Set ``alpha`` of every :class:`ScaledTanh` inside ``model``."""
    for module in model.modules():
        if isinstance(module, ScaledTanh):
            module.alpha = float(alpha)


#: A schedule maps the epoch (from 1) to ``alpha``.
Schedule = Callable[[int], float]
