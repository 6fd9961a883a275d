"""DBRC: Deep Binary Reconstruction for cross-modal hashing (Hu, Nie, Li; ACM MM 2017, IEEE TMM
2019; arXiv 1708.05127) -- a reconstruction from the papers' text, no public code.

Needs PyTorch. Only the two abstracts and a third-party summary of the arXiv version could be
read (docs/methods/dbrc.md lists the sentences S1-S9 this is built from and every choice that is
ours). In short:

Setting: features only. Each modality-specific network is a head on the given feature vectors
(no fine-tuned CNN); inputs are standardised per column with the fit rows' mean and standard
deviation (a fixed first layer, saved with the encoder), and the reconstruction targets are the
standardised features.

Network (S2, S4, S9; widths ours)
    encoder ``E_m``: ``x_m -> standardise (mmhash.deep.Standardize) -> Linear(d_m, w) -> ReLU ->
    Linear(w, k)`` gives the modality's contribution ``a_m`` ``(n, k)`` to the shared hashing
    layer;
    hashing layer (ATanh, S3 / S6): ``b = tanh(alpha * z)``, ``alpha`` ``(k,)`` learnable, one
    slope per bit, ``z`` the mean of the contributions of the modalities present
    (``(a_1 + a_2) / 2`` for a pair, ``a_m`` for modality ``m`` alone);
    decoder ``D_m``: ``b -> Linear(k, w) -> ReLU -> Linear(w, d_m)`` reconstructs modality
    ``m`` (of *every* modality from every code).

Objective on a mini-batch (S4, S5, S9; weights ours)
    ``L = R(both) + unimodal_weight * sum_m R(m alone) + alpha_penalty * mean_k 1 / alpha_k^2``
    with ``R(c) = sum_m MSE(D_m(b_c), standardised x_m)`` (the mean over rows and columns):
    the code of the pair and the code of each modality alone must each reconstruct the features
    of both modalities -- the single-modality term (S5's "distribution of each modality") and the
    cross-modal conditional one (S5's "conditional distribution across modalities"). The
    penalty grows without bound as a slope approaches 0 and pushes every ``alpha_k`` up, towards
    ``b = sign(z)`` (S3, S6, S9; the encoders can partly offset it by shrinking ``z``: see the
    card's "known uncertainty"). ``alpha`` is trained by
    back-propagation with the networks (S3), in its own parameter group (``alpha_learning_rate``,
    no weight decay) and projected onto ``alpha >= ALPHA_FLOOR`` after every step.

Codes (out of sample): ``sign(E_m(x))`` -- the sign of modality ``m``'s contribution, which is
the sign of the hashing layer for that modality alone (``alpha > 0``). Nothing ``n x n`` is built,
so there is no training-set size limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists dbrc as unavailable with this message
    raise ImportError(
        "DBRC needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

import numpy as np

from mmhash.deep import DeepHasher, Part, Standardize, TrainingState, Updates, mlp
from mmhash.params import Flag, Integer, Number

#: The slopes are kept at or above this after every step: the codes are ``sign(z)`` only for a
#: positive slope, and the penalty ``1 / alpha^2`` is undefined at 0.
ALPHA_FLOOR = 1e-2


# ---- network ---------------------------------------------------------------------------------
class ATanh(nn.Module):
    """Adaptive tanh, ``tanh(alpha * z)`` with a learnable slope ``alpha`` ``(k,)`` per bit
    (S3); float ``(n, k) -> (n, k)`` in ``(-1, 1)``."""

    def __init__(self, n_bits: int, alpha_init: float = 1.0):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((n_bits,), float(alpha_init)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.alpha * z)

    def penalty(self) -> torch.Tensor:
        """``mean_k 1 / alpha_k^2``: large while a slope is small, so minimising it raises every
        slope (scalar tensor)."""
        return (1.0 / self.alpha ** 2).mean()


class DBRCNet(nn.Module):
    """The multimodal binary autoencoder: ``encoders`` (one per modality, kept after fit),
    the shared ``hash_layer`` (ATanh) and ``decoders`` (one per modality; training only)."""

    def __init__(self, dims: Sequence[int], n_bits: int, *, hidden_width: int,
                 alpha_init: float):
        super().__init__()
        hidden = [hidden_width] if hidden_width > 0 else []
        self.encoders = nn.ModuleList(
            nn.Sequential(Standardize(d), mlp(d, hidden, n_bits)) for d in dims)
        self.hash_layer = ATanh(n_bits, alpha_init)
        self.decoders = nn.ModuleList(mlp(n_bits, hidden, d) for d in dims)

    def targets(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The reconstruction targets: each view ``(n, d_m)`` standardised by its encoder."""
        return [encoder[0](X) for encoder, X in zip(self.encoders, views)]

    def contributions(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``a_m = E_m(x_m)``, ``(n, k)`` per modality: each encoder on its own view."""
        return [encoder(X) for encoder, X in zip(self.encoders, views)]

    def code(self, contributions: Sequence[torch.Tensor]) -> torch.Tensor:
        """The hashing layer ``tanh(alpha * mean_m a_m)`` over the modalities given ``(n, k)``."""
        return self.hash_layer(sum(contributions) / len(contributions))

    def reconstruct(self, b: torch.Tensor) -> list[torch.Tensor]:
        """Every modality's reconstruction ``(n, d_m)`` from the codes ``b`` ``(n, k)``."""
        return [decoder(b) for decoder in self.decoders]


# ---- loss ------------------------------------------------------------------------------------
def reconstruction_error(net: DBRCNet, b: torch.Tensor, targets: Sequence[torch.Tensor]
                         ) -> torch.Tensor:
    """``sum_m MSE(D_m(b), target_m)``, each MSE the mean over the ``(n, d_m)`` entries, so a
    wide view does not outweigh a narrow one. Scalar."""
    return sum(F.mse_loss(out, t) for out, t in zip(net.reconstruct(b), targets))


def dbrc_loss(net: DBRCNet, views: Sequence[torch.Tensor], *, unimodal_weight: float,
              alpha_penalty: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The DBRC objective on a batch of paired rows ``views`` (float ``(n, d_m)`` per view):
    ``R(all) + unimodal_weight sum_m R(m alone) + alpha_penalty mean_k 1 / alpha_k^2``
    (module docstring). Returns the scalar loss and its unweighted parts ``joint``,
    ``single{m}``, ``penalty`` and the mean slope ``alpha`` (floats)."""
    targets = net.targets(views)
    contributions = net.contributions(views)
    joint = reconstruction_error(net, net.code(contributions), targets)
    total = joint + alpha_penalty * net.hash_layer.penalty()
    parts = {"joint": joint}
    if unimodal_weight > 0:
        for m, a in enumerate(contributions):
            single = reconstruction_error(net, net.code([a]), targets)
            total = total + unimodal_weight * single
            parts[f"single{m}"] = single
    parts["penalty"] = net.hash_layer.penalty()
    parts["alpha"] = net.hash_layer.alpha.mean()
    return total, {k: float(v.detach()) for k, v in parts.items()}


# ---- the hasher ------------------------------------------------------------------------------
class DBRC(DeepHasher):
    """DBRC: a multimodal autoencoder with a binary (adaptive tanh) middle layer that
    reconstructs every modality from the shared code (Hu, Nie, Li, MM 2017 / TMM 2019).

    Views: two (image, text) as in the paper, or more (the mean over the modalities present and
    the single-modality terms extend without a new choice). See the module docstring and
    docs/methods/dbrc.md for the equations and which parts are the paper's. Cost per epoch:
    ``(1 + M)`` forward/backward passes (the pair and each modality alone), each
    O(N (sum_m d_m w + w k)).

    Parameters
    ----------
    n_bits : code length (multiple of 8).
    hidden_width : width ``w`` of the one hidden ReLU layer of every encoder and decoder (512;
        0: linear encoders and decoders).
    alpha_init : starting slope of every bit of the ATanh layer (1: plain tanh).
    alpha_penalty : weight of ``mean_k 1 / alpha_k^2`` (1; 0 leaves the slopes to the
        reconstruction alone).
    alpha_learning_rate : learning rate of the slopes (0.1; no weight decay on them).
    unimodal_weight : weight of the reconstructions from each modality alone (1; 0 trains the
        pair's code only, and the modalities' codes need not agree).
    standardize : standardise each input column with the fit rows' mean and standard deviation
        (True); False feeds the features and reconstructs them as they are.
    n_epochs, batch_size : 50, 128 (fixed epochs unless ``validation_fraction`` > 0).
    optimizer, learning_rate, momentum, weight_decay : Adam, 1e-3, 0.9 (SGD only), 0.
    validation_fraction : 0 (default): fixed ``n_epochs``, the last kept; in (0, 1): that share
        of the training rows is held out and the encoders of the epoch with the lowest held-out
        DBRC loss are kept (unsupervised; never the test queries).
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (a GPU when torch sees one), ``"cpu"``, ``"cuda[:N]"``.
    random_state : seeds initialisation, shuffling and the held-out rows (identical codes on the
        CPU for the same ``n_threads``).
    """

    name = "dbrc"
    supported_views = (2, None)
    conformance_params: ClassVar[dict[str, Any]] = {
        "hidden_width": 32, "n_epochs": 15, "batch_size": 32, "learning_rate": 3e-3,
        "n_threads": 1,
    }
    parameter_constraints = {
        "hidden_width": Integer(minimum=0),
        "alpha_init": Number(low=ALPHA_FLOOR),
        "alpha_penalty": Number(low=0),
        "alpha_learning_rate": Number(low=0, low_open=True),
        "unimodal_weight": Number(low=0),
        "standardize": Flag(),
    }

    def __init__(self, *, n_bits: int = 64, hidden_width: int = 512, alpha_init: float = 1.0,
                 alpha_penalty: float = 1.0, alpha_learning_rate: float = 0.1,
                 unimodal_weight: float = 1.0, standardize: bool = True, n_epochs: int = 50,
                 batch_size: int = 128, optimizer: str = "adam", learning_rate: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0,
                 validation_fraction: float = 0.0, n_threads: int | None = None,
                 device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.hidden_width = hidden_width
        self.alpha_init = alpha_init
        self.alpha_penalty = alpha_penalty
        self.alpha_learning_rate = alpha_learning_rate
        self.unimodal_weight = unimodal_weight
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
    # -- training --------------------------------------------------------------------------------
    def _build_model(self, dims: list[int]) -> DBRCNet:
        return DBRCNet(dims, int(self.n_bits), hidden_width=int(self.hidden_width),
                       alpha_init=float(self.alpha_init))

    def _begin_training(self, state: TrainingState) -> None:
        # The fit rows' statistics only: held-out rows stay unseen, as new rows would be. Without
        # standardize the layers stay the identity.
        if self.standardize:
            for encoder, X in zip(state.model.encoders, state.arrays):
                encoder[0].fit(np.asarray(X[state.fit_rows], dtype=np.float64))

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        """One optimiser with two parameter groups: the networks at the hasher's settings, the
        slopes at ``alpha_learning_rate``."""
        model = state.model
        networks = [p for name, p in model.named_parameters() if not name.startswith("hash_")]
        # The slopes have the penalty as their regulariser; weight decay would pull them to 0.
        return {"model": Part([{"params": networks},
                               {"params": [model.hash_layer.alpha],
                                "lr": float(self.alpha_learning_rate), "weight_decay": 0.0}])}

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        """One update of every parameter on the DBRC loss, then the slopes' projection."""
        loss, parts = self._loss(state, batch)
        yield loss, "model"
        with torch.no_grad():  # projection: the codes are sign(z) only for alpha > 0
            state.model.hash_layer.alpha.clamp_(min=ALPHA_FLOOR)
        return float(loss.detach()), parts

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        return dbrc_loss(state.model, batch, unimodal_weight=float(self.unimodal_weight),
                         alpha_penalty=float(self.alpha_penalty))
