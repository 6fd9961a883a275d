"""UCCH: Unsupervised Contrastive Cross-modal Hashing (Hu, Zhu, Lin, Peng, Zhao, Peng; TPAMI 2023).

Needs PyTorch. Built from the paper (TPAMI 45(3):3877-3889) and the official code
(github.com/penghu-cs/UCCH at 0c20e62); ``file:line`` below refers to that commit.

Setting: features only. The image network is a head on the given image feature vectors (the
paper's features setting, 4096-d VGG-19 fc7 on MIRFlickr; no fine-tuned CNN), the text network a
head on the given text vectors; inputs are fed as given (the code does not normalise them).

Networks (nets/ImageNet.py:15-35, TextNet.py:15-35; widths from the code, the paper has none)
    image: ``image_layers`` Linear layers ``d_v -> image_width -> ... -> n_bits`` with ReLU
    between them (default 3: ``d_v -> 8192 -> 8192 -> n_bits``); text: ``text_layers`` (default
    2: ``d_t -> 8192 -> n_bits``). Output ``h = tanh(z) / ||tanh(z)||`` (unit rows); no dropout,
    no batch norm, PyTorch's default initialisation. Code: ``b = sign(h) = sign(z)`` (Eq. 1).
    Training uses ``h`` itself: no straight-through sign (as the code).

Contrastive hashing loss ``Lc`` (paper Sec. 3.2, Eqs. 3-5; NCE/NCEAverage.py, NCECriterion.py)
    A memory bank ``V`` ``(N, n_bits)``, one unit row per training item (``with_row_ids``). For
    each batch row ``i`` the keys are ``k = sign(V[j])`` for ``j`` in ``[i, n_1 .. n_K]``: the
    item's own row first (the positive) and ``K = n_negatives`` rows drawn uniformly *with
    replacement* over the training items (they may repeat or hit ``i``; NCEAverage.py:43-44).
    Logits ``<k, h> / (temperature sqrt(n_bits))`` (the bank stores ``T sqrt(L)``,
    NCEAverage.py:17: the cosine of the binary key and ``h`` over ``T``). ``Lc = CE(image
    logits) + CE(text logits)``, the cross entropy of the own row, *mean* over the batch
    (NCECriterion.py:9-11; the paper's Eq. 3 sums). After the step the rows of the batch move:
    ``V_i <- normalize(delta V_i + (1 - delta) normalize((h_x + h_y) / 2))`` (NCEAverage.py:81-88;
    paper Eq. 5 has no re-normalisation), ``delta = bank_momentum``. No gradient reaches the keys.
    The bank starts as ``normalize(sign(r))`` with ``r = 2 s g - s``, ``g ~ N(0, 1)``
    (NCEAverage.py:18-20): entries are +1 with probability P(g > 1/2) = 0.31 only (a uniform-init
    pattern applied to a normal draw). Kept as the code has it; with the default warm-up every
    fit row is overwritten in the first epoch, so this matters only for ``warmup_epochs=0``.

Warm-up (code only, not in the paper; UCCH.py:156, NCEAverage.py:36, 46-50)
    For the first ``warmup_epochs`` epochs (default 1, the code's ``--warmup_epoch``) the keys
    are *in-batch*: ``sign((h_x + h_y) / 2)`` of the batch rows, the own row the positive and the
    other ``B - 1`` rows the negatives, and the bank rows are overwritten with the new fused
    outputs (momentum 0). Followed, because the released results were produced with it and
    because it replaces the random initial bank before sampled negatives are used;
    ``warmup_epochs=0`` is the paper's description (sampled bank negatives from the start).

Cross-modal ranking loss ``Lr`` (paper Sec. 3.3, Eqs. 6-14; src/utils.py:60-70)
    ``M = H_x H_y^T`` (cosines of the unit outputs, ``B x B``). Image->text:
    ``S_ij = M_ij`` when ``M_ij >= M_ii - margin`` else ``M_ij - shift`` (Eq. 8; the mask has no
    gradient; the diagonal is never shifted); text->image the same with ``M_jj`` (columns).
    ``Lr = mean_i[margin + kappa log sum_j exp(S_ij / kappa) - S_ii]`` + the same over columns
    (Eq. 14; the sum includes ``j = i``; ``kappa = 1`` in the code).

Objective ``L = alpha Lc + (1 - alpha) Lr`` (UCCH.py:161; Eq. 15 with beta = alpha).

Training (UCCH.py:57-64, 106-111, 165; utils/config.py): Adam, learning rate 1e-4 (paper and
code), batch 256 (code; the paper gives none), **weight decay 1e-6 and gradient-norm clipping at
1.0 on every step -- both from the code, not in the paper** (``weight_decay``, ``clip_norm``).
The code's MultiStepLR([30, 60, 90, 120], 0.1) stepped after each epoch is ``lr_step`` /
``lr_gamma`` (lr times ``lr_gamma`` from epoch ``lr_step + 2`` on, every ``lr_step`` epochs, as
the code's ``step(epoch)`` gives; not capped after 4 decays as the code's list is); with the
paper's 20 epochs it never fires. The code drops the last partial batch (``drop_last``); mmhash's
loop trains on every row (a last batch of one row joins the one before).

Defaults: the README's MIRFlickr-25K command (README.md:16): ``alpha=0.7, shift=0.1,
margin=0.2``, 20 epochs (also the paper's "maximum epoch ... 20 on all datasets", Sec. 4.3.4);
``temperature=0.9, n_negatives=4096, bank_momentum=0.4`` (config.py:28-30 and paper Sec. 4.2.2).
Other datasets: neither the paper nor the repository lists per-dataset values (the paper chose
beta "on validation sets", Fig. 9); the code's generic defaults are ``alpha=0.9, shift=1.0``,
100 epochs (config.py:19, 27, 31). The paper does not use Wikipedia.

Model selection: the code keeps the epoch with the best mAP on the first 2000 *retrieval
(= training)* items, labels included (UCCH.py:199-210, 229-239). mmhash's fit gets no labels:
``validation_fraction=0`` (default) trains the fixed ``n_epochs`` and keeps the last epoch; a
fraction in (0, 1) holds out that share of the training rows and keeps the epoch with the lowest
held-out loss. The held-out loss is ``alpha Lc + (1 - alpha) Lr`` with *in-batch* keys (the
warm-up form: the held-out rows have no trained bank rows, and in-batch keys need no sampling, so
the criterion is the same deterministic function at every epoch).

Randomness: the bank's initial signs and the sampled negatives come from a ``torch.Generator``
seeded from ``random_state`` (on the training device); initialisation and shuffling from the
base's seeded session. Same seed, same codes on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists ucch as unavailable with this message
    raise ImportError(
        "UCCH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import DeepHasher, Part, TrainingState, Updates, mlp
from mmhash.params import Integer, Number
from mmhash_baselines.deep._contrastive import (
    seeded_generator,
    set_learning_rate,
)

#: Random stream of the bank initialisation and the negative sampling.
_STREAM = 1
#: ``bank_logits(mode="auto")`` scores against the whole bank (one matrix product, then a
#: gather) while the bank has at most this many rows per sampled key; beyond it, it gathers the
#: sampled keys and scores only them (the code's way; memory ``B (K + 1) n_bits``).
_FULL_PRODUCT_RATIO = 8


# ---- network ---------------------------------------------------------------------------------
class UnitTanh(nn.Module):
    """``tanh(z) / ||tanh(z)||`` per row (nets/ImageNet.py:32-35); ``sign`` of it is ``sign(z)``.
    ``(n, k) -> (n, k)``; an all-zero row stays zero."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.tanh(z), dim=1)


def hash_head(d_in: int, width: int, layers: int, n_bits: int) -> nn.Sequential:
    """``layers`` Linear layers ``d_in -> width -> ... -> n_bits`` with ReLU between them and
    :class:`UnitTanh` on top (``layers=1``: ``d_in -> n_bits``), as nets/ImageNet.py:15-26."""
    return mlp(d_in, [width] * (layers - 1), n_bits, output=UnitTanh())


class UCCHNet(nn.Module):
    """The two hash heads (``encoders``: image first, then text); nothing else is trained."""

    def __init__(self, dims: Sequence[int], n_bits: int, *, image_width: int, image_layers: int,
                 text_width: int, text_layers: int):
        super().__init__()
        self.encoders = nn.ModuleList([hash_head(dims[0], image_width, image_layers, n_bits),
                                       hash_head(dims[1], text_width, text_layers, n_bits)])


# ---- memory bank -----------------------------------------------------------------------------
def init_bank(n: int, n_bits: int, generator: torch.Generator) -> torch.Tensor:
    """The code's initial bank (NCEAverage.py:18-20): ``normalize(sign(2 s g - s))``,
    ``g ~ N(0, 1)``, ``s = 1 / sqrt(n_bits / 3)``. Float32 ``(n, n_bits)`` on the generator's
    device, unit rows with entries ``±1 / sqrt(n_bits)`` (+ with probability 0.31)."""
    stdv = 1.0 / math.sqrt(n_bits / 3)
    draw = torch.randn(n, n_bits, generator=generator, device=generator.device)
    return F.normalize((draw * (2 * stdv) - stdv).sign(), dim=1)


def sample_negatives(rows: torch.Tensor, candidates: torch.Tensor, n_negatives: int,
                     generator: torch.Generator) -> torch.Tensor:
    """Bank indices ``(B, 1 + n_negatives)`` int64: column 0 is ``rows`` (the positives), the
    others drawn uniformly with replacement from ``candidates`` (the fit rows), as
    NCEAverage.py:43-44 (a negative may repeat or equal the positive)."""
    pick = torch.randint(len(candidates), (len(rows), n_negatives), generator=generator,
                         device=generator.device).to(candidates.device)
    return torch.cat([rows[:, None], candidates[pick]], dim=1)


def bank_logits(h: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor, temperature: float,
                mode: str = "auto") -> torch.Tensor:
    """``<sign(bank[idx[i, j]]), h_i> / (temperature sqrt(k))`` for ``h`` ``(B, k)``, ``bank``
    ``(N, k)``, ``idx`` ``(B, K + 1)``: ``(B, K + 1)`` (NCEAverage.py:52-60).

    ``mode="gather"`` gathers the keys (``(B, K + 1, k)``, the code's way), ``"full"`` scores
    ``h`` against every bank row and gathers the logits (``(B, N)``: cheaper when ``N`` is not
    much larger than ``K``); ``"auto"`` picks by size. Same values up to rounding.
    """
    scale = temperature * math.sqrt(h.shape[1])
    if mode == "auto":
        mode = "full" if bank.shape[0] <= _FULL_PRODUCT_RATIO * idx.shape[1] else "gather"
    if mode == "full":
        return (h @ bank.sign().T).gather(1, idx) / scale
    keys = bank.index_select(0, idx.reshape(-1)).view(*idx.shape, -1).sign()
    return torch.bmm(keys, h.unsqueeze(2)).squeeze(2) / scale


def memory_contrastive_loss(h_x: torch.Tensor, h_y: torch.Tensor, bank: torch.Tensor,
                            idx: torch.Tensor, temperature: float) -> torch.Tensor:
    """``Lc`` against the bank: ``CE(image logits, 0) + CE(text logits, 0)``, each the mean over
    the ``B`` rows of ``-log softmax(bank_logits)[:, 0]`` (NCECriterion.py:9-11). Scalar."""
    target = torch.zeros(len(h_x), dtype=torch.int64, device=h_x.device)
    return (F.cross_entropy(bank_logits(h_x, bank, idx, temperature), target)
            + F.cross_entropy(bank_logits(h_y, bank, idx, temperature), target))


def in_batch_contrastive_loss(h_x: torch.Tensor, h_y: torch.Tensor,
                              temperature: float) -> torch.Tensor:
    """``Lc`` with in-batch keys (the warm-up, NCEAverage.py:46-50): keys
    ``sign((h_x + h_y) / 2)`` ``(B, k)``, row ``i``'s positive its own key, the other ``B - 1``
    its negatives; logits over ``temperature sqrt(k)``. The code moves the own key to column 0;
    the cross entropy does not depend on the column order, so the target is the diagonal."""
    keys = ((h_x + h_y) / 2).sign().detach()  # sign has zero gradient in the code too
    scale = temperature * math.sqrt(h_x.shape[1])
    target = torch.arange(len(h_x), device=h_x.device)
    return (F.cross_entropy(h_x @ keys.T / scale, target)
            + F.cross_entropy(h_y @ keys.T / scale, target))


def update_bank(bank: torch.Tensor, rows: torch.Tensor, h_x: torch.Tensor, h_y: torch.Tensor,
                momentum: float) -> None:
    """In place: ``bank[rows] <- normalize(momentum bank[rows] + (1 - momentum) u)`` with
    ``u = normalize((h_x + h_y) / 2)`` (NCEAverage.py:81-88; momentum 0 overwrites)."""
    with torch.no_grad():
        fused = F.normalize((h_x + h_y) / 2, dim=1)
        moved = momentum * bank.index_select(0, rows) + (1 - momentum) * fused
        bank.index_copy_(0, rows, F.normalize(moved, dim=1))


# ---- ranking loss ----------------------------------------------------------------------------
def ranking_loss(h_x: torch.Tensor, h_y: torch.Tensor, margin: float, shift: float,
                 kappa: float = 1.0) -> torch.Tensor:
    """The cross-modal ranking loss ``Lr`` (Eq. 14, src/utils.py:60-70) of unit rows ``h_x``,
    ``h_y`` ``(B, k)``: scalar, mean over rows plus mean over columns (see the module
    docstring). The masks are constants (no gradient), the diagonal is never shifted."""
    M = h_x @ h_y.T
    diag = M.diagonal()
    # Image -> text: row i compares every text j with its own text; text -> image: columns.
    keep_rows = (M >= (diag[:, None] - margin)).detach()
    keep_cols = (M >= (diag[None, :] - margin)).detach()
    S_rows = torch.where(keep_rows, M, M - shift)
    S_cols = torch.where(keep_cols, M, M - shift)
    i2t = margin + kappa * torch.logsumexp(S_rows / kappa, dim=1) - S_rows.diagonal()
    t2i = margin + kappa * torch.logsumexp(S_cols / kappa, dim=0) - S_cols.diagonal()
    return i2t.mean() + t2i.mean()


# ---- the hasher ------------------------------------------------------------------------------
class UCCH(DeepHasher):
    """UCCH: contrastive hashing against a memory bank of codes (Hu et al., TPAMI 2023).

    Contrast against a momentum memory bank of binary codes, plus a cross-modal ranking loss.
    Two views (image first, then text).

    See the module docstring for the equations and each paper/code choice. Cost per epoch:
    O(N (d_v w + (l_v - 2) w^2 + d_t w + w k)) for the heads (``w`` the widths, ``l`` the layer
    counts; at the code's 8192 the image head's 8192 x 8192 layer dominates) plus
    O(N min(K, N') k) for the contrastive logits; memory O(N k) for the bank.

    Parameters
    ----------
    n_bits : code length (multiple of 8).
    alpha : weight of ``Lc``; ``Lr`` gets ``1 - alpha`` (0.7: README MIRFlickr; code default 0.9).
    margin : ``m`` of the ranking loss (0.2).
    shift : ``xi``, subtracted from the similarities outside the margin (0.1: README MIRFlickr;
        code default 1.0).
    kappa : temperature of the ranking loss' log-sum-exp (1, the code's).
    temperature : ``tau`` of the contrastive logits (0.9).
    n_negatives : ``K`` bank rows sampled per item (4096).
    bank_momentum : ``delta`` of the bank update (0.4).
    warmup_epochs : first epochs with in-batch keys and momentum 0 (1, code only; 0 = paper).
    image_width, image_layers : hidden width and number of Linear layers of the image head
        (8192, 3); text_width, text_layers : of the text head (8192, 2).
    clip_norm : the global gradient norm is clipped to this on every step (1.0, code only;
        0 disables).
    lr_step, lr_gamma : learning rate times ``lr_gamma`` every ``lr_step`` epochs (30, 0.1; the
        code's MultiStepLR, inactive within 20 epochs).
    n_epochs, batch_size : 20 (paper, README), 256 (code).
    optimizer, learning_rate, momentum, weight_decay : Adam, 1e-4, (SGD momentum, unused by
        Adam), 1e-6 (code only).
    validation_fraction : 0 (default): fixed ``n_epochs``, the last kept. In (0, 1): that share
        of the training rows is held out and the epoch with the lowest held-out loss (in-batch
        keys, module docstring) is kept -- replaces the code's selection on labelled training
        items; no labels, no queries.
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (a GPU when torch sees one), ``"cpu"``, ``"cuda[:N]"``; encoders always
        encode on the CPU. Identical codes per seed are guaranteed on the CPU.
    random_state : seeds initialisation, shuffling, held-out rows, the bank's initial signs and
        the negative sampling.
    """

    name = "ucch"
    supported_views = (2, 2)
    with_row_ids = True
    conformance_params: ClassVar[dict[str, Any]] = {
        "image_width": 64, "text_width": 64, "n_negatives": 256, "n_epochs": 10,
        "batch_size": 64, "learning_rate": 1e-3, "n_threads": 1,
    }
    parameter_constraints = {
        "alpha": Number(0, 1),
        "margin": Number(low=0), "shift": Number(low=0), "clip_norm": Number(low=0),
        # both divide logits
        "kappa": Number(low=0, low_open=True), "temperature": Number(low=0, low_open=True),
        "bank_momentum": Number(0, 1, high_open=True),
        "lr_gamma": Number(0, 1, low_open=True),
        "n_negatives": Integer(minimum=1), "image_width": Integer(minimum=1),
        "image_layers": Integer(minimum=1), "text_width": Integer(minimum=1),
        "text_layers": Integer(minimum=1), "lr_step": Integer(minimum=1),
        "warmup_epochs": Integer(minimum=0),
    }

    def __init__(self, *, n_bits: int = 32, alpha: float = 0.7, margin: float = 0.2,
                 shift: float = 0.1, kappa: float = 1.0, temperature: float = 0.9,
                 n_negatives: int = 4096, bank_momentum: float = 0.4, warmup_epochs: int = 1,
                 image_width: int = 8192, image_layers: int = 3, text_width: int = 8192,
                 text_layers: int = 2, clip_norm: float = 1.0, lr_step: int = 30,
                 lr_gamma: float = 0.1, n_epochs: int = 20, batch_size: int = 256,
                 optimizer: str = "adam", learning_rate: float = 1e-4, momentum: float = 0.9,
                 weight_decay: float = 1e-6, validation_fraction: float = 0.0,
                 n_threads: int | None = None, device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.alpha = alpha
        self.margin = margin
        self.shift = shift
        self.kappa = kappa
        self.temperature = temperature
        self.n_negatives = n_negatives
        self.bank_momentum = bank_momentum
        self.warmup_epochs = warmup_epochs
        self.image_width = image_width
        self.image_layers = image_layers
        self.text_width = text_width
        self.text_layers = text_layers
        self.clip_norm = clip_norm
        self.lr_step = lr_step
        self.lr_gamma = lr_gamma
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
    def _build_model(self, dims: list[int]) -> UCCHNet:
        return UCCHNet(dims, int(self.n_bits), image_width=int(self.image_width),
                       image_layers=int(self.image_layers), text_width=int(self.text_width),
                       text_layers=int(self.text_layers))

    def _begin_training(self, state: TrainingState) -> None:
        state.generator = seeded_generator(state.seed, _STREAM, state.device)
        # One row per training item (held-out rows too, so row ids index it directly); negatives
        # are drawn from the fit rows only, the held-out rows' entries are never used.
        state.bank = init_bank(len(state.arrays[0]), int(self.n_bits), state.generator)
        state.candidates = torch.from_numpy(state.fit_rows).to(state.device)

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        # One optimiser over both heads; every step clipped to clip_norm (module docstring).
        return {"model": Part(state.model.parameters(), clip_norm=float(self.clip_norm))}

    def _objective(self, contrastive: torch.Tensor, h_x: torch.Tensor, h_y: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, float]]:
        ranking = ranking_loss(h_x, h_y, float(self.margin), float(self.shift),
                               float(self.kappa))
        alpha = float(self.alpha)
        total = alpha * contrastive + (1 - alpha) * ranking
        return total, {"contrastive": float(contrastive.detach()),
                       "ranking": float(ranking.detach())}

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        *views, rows = batch
        h_x, h_y = (E(X) for E, X in zip(state.model.encoders, views))
        temperature = float(self.temperature)
        if state.epoch <= self.warmup_epochs:
            contrastive = in_batch_contrastive_loss(h_x, h_y, temperature)
            bank_momentum = 0.0
        else:
            idx = sample_negatives(rows, state.candidates, int(self.n_negatives),
                                   state.generator)
            contrastive = memory_contrastive_loss(h_x, h_y, state.bank, idx, temperature)
            bank_momentum = float(self.bank_momentum)
        loss, parts = self._objective(contrastive, h_x, h_y)
        yield loss, "model"
        # The code updates the bank with the outputs the logits were computed from.
        update_bank(state.bank, rows, h_x.detach(), h_y.detach(), bank_momentum)
        return float(loss.detach()), parts

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        """The held-out criterion: the objective with in-batch keys (no bank, no sampling)."""
        *views, _ = batch
        h_x, h_y = (E(X) for E, X in zip(state.model.encoders, views))
        contrastive = in_batch_contrastive_loss(h_x, h_y, float(self.temperature))
        return self._objective(contrastive, h_x, h_y)

    def _end_epoch(self, state: TrainingState) -> None:
        # MultiStepLR.step(e) after 0-based epoch e = epoch - 1 (UCCH.py:225-228).
        decays = (state.epoch - 1) // int(self.lr_step)
        set_learning_rate(state.optimizers["model"],
                          float(self.learning_rate) * float(self.lr_gamma) ** decays)
