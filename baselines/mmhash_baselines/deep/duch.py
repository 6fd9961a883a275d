"""DUCH: Deep Unsupervised Contrastive Hashing (Mikriukov, Ravanbakhsh, Demir, 2022).

Needs PyTorch. Built from the papers (ICASSP 2022, arXiv 2204.08707; extended version arXiv
2201.08125) and the official code (github.com/comrados/duch at b908ed4, the mirror of
git.tu-berlin.de/rsim/duch); ``file:line`` below refers to that commit. The papers' method
sections could not be read (only their abstracts: contrastive intra- and inter-modal objectives,
an adversarial objective "for cross-modal representation consistency", binarisation
objectives), so the formulas are the code's, with its two confirmed bugs fixed as the papers'
description requires (below).

Setting: features only. The image network is a head on the given image feature vectors (the
code's own setting: pre-extracted 512-d ResNet-18 features, no fine-tuned CNN), the text network
a head on the given text vectors (768-d BERT in the code). The code z-scores each array with one
global scalar mean and std (utils.py:168-173); omitted here: the batch norm right after the first
layer cancels any scalar affine map of the inputs.

Networks (models/DUCH.py:15-36)
    image / text: ``Linear(d, width) -> BatchNorm1d -> ReLU -> Linear(width, n_bits) -> tanh``
    (``image_width = text_width = 4096``, config.py:132); code ``b = sign(h)`` of the eval-mode
    output (running batch-norm statistics). Discriminator on codes (training only, not kept):
    ``Linear(n_bits, w) -> BatchNorm1d -> ReLU -> Linear(w, 1)``, ``w = 2 n_bits`` by default.

Augmented views (our choice, not DUCH's)
    DUCH needs a second view of every item: the code loads one fixed augmented embedding per
    item, made *before* feature extraction (image blur + rotation + crop; caption word
    replacement / back-translation; config_img_aug.py, captions_augment.py). Nothing of that
    can act on feature vectors. Here the second view is a perturbation of the input vector,
    drawn afresh at every step from a seeded generator:
    ``x~ = m * x / (1 - feature_dropout) + noise_std * s * e``, ``m ~ Bernoulli(1 -
    feature_dropout)`` per entry (inverted dropout), ``e ~ N(0, 1)``, ``s`` the per-feature
    standard deviation over the fit rows (so the noise is scale-free across feature types).
    Defaults ``feature_dropout = noise_std = 0.1`` (mild, as the code's image augmentation).
    The first view is the unperturbed vector, as the code's "original" view.

Contrastive terms (loss/contrastive_loss.py:95-149, controller_DUCH.py:209-224)
    NT-Xent (SimCLR): rows L2-normalised, the ``2B`` rows of both sets stacked; anchor ``i``'s
    positive is its partner, the other ``2B - 1`` rows (partner included) form the denominator;
    ``-log(exp(cos_ip / tau) / sum_{j != i} exp(cos_ij / tau))`` *summed* over the ``2B``
    anchors. ``tau = temperature = 1`` (the code's). The code removes the self-similarity by
    subtracting ``e`` (exact only for tau = 1, bug B5); here the diagonal is masked, which is the
    same at tau = 1 and correct at any tau. Terms: inter-modal ``NTXent(h_v, h_t)``, intra-image
    ``NTXent(h_v, h_v~)``, intra-text ``NTXent(h_t, h_t~)``, weights ``inter_weight,
    image_weight, text_weight`` (``--contrastive-weights`` 1 1 1, config.py:15).

Adversarial term (controller_DUCH.py:101, 116-162, 199, 226-238)
    Discriminator ``D`` step before every hash-network step (its own Adam, lr 1e-4, betas
    (0.5, 0.9), weight decay 1e-4): text codes are "real", image codes "fake", for the pairs
    (original, original) and (augmented, augmented), gradients of both accumulated, one step:
    ``-log sig(D(h_t)) - log(1 - sig(D(h_v)))`` (batch means) plus a gradient penalty
    ``gp_weight * mean((||grad D(x^)|| - 1)^2)``, ``x^ = a h_t + (1 - a) h_v`` with ``a ~ U(0, 1)``
    drawn per *entry* (as the code; WGAN-GP draws one per row), ``gp_weight = 10``. This is the
    code's objective: GAN log-losses with a WGAN-GP penalty on top (not a Wasserstein critic,
    and with batch norm in the critic); the papers' exact formulation could not be checked, so
    the code's is kept. Hash networks: ``alpha * sum_rows -log sig(D(h))`` over the original and
    augmented **image** codes -- the code applies it to the text codes (bug B2: the image network
    then gets no adversarial gradient and the text codes are pushed further towards "real");
    fixed, because only this way the term does what the papers say it is for, making image
    codes indistinguishable from text codes. ``D``'s parameters are frozen during the
    hash-network step (the code lets their gradients accumulate, then discards them).

Binarisation terms (controller_DUCH.py:46, 107-108, 240-278)
    Quantisation ``beta * sum_{4 outputs} ||B_rows - h||^2`` with ``B`` a per-item target code:
    ``sign(N(0, 1))`` at first, then after every epoch ``B = sign(mean of the item's four
    outputs in that epoch)``. Bit balance ``gamma * sum_{4 outputs} sum_rows (sum_bits h)^2``.

Objective ``L = NTXent terms + alpha L_adv + beta L_q + gamma L_bb`` (controller_DUCH.py:203),
weights ``alpha = 0.01, beta = 0.001, gamma = 0.01`` (config.py:12-14). All terms are **sums**
over the batch as in the code (the weights and the weight decay were set on that scale, bug
note B7); the recorded ``history_`` losses are divided by the batch rows.

Bug B1 fixed: the code feeds the first caption twice (``txt2 = txt1``, controller_DUCH.py:91),
so its intra-text term had a constant positive and no text augmentation; here the text network
sees the augmented text view, as the papers describe (intra-modal similarity for both
modalities).

Training (controller_DUCH.py:61-73, 314-322; config.py): hash networks Adam, learning rate 1e-4,
weight decay 5e-4; batch 256; 100 epochs; learning rate times ``lr_decay = 0.8`` (not below
1e-6) after epoch 1 and every ``lr_decay_every = 50`` epochs after it (the code's ``epoch % 50 ==
0`` on 0-based epochs). Defaults are the code's only setting (UCM and RSICD, remote sensing; the
code has no per-dataset values and DUCH was evaluated on no other data: no MIRFlickr, NUS-WIDE or
Wikipedia setting exists).

Model selection: the code "validates" on the test query/database split (once, after the last
epoch with the defaults, controller_DUCH.py:324-356). Never done here: ``validation_fraction=0``
trains the fixed ``n_epochs`` and keeps the last epoch; a fraction in (0, 1) holds out that share
of the training rows and keeps the epoch with the lowest held-out loss: the objective in eval
mode on the held-out rows, their augmented views drawn from the same seeded stream at every
epoch, the quantisation target the sign of their current mean output (they have no ``B`` from
training). No labels, no queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists duch as unavailable with this message
    raise ImportError(
        "DUCH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import DeepHasher, Part, TrainingState, Updates, frozen, mlp
from mmhash.params import Integer, Number
from mmhash_baselines.deep._contrastive import (
    derived_seed,
    seeded_generator,
    set_learning_rate,
)

#: Random streams: augmentation / penalty draws / initial targets while training, and the
#: held-out rows' augmentations (reset before every held-out evaluation).
_TRAIN_STREAM, _HELD_OUT_STREAM = 2, 3
#: The code's floor of the decayed learning rate (controller_DUCH.py:321).
_MIN_LR = 1e-6
#: The discriminator's Adam betas (controller_DUCH.py:71).
_DISCRIMINATOR_BETAS = (0.5, 0.9)


# ---- network ---------------------------------------------------------------------------------
class DUCHNet(nn.Module):
    """``encoders`` (image, text hash networks: kept after fit) and ``discriminator`` (on codes,
    training only)."""

    def __init__(self, dims: Sequence[int], n_bits: int, *, image_width: int, text_width: int,
                 discriminator_width: int):
        super().__init__()
        self.encoders = nn.ModuleList(
            mlp(d, [w], n_bits, batch_norm=True, output=nn.Tanh())
            for d, w in zip(dims, (image_width, text_width)))
        self.discriminator = mlp(n_bits, [discriminator_width], 1, batch_norm=True)

    def discriminate(self, h: torch.Tensor) -> torch.Tensor:
        """Logits ``(n,)`` of "text code" for codes ``h`` ``(n, n_bits)``."""
        return self.discriminator(h).squeeze(1)


# ---- augmentation ----------------------------------------------------------------------------
def augment_features(X: torch.Tensor, scale: torch.Tensor, *, noise_std: float,
                     feature_dropout: float, generator: torch.Generator) -> torch.Tensor:
    """The second view of feature rows ``X`` ``(n, d)``: inverted dropout of entries with rate
    ``feature_dropout``, plus Gaussian noise of standard deviation ``noise_std * scale``
    (``scale`` ``(d,)``, the per-feature spread). Same shape and dtype; our choice (module
    docstring)."""
    out = X
    if feature_dropout > 0:
        keep = torch.rand(X.shape, generator=generator, device=generator.device) \
            >= feature_dropout
        out = out * keep.to(X.device, X.dtype) / (1.0 - feature_dropout)
    if noise_std > 0:
        noise = torch.randn(X.shape, generator=generator, device=generator.device)
        out = out + noise_std * scale * noise.to(X.device, X.dtype)
    return out


# ---- losses ----------------------------------------------------------------------------------
def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """NT-Xent of paired rows ``a``, ``b`` ``(B, k)`` (loss/contrastive_loss.py:95-149), summed
    over the ``2B`` anchors of the stacked, L2-normalised rows; each anchor's positive is its
    partner, its denominator every other row (the partner included, itself excluded). Scalar."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    n = len(a)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), -torch.inf)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partner, reduction="sum")


def gradient_penalty(net: DUCHNet, real: torch.Tensor, fake: torch.Tensor,
                     mix: torch.Tensor) -> torch.Tensor:
    """``mean_rows (||grad_x D(x)|| - 1)^2`` at ``x = mix * real + (1 - mix) * fake`` (all
    ``(B, k)``; ``mix`` in [0, 1] per entry), differentiable in ``D``'s parameters
    (controller_DUCH.py:150-161). Scalar, unweighted."""
    x = (mix * real + (1 - mix) * fake).detach().requires_grad_(True)
    out = net.discriminate(x)
    (grad,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), create_graph=True)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


def discriminator_loss(net: DUCHNet, real: torch.Tensor, fake: torch.Tensor, mix: torch.Tensor,
                       gp_weight: float) -> torch.Tensor:
    """One (real, fake) pair of the discriminator step (controller_DUCH.py:130-162):
    ``mean -log sig(D(real)) + mean -log(1 - sig(D(fake))) + gp_weight * penalty``; ``real``
    and ``fake`` are used detached. ``D`` sees each set as its own batch, as in the code."""
    real, fake = real.detach(), fake.detach()
    # -log sig(t) = softplus(-t), -log(1 - sig(t)) = softplus(t): the code's log(sigmoid),
    # without its overflow to inf for confident logits.
    return (F.softplus(-net.discriminate(real)).mean() + F.softplus(net.discriminate(fake)).mean()
            + gp_weight * gradient_penalty(net, real, fake, mix))


def adversarial_loss(net: DUCHNet, codes: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_h sum_rows -log sig(D(h))`` over the code sets ``codes`` (the image codes: B2
    fixed), which pushes them towards "text" (controller_DUCH.py:226-238). Scalar."""
    return sum(F.softplus(-net.discriminate(h)).sum() for h in codes)


def quantization_loss(target: torch.Tensor, codes: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_h ||target - h||^2`` (controller_DUCH.py:240-256); ``target`` ``(B, k)``."""
    return sum(((target - h) ** 2).sum() for h in codes)


def bit_balance_loss(codes: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_h sum_rows (sum_bits h)^2`` (controller_DUCH.py:258-278)."""
    return sum((h.sum(dim=1) ** 2).sum() for h in codes)


def duch_objective(net: DUCHNet, h_v: torch.Tensor, h_v_aug: torch.Tensor, h_t: torch.Tensor,
                   h_t_aug: torch.Tensor, target: torch.Tensor, *, temperature: float,
                   inter_weight: float, image_weight: float, text_weight: float, alpha: float,
                   beta: float, gamma: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The hash networks' loss on one batch (controller_DUCH.py:189-224), as the code's sum over
    the batch; ``target`` ``(B, k)`` is the quantisation target of the rows. Returns the total
    and the unweighted parts ``inter``, ``intra_image``, ``intra_text``, ``adversarial``,
    ``quantization``, ``balance`` (floats)."""
    outputs = (h_v, h_v_aug, h_t, h_t_aug)
    parts = {
        "inter": nt_xent(h_v, h_t, temperature),
        "intra_image": nt_xent(h_v, h_v_aug, temperature),
        "intra_text": nt_xent(h_t, h_t_aug, temperature),
        "adversarial": adversarial_loss(net, (h_v, h_v_aug)),
        "quantization": quantization_loss(target, outputs),
        "balance": bit_balance_loss(outputs),
    }
    total = (inter_weight * parts["inter"] + image_weight * parts["intra_image"]
             + text_weight * parts["intra_text"] + alpha * parts["adversarial"]
             + beta * parts["quantization"] + gamma * parts["balance"])
    return total, {k: float(v.detach()) for k, v in parts.items()}


# ---- the hasher ------------------------------------------------------------------------------
class DUCH(DeepHasher):
    """DUCH: contrastive (NT-Xent) and adversarial hashing (Mikriukov et al., 2022).

    NT-Xent inter- and intra-modal contrast, an adversarial code discriminator and binarisation
    terms (Mikriukov, Ravanbakhsh, Demir, 2022). Two views (image first, then text).

    See the module docstring for the equations, the augmentation (our choice) and each paper /
    code choice. Cost per epoch: O(N (d_v w_v + d_t w_t + (w_v + w_t) k + B k)) for the four
    forward passes and the NT-Xent matrices, plus the discriminator's O(N k w_D); memory
    O(N k) for the per-item targets.

    Parameters
    ----------
    n_bits : code length (multiple of 8; the code's ``--bit`` default is 32).
    alpha, beta, gamma : weights of the adversarial, quantisation and bit-balance terms (0.01,
        0.001, 0.01; config.py:12-14).
    inter_weight, image_weight, text_weight : weights of the inter-modal, intra-image and
        intra-text NT-Xent terms (1, 1, 1).
    temperature : NT-Xent temperature (1, the code's fixed value).
    gp_weight : weight of the discriminator's gradient penalty (10).
    noise_std, feature_dropout : the feature-space augmentation (0.1, 0.1; our choice).
    image_width, text_width : hidden width of the hash networks (4096).
    discriminator_width : hidden width of the discriminator (None: ``2 n_bits``, the code's).
    discriminator_learning_rate, discriminator_weight_decay : its Adam (1e-4, 1e-4; betas fixed
        at (0.5, 0.9) as in the code).
    lr_decay, lr_decay_every : hash-network learning rate times ``lr_decay`` after epoch 1 and
        every ``lr_decay_every`` epochs after it, not below 1e-6 (0.8, 50).
    n_epochs, batch_size : 100, 256 (code).
    optimizer, learning_rate, momentum, weight_decay : the hash networks' optimiser (Adam, 1e-4,
        SGD momentum unused by Adam, 5e-4; code).
    validation_fraction : 0 (default): fixed ``n_epochs``, the last kept. In (0, 1): epoch with
        the lowest held-out loss kept (module docstring); replaces the code's test-set check.
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (a GPU when torch sees one), ``"cpu"``, ``"cuda[:N]"``; encoders always
        encode on the CPU. Identical codes per seed are guaranteed on the CPU.
    random_state : seeds initialisation, shuffling, held-out rows, the augmentations, the
        penalty's interpolation and the initial targets.
    """

    name = "duch"
    supported_views = (2, 2)
    with_row_ids = True
    conformance_params: ClassVar[dict[str, Any]] = {
        "image_width": 64, "text_width": 64, "n_epochs": 10, "batch_size": 64,
        "learning_rate": 1e-3, "n_threads": 1,
    }
    parameter_constraints = {
        "alpha": Number(low=0), "beta": Number(low=0), "gamma": Number(low=0),
        "inter_weight": Number(low=0), "image_weight": Number(low=0),
        "text_weight": Number(low=0), "gp_weight": Number(low=0), "noise_std": Number(low=0),
        "discriminator_weight_decay": Number(low=0),
        "temperature": Number(low=0, low_open=True),
        "discriminator_learning_rate": Number(low=0, low_open=True),
        "feature_dropout": Number(0, 1, high_open=True),
        "lr_decay": Number(0, 1, low_open=True),
        "image_width": Integer(minimum=1), "text_width": Integer(minimum=1),
        "lr_decay_every": Integer(minimum=1),
        "discriminator_width": Integer(minimum=1, none=True),
    }

    def __init__(self, *, n_bits: int = 32, alpha: float = 0.01, beta: float = 0.001,
                 gamma: float = 0.01, inter_weight: float = 1.0, image_weight: float = 1.0,
                 text_weight: float = 1.0, temperature: float = 1.0, gp_weight: float = 10.0,
                 noise_std: float = 0.1, feature_dropout: float = 0.1, image_width: int = 4096,
                 text_width: int = 4096, discriminator_width: int | None = None,
                 discriminator_learning_rate: float = 1e-4,
                 discriminator_weight_decay: float = 1e-4, lr_decay: float = 0.8,
                 lr_decay_every: int = 50, n_epochs: int = 100, batch_size: int = 256,
                 optimizer: str = "adam", learning_rate: float = 1e-4, momentum: float = 0.9,
                 weight_decay: float = 5e-4, validation_fraction: float = 0.0,
                 n_threads: int | None = None, device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.inter_weight = inter_weight
        self.image_weight = image_weight
        self.text_weight = text_weight
        self.temperature = temperature
        self.gp_weight = gp_weight
        self.noise_std = noise_std
        self.feature_dropout = feature_dropout
        self.image_width = image_width
        self.text_width = text_width
        self.discriminator_width = discriminator_width
        self.discriminator_learning_rate = discriminator_learning_rate
        self.discriminator_weight_decay = discriminator_weight_decay
        self.lr_decay = lr_decay
        self.lr_decay_every = lr_decay_every
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
    def _build_model(self, dims: list[int]) -> DUCHNet:
        width = (2 * int(self.n_bits) if self.discriminator_width is None
                 else int(self.discriminator_width))
        return DUCHNet(dims, int(self.n_bits), image_width=int(self.image_width),
                       text_width=int(self.text_width), discriminator_width=width)

    def _begin_training(self, state: TrainingState) -> None:
        device, seed, arrays = state.device, state.seed, state.arrays
        state.generator = seeded_generator(seed, _TRAIN_STREAM, device)
        state.held_out_generator = seeded_generator(seed, _HELD_OUT_STREAM, device)
        state.scales = [
            torch.from_numpy(X[state.fit_rows].std(axis=0).astype(np.float32)).to(device)
            for X in arrays]
        n, k = len(arrays[0]), int(self.n_bits)
        # B starts random (controller_DUCH.py:46); after each epoch, the sign of each item's
        # mean output, accumulated here.
        state.targets = torch.randn(n, k, generator=state.generator, device=device).sign()
        state.outputs = torch.zeros(n, k, device=device)

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        """The hash networks at the hasher's optimiser settings; the discriminator with its
        own Adam (controller_DUCH.py:55-58)."""
        model = state.model
        return {
            "hash": Part(model.encoders.parameters()),
            "discriminator": Part(model.discriminator.parameters(), optimizer=lambda params:
                                  torch.optim.Adam(
                                      params, lr=float(self.discriminator_learning_rate),
                                      betas=_DISCRIMINATOR_BETAS,
                                      weight_decay=float(self.discriminator_weight_decay))),
        }

    def _views(self, state: TrainingState, views: Sequence[torch.Tensor],
               generator: torch.Generator) -> list[torch.Tensor]:
        """``[h_v, h_v~, h_t, h_t~]``: each network on the original and the augmented rows,
        four separate batches (separate batch-norm statistics), as models/DUCH.py:49-54."""
        outputs = []
        for encoder, X, scale in zip(state.model.encoders, views, state.scales):
            augmented = augment_features(X, scale, noise_std=float(self.noise_std),
                                         feature_dropout=float(self.feature_dropout),
                                         generator=generator)
            outputs += [encoder(X), encoder(augmented)]
        return outputs

    def _objective(self, model: DUCHNet, outputs: list[torch.Tensor], target: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, float]]:
        return duch_objective(
            model, *outputs, target, temperature=float(self.temperature),
            inter_weight=float(self.inter_weight), image_weight=float(self.image_weight),
            text_weight=float(self.text_weight), alpha=float(self.alpha),
            beta=float(self.beta), gamma=float(self.gamma))

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        """The discriminator first, on the detached codes (text real, image fake, both pairs);
        then the hash networks with the just-updated discriminator frozen."""
        model, generator = state.model, state.generator
        *views, rows = batch
        h_v, h_v_aug, h_t, h_t_aug = outputs = self._views(state, views, generator)
        with torch.no_grad():
            state.outputs[rows] = (h_v + h_v_aug + h_t + h_t_aug) / 4
        mixes = [torch.rand(h_v.shape, generator=generator,
                            device=generator.device).to(h_v.device) for _ in range(2)]
        gp_weight = float(self.gp_weight)
        d_loss = (discriminator_loss(model, h_t, h_v, mixes[0], gp_weight)
                  + discriminator_loss(model, h_t_aug, h_v_aug, mixes[1], gp_weight))
        yield d_loss, "discriminator"
        with frozen(model.discriminator):
            total, parts = self._objective(model, outputs, state.targets[rows])
            yield total, "hash"
        parts["discriminator"] = float(d_loss.detach())
        return float(total.detach()) / len(rows), parts

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        """The held-out criterion (eval mode): the objective per row, the targets the sign of
        the rows' current mean output."""
        *views, rows = batch
        outputs = self._views(state, views, state.held_out_generator)
        target = (sum(outputs) / 4).sign()
        total, parts = self._objective(state.model, outputs, target)
        return total / len(rows), parts

    def _end_epoch(self, state: TrainingState) -> None:
        rows = state.data[-1]
        # B = sign of the mean of this epoch's four outputs (controller_DUCH.py:107-108).
        state.targets[rows] = state.outputs[rows].sign()
        # The code decays after 0-based epochs 0, 50, ... (controller_DUCH.py:314-322).
        if (state.epoch - 1) % int(self.lr_decay_every) == 0:
            optimizer = state.optimizers["hash"]
            lr = optimizer.param_groups[0]["lr"]
            set_learning_rate(optimizer, max(lr * float(self.lr_decay), min(lr, _MIN_LR)))
        # The held-out rows get the same augmentations at every epoch's evaluation.
        state.held_out_generator.manual_seed(derived_seed(state.seed, _HELD_OUT_STREAM))
