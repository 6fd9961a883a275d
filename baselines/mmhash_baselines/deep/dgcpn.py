"""DGCPN: Deep Graph-neighbor Coherence Preserving Network (Yu, Zhou, Zhan, Tao, AAAI 2021).

Needs PyTorch (``pip install 'mmhash-baselines[deep]'``). Followed: the official code
(github.com/Atmegal/DGCPN @ 9f62c56; file:line below). The paper's full text was not available to
us (only its abstract and a summary of its Algorithm 1: three kinds of similarity, the
"half-real, half-binary" optimisation with three updates per batch, early stopping on a
validation set), so the code is authoritative throughout. Image features ``X_I`` are the first
view, text ``X_T`` the second; ``n`` is the number of training rows.

Global similarity (train_div.py:78-103), built once over the whole training set, no gradient
    ``S_pair = (1 - a1) cos(X_I) + a1 cos(X_T)`` (cosines of L2-normalised rows, not rescaled;
    note that ``a1`` weights the *text* side, train_div.py:86); ``P`` = each row of ``S_pair``
    truncated to its ``k - 1`` most similar *other* items and divided by its sum
    (:func:`mmhash.deep.knn_graph`, self excluded); ``S = 2 [(1 - a2) S_pair + a2 scale P P^T] - 1``
    (:func:`mmhash.deep.graph_term`). ``S`` is symmetric and not clipped (it can exceed 1).
    A batch's targets are ``S[rows][:, rows]`` by the rows' positions, as the code does with the
    loader's indices (train_div.py:152).

    **The neighbour count** ``n_neighbors`` is the paper's ``k``. The code's ``knn_number`` is
    its complement (train.py:55-61: "5000 - knn number from paper = knn number from code" on
    MIRFlickr / NUS-WIDE): the code zeroes the ``knn_number`` smallest entries of each row and
    then the largest (the item itself, train_div.py:91-95), keeping ``n - knn_number - 1`` other
    items. Here each row keeps its ``n_neighbors - 1`` most similar other items. The code's
    effective value for its ``n = 5000`` (``knn_number=3000``) is ``k = 2000``, i.e. 40% of the
    training set; the default ``n_neighbors=None`` keeps that share of *any* training set
    (``round(0.4 n)``: 2000 at ``n = 5000``, 869 on wiki's 2,173 pairs, 192 on cub10's 480), so it
    equals the code where the code was tuned and never refuses a smaller set. ``scale`` goes
    with it: with ``m`` neighbours of about equal weight ``diag(P P^T) ~ 1 / m``, so
    ``scale ~ 2 m`` puts ``scale P P^T`` in ``[0, 2]``; the default ``scale=None`` is ``2 k``
    (the code's 4000 at ``k = 2000``).

Networks (models.py:9-55), features-only
    Image: ``d_I -> 4096 -> ReLU -> Dropout(0.5) -> n_bits -> tanh``; the code's input width is
    hard-wired to 4096 (its VGG-19 features, models.py:12), here it is the image view's width.
    Text: ``d_T -> 4096 -> ReLU -> Dropout(0.5) -> n_bits -> tanh`` with the last layer's weights
    drawn from ``N(0, 0.3^2)`` (models.py:44; ``text_init_std``). The code has no CNN: like it,
    the image net is a head on the given image feature vectors. Both nets see the raw features
    (train_div.py:144), the similarity the L2-normalised ones. ``tanh`` keeps slope 1 (the calls
    of ``set_alpha`` are commented out, train_div.py:138-139); the code is ``sign`` of the output.

Loss (train_div.py:105-131), on a batch of ``b`` rows with codes ``H_I``, ``H_T``
    ``B_I``, ``B_T``: the L2-normalised rows; ``II = B_I B_I^T``, ``TT = B_T B_T^T``,
    ``IT = B_I B_T^T``; ``O = 1 - I_b`` masks the diagonal.
    ``L = MSE(diag(IT), K) + dw [MSE(O.TT, O.S) + MSE(O.IT, O.S) + MSE(O.II, O.S)]
    + cw [MSE(IT, II) + MSE(IT, TT) + MSE(II, TT) + MSE(IT, IT^T)]``, each MSE the mean over its
    entries (the masked diagonal counts in the ``b^2``), ``K = 1.5`` (a cosine never reaches it:
    the pair term keeps pulling an item's two codes together). :func:`dgcpn_loss`.

Half-real, half-binary optimisation (train_div.py:143-172; ``DGCPN._updates``)
    Three optimiser updates per batch, declared as the step's ``(loss, part)`` list: (1)
    ``L(H_I, H_T)``, both nets updated; then both nets run again (new dropout masks) and (2)
    ``L(H_I, sign(H_T))`` updates the image net only, (3) ``L(sign(H_I), H_T)`` the text net
    only, both from that second forward pass (the text net is unchanged by update 2). The code's
    two SGD optimisers become one part over both nets: a net without gradient in an update is
    skipped by SGD (no update, no weight decay, momentum untouched), so the updates are the
    same.

Optimisation (train.py:34-64, train_div.py:61-65)
    SGD, learning rate 0.005, momentum 0.9, weight decay 5e-4, batch 32, at most 100 epochs, no
    schedule. The code has one setting (``--data_name flickr``): the defaults here are its
    MIRFlickr values, ``K=1.5, a1=0.01, a2=0.3, k=2000 (knn_number=3000), scale=4000,
    dw=cw=1, n_bits=64``. The repository has no other dataset's values (its Wiki loader exists,
    its comment gives ``knn_number = 2100 - k`` there, no Wiki ``k``).

Early stopping. The code evaluates mAP on a labelled validation set after every epoch, keeps
the best epoch and stops after 11 epochs without improvement (train.py:22-25,
train_div.py:217-223). ``fit`` has no labels, so here: ``validation_fraction = 0`` (default)
trains the fixed ``n_epochs``; ``validation_fraction > 0`` holds out that share of the training
rows, computes the DGCPN loss (real codes, step (1)'s objective) on them after every epoch, keeps
the encoders of the epoch with the lowest held-out loss and stops after :attr:`DGCPN.patience`
= 11 epochs without a lower one -- the code's rule with an unsupervised criterion (never labels,
never queries). Held-out rows are part of the global similarity (features only); their own block
``S[val][:, val]`` is their target.

Memory: the similarity is built as dense float32 ``n x n`` matrices, six to eight alive at the
peak (eight when ``k`` is close to ``n``: the fused cosines, their masked copy, the top-k values
and int64 indices, ``P`` before and after its normalisation; up to ``32 n^2`` bytes, 3.2 GB at
``n = 10000``) and one kept during training (``4 n^2``); training sets above ``max_samples`` rows
(default 12000, so the NUS-WIDE protocol's 10,500 training pairs fit: 3.5 GB at the peak there)
are refused before anything is built.

Not copied: the validation-set mAP (no labels in ``fit``), the unused FeatNet_I
(train_div.py:58), the code's logging quirks (mAP@5 printed as mAP@50, train_div.py:227-228).
"""

from __future__ import annotations

from typing import Any, ClassVar

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists dgcpn as unavailable with this message
    raise ImportError(
        "DGCPN needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import (
    DeepHasher,
    ScaledTanh,
    TrainingState,
    Updates,
    cosine_mse,
    feature_similarity,
    fused_similarity,
    graph_term,
    knn_graph,
    mlp,
    pair_block,
)
from mmhash.errors import InvalidInputError
from mmhash.params import Integer, Number

from ._graph import check_neighbours, neighbours_for, training_tensors
from ._scaling import ColumnScaling

#: Dense float32 n x n matrices alive at the peak of :func:`dgcpn_similarity` (for the refusal).
PEAK_MATRICES = 8


# ---- the global similarity -------------------------------------------------------------------
def dgcpn_similarity(X_image: torch.Tensor, X_text: torch.Tensor, *, text_weight: float,
                     neighbourhood_weight: float, n_neighbors: int, scale: float
                     ) -> torch.Tensor:
    """DGCPN's target ``S`` over every training row (module docstring; train_div.py:78-103).

    ``X_image`` ``(n, d_I)``, ``X_text`` ``(n, d_T)``, rows paired. ``S_pair = (1 - a1) cos_I +
    a1 cos_T`` with ``a1 = text_weight``; ``P`` keeps each row's ``n_neighbors - 1`` largest
    off-diagonal entries of ``S_pair``, row-normalised; returns ``2 [(1 - a2) S_pair + a2 scale
    P P^T] - 1`` (``a2 = neighbourhood_weight``), ``(n, n)`` in the inputs' dtype and device.
    """
    S_pair = fused_similarity(
        [feature_similarity(X_image, rescale=False), feature_similarity(X_text, rescale=False)],
        [1.0 - text_weight, text_weight])
    # The code zeroes the knn_number smallest entries and then the largest (the item itself):
    # n_neighbors - 1 other items remain (knn_graph excludes the diagonal by position).
    G = graph_term(knn_graph(S_pair, n_neighbors - 1))
    # In place: S is the only n x n matrix kept for training.
    G.mul_(neighbourhood_weight * scale).add_(S_pair, alpha=1.0 - neighbourhood_weight)
    return G.mul_(2.0).sub_(1.0)


# ---- the loss --------------------------------------------------------------------------------
def dgcpn_loss(codes_image: torch.Tensor, codes_text: torch.Tensor, S: torch.Tensor, *,
               pair_target: float = 1.5, similarity_weight: float = 1.0,
               consistency_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """DGCPN's ``loss_cal`` (train_div.py:105-131) on one batch.

    ``codes_image``, ``codes_text`` ``(b, k)``: real (tanh) or binary codes, rows paired;
    ``S`` ``(b, b)``: the batch's targets. Returns the scalar loss (with gradients) and its
    unweighted parts ``pair``, ``similarity`` (the three masked terms, summed) and
    ``consistency`` (the four terms, summed) as floats.
    """
    B_I, B_T = F.normalize(codes_image, dim=1), F.normalize(codes_text, dim=1)
    II, TT, IT = B_I @ B_I.T, B_T @ B_T.T, B_I @ B_T.T
    pair = F.mse_loss(IT.diagonal(), torch.full_like(IT.diagonal(), pair_target))
    # mean(O (cos - S)^2) = MSE(O cos, O S) for the 0/1 mask O: the code's masked MSEs.
    off = 1.0 - torch.eye(len(S), dtype=S.dtype, device=S.device)
    similarity = (cosine_mse(B_T, B_T, S, normalized=True, weight=off)
                  + cosine_mse(B_I, B_T, S, normalized=True, weight=off)
                  + cosine_mse(B_I, B_I, S, normalized=True, weight=off))
    consistency = (F.mse_loss(IT, II) + F.mse_loss(IT, TT) + F.mse_loss(II, TT)
                   + F.mse_loss(IT, IT.T))
    total = pair + similarity_weight * similarity + consistency_weight * consistency
    parts = {"pair": pair, "similarity": similarity, "consistency": consistency}
    return total, {key: float(value.detach()) for key, value in parts.items()}



# ---- the networks ------------------------------------------------------------------------------
def _hash_net(d: int, width: int, n_bits: int, dropout: float) -> nn.Sequential:
    return mlp(d, [width], n_bits, dropout=dropout, output=ScaledTanh())


class DGCPNNet(nn.Module):
    """ImgNet and TxtNet (models.py:9-55) as ``encoders`` ``[image, text]``: ``(b, d_m)`` ->
    ``(b, n_bits)`` tanh outputs. ``text_init_std`` (None: PyTorch's default) draws the text net's
    last weights from ``N(0, std^2)`` as models.py:44 does."""

    def __init__(self, dims: list[int], n_bits: int, *, image_width: int, text_width: int,
                 dropout: float, text_init_std: float | None):
        super().__init__()
        self.encoders = nn.ModuleList([_hash_net(dims[0], image_width, n_bits, dropout),
                                       _hash_net(dims[1], text_width, n_bits, dropout)])
        if text_init_std is not None:
            last = [m for m in self.encoders[1] if isinstance(m, nn.Linear)][-1]
            nn.init.normal_(last.weight, mean=0.0, std=text_init_std)


# ---- the hasher ------------------------------------------------------------------------------
class DGCPN(ColumnScaling, DeepHasher):
    """DGCPN: graph-neighbour coherence with a global kNN similarity (Yu et al., AAAI 2021).

    Two views (image first, text second). See the module docstring for the similarity, the
    loss, the three updates per batch and every choice against the official code. Fitting holds
    one float32 ``n x n`` matrix over the training rows (up to eight while it is built); per epoch
    the nets cost O(n (d_I w_I + d_T w_T + (w_I + w_T) k)) three times over, plus O(n b k) for
    the batch similarities.

    Parameters
    ----------
    n_bits : code length (multiple of 8; the code's default 64).
    pair_target : ``K``, the target of an item's image-text code cosine (1.5).
    text_weight : ``a1``, the text cosine's weight in ``S_pair`` (0.01; the image's is
        ``1 - a1``).
    neighbourhood_weight : ``a2``, the weight of ``scale P P^T`` in ``S`` (0.3).
    n_neighbors : the paper's ``k``: each row of ``P`` keeps its ``k - 1`` most similar other
        training items; None (default) is 40% of the training rows (2000 at the code's
        ``n = 5000``, ``knn_number=3000``); at most the number of training rows, at least 2.
    scale : multiplies ``P P^T``; None (default) is ``2 k`` (4000 at ``k = 2000``, the code's
        value), which keeps ``scale P P^T`` in about ``[0, 2]``.
    similarity_weight : ``dw``, weight of the three masked similarity terms (1).
    consistency_weight : ``cw``, weight of the four consistency terms (1).
    image_width, text_width : hidden widths of the image and text nets (4096 each).
    dropout : dropout after the hidden layer, training only (0.5).
    text_init_std : standard deviation of the text net's last weights (0.3); None keeps
        PyTorch's default initialisation.
    max_samples : training rows above which fit refuses (the ``n x n`` matrices; 12000).
    n_epochs : epochs (100, the code's maximum; see early stopping).
    batch_size, optimizer, learning_rate, momentum, weight_decay : 32, ``"sgd"``, 0.005, 0.9,
        5e-4 as in the code.
    validation_fraction : 0 trains ``n_epochs`` epochs on every row. A fraction in (0, 1) holds
        out that share of the training rows: the encoders of the epoch with the lowest held-out
        DGCPN loss are kept and training stops after :attr:`patience` epochs without a lower one
        (the code's early stopping, with the loss instead of a labelled validation mAP).
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : where training runs: ``"auto"`` (default: a GPU when torch sees one, else the CPU),
        ``"cpu"`` or ``"cuda"``/``"cuda:N"``; the kept encoders always encode on the CPU.
    standardize : ``"auto"`` (default), True or False: feed the nets (and the similarity)
        columns standardised with the training mean and deviation -- under ``"auto"`` only the
        views whose column deviations span more than 1,000x or whose rows lie within 0.5 of
        their mean (row-normalised histograms, topic proportions: wiki's image and text views),
        so features like the paper's reach the nets untouched (ours: the official code takes
        raw features; :mod:`mmhash_baselines.deep._scaling`).
    random_state : seeds the initialisation, dropout, the shuffling and the held-out rows;
        the same value gives identical codes on the CPU (same ``n_threads``).
    """

    name = "dgcpn"
    supported_views = (2, 2)
    with_row_ids = True
    #: The code stops after 11 evaluations without a better validation score (train.py:24-25).
    patience: ClassVar[int | None] = 11
    conformance_params: ClassVar[dict[str, Any]] = {
        "n_neighbors": 20, "scale": 40.0, "image_width": 64, "text_width": 64,
        "n_epochs": 6, "batch_size": 64, "learning_rate": 0.02, "n_threads": 1,
    }
    #: standardize is ColumnScaling's. n_neighbors and max_samples against the training rows
    #: need the data: _fit checks them before anything is built.
    parameter_constraints = {
        "pair_target": Number(low=0), "similarity_weight": Number(low=0),
        "consistency_weight": Number(low=0),
        "scale": Number(low=0, none=True),
        "text_weight": Number(0, 1), "neighbourhood_weight": Number(0, 1),
        # k counts the item itself, which is then dropped: k = 1 would keep no neighbour.
        "n_neighbors": Integer(minimum=2, none=True),
        "image_width": Integer(minimum=1), "text_width": Integer(minimum=1),
        "max_samples": Integer(minimum=1),
        "dropout": Number(0, 1, high_open=True),
        "text_init_std": Number(low=0, low_open=True, none=True),
    }

    def __init__(self, *, n_bits: int = 64, pair_target: float = 1.5, text_weight: float = 0.01,
                 neighbourhood_weight: float = 0.3, n_neighbors: int | None = None,
                 scale: float | None = None, similarity_weight: float = 1.0,
                 consistency_weight: float = 1.0, image_width: int = 4096,
                 text_width: int = 4096, dropout: float = 0.5,
                 text_init_std: float | None = 0.3, max_samples: int = 12000,
                 n_epochs: int = 100, batch_size: int = 32, optimizer: str = "sgd",
                 learning_rate: float = 0.005, momentum: float = 0.9,
                 weight_decay: float = 5e-4, validation_fraction: float = 0.0,
                 n_threads: int | None = None, device: str = "auto", random_state: int = 0,
                 standardize: bool | str = "auto"):
        self.n_bits = n_bits
        self.pair_target = pair_target
        self.text_weight = text_weight
        self.neighbourhood_weight = neighbourhood_weight
        self.n_neighbors = n_neighbors
        self.scale = scale
        self.similarity_weight = similarity_weight
        self.consistency_weight = consistency_weight
        self.image_width = image_width
        self.text_width = text_width
        self.dropout = dropout
        self.text_init_std = text_init_std
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
        self.standardize = standardize

    # -- parameters ------------------------------------------------------------------------------
    def _weights(self) -> dict[str, float]:
        return {"pair_target": float(self.pair_target),
                "similarity_weight": float(self.similarity_weight),
                "consistency_weight": float(self.consistency_weight)}

    # -- training --------------------------------------------------------------------------------
    def _begin_training(self, state: TrainingState) -> None:
        n = len(state.arrays[0])
        self.n_neighbors_ = neighbours_for(n, self.n_neighbors, minimum=2)
        check_neighbours(n, n_neighbors=self.n_neighbors_, max_samples=int(self.max_samples),
                         method="DGCPN", n_matrices=PEAK_MATRICES, minimum=2)
        X_image, X_text = training_tensors(state.arrays, state.device)
        with torch.no_grad():
            state.S = dgcpn_similarity(
                X_image, X_text, text_weight=float(self.text_weight),
                neighbourhood_weight=float(self.neighbourhood_weight),
                n_neighbors=self.n_neighbors_,
                scale=2.0 * self.n_neighbors_ if self.scale is None else float(self.scale))

    def _build_model(self, dims: list[int]) -> DGCPNNet:
        if len(dims) != 2:
            raise InvalidInputError(f"DGCPN takes two views (image, text), got {len(dims)}")
        return DGCPNNet(dims, int(self.n_bits), image_width=int(self.image_width),
                        text_width=int(self.text_width), dropout=float(self.dropout),
                        text_init_std=(None if self.text_init_std is None
                                       else float(self.text_init_std)))

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        # The held-out criterion: update (1)'s objective on real codes.
        X_image, X_text, rows = batch
        image_net, text_net = state.model.encoders
        return dgcpn_loss(image_net(X_image), text_net(X_text), pair_block(state.S, rows),
                          **self._weights())

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        """The half-real, half-binary step of one batch (train_div.py:149-172): three updates
        of both nets' optimiser. (1) ``L(H_I, H_T)``; both nets run again, then (2)
        ``L(H_I, sign(H_T))`` reaches the image net only, (3) ``L(sign(H_I), H_T)`` the text net
        only. Reports update (1)'s loss and parts (the objective of the epoch's training
        loss)."""
        X_image, X_text, rows = batch
        image_net, text_net = state.model.encoders
        S, weights = pair_block(state.S, rows), self._weights()
        loss, parts = dgcpn_loss(image_net(X_image), text_net(X_text), S, **weights)
        yield loss, "model"
        codes_image, codes_text = image_net(X_image), text_net(X_text)
        loss_image, _ = dgcpn_loss(codes_image, torch.sign(codes_text).detach(), S, **weights)
        yield loss_image, "model"
        # codes_text's graph is untouched by update (2): the text net has not changed since.
        loss_text, _ = dgcpn_loss(torch.sign(codes_image).detach(), codes_text, S, **weights)
        yield loss_text, "model"
        return float(loss.detach()), parts
