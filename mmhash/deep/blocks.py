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
    similarity over the whole training set and its neighbourhood term ``P P^T`` (DGCPN, CIRH);
    :func:`keep_largest` -- the truncation alone; :func:`pair_block` -- a batch's block of such
    a whole-training-set matrix, by the rows' positions (UMHA, DGCPN, CIRH);
    :func:`pairwise_memory` / :func:`check_pairwise_size` -- what n x n matrices cost, and a
    clear refusal before they are built.

Losses
    :func:`cosine` -- ``cos(A, B)`` of two code sets, ``(n, m)``;
    :func:`cosine_mse` -- ``MSE(cos(codes_a, codes_b), target)``, the term of every
    image-image / image-text / text-text pair (II / IT / TT).

Networks
    :func:`mlp` -- a fully connected head (ReLU, optional dropout / batch norm / input
    normalisation), flat ``nn.Sequential`` so its saved state is stable;
    :class:`ScaledTanh` -- ``tanh(alpha h)`` with ``alpha`` set by a schedule
    (:func:`sqrt_schedule`: DJSRH's ``alpha = sqrt(epoch)``, epochs counted from 1).

All functions work on any device and dtype of their inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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
    sum -- a row-stochastic kNN graph (DGCPN's and CIRH's truncation). Rows whose kept entries
    sum to zero stay zero."""
    n = S.shape[0]
    if not 1 <= k <= n - (0 if include_self else 1):
        raise InvalidInputError(f"k={k} nearest neighbours need k between 1 and "
                                f"{n - (0 if include_self else 1)} for {n} rows")
    scores = S if include_self else S.masked_fill(
        torch.eye(n, dtype=torch.bool, device=S.device), -math.inf)
    P = keep_largest(scores, k)  # the masked diagonal is never among the kept entries
    total = P.sum(dim=1, keepdim=True)
    return P / torch.where(total != 0, total, torch.ones_like(total))


def keep_largest(S: torch.Tensor, k: int) -> torch.Tensor:
    """Each row of ``S`` ``(n, n)`` kept at its ``k`` largest entries (the diagonal competes
    like any other entry), every other entry 0, no normalisation: CIRH keeps the truncated
    cosines themselves, :func:`knn_graph` normalises them. A new ``(n, n)`` tensor.

    The official codes sort each row ascending and zero the ``n - k`` smallest; ``topk`` keeps
    the same entries up to the order of ties."""
    top = S.topk(k, dim=1)
    return torch.zeros_like(S).scatter_(1, top.indices, top.values)


def pair_block(S: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``S[rows][:, rows]``: the ``(b, b)`` block of a whole-training-set matrix for the batch
    whose positions in the training set are ``rows`` (int64 ``(b,)``), in the batch's order."""
    return S.index_select(0, rows).index_select(1, rows)


def graph_term(P: torch.Tensor) -> torch.Tensor:
    """``P P^T``: the share of kNN-graph neighbourhood two rows have in common. ``(n, n)``."""
    return P @ P.T


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
