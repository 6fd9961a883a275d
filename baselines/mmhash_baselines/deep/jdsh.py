"""JDSH: Joint-modal Distribution-based Similarity Hashing (Liu et al., SIGIR 2020).

Authors: Song Liu, Shengsheng Qian, Yang Guan, Jiawei Zhan, Long Ying. Needs PyTorch
(``pip install 'mmhash-baselines[deep]'``). Sources: the official code,
github.com/KaiserLew/JDSH at HEAD caa8224 (2020-12-10) and at 5762a24 (2020-05-02, the release
of the paper's time) -- file:line below refer to HEAD unless marked @5762a24 -- and the paper's
abstract. The paper's body was not available to us: where the versions of the code differ, the
choice and its reason are stated. For a mini-batch of ``m`` paired rows, image
features ``X_I`` (first view) and text ``X_T`` (second view):

Joint-modal similarity (JDSH.py:118-129), per mini-batch, no gradient
    ``S_I = 2 cos(X_I) - 1``, ``S_T = 2 cos(X_T) - 1``;
    ``H = rownorm(S_I) rownorm(S_T)^T`` (:func:`high_order_similarity`: entry ``(i, j)`` is the
    cosine between row ``i`` of ``S_I`` and row ``j`` of ``S_T``, how alike the two items'
    neighbourhoods are across the modalities);
    ``S_J = a S_I + b S_T + lambda (H + H^T) / 2`` (:func:`joint_modal_similarity`).

Distribution-based Similarity Decision and Weighting, DSDW (JDSH.py:135-143)
    Two thresholds from a distribution of the values of ``S_J``,
    ``left = loc - left_width * scale_left`` and ``right = loc + right_width * scale_right``;
    entries below ``left`` ("dissimilar") are multiplied by
    ``1 + dissimilar_weight * exp(-(s - s_min))``, then entries above ``right`` ("similar") by
    ``1 + similar_weight * exp(s - s_max)``, the diagonal included (:func:`dsdw`; two masked
    assignments in that order, exactly as the code). The target is ``S = mu * DSDW(S_J)``.

    **The distribution is fitted on the training data** (:func:`fit_distribution`), once, before
    the first epoch: the method fits a distribution to the similarity values (the paper's
    description as reported to us; its text was not available here), the code stores
    per-dataset constants fitted offline (LOC_LEFT = LOC_RIGHT, SCALE_LEFT, SCALE_RIGHT, MIN,
    MAX in config/*.json, without the script that produced them). Its shape there -- one
    location with a left and a right scale -- is that of a *split normal* (two-piece normal:
    density ``A exp(-(s - loc)^2 / (2 scale_left^2))`` below ``loc``,
    ``A exp(-(s - loc)^2 / (2 scale_right^2))`` above, ``A = sqrt(2 / pi) / (scale_left +
    scale_right)``), and that family is fitted here by maximum likelihood
    (:func:`fit_split_normal`; the exact family the authors used could not be verified), over
    locations strictly inside the range of the values (the profile likelihood always has a
    degenerate half-normal optimum at the range's edge, which would put a threshold there).
    The values: ``S_J`` of the mini-batches of one pass over the fit rows (the rows training
    uses, after any ``validation_fraction`` hold-out), in batches of ``batch_size`` drawn with a
    generator seeded from ``random_state`` -- the same batch-level statistic the thresholds are
    applied to (a batch ``S_J`` is not a block of a training-set ``S_J``: ``H`` compares
    rows of the batch matrices). ``loc`` and the scales are fitted on the off-diagonal entries
    (pairs of distinct items); ``s_min`` / ``s_max`` are the smallest / largest entry of those
    matrices, diagonal included, so both factors stay within ``1 + weight`` on the training
    batches (the code's MIN / MAX look like such extremes; @5762a24 took them per batch, the
    minimum of ``S_J`` and the maximum of its diagonal). The fitted values are kept in
    ``distribution_`` (``loc``, ``scale_left``, ``scale_right``, ``min``, ``max``, ``left``,
    ``right``, ``n_values``). Nothing ``n x n`` over the training set is built.

    Kept from the code as it is: a negative ``right`` (the code's MIRFlickr constants give
    -0.138) makes entries in ``(right, 0)`` more negative, and a positive ``left`` would make
    entries in ``(0, left)`` larger -- the factors multiply the value whatever its sign.

Networks (models.py), features-only
    Image: the official net runs AlexNet up to fc7 under ``no_grad`` and trains only
    ``hash_layer = Linear(4096 -> n_bits)`` on the raw fc7 (models.py:13-25): here the given
    image features stand for fc7 and the image net is that hash layer, ``Linear(d_I -> n_bits)``
    (``image_width = 0``; > 0 adds a hidden ReLU layer), so the features-only setting is the
    official one except for the AlexNet dropout that stays active on the frozen backbone during
    training (JDSH.py:64), which given features cannot replay. Text: ``d_T -> 4096 -> ReLU ->
    n_bits`` (models.py:33-47). Both end in ``tanh(alpha h)``, ``alpha = sqrt(epoch + 1)`` for
    0-based epochs (models.py:29-30, 49-50): :func:`mmhash.deep.sqrt_schedule`. Raw inputs, as
    the code (``normalize_inputs=False``).

Loss (``B_I``, ``B_T`` the row-L2-normalised tanh outputs; each MSE a mean over ``m^2`` entries)
    ``L = intra MSE(B_I B_I^T, S) + cross MSE(B_I B_T^T, S) + intra MSE(B_T B_T^T, S)
    - pair mean_i <B_I,i, B_T,i>``.
    **Followed: the paper-time code** (@5762a24 session.py:96-103, the DJSRH form): ``cross = 1``,
    ``pair = 0``. HEAD (JDSH.py:147-161, rewritten 2020-12-08, five months after the paper)
    adds ``MSE(B_T B_I^T, S)``, which equals ``MSE(B_I B_T^T, S)`` because ``S`` is symmetric
    (the cross term counted twice), and ``- mean_i cos(b_I,i, b_T,i)``; the paper, as far as it
    could be established (abstract, the released code of its time), has neither. HEAD's loss is
    ``cross_weight=2, pair_weight=1``.

Optimisation (JDSH.py:54-57, config/*.json)
    SGD, momentum 0.9, weight decay 5e-4, batch 32, 300 epochs, no schedule; image and text
    learning rates 0.01 (``learning_rate``, ``text_learning_rate``; two optimisers in the code,
    two parameter groups here).

Defaults: the MIRFlickr config (config/JDSH_MIRFlickr.json at HEAD): ``a, b, lambda = 0.5, 0.1,
0.4``; ``mu = 1.4``; ``intra = 0.1``; ``left_width = 2`` (ALPHA), ``right_width = 4`` (BETA),
``dissimilar_weight = 0.1`` (L1), ``similar_weight = 0.2`` (L2); both learning rates 0.01;
300 epochs; batch 32; ``n_bits = 16``, the code's effective default (``--Bit`` defaults to 16
and overrides the json's HASH_BIT of 128, args.py:10, 22). NUS-WIDE (config/JDSH_NUSWIDE.json):
``a, b, lambda = 0.4, 0.3, 0.3``, ``mu = 1.4``, ``intra = 0.1``, ``dissimilar_weight = 0.2``,
``similar_weight = 0.2``, same widths 2 / 4, learning rates 0.01 / 0.01 (0.001 for the image
net before commit 0046676), 300 epochs. The code has no Wiki setting. Its fitted constants
(MIRFlickr: loc -0.49, scale_left 0.019, scale_right 0.088, MIN -0.52, MAX 0.68; NUS-WIDE:
loc -0.62, scale_left 0.0128, scale_right 0.086, MIN -0.64, MAX 0.75) belong to AlexNet fc7 and
the code's bag-of-words: they are not used here (fitted instead).

Other differences from the code:

* No selection on the test queries: the code evaluates on the test queries every 40 epochs and
  logs the best (I->T + T->I) pair seen (JDSH.py:59-60, 109-114); here training runs the fixed
  ``n_epochs`` (or, with ``validation_fraction > 0``, keeps the epoch with the lowest held-out
  JDSH loss on that share of the training rows: no labels, no queries).
* The code's bugs that do not concern a reimplementation (evaluation unpacking the text net's
  single output, utils.py:96/110; dead checkpoint loading, JDSH.py:175-185) have no
  counterpart here.
* The code's per-batch ``m`` is always 32 (``drop_last=True``); here the last batch of an epoch
  may be smaller (nothing in JDSH's target depends on ``m`` but the batch itself).
* Deterministic under ``random_state`` (the code seeds torch only).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists jdsh as unavailable with this message
    raise ImportError(
        "JDSH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import TrainingState, feature_similarity, iter_batches
from mmhash.errors import InvalidInputError
from mmhash.params import Flag, Number
from mmhash_baselines.deep._common import TwoNetHasher, reconstruction_loss
from mmhash_baselines.deep._scaling import ColumnScaling


# ---- the joint-modal similarity --------------------------------------------------------------
def high_order_similarity(S_image: torch.Tensor, S_text: torch.Tensor) -> torch.Tensor:
    """``H = rownorm(S_I) rownorm(S_T)^T`` (JDSH.py:128): ``H_ij`` is the cosine between row
    ``i`` of ``S_I`` and row ``j`` of ``S_T``. Inputs ``(m, m)``; output ``(m, m)``, not
    symmetric in general."""
    return F.normalize(S_image, dim=1) @ F.normalize(S_text, dim=1).T


def joint_modal_similarity(S_image: torch.Tensor, S_text: torch.Tensor, *, image_weight: float,
                           text_weight: float, high_order_weight: float) -> torch.Tensor:
    """``S_J = a S_I + b S_T + lambda (H + H^T) / 2`` (JDSH.py:129), ``(m, m)``, symmetric."""
    H = high_order_similarity(S_image, S_text)
    return (image_weight * S_image + text_weight * S_text
            + high_order_weight * (H + H.T) / 2.0)


def batch_joint_similarity(X_image: torch.Tensor, X_text: torch.Tensor, *, image_weight: float,
                           text_weight: float, high_order_weight: float) -> torch.Tensor:
    """``S_J`` of a mini-batch from its features ``X_I`` ``(m, d_I)``, ``X_T`` ``(m, d_T)``, with
    ``S_X = 2 cos(X) - 1`` (JDSH.py:120-126). ``(m, m)``, dtype of the inputs."""
    return joint_modal_similarity(feature_similarity(X_image), feature_similarity(X_text),
                                  image_weight=image_weight, text_weight=text_weight,
                                  high_order_weight=high_order_weight)


# ---- DSDW: the fitted distribution and the weighting -----------------------------------------
def _split_sums(x: np.ndarray, c1: np.ndarray, c2: np.ndarray, loc: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """``S1 = sum_{x_i < loc} (x_i - loc)^2`` and ``S2 = sum_{x_i >= loc} (x_i - loc)^2`` for
    sorted ``x`` with prefix sums ``c1`` (of x) and ``c2`` (of x^2), at each of ``loc``."""
    n = len(x)
    k = np.searchsorted(x, loc, side="left")
    s1 = c2[k] - 2.0 * loc * c1[k] + k * loc ** 2
    s2 = (c2[n] - c2[k]) - 2.0 * loc * (c1[n] - c1[k]) + (n - k) * loc ** 2
    return np.maximum(s1, 0.0), np.maximum(s2, 0.0)  # round-off can make a zero sum negative


def fit_split_normal(values: np.ndarray) -> tuple[float, float, float]:
    """Maximum-likelihood split normal of ``values`` (any shape, float): ``(loc, scale_left,
    scale_right)``.

    For a location ``loc``, with ``S1`` / ``S2`` the sums of squared deviations of the values
    below / above it and ``T = S1^(1/3) + S2^(1/3)``, the likelihood is maximised by
    ``scale_left^2 = S1^(2/3) T / n`` and ``scale_right^2 = S2^(2/3) T / n``, and the profile
    log-likelihood is ``-(3 n / 2) log T + const``; ``loc`` minimises ``T``: the best of the
    sample values strictly between the smallest and the largest, refined by a golden-section
    search between its two sorted neighbours among them. Values all equal give scales 0.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise InvalidInputError("fit_split_normal needs at least one finite value")
    shift = float(x.mean())
    x = x - shift  # centred: the prefix sums lose less to cancellation
    n = len(x)
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])

    def objective(loc: np.ndarray) -> np.ndarray:
        s1, s2 = _split_sums(x, c1, c2, loc)
        return np.cbrt(s1) + np.cbrt(s2)

    # A location at the smallest or largest value leaves one side empty: a degenerate
    # half-normal that the profile likelihood always has as a local optimum (T's slope is
    # infinite there) and that would put a threshold at the data's edge. The search keeps to
    # the values strictly inside the range (all of them when there are none).
    inner = x[(x > x[0]) & (x < x[-1])]
    if inner.size == 0:
        inner = x
    best = int(np.argmin(objective(inner)))
    loc, value = float(inner[best]), float(objective(inner[best:best + 1])[0])
    lo, hi = float(inner[max(best - 1, 0)]), float(inner[min(best + 1, len(inner) - 1)])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = objective(np.array([a, b]))
    for _ in range(80):  # the bracket shrinks by 0.618 per step: far below float resolution
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = float(objective(np.array([a]))[0])
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = float(objective(np.array([b]))[0])
    for candidate, f in ((a, fa), (b, fb)):
        if f < value:
            loc, value = float(candidate), float(f)
    s1, s2 = _split_sums(x, c1, c2, np.array([loc]))
    total = np.cbrt(s1[0]) + np.cbrt(s2[0])
    scale_left = math.sqrt(np.cbrt(s1[0]) ** 2 * total / n)
    scale_right = math.sqrt(np.cbrt(s2[0]) ** 2 * total / n)
    return loc + shift, scale_left, scale_right


def split_normal_loglik(values: np.ndarray, loc: float, scale_left: float,
                        scale_right: float) -> float:
    """Log-likelihood of ``values`` under the split normal (for checking a fit)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    scale = np.where(x < loc, scale_left, scale_right)
    return float(np.sum(0.5 * math.log(2.0 / math.pi) - math.log(scale_left + scale_right)
                        - (x - loc) ** 2 / (2.0 * scale ** 2)))


def fit_distribution(X_image: np.ndarray, X_text: np.ndarray, *, batch_size: int,
                     rng: np.random.Generator, image_weight: float, text_weight: float,
                     high_order_weight: float, left_width: float, right_width: float
                     ) -> dict[str, float]:
    """Fit DSDW's distribution on the training rows (module docstring).

    ``X_image`` ``(n, d_I)`` and ``X_text`` ``(n, d_T)`` are the fit rows (float). One pass in
    mini-batches of ``batch_size`` (shuffled with ``rng``, as training batches are) gives the
    batch ``S_J`` matrices (float32, as in training); the split normal is fitted to their
    off-diagonal entries, ``min`` / ``max`` are taken over all their entries. Returns ``loc``,
    ``scale_left``, ``scale_right``, ``min``, ``max``, the thresholds ``left`` / ``right`` and
    ``n_values`` (the off-diagonal entries fitted), as floats.
    """
    Xi = torch.from_numpy(np.asarray(X_image, dtype=np.float32))
    Xt = torch.from_numpy(np.asarray(X_text, dtype=np.float32))
    off_diagonal, low, high = [], math.inf, -math.inf
    with torch.no_grad():
        for idx in iter_batches(len(Xi), batch_size, rng):
            index = torch.from_numpy(idx)
            S = batch_joint_similarity(Xi[index], Xt[index], image_weight=image_weight,
                                       text_weight=text_weight,
                                       high_order_weight=high_order_weight).double().numpy()
            off_diagonal.append(S[~np.eye(len(S), dtype=bool)])
            low, high = min(low, float(S.min())), max(high, float(S.max()))
    values = np.concatenate(off_diagonal)
    loc, scale_left, scale_right = fit_split_normal(values)
    return {"loc": loc, "scale_left": scale_left, "scale_right": scale_right,
            "min": low, "max": high, "left": loc - left_width * scale_left,
            "right": loc + right_width * scale_right, "n_values": int(values.size)}


def dsdw(S: torch.Tensor, *, left: float, right: float, s_min: float, s_max: float,
         dissimilar_weight: float, similar_weight: float) -> torch.Tensor:
    """The DSDW reweighting of a joint similarity ``S`` ``(m, m)`` (JDSH.py:138-141), as the
    code does it, in order: entries ``< left`` times ``1 + dissimilar_weight exp(-(s - s_min))``;
    then entries of the result ``> right`` times ``1 + similar_weight exp(s - s_max)``. Returns a
    new tensor (``S`` is not modified)."""
    low = S < left
    S = torch.where(low, (1.0 + dissimilar_weight * torch.exp(-(S - s_min))) * S, S)
    high = S > right
    return torch.where(high, (1.0 + similar_weight * torch.exp(S - s_max)) * S, S)


# ---- the loss --------------------------------------------------------------------------------
def jdsh_target(X_image: torch.Tensor, X_text: torch.Tensor, *, image_weight: float,
                text_weight: float, high_order_weight: float, mu: float,
                distribution: dict[str, float] | None, dissimilar_weight: float,
                similar_weight: float) -> torch.Tensor:
    """``S = mu DSDW(S_J)`` of a mini-batch (``distribution`` None: ``mu S_J``, no DSDW).
    Features ``(m, d_I)``, ``(m, d_T)``; ``(m, m)``."""
    S = batch_joint_similarity(X_image, X_text, image_weight=image_weight,
                               text_weight=text_weight, high_order_weight=high_order_weight)
    if distribution is not None:
        S = dsdw(S, left=distribution["left"], right=distribution["right"],
                 s_min=distribution["min"], s_max=distribution["max"],
                 dissimilar_weight=dissimilar_weight, similar_weight=similar_weight)
    return mu * S


def jdsh_loss(net: nn.Module, batch: list[torch.Tensor], S: torch.Tensor, *, intra_weight: float,
              cross_weight: float, pair_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """``intra MSE(B_I B_I^T, S) + cross MSE(B_I B_T^T, S) + intra MSE(B_T B_T^T, S)
    - pair mean_i <B_I,i, B_T,i>`` for the batch ``[X_I (m, d_I), X_T (m, d_T)]`` and its target
    ``S`` ``(m, m)``. Returns the scalar loss and the unweighted ``ii``, ``it``, ``tt``, ``pair``
    as floats."""
    unit_image = F.normalize(net.encoders[0](batch[0]), dim=1)
    unit_text = F.normalize(net.encoders[1](batch[1]), dim=1)
    total, terms = reconstruction_loss(unit_image, unit_text, S, intra_image=intra_weight,
                                       intra_text=intra_weight, cross=cross_weight)
    pair = (unit_image * unit_text).sum(dim=1).mean()
    if pair_weight:
        total = total - pair_weight * pair
    terms["pair"] = pair
    return total, {k: float(v.detach()) for k, v in terms.items()}


# ---- the hasher ------------------------------------------------------------------------------
class JDSH(ColumnScaling, TwoNetHasher):
    """JDSH (Liu et al., SIGIR 2020) on given image and text features.

    Two views: the first is the image view (weight ``image_weight`` in ``S_J``), the second the
    text view. See the module docstring for the similarity, DSDW and its fitting, the loss, the
    sources and the choices between the code's versions. Cost per epoch: O(n (d_I k + d_T w +
    w k + m^2 + m k)), plus one pass over the rows for the fit before training.

    Parameters
    ----------
    n_bits : code length (multiple of 8); 16, the code's effective default.
    image_weight, text_weight, high_order_weight : ``a``, ``b``, ``lambda`` of
        ``S_J = a S_I + b S_T + lambda (H + H^T) / 2`` (>= 0; 0.5, 0.1, 0.4).
    mu : scale of the target, ``S = mu DSDW(S_J)`` (> 0; 1.4).
    dsdw : apply DSDW (True) or train on ``mu S_J`` (False, an ablation).
    left_width, right_width : ``left = loc - left_width scale_left``, ``right = loc +
        right_width scale_right`` (>= 0; the code's ALPHA = 2, BETA = 4).
    dissimilar_weight, similar_weight : the code's L1 and L2 (>= 0; 0.1, 0.2).
    intra_weight : weight of the image-image and text-text terms (INTRA, 0.1).
    cross_weight : weight of the image-text term (1: the paper-time code; HEAD's doubled term
        is 2).
    pair_weight : weight of ``- mean_i cos(b_I,i, b_T,i)`` (0: the paper-time code; HEAD: 1).
    image_width : 0 (default): the image net is ``hash_layer = Linear(d_I -> n_bits)`` on the
        given features (the official net trains only that layer on frozen fc7); > 0 adds a
        hidden ReLU layer.
    text_width : hidden width of the text net (4096).
    normalize_inputs : L2-normalise each input row first (default False: raw, as the code).
    n_epochs : fixed number of epochs (300).
    batch_size : rows per mini-batch (32); also the batch size of the distribution fit.
    optimizer : ``"sgd"`` (the code's, with ``momentum``) or ``"adam"``.
    learning_rate, text_learning_rate : learning rates of the image and the text net (0.01).
    momentum, weight_decay : SGD momentum (0.9) and L2 weight decay (5e-4) of both nets.
    validation_fraction : 0 (default) trains every training row for ``n_epochs`` epochs; a
        fraction in (0, 1) holds out that share of the training rows (not used by the
        distribution fit) and keeps the nets of the epoch with the lowest held-out JDSH loss
        (unsupervised; never the test queries).
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (a GPU when torch sees one, else the CPU), ``"cpu"``, ``"cuda[:N]"``.
    standardize : ``"auto"`` (default), True or False: feed the nets (and the similarity)
        columns standardised with the training mean and deviation -- under ``"auto"`` only the
        views whose column deviations span more than 1,000x or whose rows lie within 0.5 of
        their mean (row-normalised histograms, topic proportions: wiki's image and text views),
        so features like the paper's reach the nets untouched (ours: the official code takes
        raw features; :mod:`mmhash_baselines.deep._scaling`).
    random_state : seeds initialisation, shuffling, the fit's batches and the held-out rows
        (identical codes on the CPU for the same ``n_threads``).

    Attributes
    ----------
    distribution_ : dict of the fitted DSDW values (``loc``, ``scale_left``, ``scale_right``,
        ``min``, ``max``, ``left``, ``right``, ``n_values``); None when ``dsdw=False``.
    """

    name = "jdsh"
    conformance_params: ClassVar[dict[str, Any]] = {
        "text_width": 64, "n_epochs": 10, "batch_size": 32, "learning_rate": 0.05,
        "text_learning_rate": 0.05, "n_threads": 1,
    }
    #: standardize is ColumnScaling's; the networks' parameters are TwoNetHasher's.
    parameter_constraints = {
        "image_weight": Number(low=0), "text_weight": Number(low=0),
        "high_order_weight": Number(low=0), "left_width": Number(low=0),
        "right_width": Number(low=0), "dissimilar_weight": Number(low=0),
        "similar_weight": Number(low=0), "intra_weight": Number(low=0),
        "cross_weight": Number(low=0), "pair_weight": Number(low=0),
        "mu": Number(low=0, low_open=True),
        "dsdw": Flag(),
    }

    def __init__(self, *, n_bits: int = 16, image_weight: float = 0.5,
                 text_weight: float = 0.1, high_order_weight: float = 0.4, mu: float = 1.4,
                 dsdw: bool = True, left_width: float = 2.0, right_width: float = 4.0,
                 dissimilar_weight: float = 0.1, similar_weight: float = 0.2,
                 intra_weight: float = 0.1, cross_weight: float = 1.0, pair_weight: float = 0.0,
                 image_width: int = 0, text_width: int = 4096, normalize_inputs: bool = False,
                 n_epochs: int = 300, batch_size: int = 32, optimizer: str = "sgd",
                 learning_rate: float = 0.01, text_learning_rate: float = 0.01,
                 momentum: float = 0.9, weight_decay: float = 5e-4,
                 validation_fraction: float = 0.0, n_threads: int | None = None,
                 device: str = "auto", random_state: int = 0,
                 standardize: bool | str = "auto"):
        self.n_bits = n_bits
        self.image_weight = image_weight
        self.text_weight = text_weight
        self.high_order_weight = high_order_weight
        self.mu = mu
        self.dsdw = dsdw
        self.left_width = left_width
        self.right_width = right_width
        self.dissimilar_weight = dissimilar_weight
        self.similar_weight = similar_weight
        self.intra_weight = intra_weight
        self.cross_weight = cross_weight
        self.pair_weight = pair_weight
        self.image_width = image_width
        self.text_width = text_width
        self.normalize_inputs = normalize_inputs
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.text_learning_rate = text_learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.n_threads = n_threads
        self.device = device
        self.random_state = random_state
        self.standardize = standardize

    def _weights(self) -> dict[str, float]:
        return {"image_weight": float(self.image_weight), "text_weight": float(self.text_weight),
                "high_order_weight": float(self.high_order_weight)}

    def _begin_training(self, state: TrainingState) -> None:
        self.distribution_ = None
        if self.dsdw:
            # A stream of its own: the fit's batches never shift the training shuffles.
            rng = np.random.default_rng([state.seed, 0xD5D3])
            X_image, X_text = state.arrays
            self.distribution_ = fit_distribution(
                X_image[state.fit_rows], X_text[state.fit_rows],
                batch_size=int(self.batch_size), rng=rng, left_width=float(self.left_width),
                right_width=float(self.right_width), **self._weights())

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():  # the target depends on the input features only
            S = jdsh_target(batch[0], batch[1], mu=float(self.mu),
                            distribution=self.distribution_,
                            dissimilar_weight=float(self.dissimilar_weight),
                            similar_weight=float(self.similar_weight), **self._weights())
        return jdsh_loss(state.model, batch, S, intra_weight=float(self.intra_weight),
                         cross_weight=float(self.cross_weight),
                         pair_weight=float(self.pair_weight))
