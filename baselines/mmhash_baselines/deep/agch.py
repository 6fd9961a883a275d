"""AGCH: Aggregation-based Graph Convolutional Hashing (Zhang, Li, Huang, Xu; IEEE TMM 2021).

Needs PyTorch (``pip install 'mmhash-baselines[deep]'``). A **reconstruction**: the paper
publishes no code and its full text was not reachable; what we build from (its abstract, a
reading note with its equations, a third party's guide written from the PDF) and every choice
that is ours are on the method card, ``docs/methods/agch.md`` (sentences S1-S13 cited below).
Image features are the first view, text the second; ``c = n_bits``; ``m`` rows per batch.

Setting: features only. The paper's image network is AlexNet up to fc7 plus a hash layer; here
the image network is a head on the given image feature vectors (no CNN is fine-tuned), and the
text network a head on the given text vectors.

Aggregated similarity (S3, S4), per mini-batch, no gradient (:func:`aggregated_similarity`)
    ``x^m`` rows L2-normalised per view, ``Z = [g_v x^v, g_t x^t]`` (``g`` = ``gamma_image``,
    ``gamma_text``) and each row of ``Z`` L2-normalised (ours: keeps ``C`` a cosine in
    ``[-1, 1]`` for any ``g``); ``C = Z Z^T`` (cosine), ``E_ij = ||Z_i - Z_j||_2`` (Euclidean),
    ``D = exp(-sqrt(E) / rho)``; ``S0 = C * D`` (Hadamard product); target ``S = 2 S0 - 1``.

Networks (S5-S8), :class:`AGCHNet`
    Encoders (kept after fit): ``x -> standardise -> Linear(d, w) -> ReLU -> Linear(w, c) = f``,
    code ``b = sign(f)``, training output ``H = tanh(f)`` (text ``w = 4096`` as in the paper;
    the image's hidden layer, 1024 wide, is ours, standing in for fc6/fc7). Fusion module
    (training only): ``H^h = tanh(Linear([f^v, f^t]))``. One GCN branch per view (training
    only), on the batch: ``A = max(S, 0)`` with unit diagonal, ``A^ = D^-1/2 A D^-1/2``;
    ``H^g = tanh(FC(ReLU(A^ ReLU(A^ f W1) W2)))`` (widths 1024, 512: ours, a quarter of the
    4096, 2048 the guide reads in the paper, for the CPU).

Loss (S9, S10), :func:`agch_loss`; ``MSE_S(a, b) = mean((cos(H^a, H^b) - S)^2)``
    ``L1 = MSE_S(v, t) + MSE_S(h, h) + intra [MSE_S(v, v) + MSE_S(t, t)]`` (reconstruction);
    ``L2 = MSE_S(gv, gt) + intra [MSE_S(gv, gv) + MSE_S(gt, gt)]
    + mean||H^v - H^gv||^2 + mean||H^t - H^gt||^2`` (the GCN codes reconstruct ``S``; the
    encoders' codes are tied to their GCN codes);
    ``L3 = mean||H^h - H^v||^2 + mean||H^h - H^t||^2`` (cross-modal consistency via fusion);
    ``L = alpha L1 + delta L2 + fusion_weight L3`` (the mean is over all entries).

Alternating updates (S11), :func:`agch_updates`: per batch (1) the encoders on ``L``, then with the
new encoders (2) the fusion module on its terms, (3) the GCN branches on theirs; each with the
other parts fixed (three Adam optimisers, one per part).

Out-of-sample encoding (S13): the fusion module and the GCN branches exist only in training
(they need both views / a batch). A new item of one view is encoded by its view's encoder
alone, ``sign(f)``: a code depends only on its own item. What the GCN contributes reaches the
encoders through the ``H^v ~ H^gv`` ties of ``L2`` and the shared reconstruction targets.

Defaults: the paper's Wikipedia values where published (``gamma_image=1.0, gamma_text=0.8,
rho=4, alpha=0.4``; ``intra_weight=0.3`` and ``fusion_weight=5`` are its ``beta`` and
``lambda`` in our reading of what they weigh); the rest is ours (card: chosen on a validation
split of wiki's training rows, never the test queries). No official code exists; an unofficial
reimplementation (github.com/natsuki221/AGCH-Impl) was read for facts only, none of its choices
are followed.

Nothing ``n x n`` over the training set is built (the similarity and the graph are per batch):
no training-set size limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists agch as unavailable with this message
    raise ImportError(
        "AGCH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import (
    DeepHasher,
    Part,
    Standardize,
    TrainingState,
    Updates,
    cosine_mse,
    mlp,
)
from mmhash.errors import InvalidInputError
from mmhash.params import Flag, Integer, Number

from ._scaling import SPREAD_LIMIT, column_spread

#: The three parts the alternating scheme updates in turn (S11).
PARTS = ("encoders", "fusion", "gcn")


# ---- the aggregated similarity ---------------------------------------------------------------
def aggregated_similarity(X_image: torch.Tensor, X_text: torch.Tensor, *, gamma_image: float,
                          gamma_text: float, rho: float) -> tuple[torch.Tensor, torch.Tensor]:
    """AGCH's batch similarity (S3, S4): returns ``(S0, S)``, both ``(m, m)`` in the inputs'
    dtype: ``S0 = C * D`` and the target ``S = 2 S0 - 1``.

    ``X_image`` ``(m, d_v)``, ``X_text`` ``(m, d_t)``: paired rows. ``Z`` is the concatenation
    of the L2-normalised views weighted by ``gamma_image`` / ``gamma_text``, L2-normalised per
    row; ``C = Z Z^T``; ``D = exp(-sqrt(||Z_i - Z_j||_2) / rho)``. An all-zero row (in both
    views) has ``C = 0`` to everything, itself included.
    """
    Z = F.normalize(torch.cat([gamma_image * F.normalize(X_image, dim=1),
                               gamma_text * F.normalize(X_text, dim=1)], dim=1), dim=1)
    C = Z @ Z.T
    # ||Z_i - Z_j||^2 = |Z_i|^2 + |Z_j|^2 - 2 C_ij (unit or zero rows); clamped at 0 against
    # rounding, and sqrt(sqrt(.)) of it is sqrt(E) (torch.cdist has no stable gradient at 0).
    sq = (Z * Z).sum(dim=1)
    E2 = (sq[:, None] + sq[None, :] - 2.0 * C).clamp_min(0.0)
    D = torch.exp(-E2.sqrt().sqrt() / rho)
    S0 = C * D
    return S0, 2.0 * S0 - 1.0


def normalized_adjacency(S: torch.Tensor) -> torch.Tensor:
    """The GCN's ``A^ = D^-1/2 A D^-1/2`` of a batch (S7, S8): ``A = max(S, 0)`` with a unit
    diagonal (every item its own neighbour: the degrees are >= 1), ``D = diag(A 1)``.
    ``(m, m)`` -> ``(m, m)``, symmetric."""
    A = S.clamp_min(0.0)
    A = A.masked_fill(torch.eye(len(A), dtype=torch.bool, device=A.device), 1.0)
    d = A.sum(dim=1).rsqrt()
    return d[:, None] * A * d[None, :]


# ---- the networks ----------------------------------------------------------------------------
class GraphConvolution(nn.Module):
    """One GCN layer on a batch graph: ``A^ (H W + b)`` for ``H`` ``(m, d_in)`` and the
    normalised adjacency ``A^`` ``(m, m)``; ``(m, d_out)``."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, H: torch.Tensor, A_hat: torch.Tensor) -> torch.Tensor:
        return A_hat @ self.linear(H)


class GCNBranch(nn.Module):
    """``tanh(FC(ReLU(GC2(ReLU(GC1(f))))))``: two graph convolutions and a fully connected
    layer (S8), from an encoder's ``f`` ``(m, c)`` to GCN codes ``(m, c)``."""

    def __init__(self, n_bits: int, widths: Sequence[int]):
        super().__init__()
        w1, w2 = widths
        self.gc1 = GraphConvolution(n_bits, w1)
        self.gc2 = GraphConvolution(w1, w2)
        self.fc = nn.Linear(w2, n_bits)

    def forward(self, f: torch.Tensor, A_hat: torch.Tensor) -> torch.Tensor:
        H = F.relu(self.gc1(f, A_hat))
        H = F.relu(self.gc2(H, A_hat))
        return torch.tanh(self.fc(H))


class AGCHNet(nn.Module):
    """The AGCH network: ``encoders`` (image, text; kept after fit), ``fusion`` and ``gcn``
    (training only). Each encoder is ``Standardize -> Linear -> ReLU -> Linear -> Tanh``
    (:class:`mmhash.deep.Standardize`, identity unless ``standardize``); its
    output without the last ``Tanh`` is the paper's ``f`` ``(m, c)``."""

    def __init__(self, dims: Sequence[int], n_bits: int, *, image_width: int, text_width: int,
                 gcn_widths: Sequence[int]):
        super().__init__()
        self.encoders = nn.ModuleList(
            nn.Sequential(Standardize(d), *mlp(d, [w], n_bits, output=nn.Tanh()))
            for d, w in zip(dims, (image_width, text_width)))
        self.fusion = nn.Linear(2 * n_bits, n_bits)
        self.gcn = nn.ModuleList(GCNBranch(n_bits, gcn_widths) for _ in dims)

    def features(self, X: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The encoders' ``f`` (before tanh) of each view, ``(m, c)``."""
        return [encoder[:-1](x) for encoder, x in zip(self.encoders, X)]

    def fused(self, f: Sequence[torch.Tensor]) -> torch.Tensor:
        """The fusion module's codes ``H^h = tanh(W [f^v, f^t] + b)`` ``(m, c)`` (S6)."""
        return torch.tanh(self.fusion(torch.cat(list(f), dim=1)))

    def graph_codes(self, f: Sequence[torch.Tensor], A_hat: torch.Tensor) -> list[torch.Tensor]:
        """The GCN branches' codes ``H^gv``, ``H^gt`` ``(m, c)`` on the batch graph (S7)."""
        return [branch(x, A_hat) for branch, x in zip(self.gcn, f)]

    def forward(self, X: Sequence[torch.Tensor], A_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every code of a batch: ``v``, ``t`` (encoders), ``h`` (fusion), ``gv``, ``gt``."""
        f = self.features(X)
        gv, gt = self.graph_codes(f, A_hat)
        return {"v": torch.tanh(f[0]), "t": torch.tanh(f[1]), "h": self.fused(f),
                "gv": gv, "gt": gt}


# ---- the loss ----------------------------------------------------------------------------------
def _term(codes: dict[str, torch.Tensor], a: str, b: str, S: torch.Tensor) -> torch.Tensor:
    return cosine_mse(codes[a], codes[b], S)


def _gap(codes: dict[str, torch.Tensor], a: str, b: str) -> torch.Tensor:
    return F.mse_loss(codes[a], codes[b])


def reconstruction_terms(codes: dict[str, torch.Tensor], S: torch.Tensor, intra: float
                         ) -> torch.Tensor:
    """``L1 = MSE_S(v, t) + MSE_S(h, h) + intra [MSE_S(v, v) + MSE_S(t, t)]`` (S9)."""
    return (_term(codes, "v", "t", S) + _term(codes, "h", "h", S)
            + intra * (_term(codes, "v", "v", S) + _term(codes, "t", "t", S)))


def gcn_terms(codes: dict[str, torch.Tensor], S: torch.Tensor, intra: float) -> torch.Tensor:
    """``L2 = MSE_S(gv, gt) + intra [MSE_S(gv, gv) + MSE_S(gt, gt)] + mean||H^v - H^gv||^2
    + mean||H^t - H^gt||^2`` (S9, S10)."""
    return (_term(codes, "gv", "gt", S)
            + intra * (_term(codes, "gv", "gv", S) + _term(codes, "gt", "gt", S))
            + _gap(codes, "v", "gv") + _gap(codes, "t", "gt"))


def fusion_terms(codes: dict[str, torch.Tensor]) -> torch.Tensor:
    """``L3 = mean||H^h - H^v||^2 + mean||H^h - H^t||^2`` (S6, S10)."""
    return _gap(codes, "h", "v") + _gap(codes, "h", "t")


def agch_loss(codes: dict[str, torch.Tensor], S: torch.Tensor, *, alpha: float, delta: float,
              fusion_weight: float, intra_weight: float
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """``L = alpha L1 + delta L2 + fusion_weight L3`` on one batch (module docstring).

    ``codes``: ``v``, ``t``, ``h``, ``gv``, ``gt`` -> ``(m, c)`` tanh outputs; ``S``: the
    ``(m, m)`` target. Returns the scalar loss and the unweighted parts as floats."""
    parts = {"reconstruction": reconstruction_terms(codes, S, intra_weight),
             "gcn": gcn_terms(codes, S, intra_weight), "fusion": fusion_terms(codes)}
    total = (alpha * parts["reconstruction"] + delta * parts["gcn"]
             + fusion_weight * parts["fusion"])
    return total, {k: float(v.detach()) for k, v in parts.items()}


def agch_updates(model: AGCHNet, X: Sequence[torch.Tensor], S: torch.Tensor, *, alpha: float,
                 delta: float, fusion_weight: float, intra_weight: float) -> Updates:
    """The alternating update of one batch (S11): three updates, yielded as ``(loss, part)``
    (:meth:`mmhash.deep.DeepHasher._updates`; each is made before the next loss is built).

    (1) ``L`` -> ``"encoders"``; then from the updated encoders' (fixed) ``f``: (2) the terms of
    ``L`` that depend on the fusion module (``alpha MSE_S(h, h) + fusion_weight L3``) ->
    ``"fusion"``; (3) those that depend on the GCN branches (``delta L2``) -> ``"gcn"``.
    Each part's gradient is the gradient of the whole ``L`` at the point reached so far.
    Returns update (1)'s loss and parts."""
    A_hat = normalized_adjacency(S)
    loss, parts = agch_loss(model(X, A_hat), S, alpha=alpha, delta=delta,
                            fusion_weight=fusion_weight, intra_weight=intra_weight)
    yield loss, "encoders"
    with torch.no_grad():
        f = model.features(X)
    codes = {"v": torch.tanh(f[0]), "t": torch.tanh(f[1]), "h": model.fused(f)}
    fusion_loss = alpha * _term(codes, "h", "h", S) + fusion_weight * fusion_terms(codes)
    yield fusion_loss, "fusion"
    codes["gv"], codes["gt"] = model.graph_codes(f, A_hat)
    yield delta * gcn_terms(codes, S, intra_weight), "gcn"
    return float(loss.detach()), parts


# ---- the hasher ------------------------------------------------------------------------------
class AGCH(DeepHasher):
    """AGCH (Zhang, Li, Huang, Xu, IEEE TMM 2021), reconstructed, on given image and text
    features. Two views, image first. See the module docstring and ``docs/methods/agch.md``.

    Per epoch: O(n (d_v w_v + d_t w_t + c w_1 + w_1 w_2 + m w_1 + m c)) with ``w_1``, ``w_2`` the
    GCN widths (the GCN branches dominate at the default widths), about twice for the three
    alternating updates.

    Parameters
    ----------
    n_bits : code length ``c`` (multiple of 8).
    gamma_image, gamma_text : weights of the L2-normalised image / text features in the
        aggregated feature ``Z`` (> 0, at least one; the paper's Wikipedia values 1.0 / 0.8 --
        MIRFlickr and NUS-WIDE: 2.0 / 0.3).
    rho : bandwidth of the Euclidean term ``exp(-sqrt(E) / rho)`` (> 0; the paper's 4 on every
        dataset).
    alpha : weight of the reconstruction loss ``L1`` (>= 0; 0.4, the paper's Wikipedia ``alpha``;
        MIRFlickr / NUS-WIDE 1).
    delta : weight of the GCN loss ``L2`` (>= 0; 1, ours: no value is published).
    fusion_weight : weight of the cross-modal consistency loss ``L3`` (>= 0; 5: the paper's
        Wikipedia ``lambda`` in our reading of which term it weighs; MIRFlickr 10, NUS-WIDE 5).
    intra_weight : weight of the within-view reconstruction terms in ``L1`` and ``L2`` (>= 0;
        0.3: the paper's Wikipedia ``beta`` in our reading; MIRFlickr / NUS-WIDE 1).
    image_width, text_width : hidden widths of the image and text encoders (>= 1; 1024 (ours)
        and 4096 (the paper's text width)).
    gcn_width1, gcn_width2 : the widths of the two graph convolutions of each GCN branch
        (>= 1; 1024 and 512, ours: the paper's 4096 and 2048 cost 7x the time per epoch).
    standardize : standardise each encoder input column with the fit rows' mean and standard
        deviation (stored with the encoder; default True). The similarity always sees the
        given features (a view whose column scales span more than 1e3 has its columns divided
        by their standard deviation there first).
    n_epochs : fixed number of epochs (30, ours).
    batch_size : rows per batch, the nodes of each batch graph (32, ours).
    optimizer : ``"adam"`` (default) or ``"sgd"``, one per part (encoders, fusion, GCN).
    learning_rate, momentum, weight_decay : 1e-3, 0.9 (SGD only), 0 (ours).
    validation_fraction : 0 trains every training row for ``n_epochs``; a fraction in (0, 1)
        holds out that share of the training rows and keeps the encoders of the epoch with the
        lowest held-out ``L`` (unsupervised; never the test queries).
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (a GPU when torch sees one, else the CPU), ``"cpu"``, ``"cuda[:N]"``.
    random_state : seeds initialisation, shuffling and the held-out rows (identical codes on the
        CPU for the same ``n_threads``).
    """

    name = "agch"
    supported_views = (2, 2)
    conformance_params: ClassVar[dict[str, Any]] = {
        "image_width": 64, "text_width": 64, "gcn_width1": 64,
        "gcn_width2": 32, "n_epochs": 8,
        "batch_size": 64, "learning_rate": 3e-3, "n_threads": 1,
    }
    parameter_constraints = {
        "gamma_image": Number(low=0), "gamma_text": Number(low=0),  # not both 0: _check_params
        "alpha": Number(low=0), "delta": Number(low=0), "fusion_weight": Number(low=0),
        "intra_weight": Number(low=0),
        "rho": Number(low=0, low_open=True),
        "image_width": Integer(minimum=1), "text_width": Integer(minimum=1),
        "gcn_width1": Integer(minimum=1), "gcn_width2": Integer(minimum=1),
        "standardize": Flag(),
    }

    def __init__(self, *, n_bits: int = 64, gamma_image: float = 1.0, gamma_text: float = 0.8,
                 rho: float = 4.0, alpha: float = 0.4, delta: float = 1.0,
                 fusion_weight: float = 5.0, intra_weight: float = 0.3,
                 image_width: int = 1024, text_width: int = 4096,
                 gcn_width1: int = 1024, gcn_width2: int = 512, standardize: bool = True,
                 n_epochs: int = 30, batch_size: int = 32, optimizer: str = "adam",
                 learning_rate: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
                 validation_fraction: float = 0.0, n_threads: int | None = None,
                 device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.gamma_image = gamma_image
        self.gamma_text = gamma_text
        self.rho = rho
        self.alpha = alpha
        self.delta = delta
        self.fusion_weight = fusion_weight
        self.intra_weight = intra_weight
        self.image_width = image_width
        self.text_width = text_width
        self.gcn_width1 = gcn_width1
        self.gcn_width2 = gcn_width2
        self.standardize = standardize
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
    def _check_params(self) -> None:
        super()._check_params()
        if float(self.gamma_image) + float(self.gamma_text) == 0:
            raise InvalidInputError("gamma_image and gamma_text must not both be 0 (the "
                                    "aggregated feature would be empty)")

    def _weights(self) -> dict[str, float]:
        return {"alpha": float(self.alpha), "delta": float(self.delta),
                "fusion_weight": float(self.fusion_weight),
                "intra_weight": float(self.intra_weight)}

    # -- training --------------------------------------------------------------------------------
    def _build_model(self, dims: list[int]) -> AGCHNet:
        if len(dims) != 2:
            raise InvalidInputError(f"AGCH takes two views (image, text), got {len(dims)}")
        return AGCHNet(dims, int(self.n_bits), image_width=int(self.image_width),
                       text_width=int(self.text_width),
                       gcn_widths=(int(self.gcn_width1), int(self.gcn_width2)))

    def _begin_training(self, state: TrainingState) -> None:
        scales = []
        for encoder, X in zip(state.model.encoders, state.arrays):
            rows = X[state.fit_rows]
            if self.standardize:
                encoder[0].fit(rows)
            # Columns on wildly different scales would let a few columns decide every cosine of
            # the similarity: divide them by their spread (no shift: the signs, and with them
            # the 2 S0 - 1 reading of non-negative features, stay; a constant column stays).
            std = Standardize.statistics(rows)[1].astype(np.float32)
            scales.append(torch.from_numpy(std).to(state.device)
                          if column_spread(rows) > SPREAD_LIMIT else None)
        state.similarity_scale = scales

    def _similarity(self, state: TrainingState, X: Sequence[torch.Tensor]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        X = [x if s is None else x / s for x, s in zip(X, state.similarity_scale)]
        with torch.no_grad():  # the target depends on the input features only
            return aggregated_similarity(X[0], X[1], gamma_image=float(self.gamma_image),
                                         gamma_text=float(self.gamma_text), rho=float(self.rho))

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        # The held-out criterion: the whole objective, all parts at their current values.
        S0, S = self._similarity(state, batch)
        return agch_loss(state.model(batch, normalized_adjacency(S)), S, **self._weights())

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        # One optimiser per part: each update steps its part alone, and Adam's moments stay
        # per part.
        return {part: Part(getattr(state.model, part).parameters()) for part in PARTS}

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        _, S = self._similarity(state, batch)
        return (yield from agch_updates(state.model, batch, S, **self._weights()))
