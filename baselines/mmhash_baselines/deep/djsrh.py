"""DJSRH: Deep Joint-Semantics Reconstructing Hashing (Su, Zhong, Zhang, ICCV 2019).

Needs PyTorch (``pip install 'mmhash-baselines[deep]'``). Followed: the official code
(github.com/zs-zhong/DJSRH @ 6041c2d; file:line below) and what the repository shows of the
paper (README ablation, Fig. 2, Table 2); the paper's own text was not available to us, so where
it could differ (the ``2 cos - 1`` rescaling, ``sqrt(epoch + 1)``) the code is authoritative.
For a mini-batch of ``m`` paired rows, image features ``X_I`` (first view) and text ``X_T``:

Joint-semantics similarity (train.py:87-110), built per mini-batch, no gradient
    ``S_I = 2 cos(X_I) - 1``, ``S_T = 2 cos(X_T) - 1`` (cosines of L2-normalised rows, rescaled
    to ``[-1, 1]``); ``S~ = beta S_I + (1 - beta) S_T``;
    ``S = mu [(1 - eta) S~ + eta S~ S~^T / m]`` (:func:`joint_semantics`). The diagonal is kept
    (targets above 1 on it with ``mu = 1.5``, as in the code).

Networks (models.py:8-44), features-only
    Image: the official net is AlexNet up to fc7 (4096-d, after ReLU) plus ``fc_encode =
    Linear(4096 -> n_bits)``; here the given image features stand for fc7 and the image net is
    that hash layer alone, ``Linear(d_image -> n_bits)`` (``image_width = 0``), with
    ``image_width > 0`` adding one hidden ReLU layer (a stand-in for the fc6/fc7 layers the
    official runs fine-tune: all of AlexNet on MIRFlickr / NUS-WIDE, fc6-fc7 on Wiki,
    train.py:58-64). Text: ``d_text -> 4096 -> ReLU -> n_bits`` (TxtNet). Both end in
    ``tanh(alpha h)`` with ``alpha = sqrt(epoch + 1)`` for 0-based epochs (models.py:26-27,
    43-44; train.py:73-74), i.e. :func:`mmhash.deep.sqrt_schedule` of mmhash's 1-based epochs.
    The code is ``sign(h)``. Inputs are fed raw, as in the code (``normalize_inputs=False``),
    unless ``standardize`` says otherwise (below).
    Not replicable with given features: the dropout the official image net applies before fc6
    and fc7 while training, and the fine-tuning of the CNN.

Loss (train.py:101-115)
    ``B_I``, ``B_T``: the row-L2-normalised tanh outputs;
    ``L = lambda1 MSE(B_I B_I^T, S) + MSE(B_I B_T^T, S) + lambda2 MSE(B_T B_T^T, S)``, each MSE
    the mean over the ``m^2`` entries (``F.mse_loss``). One cross term (I x T); no quantisation
    term (binarisation comes from the growing ``alpha``).

Optimisation (settings.py, train.py:55-64)
    SGD, momentum 0.9, weight decay 5e-4, batch 32, no schedule; the image and text nets have
    their own learning rates (two optimisers in the code, two parameter groups here:
    ``learning_rate`` for the image net, ``text_learning_rate`` for the text net).

Defaults: the code's MIRFlickr setting (settings.py:27-39 and 56-63; the field's main
benchmark): ``beta=0.9, lambda1=lambda2=0.1, n_epochs=80, learning_rate=0.001 (image),
text_learning_rate=0.01``, ``eta=0.4, mu=1.5, batch_size=32``, ``n_bits=64`` (CODE_LEN). The
other datasets of the code:

* Wiki (settings.py:11-24): ``beta=0.3, lambda1=lambda2=0.3, n_epochs=200,
  learning_rate=text_learning_rate=0.01``;
* NUS-WIDE (settings.py:41-53): ``beta=0.6, lambda1=lambda2=0.1, n_epochs=80,
  learning_rate=0.001, text_learning_rate=0.01``.

Differences from the code, all deliberate:

* ``m`` is the number of rows of the batch at hand. The code divides by the constant
  BATCH_SIZE and drops the last incomplete batch (``drop_last=True``, train.py:40), so every
  batch has 32 rows there and the two agree; mmhash's loop keeps every row, and its last batch
  may be smaller.
* ``S`` is computed without gradient. The code lets autograd flow from the MSE target into the
  never-stepped FeatNet_I (a wasted-compute bug, train.py:87-114; it does not change results).
* No epoch selection on the test queries: the code evaluates on the test queries every
  EVAL_INTERVAL epochs and keeps the last epoch (train.py:184-188); here training runs the fixed
  ``n_epochs`` (or, with ``validation_fraction > 0``, keeps the epoch with the lowest held-out
  DJSRH loss on that share of the training rows -- no labels, no queries).
* Deterministic under ``random_state`` (the code seeds torch only; its splits are unseeded).
* ``standardize="auto"`` (ours, as JDSH's): a view whose columns span more than 1,000x or whose
  rows lie within 0.5 of their mean is column-standardised with the training mean and deviation
  before the nets and the similarity (:mod:`mmhash_baselines.deep._scaling`). The code's inputs
  (AlexNet on pixels, bag-of-words counts) never trigger it; wiki's row-normalised SIFT
  histograms and LDA proportions do: fed raw, the text net gave every wiki text one and the same
  code (its first epoch moved the output bias to 9x its initial norm; mAP .111/.109 at 16 bits),
  standardised .176/.144 (12 epochs).

A batch similarity only: nothing ``n x n`` over the training set is built, so there is no
training-set size limit.
"""

from __future__ import annotations

from typing import Any, ClassVar

try:
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # the registry lists djsrh as unavailable with this message
    raise ImportError(
        "DJSRH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import TrainingState, feature_similarity, fused_similarity, second_order
from mmhash.params import Number
from mmhash_baselines.deep._common import ImageTextNets, TwoNetHasher, reconstruction_loss
from mmhash_baselines.deep._scaling import ColumnScaling


def joint_semantics(X_image: torch.Tensor, X_text: torch.Tensor, *, beta: float, eta: float,
                    mu: float) -> torch.Tensor:
    """DJSRH's batch target ``S = mu [(1 - eta) S~ + eta S~ S~^T / m]`` with
    ``S~ = beta S_I + (1 - beta) S_T`` and ``S_X = 2 cos(X) - 1`` (train.py:92-110).

    ``X_image`` ``(m, d_I)`` and ``X_text`` ``(m, d_T)``: float features of ``m`` paired rows.
    Returns ``(m, m)``, symmetric, in the dtype of the inputs.
    """
    S_tilde = fused_similarity([feature_similarity(X_image), feature_similarity(X_text)],
                               [beta, 1.0 - beta])
    return mu * ((1.0 - eta) * S_tilde + eta * second_order([(S_tilde, S_tilde)]))


def djsrh_loss(net: ImageTextNets, batch: list[torch.Tensor], *, beta: float, eta: float,
               mu: float, lambda1: float, lambda2: float
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """The DJSRH objective on one mini-batch ``[X_I (m, d_I), X_T (m, d_T)]`` (train.py:87-115):
    ``lambda1 MSE(B_I B_I^T, S) + MSE(B_I B_T^T, S) + lambda2 MSE(B_T B_T^T, S)``. Returns the
    scalar loss and the unweighted terms ``ii``, ``it``, ``tt`` as floats."""
    X_image, X_text = batch[0], batch[1]
    with torch.no_grad():  # the target depends on the input features only
        S = joint_semantics(X_image, X_text, beta=beta, eta=eta, mu=mu)
    unit_image = F.normalize(net.encoders[0](X_image), dim=1)
    unit_text = F.normalize(net.encoders[1](X_text), dim=1)
    total, terms = reconstruction_loss(unit_image, unit_text, S, intra_image=lambda1,
                                       intra_text=lambda2)
    return total, {k: float(v.detach()) for k, v in terms.items()}


class DJSRH(ColumnScaling, TwoNetHasher):
    """DJSRH (Su, Zhong, Zhang, ICCV 2019) on given image and text features.

    Two views: the first is the image view (``S_I``, weight ``beta``), the second the text view.
    See the module docstring for the similarity, the loss, the sources and the differences from
    the official code. Cost per epoch: O(n (d_I k + d_T w + w k + m^2 + m k)) with ``w`` the
    text width, ``m`` the batch size.

    Parameters
    ----------
    n_bits : code length (multiple of 8); the code's CODE_LEN is 64.
    beta : weight of the image similarity in ``S~ = beta S_I + (1 - beta) S_T``, in [0, 1].
    eta : weight of the second-order term ``S~ S~^T / m``, in [0, 1].
    mu : scale of the target ``S`` (> 0).
    lambda1, lambda2 : weights of the image-image and text-text terms (>= 0; the image-text
        term has weight 1).
    image_width : 0 (default): the image net is the hash layer ``Linear(d_I -> n_bits)`` on the
        given features (the official ``fc_encode`` on fc7); > 0 adds a hidden ReLU layer.
    text_width : hidden width of the text net (4096).
    normalize_inputs : L2-normalise each input row first (default False: raw, as the code).
    n_epochs : fixed number of epochs (80: MIRFlickr).
    batch_size : rows per mini-batch ``m`` (32).
    optimizer : ``"sgd"`` (the code's, with ``momentum``) or ``"adam"``.
    learning_rate : learning rate of the image net (0.001: MIRFlickr).
    text_learning_rate : learning rate of the text net (0.01).
    momentum, weight_decay : SGD momentum (0.9) and L2 weight decay (5e-4) of both nets.
    validation_fraction : 0 (default) trains every training row for ``n_epochs`` epochs; a
        fraction in (0, 1) holds out that share of the training rows and keeps the nets of the
        epoch with the lowest held-out DJSRH loss (unsupervised; never the test queries).
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (a GPU when torch sees one, else the CPU), ``"cpu"``, ``"cuda[:N]"``.
    standardize : ``"auto"`` (default), True or False: feed the nets (and the similarity)
        columns standardised with the training mean and deviation -- under ``"auto"`` only the
        views whose column deviations span more than 1,000x or whose rows lie within 0.5 of
        their mean (row-normalised histograms, topic proportions), so features like the code's
        reach the nets untouched (ours; :mod:`mmhash_baselines.deep._scaling`).
    random_state : seeds initialisation, shuffling and the held-out rows (identical codes on the
        CPU for the same ``n_threads``).
    """

    name = "djsrh"
    conformance_params: ClassVar[dict[str, Any]] = {
        "text_width": 64, "n_epochs": 10, "batch_size": 32, "learning_rate": 0.05,
        "text_learning_rate": 0.05, "n_threads": 1,
    }
    #: standardize is ColumnScaling's; the networks' parameters are TwoNetHasher's.
    parameter_constraints = {
        "beta": Number(0, 1), "eta": Number(0, 1),
        "mu": Number(low=0, low_open=True),
        "lambda1": Number(low=0), "lambda2": Number(low=0),
    }

    def __init__(self, *, n_bits: int = 64, beta: float = 0.9, eta: float = 0.4,
                 mu: float = 1.5, lambda1: float = 0.1, lambda2: float = 0.1,
                 image_width: int = 0, text_width: int = 4096, normalize_inputs: bool = False,
                 n_epochs: int = 80, batch_size: int = 32, optimizer: str = "sgd",
                 learning_rate: float = 0.001, text_learning_rate: float = 0.01,
                 momentum: float = 0.9, weight_decay: float = 5e-4,
                 validation_fraction: float = 0.0, n_threads: int | None = None,
                 device: str = "auto", random_state: int = 0,
                 standardize: bool | str = "auto"):
        self.n_bits = n_bits
        self.beta = beta
        self.eta = eta
        self.mu = mu
        self.lambda1 = lambda1
        self.lambda2 = lambda2
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

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        return djsrh_loss(state.model, batch, beta=float(self.beta), eta=float(self.eta),
                          mu=float(self.mu), lambda1=float(self.lambda1),
                          lambda2=float(self.lambda2))
