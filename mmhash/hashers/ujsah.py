"""UJSAH: Unsupervised Joint-Semantics Autoencoder Hashing (Chen, Long, Li, Wu, Yang, 2023).

Needs PyTorch (``pip install 'mmhash[deep]'``). The method, for views ``m = 1..M`` (``M = 2``:
``v`` = image, ``t`` = text) of a mini-batch of ``n`` paired rows ``X^m`` (Algorithm 1 builds
everything per mini-batch):

Similarity (Eq. 1-2)
    ``S^m = Xn^m Xn^m^T`` with ``Xn^m`` the L2-normalised rows (cosine similarities), mapped to
    ``2 S^m - 1`` when ``rescale_similarity`` (see below). ``S~ = mu S^v + (1 - mu) S^t`` (Eq. 1)
    and the joint-semantics matrix ``S = (1 - eta) S~ + eta S^v S^t^T / n`` (Eq. 2), with ``n``
    the rows of *this* batch.

    **M views.** ``S~ = sum_m mu_m S^m`` with weights ``mu_m >= 0`` summing to 1, and
    ``S = (1 - eta) S~ + eta / (P n) * sum_{u<w} S^u S^w^T`` over the ``P = M(M-1)/2`` pairs of
    views taken in view order (``u`` before ``w``). For ``M = 2`` there is one pair, ``(v, t)``,
    and this is Eq. 2 exactly. ``mu`` is either the list of the ``M`` weights or one number: the
    weight of the first view, the rest ``(1 - mu) / (M - 1)`` each (for ``M = 2``: ``mu, 1 - mu``).

Networks (Eq. 3-5), one set per view
    encoder ``E_m``: ``d_m -> width -> ReLU -> n_bits -> tanh`` giving ``Z^m`` (on the
    L2-normalised row, see ``normalize_inputs``), and
    ``B^m = sign(Z^m)`` (Eq. 3); training uses ``Z^m`` itself (the tanh relaxation).
    predictor ``P_m``: ``n_bits -> predictor_width -> ReLU -> n_bits -> tanh``, predicting view
    ``m``'s code from the other views' codes: ``Zp^m = P_m(mean_{u != m} Z^u)`` -- for ``M = 2``
    the paper's dual prediction, text->image ``P_v(Z^t)`` and image->text ``P_t(Z^v)`` (Eq. 4).
    decoder ``D_m``: ``n_bits -> width x depth (ReLU) -> d_m``, fed the *predicted* code,
    ``Xh^m = D_m(Zp^m)`` (Eq. 5). The first view gets the paper's image sizes (``image_width``
    4096, ``image_decoder_depth`` 2: ``k->4096->4096->d_v``), every other view the text sizes
    (``text_width`` 2048, ``text_decoder_depth`` 3: ``k->2048->2048->2048->d_t``).

Objective (Eq. 8; its M-view form, Eq. 9)
    ``L = alpha sum_{u<w} ||S - Zn^u Zn^w^T||^2 + beta sum_m ||S - Zn^m Zn^m^T||^2
    + gamma sum_{u<w} ||Zn^u - Zn^w||^2 + delta sum_m ||Xh^m - X^m||^2``,
    with ``Zn`` the L2-normalised codes. For ``M = 2`` this is Eq. 8 term by term. The cross term
    runs over the pairs in view order, like ``S``'s joint part: ``S`` is not symmetric
    (``S^v S^t^T`` is not), so summing over both orders of a pair would fit only its symmetric part
    and would not reduce to Eq. 8.
    Per-batch scaling: every squared norm is a *mean* over its entries (``||S - .||^2 / n^2``,
    ``||Zn^u - Zn^w||^2 / (n k)``, ``||Xh^m - X^m||^2 / (n d_m)``), so the loss does not grow with
    the batch size and the weights keep the scale on which the authors set them.

Out of sample (Eq. 10): ``b = sign(E_m(x))`` for a new item seen through view ``m`` -- only the
encoders are kept after fit (and saved); predictors and decoders serve training only.

Choices taken from the authors' public code (YunfeiChenMY/UJSAH) where the paper leaves the
scale open, so that the paper's weights mean what they meant there:

* ``B B^T`` is read as the cosine of the codes (rows L2-normalised; ``B B^T / k`` for binary
  codes), on the same ``[-1, 1]`` scale as ``S``; the consistency term uses the normalised
  codes too.
* ``rescale_similarity=True`` maps each cosine matrix to ``2 S^m - 1``: raw cosines of the
  non-negative features common here (bag of words, topic proportions) lie in ``[0, 1]`` and
  would ask every pair of codes to agree. ``False`` is the literal cosine.
* Reconstruction compares L2-normalised ``Xh^m`` and ``X^m`` (scale-free across feature types).
* ``alpha`` and ``beta`` sit where Eq. 8 puts them (``alpha`` the cross-view term, ``beta``
  the within-view terms), but their *default values* are the authors' weighting, not the
  paper's: the paper gives alpha .08 and beta 18, and the authors' script multiplies the
  within-view terms by the weight it searches over .01-10 (.08) and the cross-view term by the
  one it searches over 1-1000 (18) -- so the published numbers come from the cross-view term
  weighted 18 and the within-view terms .08, which is ``alpha=18, beta=0.08`` here.
  Chosen on the validation split (issue 16; seed 0, validation mAP I->T/T->I, paper's
  placement ``alpha=.08, beta=18`` vs the code's ``alpha=18, beta=.08``): ``cub10`` 16 bits
  .417/.415 vs .424/.442, 64 bits .521/.482 vs .524/.477; ``wiki`` (10 epochs) 16 bits
  .229/.240 vs .229/.290, 64 bits .253/.231 vs .261/.327. ``alpha=0.08, beta=18`` gives the
  paper's reading.
* Defaults ``mu=0.8, eta=0.3`` are the values of the authors' MIRFlickr script; weight decay
  5e-4, batch 32 and 50 epochs are the authors' training setting. ``dropout`` (before the last
  encoder layer) is 0.3 in their code, 0 here (the paper's architecture has none).

Choices of mmhash's own.

The optimiser: Adam with learning rate 1e-4 (the authors' script uses SGD, learning rate 1e-3,
momentum 0.9; the paper names none). The SGD setting itself is what collapses the codes: with
it both encoders go to one constant code within a few epochs (the consistency term, weight 200,
is zero for identical codes). The authors' own script does so too, with its N(0, 1)
initialisation of the last encoder layer, run on mmhash's splits (issue 16: ``cub10`` 16 bits
.201/.201 with 8 and 5 distinct codes, seed 1 .116/.140; ``wiki`` 16 bits .111/.110 with 4 and
1 codes), and giving it PyTorch's default initialisation changes nothing (``cub10`` .197/.205);
so the initialisation is not the cause (an earlier version of this text said it was). With the
authors' optimiser mmhash's UJSAH matches their code closely (``cub10`` 64 bits .519/.507 vs
their .522/.508). Chosen on the *validation split* (fit on the training rows outside it, the
validation rows as queries; never the test queries), at 16 bits, with the paper's placement of
alpha and beta (the defaults before issue 16), among SGD 1e-3 / SGD 1e-4 /
Adam 1e-4 and nine other variants (lower gamma or beta, no weight decay, dropout, batch 128,
raw inputs, literal cosine -- all of which still collapsed or stayed below .35): validation mAP
I->T/T->I on ``cub10`` .438/.425 (Adam 1e-4, mean of 2 seeds) vs .415/.463 (SGD 1e-4) vs
.108/.108 (SGD 1e-3); on ``wiki`` .215/.450 vs .227/.268 vs .110/.110. ``optimizer="sgd",
learning_rate=1e-3`` restores the authors' setting. The study is
``benchmarks/studies/ujsah_optimizer.py``.

The input scale (the paper does not say what scale the encoders see):
``normalize_inputs=True`` makes each encoder's first step the L2 normalisation of its input row,
so encoders see the same normalised features Eq. 1 and the reconstruction use; it is part of
the encoder, hence of the out-of-sample hash function too. Without it, features of small norm
(Wikipedia's L1-normalised SIFT histograms have norm ~0.2) leave the first layer's output almost
constant across items (the biases dominate) and training stalls: on ``wiki`` at 128 bits
(widths 1024/512) the training loss went 30.1 -> 28.2 in 15 epochs without it, 9.2 -> 5.6 with
it. ``False`` feeds the raw features.

The decoders have the paper's sizes (``k -> 4096 -> 4096 -> d_v`` and ``k -> 2048 -> 2048 ->
2048 -> d_t``). The authors' code differs: its image decoder is one ReLU followed by three
``d_v -> d_v`` linear layers, the last two sharing their weights, and its text decoder is
``k -> 1024 -> ReLU -> 1024 -> d_t``.

Not adopted from the authors' code (the paper is followed): their constant batch divisor in
Eq. 2 (here: the actual rows of the batch), the factor 10 inside the text tanh, the N(0, 1)
initialisation of the last encoder layer (here: PyTorch's default), and their wiring in which the
image decoder receives ``Img2Txt(Z^v)`` (here, as the paper describes Eq. 4-5, the image decoder
receives the image code predicted from the text code). Weights were chosen on the test queries
in the authors' code; mmhash never does that (see ``validation_fraction``, and the optimiser
choice above, made on the validation split).

Ablations (paper, Table 2): ``joint_semantics=False`` is UJSAH-1 (``S = S~``, Eq. 1 only);
``decode_from="own"`` is UJSAH-2 (decoders fed the encoders' own codes ``Z^m`` instead of the
predicted ones).
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists ujsah as unavailable with this message
    raise ImportError(
        "UJSAH needs PyTorch, which is not installed: pip install 'mmhash[deep]'"
    ) from exc

from mmhash.deep import (
    DeepHasher,
    ScaledTanh,
    TrainingState,
    cosine_mse,
    feature_similarity,
    fused_similarity,
    mlp,
    second_order,
)
from mmhash.errors import InvalidInputError
from mmhash.params import Choice, Flag, Integer, Number, check_number

DECODE_FROM = ("own", "predicted")


# ---- joint-semantics similarity (Eq. 1, Eq. 2 and its M-view form) ---------------------------
def similarity_matrices(views: Sequence[torch.Tensor], rescale: bool = True) -> list[torch.Tensor]:
    """Cosine similarity ``(n, n)`` of each view's rows; ``2 cos - 1`` when ``rescale``.

    Rows are L2-normalised first (an all-zero row has similarity 0 to everything before
    rescaling).
    """
    return [feature_similarity(X, rescale) for X in views]


def view_weights(mu: float | Sequence[float], n_views: int) -> list[float]:
    """The weights ``mu_m`` of Eq. 1 for ``n_views`` views (see the module docstring).

    ``mu`` is one real number in ``[0, 1]`` (Python or numpy) or a sequence of ``n_views``
    non-negative reals summing to 1; returns ``n_views`` Python floats. Raises
    :class:`InvalidInputError` otherwise.
    """
    if isinstance(mu, numbers.Real) and not isinstance(mu, (bool, np.bool_)):
        mu = check_number("mu", mu, minimum=0, maximum=1)
        return [mu] + [(1.0 - mu) / (n_views - 1)] * (n_views - 1)
    # A string iterates too, but is never a list of weights.
    items = None if isinstance(mu, (str, bytes)) else _as_list(mu)
    if items is None:
        raise InvalidInputError(
            f"mu must be a number in [0, 1] or a list of one weight per view, got {mu!r}")
    weights = [check_number(f"mu[{i}]", w, minimum=0) for i, w in enumerate(items)]
    if len(weights) != n_views:
        raise InvalidInputError(f"mu has {len(weights)} weights for {n_views} views")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise InvalidInputError(f"mu weights must be >= 0 and sum to 1, got {weights}")
    return weights


def _as_list(value: Any) -> list[Any] | None:
    """``list(value)``, or None when ``value`` cannot be iterated (a 0-d array, None, ...)."""
    try:
        return list(value)
    except TypeError:
        return None


def joint_semantics(sims: Sequence[torch.Tensor], weights: Sequence[float], eta: float,
                    joint: bool = True) -> torch.Tensor:
    """The batch similarity ``S`` (Eq. 2 and its M-view form) from per-view matrices ``sims``.

    ``S~ = sum_m weights[m] sims[m]``; with ``joint``,
    ``S = (1 - eta) S~ + eta / (P n) sum_{u<w} sims[u] sims[w]^T`` over the ``P`` pairs of views
    in order; without (UJSAH-1), ``S = S~``. Shape ``(n, n)``, same dtype as ``sims``.
    """
    s_tilde = fused_similarity(sims, weights)
    if not joint:
        return s_tilde
    cross = second_order([(sims[u], sims[w]) for u, w in itertools.combinations(range(len(sims)),
                                                                                 2)])
    return (1.0 - eta) * s_tilde + eta * cross


# ---- the network -----------------------------------------------------------------------------
def _encoder(d: int, width: int, n_bits: int, dropout: float,
             normalize: bool) -> nn.Sequential:
    return mlp(d, [width], n_bits, dropout=dropout, normalize_input=normalize,
               output=ScaledTanh())


def _decoder(n_bits: int, width: int, depth: int, d: int) -> nn.Sequential:
    return mlp(n_bits, [width] * depth, d)


class UJSAHNet(nn.Module):
    """Encoders, predictors and decoders of UJSAH, one of each per view (``ModuleList``s).

    View 0 uses the image sizes, the others the text sizes (see the module docstring).
    """

    def __init__(self, dims: Sequence[int], n_bits: int, *, image_width: int, text_width: int,
                 predictor_width: int, image_decoder_depth: int, text_decoder_depth: int,
                 dropout: float = 0.0, normalize_inputs: bool = True):
        super().__init__()
        widths = [image_width] + [text_width] * (len(dims) - 1)
        depths = [image_decoder_depth] + [text_decoder_depth] * (len(dims) - 1)
        self.encoders = nn.ModuleList(
            _encoder(d, w, n_bits, dropout, normalize_inputs) for d, w in zip(dims, widths))
        self.predictors = nn.ModuleList(
            mlp(n_bits, [predictor_width], n_bits, output=ScaledTanh()) for _ in dims)
        self.decoders = nn.ModuleList(
            _decoder(n_bits, w, depth, d) for d, w, depth in zip(dims, widths, depths))

    def predict(self, codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``Zp^m = P_m(mean of the other views' codes)`` for every view (Eq. 4)."""
        # The others' mean is summed afresh per view (not total - own): for M = 2 the input is
        # then exactly the other view's code, as in Eq. 4.
        return [P(torch.stack([Z for u, Z in enumerate(codes) if u != m]).mean(dim=0))
                for m, P in enumerate(self.predictors)]


def ujsah_loss(net: UJSAHNet, batch: Sequence[torch.Tensor], *, alpha: float, beta: float,
               gamma: float, delta: float, weights: Sequence[float], eta: float,
               joint: bool = True, decode_from: str = "predicted", rescale: bool = True
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """The UJSAH objective (Eq. 8 / Eq. 9) on one mini-batch of paired rows.

    ``batch`` holds one float tensor ``(n, d_m)`` per view. Returns the weighted sum (a scalar
    tensor with gradients) and the four unweighted terms by name: ``cross``, ``intra``,
    ``consistency``, ``reconstruction`` (each a sum over view pairs / views of entry means).
    """
    with torch.no_grad():  # S depends on the input features only
        S = joint_semantics(similarity_matrices(batch, rescale), weights, eta, joint)
    codes = [E(X) for E, X in zip(net.encoders, batch)]
    unit = [F.normalize(Z, dim=1) for Z in codes]
    pairs = list(itertools.combinations(range(len(batch)), 2))
    cross = sum(cosine_mse(unit[u], unit[w], S, normalized=True) for u, w in pairs)
    intra = sum(cosine_mse(Zn, Zn, S, normalized=True) for Zn in unit)
    consistency = sum(F.mse_loss(unit[u], unit[w]) for u, w in pairs)
    inputs = net.predict(codes) if decode_from == "predicted" else codes
    reconstruction = sum(
        F.mse_loss(F.normalize(D(Zin), dim=1), F.normalize(X, dim=1))
        for D, Zin, X in zip(net.decoders, inputs, batch))
    total = alpha * cross + beta * intra + gamma * consistency + delta * reconstruction
    parts = {"cross": cross, "intra": intra, "consistency": consistency,
             "reconstruction": reconstruction}
    return total, {k: float(v.detach()) for k, v in parts.items()}


# ---- the hasher ------------------------------------------------------------------------------
class UJSAH(DeepHasher):
    """UJSAH: joint-semantics autoencoder hashing for any number of views (Chen et al., 2023).

    See the module docstring for the equations, the M-view form and the choices made where the
    paper is silent. Cost per epoch: O(n (sum_m d_m w_m + depth w^2 + n k)) with ``w`` the layer
    widths; at the paper's widths (4096 / 2048) the decoders dominate: on the embedded
    ``synthetic`` set (1,800 rows) an epoch is 286 GFLOP (16 bits) to 306 GFLOP (128 bits) of
    matrix products and 43-46 GB of Adam's memory traffic (27-29 M parameters, 57 steps);
    ``benchmarks/perf/test_perf_ujsah_epoch.py`` times it against that floor.

    Parameters
    ----------
    n_bits : code length (multiple of 8).
    alpha, beta, gamma, delta : weights of the cross-view, within-view, code-consistency and
        reconstruction terms of Eq. 8. Defaults 18, .08, 200, .12: the authors' code's
        weighting (the paper prints alpha .08 and beta 18, the code applies them to the other
        terms; see the module docstring).
    mu : weight of the first view in Eq. 1 (others share ``1 - mu``), or one weight per view.
    eta : weight of the joint term ``S^v S^t^T / n`` in Eq. 2.
    joint_semantics : False gives the ablation UJSAH-1 (``S`` = Eq. 1 only).
    decode_from : ``"predicted"`` (the paper) or ``"own"`` (ablation UJSAH-2).
    rescale_similarity : map cosines to ``2 cos - 1`` (authors' code) or keep them.
    normalize_inputs : the encoders start by L2-normalising each row (see the module docstring).
    image_width, text_width : hidden width of the encoder and decoder of the first view / of
        every other view.
    predictor_width : hidden width of the prediction networks.
    image_decoder_depth, text_decoder_depth : hidden layers of the decoders.
    dropout : dropout rate before the last encoder layer (training only).
    n_epochs, batch_size : training length (fixed number of epochs, as in the paper) and rows
        per mini-batch.
    optimizer : ``"sgd"`` (with ``momentum``) or ``"adam"``; ``learning_rate``, ``weight_decay``.
    validation_fraction : 0 (default) trains on every row for ``n_epochs`` epochs. A fraction in
        (0, 1) holds out that share of the training rows (chosen with ``random_state``), computes
        the UJSAH loss on them after every epoch and keeps the encoders of the epoch with the
        lowest held-out loss -- an unsupervised criterion: no labels, no queries.
    n_threads : torch threads while training (None: the thread budget, mmhash.threads);
        restored after fit.
    device : where training runs: ``"auto"`` (default: a GPU when torch sees one, else the CPU),
        ``"cpu"`` or ``"cuda"``/``"cuda:N"``; the kept encoders always encode on the CPU.
        Identical codes per seed are guaranteed on the CPU.
    random_state : seeds the initialisation, dropout, the shuffling and the held-out rows; the
        same value gives identical codes on CPU (for the same ``n_threads``).
    """

    name = "ujsah"
    supported_views = (2, None)
    #: ``mmhash tune ujsah``: the optimiser's step and the two weights the paper's Fig. 4 varies.
    search_space: ClassVar[dict[str, Any]] = {
        "learning_rate": (1e-5, 1e-3, "log"), "mu": (0.1, 0.9), "eta": (0.0, 0.6)}
    conformance_params: ClassVar[dict[str, Any]] = {
        "image_width": 64, "text_width": 64, "predictor_width": 32,
        "image_decoder_depth": 1, "text_decoder_depth": 1,
        "n_epochs": 8, "batch_size": 64, "optimizer": "adam", "learning_rate": 3e-3,
        "n_threads": 1,
    }
    #: mu is not declared: it is one weight or a list of one weight per view, and whether a list
    #: is valid depends on the number of views, so view_weights checks it when training begins
    #: (before the first step).
    parameter_constraints = {
        "alpha": Number(low=0), "beta": Number(low=0), "gamma": Number(low=0),
        "delta": Number(low=0),
        "eta": Number(0, 1),
        "dropout": Number(0, 1, high_open=True),
        "joint_semantics": Flag(), "rescale_similarity": Flag(), "normalize_inputs": Flag(),
        "decode_from": Choice(DECODE_FROM),
        "image_width": Integer(minimum=1), "text_width": Integer(minimum=1),
        "predictor_width": Integer(minimum=1), "image_decoder_depth": Integer(minimum=1),
        "text_decoder_depth": Integer(minimum=1),
    }

    def __init__(self, *, n_bits: int = 32, alpha: float = 18.0, beta: float = 0.08,
                 gamma: float = 200.0, delta: float = 0.12, mu: float | Sequence[float] = 0.8,
                 eta: float = 0.3, joint_semantics: bool = True, decode_from: str = "predicted",
                 rescale_similarity: bool = True, normalize_inputs: bool = True,
                 image_width: int = 4096,
                 text_width: int = 2048, predictor_width: int = 1024,
                 image_decoder_depth: int = 2, text_decoder_depth: int = 3,
                 dropout: float = 0.0, n_epochs: int = 50, batch_size: int = 32,
                 optimizer: str = "adam", learning_rate: float = 1e-4, momentum: float = 0.9,
                 weight_decay: float = 5e-4, validation_fraction: float = 0.0,
                 n_threads: int | None = None, device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.delta = delta
        self.mu = mu
        self.eta = eta
        self.joint_semantics = joint_semantics
        self.decode_from = decode_from
        self.rescale_similarity = rescale_similarity
        self.normalize_inputs = normalize_inputs
        self.image_width = image_width
        self.text_width = text_width
        self.predictor_width = predictor_width
        self.image_decoder_depth = image_decoder_depth
        self.text_decoder_depth = text_decoder_depth
        self.dropout = dropout
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

    def _begin_training(self, state: TrainingState) -> None:
        state.weights = view_weights(self.mu, len(state.arrays))  # checks mu against the views

    def _build_model(self, dims: list[int]) -> UJSAHNet:
        return UJSAHNet(dims, int(self.n_bits), image_width=int(self.image_width),
                        text_width=int(self.text_width), predictor_width=int(self.predictor_width),
                        image_decoder_depth=int(self.image_decoder_depth),
                        text_decoder_depth=int(self.text_decoder_depth),
                        dropout=float(self.dropout),
                        normalize_inputs=bool(self.normalize_inputs))

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        return ujsah_loss(state.model, batch, alpha=float(self.alpha), beta=float(self.beta),
                          gamma=float(self.gamma), delta=float(self.delta),
                          weights=state.weights, eta=float(self.eta),
                          joint=bool(self.joint_semantics), decode_from=self.decode_from,
                          rescale=bool(self.rescale_similarity))
