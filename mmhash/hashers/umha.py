"""UMHA: unsupervised cross-media hashing with a multi-head attention network (a reconstruction).

Needs PyTorch (``pip install 'mmhash[deep]'``). The paper ("Cross-media Hash Retrieval using
Multi-head Attention Network") describes the method in a few sentences and no code is public, so
this is a reconstruction; ``docs/methods/umha.md`` is its method card (each choice, the sentence it
comes from, what is uncertain). For views ``m = 1..M`` of the ``N`` training rows ``X^m``:

Auxiliary similarity matrix ``A0`` (``N x N``, built once from the original features)
    ``C^m`` = cosine similarities of view ``m``'s rows, ``2 cos - 1`` with ``rescale_similarity``
    (:func:`mmhash.hashers.ujsah.similarity_matrices`).
    ``J = sum_m mu_m C^m + eta * (cross-modal second-order term)``, exactly UJSAH's joint
    semantics over the whole training set (:func:`mmhash.hashers.ujsah.joint_semantics`):
    ``J = (1 - eta) sum_m mu_m C^m + eta / (P N) sum_{u<w} C^u C^w^T``.
    ``G_ij`` = the share of views in which ``i`` and ``j`` are ``k``-nearest neighbours (cosine,
    ``k = n_neighbors``, self excluded, either direction), ``G_ii = 1``.
    ``A0 = (1 - lambda) J + lambda (2 G - 1)`` (``lambda = neighbour_weight``), ``diag(A0) = 1``.

Hash network (one per view; the "deep" branch)
    ``x -> (x - shift) / scale`` (the fit rows' per-feature mean and standard deviation, with
    ``standardize``) ``-> Linear(d_m, T h)`` cut into ``T = n_tokens`` tokens of width
    ``h = token_dim``, plus a learned position embedding; ``n_layers`` pre-norm blocks
    ``t + MHA(LN(t))``, ``t + FFN(LN(t))`` -- multi-head self-attention (``n_heads``) among
    the ``T`` tokens of *one* item, so a code never depends on other items; ``LN``, flatten,
    ``Linear(T h, n_bits)``, ``tanh`` gives ``Z^m``; the code is ``sign(Z^m)``.

Objective on a mini-batch ``I`` (``A_I = A[I, I]``, ``Zn`` = L2-normalised rows of ``Z``)
    ``L = alpha sum_{u<w} mean((A_I - Zn^u Zn^w^T)^2) + beta sum_m mean((A_I - Zn^m Zn^m^T)^2)
    + gamma sum_{u<w} (CE(Zn^u Zn^w^T / tau, i) + CE(Zn^w Zn^u^T / tau, i)) / 2``.
    The last (instance) term is the symmetric InfoNCE loss: the two modalities of an item are
    pulled together, different items pushed apart.

Collaborative update of ``A`` (after every epoch)
    ``B^m = sign(E_m(X^m))`` over every fit row (eval mode), ``Bbar = mean_m B^m``,
    ``H = Bbar Bbar^T / n_bits``; ``A[fit, fit] = (1 - rho) A0[fit, fit] + rho H`` with unit
    diagonal -- the minimiser over ``A`` of ``||A - A0||^2 + rho / (1 - rho) ||A - H||^2``, the
    A-step of an alternating minimisation. Held-out rows keep ``A0``, so the held-out loss used for
    epoch selection has a fixed target.

Ablations (``variant``): each removes one component -- see :data:`VARIANTS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists umha as unavailable with this message
    raise ImportError(
        "UMHA needs PyTorch, which is not installed: pip install 'mmhash[deep]'"
    ) from exc

from mmhash.deep import (
    ENCODE_CHUNK,
    DeepHasher,
    Standardize,
    TrainingState,
    check_pairwise_size,
    cosine_mse,
    knn_indices,
    pair_block,
)
from mmhash.errors import InvalidInputError
from mmhash.hashers.ujsah import joint_semantics, similarity_matrices, view_weights
from mmhash.params import Choice, Flag, Integer, Number

#: The ablation presets: variant name -> the component it removes (``None``: the full model).
VARIANTS: dict[str, str | None] = {
    "full": None,
    "umha-1": "neighbourhoods",   # A0 = J: no kNN neighbourhood integration
    "umha-2": "second_order",     # J = sum_m mu_m C^m: no cross-modal second-order term
    "umha-3": "attention",        # blocks keep their feed-forward sublayer, no self-attention
    "umha-4": "collaborative",    # A = A0 for the whole run: no update from the codes
    "umha-5": "instance",         # gamma ignored: no pull-pairs / push-instances term
}


# ---- the auxiliary similarity matrix ---------------------------------------------------------
def knn_agreement(sims: Sequence[torch.Tensor], n_neighbors: int) -> torch.Tensor:
    """``G``: for each pair of rows, the share of views in which they are k-nearest neighbours.

    ``sims`` holds one ``(n, n)`` similarity matrix per view (larger = closer). Row ``j`` is a
    neighbour of ``i`` in view ``m`` when it is among the ``n_neighbors`` most similar rows to
    ``i`` (``i`` itself excluded; :func:`mmhash.deep.knn_indices` on the given similarity) or
    ``i`` is among ``j``'s. Returns ``(n, n)`` in ``{0, 1/M, ..., 1}`` (same dtype as
    ``sims``), symmetric, with a unit diagonal.
    """
    agreement = torch.zeros_like(sims[0])
    for S in sims:
        nearest = knn_indices(S, n_neighbors, metric="precomputed")
        K = torch.zeros_like(S).scatter_(1, nearest, 1.0)
        agreement += torch.maximum(K, K.T)
    agreement /= len(sims)
    return agreement.fill_diagonal_(1.0)


def auxiliary_similarity(views: Sequence[torch.Tensor], *, weights: Sequence[float], eta: float,
                         n_neighbors: int, neighbour_weight: float, rescale: bool = True,
                         second_order: bool = True, neighbourhoods: bool = True
                         ) -> torch.Tensor:
    """``A0`` from the original features (module docstring), ``(n, n)``, dtype of ``views``.

    ``views`` holds one float tensor ``(n, d_m)`` per view, rows paired. ``second_order=False``
    drops the cross-modal term (``J`` = the fused cosines), ``neighbourhoods=False`` the kNN term
    (``A0 = J``). The diagonal is 1: an item is fully similar to itself in every modality.
    """
    sims = similarity_matrices(views, rescale)
    A = joint_semantics(sims, weights, eta, joint=second_order)
    if neighbourhoods and neighbour_weight > 0:
        G = knn_agreement(sims, n_neighbors)
        A = (1.0 - neighbour_weight) * A + neighbour_weight * (2.0 * G - 1.0)
    return A.fill_diagonal_(1.0)


def code_similarity(codes: Sequence[torch.Tensor]) -> torch.Tensor:
    """``H = Bbar Bbar^T / k`` with ``Bbar`` the mean of the views' ``(n, k)`` codes in {-1, +1}:
    the mean over all ordered pairs of views of the codes' normalised inner products, in
    ``[-1, 1]``, ``(n, n)``."""
    mean = torch.stack(list(codes)).mean(dim=0)
    return mean @ mean.T / mean.shape[1]


def collaborative_update(A0: torch.Tensor, H: torch.Tensor, rho: float) -> torch.Tensor:
    """``(1 - rho) A0 + rho H`` with unit diagonal: ``argmin_A ||A - A0||^2 + rho / (1 - rho)
    ||A - H||^2`` (the A-step of the joint objective). Shapes ``(n, n)``."""
    return ((1.0 - rho) * A0 + rho * H).fill_diagonal_(1.0)


# ---- the network -----------------------------------------------------------------------------
class AttentionBlock(nn.Module):
    """Pre-norm transformer block over the tokens of one item: ``t + MHA(LN(t))`` (omitted when
    ``attention=False``) then ``t + FFN(LN(t))``. Input and output ``(n, T, width)``."""

    def __init__(self, width: int, n_heads: int, ff_width: int, dropout: float,
                 attention: bool = True):
        super().__init__()
        self.norm_attention = nn.LayerNorm(width) if attention else None
        self.attention = (nn.MultiheadAttention(width, n_heads, dropout=dropout, batch_first=True)
                          if attention else None)
        self.norm_ff = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, ff_width), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(ff_width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.attention is not None:
            h = self.norm_attention(t)
            t = t + self.attention(h, h, h, need_weights=False)[0]
        return t + self.ff(self.norm_ff(t))


class AttentionHashEncoder(nn.Module):
    """One view's hash network: ``(n, d)`` features -> ``(n, n_bits)`` scores in ``(-1, 1)``.

    The features are projected to ``n_tokens`` tokens of width ``token_dim`` (plus a learned
    position embedding), passed through ``n_layers`` :class:`AttentionBlock` s, layer-normalised,
    flattened and mapped to ``n_bits`` with ``tanh``.
    """

    def __init__(self, d: int, n_bits: int, *, n_tokens: int, token_dim: int, n_heads: int,
                 n_layers: int, ff_width: int, dropout: float = 0.0, attention: bool = True):
        super().__init__()
        self.n_tokens, self.token_dim = n_tokens, token_dim
        # Fixed input standardisation (x - shift) / scale, set from the fit rows before training
        # (identity until then); buffers, so they are saved with the encoder.
        self.register_buffer("shift", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))
        self.embed = nn.Linear(d, n_tokens * token_dim)
        self.position = nn.Parameter(torch.zeros(n_tokens, token_dim))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.Sequential(*(
            AttentionBlock(token_dim, n_heads, ff_width, dropout, attention)
            for _ in range(n_layers)))
        self.norm = nn.LayerNorm(token_dim)
        self.head = nn.Linear(n_tokens * token_dim, n_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.shift) / self.scale
        tokens = self.embed(x).view(-1, self.n_tokens, self.token_dim) + self.position
        return torch.tanh(self.head(self.norm(self.blocks(tokens)).flatten(1)))


def set_standardization(encoder: AttentionHashEncoder, X: np.ndarray) -> None:
    """Make ``encoder`` standardise its input with the mean and standard deviation of the rows
    ``X`` (float ``(n, d)``); a feature without spread (standard deviation 1e-12 or less) keeps
    scale 1 (it is only centred). :meth:`mmhash.deep.Standardize.statistics`; the buffers stay
    the encoder's own (the saved state's names)."""
    mean, std = Standardize.statistics(X, min_std=1e-12)
    encoder.shift.copy_(torch.from_numpy(mean))
    encoder.scale.copy_(torch.from_numpy(std))


class UMHANet(nn.Module):
    """The hash networks of UMHA: ``encoders``, one :class:`AttentionHashEncoder` per view."""

    def __init__(self, dims: Sequence[int], n_bits: int, **encoder: Any):
        super().__init__()
        self.encoders = nn.ModuleList(AttentionHashEncoder(d, n_bits, **encoder) for d in dims)


def umha_loss(net: UMHANet, views: Sequence[torch.Tensor], A: torch.Tensor, *, alpha: float,
              beta: float, gamma: float, tau: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The UMHA objective (module docstring) on one mini-batch.

    ``views`` holds one float tensor ``(n, d_m)`` per view, rows paired; ``A`` is the ``(n, n)``
    block of the auxiliary matrix for these rows. Returns the weighted sum (a scalar tensor with
    gradients) and the unweighted terms ``cross``, ``intra`` and ``instance``.
    """
    unit = [F.normalize(E(X), dim=1) for E, X in zip(net.encoders, views)]
    pairs = list(itertools.combinations(range(len(unit)), 2))
    cross = sum(cosine_mse(unit[u], unit[w], A, normalized=True) for u, w in pairs)
    intra = sum(cosine_mse(Zn, Zn, A, normalized=True) for Zn in unit)
    target = torch.arange(A.shape[0], device=A.device)
    instance = torch.zeros((), device=A.device)
    if gamma > 0:
        for u, w in pairs:
            logits = unit[u] @ unit[w].T / tau
            instance = instance + (F.cross_entropy(logits, target)
                                   + F.cross_entropy(logits.T, target)) / 2
    total = alpha * cross + beta * intra + gamma * instance
    parts = {"cross": cross, "intra": intra, "instance": instance}
    return total, {k: float(v.detach()) for k, v in parts.items()}


# ---- the hasher ------------------------------------------------------------------------------
class UMHA(DeepHasher):
    """UMHA: attention hash networks guided by a collaboratively updated auxiliary similarity.

    See the module docstring for the equations and ``docs/methods/umha.md`` for the sources and
    choices. Fitting holds two ``N x N`` float32 matrices over the training rows (``A0`` and
    ``A``): O(N^2) memory, O(N^2 (sum_m d_m + N)) time to build once; per epoch the networks cost
    O(N (sum_m d_m T h + T^2 h + T h^2)) and the update O(N^2 k).

    Parameters
    ----------
    n_bits : code length (multiple of 8).
    variant : ``"full"`` or an ablation ``"umha-1"`` ... ``"umha-5"`` that removes one component
        (:data:`VARIANTS`): 1 the kNN neighbourhoods, 2 the cross-modal second-order term, 3 the
        multi-head attention, 4 the collaborative update of ``A``, 5 the instance term.
    alpha, beta : weights of the cross-modal and within-modal fits of ``A``.
    gamma, tau : weight and temperature of the instance (symmetric InfoNCE) term.
    mu : view weights of the fused cosines: None (equal), the first view's weight (the others
        share the rest) or one weight per view.
    eta : weight of the cross-modal second-order term in ``J``.
    n_neighbors : ``k`` of the kNN neighbourhoods (``< N``).
    neighbour_weight : ``lambda``, weight of the kNN agreement term in ``A0``, in [0, 1].
    rho : weight of the codes' similarity in the collaborative update, in [0, 1).
    rescale_similarity : map cosines to ``2 cos - 1`` (as UJSAH) or keep them.
    standardize : the hash networks standardise their input with the fit rows' per-feature mean
        and standard deviation (kept with the encoders); the auxiliary matrix always uses the
        original features.
    n_tokens, token_dim, n_heads, n_layers, ff_width : the hash network's tokens per item, token
        width (divisible by ``n_heads``), attention heads, blocks and feed-forward width.
    dropout : dropout inside the blocks (training only).
    max_samples : training rows above which fit refuses (the ``N x N`` matrices).
    n_epochs, batch_size, optimizer, learning_rate, momentum, weight_decay : training (fixed
        number of epochs; Adam by default).
    validation_fraction : 0 trains on every row. A fraction in (0, 1) holds out that share of the
        training rows; after every epoch the UMHA loss on them (against their fixed ``A0`` block)
        chooses the epoch whose encoders are kept -- unsupervised: no labels, no queries.
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : where training runs: ``"auto"`` (default: a GPU when torch sees one, else the CPU),
        ``"cpu"`` or ``"cuda"``/``"cuda:N"``; the kept encoders always encode on the CPU.
        Identical codes per seed are guaranteed on the CPU.
    random_state : seeds the initialisation, dropout, the shuffling and the held-out rows.
    """

    name = "umha"
    supported_views = (2, None)
    with_row_ids = True
    conformance_params: ClassVar[dict[str, Any]] = {
        "n_tokens": 4, "token_dim": 16, "n_heads": 2, "n_layers": 1, "ff_width": 32,
        "n_neighbors": 10, "n_epochs": 2, "batch_size": 100, "learning_rate": 3e-3,
        "n_threads": 1,
    }
    #: mu (None, one weight or one weight per view) is checked against the view count, and
    #: n_neighbors and max_samples against the training rows, by _fit, first, before training.
    parameter_constraints = {
        "variant": Choice(tuple(VARIANTS)),
        "alpha": Number(low=0), "beta": Number(low=0), "gamma": Number(low=0),
        "tau": Number(low=0, low_open=True),  # tau divides the logits of the instance term
        "eta": Number(0, 1), "neighbour_weight": Number(0, 1),
        # rho = 1 would replace A0 by the codes' similarity outright (the A-step's weight
        # rho / (1 - rho) is infinite); dropout 1 drops everything.
        "rho": Number(0, 1, high_open=True), "dropout": Number(0, 1, high_open=True),
        "rescale_similarity": Flag(), "standardize": Flag(),
        "n_neighbors": Integer(minimum=1), "n_tokens": Integer(minimum=1),
        "token_dim": Integer(minimum=1), "n_heads": Integer(minimum=1),
        "n_layers": Integer(minimum=1), "ff_width": Integer(minimum=1),
        "max_samples": Integer(minimum=1),
    }

    def __init__(self, *, n_bits: int = 32, variant: str = "full", alpha: float = 1.0,
                 beta: float = 1.0, gamma: float = 1.0, tau: float = 1.0,
                 mu: float | Sequence[float] | None = None, eta: float = 0.3,
                 n_neighbors: int = 20, neighbour_weight: float = 0.3, rho: float = 0.3,
                 rescale_similarity: bool = True, standardize: bool = True,
                 n_tokens: int = 8, token_dim: int = 64,
                 n_heads: int = 4, n_layers: int = 2, ff_width: int = 128,
                 dropout: float = 0.0, max_samples: int = 12000, n_epochs: int = 15,
                 batch_size: int = 128, optimizer: str = "adam", learning_rate: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0,
                 validation_fraction: float = 0.0, n_threads: int | None = None,
                 device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.variant = variant
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.tau = tau
        self.mu = mu
        self.eta = eta
        self.n_neighbors = n_neighbors
        self.neighbour_weight = neighbour_weight
        self.rho = rho
        self.rescale_similarity = rescale_similarity
        self.standardize = standardize
        self.n_tokens = n_tokens
        self.token_dim = token_dim
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.ff_width = ff_width
        self.dropout = dropout
        self.max_samples = max_samples
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.n_threads = n_threads
        self.device = device
        self.random_state = random_state

    # -- parameters ------------------------------------------------------------------------------
    def _uses(self, component: str) -> bool:
        return VARIANTS[self.variant] != component

    def _check_params(self) -> None:
        """The rule relating two declared parameters: ``token_dim`` divisible by ``n_heads``."""
        super()._check_params()
        if self.token_dim % self.n_heads:
            raise InvalidInputError(f"token_dim={self.token_dim} must be divisible by "
                                    f"n_heads={self.n_heads} (each head gets token_dim / n_heads)")

    def _weights(self, n_views: int) -> list[float]:
        if self.mu is None:
            return [1.0 / n_views] * n_views
        return view_weights(self.mu, n_views)

    # -- training --------------------------------------------------------------------------------
    def _begin_training(self, state: TrainingState) -> None:
        n = len(state.arrays[0])
        check_pairwise_size(n, int(self.max_samples), method="UMHA", n_matrices=2)
        if self.n_neighbors >= n:
            raise InvalidInputError(
                f"n_neighbors={self.n_neighbors} must be smaller than the {n} training rows")
        weights = self._weights(len(state.arrays))  # checks mu against the view count
        self.aux_shift_: list[float] = []
        if self.standardize:
            for encoder, X in zip(state.model.encoders, state.arrays):
                set_standardization(encoder, X[state.fit_rows])
        tensors = [torch.from_numpy(X.astype(np.float32)).to(state.device)
                   for X in state.arrays]
        state.aux0 = auxiliary_similarity(
            tensors, weights=weights, eta=float(self.eta),
            n_neighbors=int(self.n_neighbors), neighbour_weight=float(self.neighbour_weight),
            rescale=bool(self.rescale_similarity), second_order=self._uses("second_order"),
            neighbourhoods=self._uses("neighbourhoods"))
        state.aux = state.aux0.clone()

    def _build_model(self, dims: list[int]) -> UMHANet:
        return UMHANet(dims, int(self.n_bits), n_tokens=int(self.n_tokens),
                       token_dim=int(self.token_dim), n_heads=int(self.n_heads),
                       n_layers=int(self.n_layers), ff_width=int(self.ff_width),
                       dropout=float(self.dropout), attention=self._uses("attention"))

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        *views, rows = batch
        A = pair_block(state.aux, rows)
        gamma = float(self.gamma) if self._uses("instance") else 0.0
        return umha_loss(state.model, views, A, alpha=float(self.alpha), beta=float(self.beta),
                         gamma=gamma, tau=float(self.tau))

    def _end_epoch(self, state: TrainingState) -> None:
        if not self._uses("collaborative") or self.rho == 0:
            return
        model = state.model
        *views, rows = state.data
        model.eval()  # codes as encode would give them (no dropout)
        with torch.no_grad():
            codes = [torch.cat([torch.where(E(X[i:i + ENCODE_CHUNK]) >= 0, 1.0, -1.0)
                                for i in range(0, len(X), ENCODE_CHUNK)])
                     for E, X in zip(model.encoders, views)]
            block = (rows[:, None], rows[None, :])
            A0 = state.aux0[block]
            updated = collaborative_update(A0, code_similarity(codes), float(self.rho))
            state.aux[block] = updated
            self.aux_shift_.append(float((updated - A0).abs().mean()))
        model.train()
