"""CCAH: CLIP-based Cycle Alignment Hashing for unsupervised vision-text retrieval.

"CCAH: A CLIP-Based Cycle Alignment Hashing Method for Unsupervised Vision-Text Retrieval",
International Journal of Intelligent Systems, vol. 2023, article 7992047
(doi 10.1155/2023/7992047; preprint Research Square rs-1975089/v2). Needs PyTorch
(``pip install 'mmhash-baselines[deep]'``). Sources: the official code,
github.com/CQYIO/CCAH at HEAD 50a3f5f (``file:line`` below are paths under ``CCAH/`` at that
commit), and the parts of the paper that were reachable: the abstract, the caption of Fig. 2,
Algorithm 1 (in outline, its symbols lost) and Table 1 (MAP@50). The paper's body (its
equations and settings) was not reachable, so the code is authoritative throughout.

Setting: features only. Two views, **image first, text second**. The official image net is a
frozen CLIP ViT-B/32 image encoder (``encode_image`` under ``no_grad``, models.py:15, 24-26) and
a trained head; on given image features the image net is that head on the features, exactly (the
CLIP parameters get no gradient, so the SGD over ``CodeNet_I.parameters()`` never moves them,
train.py:53-54). Inputs are fed raw, as in the code.

Networks (models.py)
    Image (``ImgNet``, models.py:12-33): ``fc_encode = Linear(d_I, 1024) -> ReLU ->
    Linear(1024, n_bits)`` (models.py:16-19), code ``tanh(alpha h)`` (models.py:28); decoder
    ``sigmoid(Linear(n_bits, d_T))`` (models.py:20, 29): the image code reconstructs *text*.
    Text (``GATNet``, models.py:36-60; the dense pyGAT layer, pygat/layers.py:7-53): input
    dropout 0.6, 8 heads of ``GraphAttentionLayer(d_T, 1024)`` with ELU, concatenated, dropout
    0.6, one output layer ``GraphAttentionLayer(8 * 1024, n_bits)`` without ELU, code
    ``tanh(alpha x)``; decoder ``sigmoid(Linear(n_bits, 1024))`` (models.py:41, 56; the code's
    ``image_size=1024``, whatever the image width: only its cosine Gram matrix is used). A layer:
    ``Wh = h W``; ``e_ij = LeakyReLU_0.2(a_1 . Wh_i + a_2 . Wh_j)``; attention
    ``softmax_j`` over the ``j`` with ``adj_ij > 0`` (the others set to -9e15), dropout 0.6 on the
    attention, ``h'_i = sum_j att_ij Wh_j`` (layers.py:26-50). ``W`` and ``a`` are Xavier-uniform
    with gain 1.414 (layers.py:19-22). ``alpha = sqrt(epoch + 1)`` for 0-based epochs on both
    nets (models.py:32-33, 59-60; train.py:68-69): :func:`mmhash.deep.sqrt_schedule`.

The text graph (train.py:237-247, metric.py:174-182), per batch
    ``adj = normalize_adj(sign(T T^T))`` over the batch's text rows ``T``: items are linked when
    their text vectors have a positive inner product -- for bag-of-words counts, when they share
    a word. ``normalize_adj`` (train.py:220-226) rescales the links but keeps their sign, and the
    layer reads only ``adj > 0``: the graph is the mask ``T T^T > 0``.
    **Training**: exactly that, on each training batch (training-only state, rebuilt per batch
    from the batch's rows, never kept). **Encoding (deviation)**: the code builds the same graph
    over each *evaluation* batch (metric.py:10-32; batches of 16 of the query and database sets
    in file order), so an item's text code depends on which other items share its batch. The
    mmhash contract needs a code that depends on the item alone: :meth:`TextGAT.forward` encodes
    each text item as a one-node graph, its self-loop only -- what ``normalize_adj`` gives an item
    that shares no word with the rest of its batch -- so the attention is over the item itself
    (weight 1) and the layer reduces to ``Wh``. :func:`official_batched_text_codes` reproduces the
    code's evaluation-time batch graphs on a fitted hasher, to measure how far the two differ.

Loss (train.py:89-135), a batch of ``m`` pairs; ``F.mse_loss`` means over all entries
    ``C_I = cos(X_I)`` (the CLIP features, train.py:89, 97-98; here the given image features),
    ``C_T = cos(X_T)`` (the raw text, train.py:90, 103-104); ``S_I = 2 C_I - 1``,
    ``S_T = 2 C_T - 1``; ``S = mu (beta S_I + (1 - beta) S_T)`` (train.py:119-120).
    ``B_I``, ``B_T``: the row-normalised codes; ``D_i``, ``D_t``: the row-normalised outputs of
    the text code's decoder (image-sized) and of the image code's decoder (text-sized)
    (train.py:107-113).
    ``L = MSE(B_T B_T^T, S) + MSE(B_I B_T^T, S) + MSE(B_I B_I^T, S)`` (loss1-3)
    ``+ pair MSE(diag(B_I B_T^T), mu)`` (loss4, train.py:129-131)
    ``+ decoder [MSE(D_i D_i^T, C_I) + MSE(D_t D_t^T, C_T)]`` (loss5-6: the cycle -- each
    modality's code, decoded, must reproduce the *other* modality's feature similarity, in
    ``[0, 1]``, not rescaled)
    ``+ symmetry MSE(B_I B_T^T, (B_I B_T^T)^T)`` (loss7)
    ``+ eta [MSE(B_I B_I^T, mu S_I) + MSE(B_T B_T^T, mu S_T)]`` (loss31-32), train.py:135:
    ``pair = decoder = 1``, ``symmetry = 2``, ``eta = ETA``. :func:`ccah_loss`.
    The targets carry no gradient (features only).

Optimisation (train.py:53-57, 85-139; settings.py:50-57)
    Two SGD optimisers, Nesterov momentum 0.7, weight decay 5e-4 on every parameter (the
    decoders and the attention vectors included): ``opt_I`` over the image net and its decoder at
    LR_IMG, ``opt_T`` over the GAT and its decoder at LR_TXT; one backward of ``L``, both step.
    Here: one part with two parameter groups (``learning_rate``, ``text_learning_rate``), SGD
    with Nesterov momentum whenever ``momentum > 0`` (``optimizer="adam"`` as an alternative).
    Batches of 16, shuffled.

Defaults: the MIRFlickr-25K block of settings.py (settings.py:11-19, the code's main benchmark
and the only dataset train.py builds, train.py:23-26, 52-54): ``n_epochs = 200`` (:15),
``learning_rate = text_learning_rate = 0.005`` (:16-17); the shared values ``mu = K = 1.5``
(:50), ``eta = ETA = 0.1`` (:51), ``image_weight = ALPHA = 0.9`` (:52), ``batch_size = 16``
(:54), ``n_bits = CODE_LEN = 128`` (:55), ``momentum = 0.7`` (:56), ``weight_decay = 5e-4``
(:57). The NUS-WIDE and MS-COCO blocks (:21-46) have the same epochs and learning rates. The
widths (1024, 8 heads, 1024, dropout 0.6, LeakyReLU 0.2, decoder 1024) are models.py:16, 37.

Differences from the code, all deliberate:

* Encoding per item (above): the text code is the GAT on the item's one-node graph.
* No test-query selection: the code evaluates MAP@50 on the test queries after every epoch
  (EVAL_INTERVAL = 1 on MIRFlickr, settings.py:19; train.py:157-184, 261-262), keeps the
  checkpoint with the best I->T + T->I and reports that one (train.py:181-184, 264-267). Here the
  fixed ``n_epochs`` are trained, or with ``validation_fraction > 0`` the epoch with the lowest
  held-out CCAH loss on that share of the training rows is kept (no labels, no queries).
* Text features must be non-negative (``sign(T T^T)`` reads "shares a word"): a text view with a
  negative entry is refused with one line, unless ``allow_negative_text=True``, which links the
  items whose text vectors have a positive inner product (the same formula, no longer a count of
  shared words). Image features may be anything.
* ``standardize="auto"`` (ours). The image view is column-standardised (training mean and
  deviation) when its column deviations span more than 1,000x or its rows lie within 0.5 of
  their mean (:mod:`mmhash_baselines.deep._scaling`); the text view is only divided by its
  column deviations (no centring: the graph keeps its links), and only when they span more than
  1,000x. Why: on wiki's raw SIFT histograms 15 of 16 image bits were constant over the
  training items after 3 epochs; with columns on scales 1e-4..1e6 (the conformance suite's
  hostile case) the largest columns decided every cosine (mAP .35 against the random
  projection's .42). The code's inputs (CLIP features, tag counts) never trigger it.
* ``drop_last=True`` (train.py:33) is not replicated: mmhash's loop trains every row (a last
  batch of one row joins the one before).
* No image augmentation (random crop and flip, datasets.py:137-143): features are given.
* Deterministic under ``random_state``; the code seeds torch only (train.py:12-13).

Official-code bugs, and what is done about them:

* settings.py:9 selects ``DATASET = 'MSCOCO'``, but train.py builds datasets and the image
  optimiser only for ``"MIRFlickr"`` (train.py:23-26, 52-54): as released the script stops with
  an AttributeError. Nothing to replicate; the defaults are the MIRFlickr block's.
* An item whose text row is all zeros has no self-loop (``sign(0) = 0``) and a zero row in
  ``normalize_adj``; pyGAT's masked softmax over a row of -9e15 is then uniform, so that item
  attends to *every* item of its batch, words or not. **Fixed**: every item has its self-loop,
  so a textless item attends to itself only in training (and at encoding, where its one-node
  graph gives the same). :func:`official_adjacency` keeps the code's graph for the study.
* The image-net optimiser is built over ``CodeNet_I.parameters()``, CLIP included, with weight
  decay (train.py:53-54); the CLIP weights get no gradient and SGD skips them, so this has no
  effect -- there is no backbone here anyway.

A batch graph and batch similarities only: nothing ``n x n`` over the training set is built,
so there is no training-set size limit. Cost per epoch: O(n (d_I w + heads d_T g + heads g k +
m heads g)), ``m`` the batch size, ``g`` the GAT width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists ccah as unavailable with this message
    raise ImportError(
        "CCAH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import (
    DeepHasher,
    Part,
    ScaledTanh,
    Standardize,
    TrainingState,
    cosine_mse,
    feature_similarity,
    mlp,
    set_alpha,
    sqrt_schedule,
)
from mmhash.errors import InvalidInputError, NotFittedError
from mmhash.params import Choice, Flag, Integer, Number
from mmhash_baselines.deep._scaling import (
    SPREAD_LIMIT,
    STANDARDIZE_CHOICES,
    column_spread,
    needs_standardising,
)

#: The value pyGAT gives the attention logits of non-links before the softmax (layers.py:30).
_NO_LINK = -9e15


# ---- the text graph --------------------------------------------------------------------------
def text_graph(T: torch.Tensor) -> torch.Tensor:
    """The batch text graph of training, bool ``(m, m)`` from the batch's text rows ``T``
    ``(m, d_T)``: ``T_i . T_j > 0`` (items sharing a word, for counts), what the layers read of
    ``normalize_adj(sign(T T^T))`` (train.py:237-247), with every item's self-loop added (the
    code leaves it out for an all-zero row: see the module docstring)."""
    eye = torch.eye(len(T), dtype=torch.bool, device=T.device)
    return (T @ T.T > 0) | eye


def official_adjacency(T: np.ndarray) -> np.ndarray:
    """The code's batch adjacency, exactly: ``normalize_adj(sign(T T^T))`` (train.py:220-247,
    metric.py:157-182), dense float64 ``(m, m)`` from text rows ``T`` ``(m, d_T)``. A row whose
    sum is 0 gets 0 (the code's ``isinf -> 0``); a negative row sum (possible only with negative
    features) gives NaN entries, as in the code."""
    A = np.sign(np.asarray(T, dtype=np.float64) @ np.asarray(T, dtype=np.float64).T)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.power(A.sum(axis=1), -0.5)
    r[np.isinf(r)] = 0.0
    return (A * r[None, :]).T * r[None, :]  # mx.dot(D).transpose().dot(D)


# ---- networks --------------------------------------------------------------------------------
class GraphAttentionLayer(nn.Module):
    """The dense pyGAT layer (pygat/layers.py:7-53), ``(n, d_in) -> (n, d_out)``.

    ``forward(h, graph)``: with a bool ``(n, n)`` ``graph``, each row attends over its linked
    rows (``softmax`` of ``LeakyReLU(a_1 . Wh_i + a_2 . Wh_j)``, non-links at -9e15, dropout on the
    attention); with ``graph=None`` each row is its own one-node graph: the attention is 1 on
    itself (dropped out like any attention weight in training), so the output is ``Wh``. ELU
    after when ``concat`` (a hidden head), none for the output layer.
    """

    def __init__(self, d_in: int, d_out: int, *, dropout: float, slope: float, concat: bool):
        super().__init__()
        self.dropout, self.slope, self.concat = float(dropout), float(slope), bool(concat)
        self.W = nn.Parameter(torch.empty(d_in, d_out))
        nn.init.xavier_uniform_(self.W, gain=1.414)
        self.a = nn.Parameter(torch.empty(2 * d_out, 1))
        nn.init.xavier_uniform_(self.a, gain=1.414)

    def forward(self, h: torch.Tensor, graph: torch.Tensor | None = None) -> torch.Tensor:
        Wh = h @ self.W
        if graph is None:
            weight = torch.ones(len(h), 1, dtype=h.dtype, device=h.device)
            out = F.dropout(weight, self.dropout, training=self.training) * Wh
        else:
            d = self.W.shape[1]
            e = F.leaky_relu(Wh @ self.a[:d] + (Wh @ self.a[d:]).T, self.slope)
            attention = torch.where(graph, e, torch.full_like(e, _NO_LINK))
            attention = F.dropout(torch.softmax(attention, dim=1), self.dropout,
                                  training=self.training)
            out = attention @ Wh
        return F.elu(out) if self.concat else out


class TextGAT(nn.Module):
    """The text hash net (``GATNet`` without its decoder, models.py:36-57): input dropout,
    ``n_heads`` hidden attention heads concatenated, dropout, the output attention layer,
    ``tanh(alpha x)``. ``forward(x)`` -- the encoder, each item a one-node graph; ``forward(x,
    graph)`` -- a batch over its text graph (training, and :func:`official_batched_text_codes`).
    """

    def __init__(self, d_in: int, n_bits: int, *, width: int, n_heads: int, dropout: float,
                 slope: float):
        super().__init__()
        self.dropout = float(dropout)
        self.heads = nn.ModuleList([
            GraphAttentionLayer(d_in, width, dropout=dropout, slope=slope, concat=True)
            for _ in range(n_heads)])
        self.out = GraphAttentionLayer(width * n_heads, n_bits, dropout=dropout, slope=slope,
                                       concat=False)
        self.tanh = ScaledTanh()

    def forward(self, x: torch.Tensor, graph: torch.Tensor | None = None) -> torch.Tensor:
        x = F.dropout(x, self.dropout, training=self.training)
        x = torch.cat([head(x, graph) for head in self.heads], dim=1)
        x = F.dropout(x, self.dropout, training=self.training)
        return self.tanh(self.out(x, graph))


class CCAHNet(nn.Module):
    """``encoders``: the image head (``fc_encode`` + ``tanh(alpha h)``) and the :class:`TextGAT`;
    training only: ``image_decoder`` (image code -> text size) and ``text_decoder`` (text code ->
    ``decoder_width``), each ``sigmoid(Linear)``."""

    def __init__(self, dims: Sequence[int], n_bits: int, *, image_width: int, gat_width: int,
                 n_heads: int, dropout: float, slope: float, decoder_width: int):
        super().__init__()
        d_image, d_text = dims
        self.encoders = nn.ModuleList([
            mlp(d_image, [image_width], n_bits, output=ScaledTanh()),
            TextGAT(d_text, n_bits, width=gat_width, n_heads=n_heads, dropout=dropout,
                    slope=slope),
        ])
        self.image_decoder = nn.Linear(n_bits, d_text)
        self.text_decoder = nn.Linear(n_bits, decoder_width)


# ---- the loss --------------------------------------------------------------------------------
def ccah_loss(model: CCAHNet, X_image: torch.Tensor, X_text: torch.Tensor,
              graph: torch.Tensor, *, mu: float, image_weight: float, eta: float,
              pair_weight: float = 1.0, decoder_weight: float = 1.0,
              symmetry_weight: float = 2.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The CCAH objective of one batch (train.py:89-135; module docstring): image features
    ``(m, d_I)``, text ``(m, d_T)``, the batch text ``graph`` bool ``(m, m)``. Returns the
    scalar loss and the unweighted terms ``tt``, ``it``, ``ii`` (loss1-3), ``pair`` (loss4),
    ``dec_image``, ``dec_text`` (loss5-6), ``sym`` (loss7), ``ii_image``, ``tt_text``
    (loss31-32) as floats."""
    with torch.no_grad():  # features only: the targets carry no gradient
        C_image = feature_similarity(X_image, rescale=False)
        C_text = feature_similarity(X_text, rescale=False)
        S_image, S_text = 2.0 * C_image - 1.0, 2.0 * C_text - 1.0
        S = mu * (image_weight * S_image + (1.0 - image_weight) * S_text)
    code_image = model.encoders[0](X_image)
    code_text = model.encoders[1](X_text, graph)
    decoded_text = torch.sigmoid(model.image_decoder(code_image))  # ImgNet's decoded_t
    decoded_image = torch.sigmoid(model.text_decoder(code_text))  # GATNet's decoded_i
    B_I, B_T = F.normalize(code_image, dim=1), F.normalize(code_text, dim=1)
    BI_BT = B_I @ B_T.T
    terms = {
        "tt": cosine_mse(B_T, B_T, S, normalized=True),
        "it": F.mse_loss(BI_BT, S),
        "ii": cosine_mse(B_I, B_I, S, normalized=True),
        "pair": F.mse_loss(BI_BT.diagonal(), torch.full_like(BI_BT.diagonal(), mu)),
        "dec_image": cosine_mse(decoded_image, decoded_image, C_image),
        "dec_text": cosine_mse(decoded_text, decoded_text, C_text),
        "sym": F.mse_loss(BI_BT, BI_BT.T),
        "ii_image": cosine_mse(B_I, B_I, mu * S_image, normalized=True),
        "tt_text": cosine_mse(B_T, B_T, mu * S_text, normalized=True),
    }
    total = (terms["tt"] + terms["it"] + terms["ii"] + pair_weight * terms["pair"]
             + decoder_weight * (terms["dec_image"] + terms["dec_text"])
             + symmetry_weight * terms["sym"] + eta * (terms["ii_image"] + terms["tt_text"]))
    return total, {k: float(v.detach()) for k, v in terms.items()}


# ---- the code's batch-dependent text codes (a study function) --------------------------------
def official_batched_text_codes(hasher: CCAH, text: np.ndarray, batch_size: int
                                ) -> np.ndarray:
    """Text codes as the official evaluation makes them (metric.py:6-41): ``text`` ``(n, d_T)``
    cut into consecutive batches of ``batch_size`` rows (the unshuffled test / database loader),
    each batch's rows run through the fitted hasher's GAT over that batch's
    :func:`official_adjacency` (the code's graph exactly, no added self-loops), ``sign``. int8
    ``(n, n_bits)`` in {-1, +1} (0 -> +1, as :meth:`encode`). A row's code depends on its batch:
    compare with ``hasher.encode(text, <text view>)``, the per-item codes."""
    if not hasattr(hasher, "_scorers"):
        raise NotFittedError("official_batched_text_codes needs a fitted CCAH")
    X = np.asarray(text, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != hasher.n_features_[hasher.modalities_[1]]:
        raise InvalidInputError(f"text must be (n, {hasher.n_features_[hasher.modalities_[1]]})"
                                f", got {X.shape}")
    if int(batch_size) < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    X = hasher._standardised(X, 1)
    net = hasher._scorers[1]  # float64, eval mode
    out = np.empty((len(X), int(hasher.n_bits)), dtype=np.int8)
    with torch.no_grad():
        for start in range(0, len(X), int(batch_size)):
            rows = X[start:start + int(batch_size)]
            graph = torch.from_numpy(official_adjacency(rows) > 0)
            scores = net(torch.from_numpy(rows), graph).numpy()
            out[start:start + len(rows)] = np.where(scores >= 0, 1, -1)
    return out


# ---- the hasher ------------------------------------------------------------------------------
class CCAH(DeepHasher):
    """CCAH on given image and text features (module docstring: sources, loss, deviations).

    Two views, image first, text second; the text view must be non-negative (counts, bag of
    words, TF-IDF, topic proportions) unless ``allow_negative_text``.

    Parameters
    ----------
    n_bits : code length (multiple of 8); 128, the code's CODE_LEN.
    mu : ``K``, the scale of the targets (1.5).
    image_weight : ``ALPHA``, the image share of ``S`` (in [0, 1]; 0.9).
    eta : ``ETA``, the weight of the single-modality targets ``mu S_I``, ``mu S_T`` (0.1).
    pair_weight, decoder_weight, symmetry_weight : the weights of loss4, of loss5 + loss6 and
        of loss7 (1, 1, 2: train.py:135).
    image_width : hidden width of the image head (1024).
    gat_width, n_heads : width and number of the hidden attention heads (1024, 8).
    dropout : the GAT's dropout on inputs, hidden units and attention (0.6).
    leaky_slope : the attention's LeakyReLU slope (0.2).
    decoder_width : output width of the text code's decoder (1024, the code's ``image_size``).
    allow_negative_text : False (default) refuses a text view with a negative entry; True links
        the items whose text vectors have a positive inner product.
    standardize : ``"auto"`` (default), True or False (ours). The image view is standardised
        with the training mean and deviation -- under ``"auto"`` only when its column
        deviations span more than 1,000x or its rows lie within 0.5 of their mean (the rule of
        :mod:`mmhash_baselines.deep._scaling`: wiki's SIFT histograms). The text view is only
        *divided* by its column deviations, never centred (non-negative features stay
        non-negative, the graph keeps its links) -- under ``"auto"`` only when they span more
        than 1,000x. The statistics are fitted state (``input_shift{0,1}_``,
        ``input_scale{0,1}_``), applied at encoding. CLIP features and tag counts (the code's
        inputs) are left untouched.
    n_epochs : fixed number of epochs (200).
    batch_size : rows per mini-batch, also the size of the training text graphs (16).
    optimizer : ``"sgd"`` (the code's: Nesterov momentum when ``momentum > 0``) or ``"adam"``.
    learning_rate, text_learning_rate : LR_IMG (image head and its decoder) and LR_TXT (GAT
        and its decoder), 0.005 each.
    momentum, weight_decay : 0.7 and 5e-4, both nets.
    validation_fraction : 0 (default) trains every training row for ``n_epochs``; a fraction
        in (0, 1) holds out that share and keeps the epoch with the lowest held-out loss.
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (a GPU when torch sees one, else the CPU), ``"cpu"``, ``"cuda[:N]"``.
    random_state : seeds initialisation, dropout, shuffling and the held-out rows.
    """

    name = "ccah"
    supported_views = (2, 2)
    conformance_params: ClassVar[dict[str, Any]] = {
        "image_width": 64, "gat_width": 16, "n_heads": 2, "decoder_width": 32,
        "n_epochs": 10, "batch_size": 32, "allow_negative_text": True, "n_threads": 1,
    }
    parameter_constraints = {
        "mu": Number(low=0, low_open=True),
        "image_weight": Number(0, 1),
        "eta": Number(low=0),
        "pair_weight": Number(low=0),
        "decoder_weight": Number(low=0),
        "symmetry_weight": Number(low=0),
        "image_width": Integer(minimum=1),
        "gat_width": Integer(minimum=1),
        "n_heads": Integer(minimum=1),
        "dropout": Number(0, 1, high_open=True),
        "leaky_slope": Number(low=0),
        "decoder_width": Integer(minimum=1),
        "allow_negative_text": Flag(),
        "standardize": Choice(STANDARDIZE_CHOICES),
        "text_learning_rate": Number(low=0, low_open=True),
    }

    def __init__(self, *, n_bits: int = 128, mu: float = 1.5, image_weight: float = 0.9,
                 eta: float = 0.1, pair_weight: float = 1.0, decoder_weight: float = 1.0,
                 symmetry_weight: float = 2.0, image_width: int = 1024, gat_width: int = 1024,
                 n_heads: int = 8, dropout: float = 0.6, leaky_slope: float = 0.2,
                 decoder_width: int = 1024, allow_negative_text: bool = False,
                 standardize: bool | str = "auto", n_epochs: int = 200,
                 batch_size: int = 16, optimizer: str = "sgd",
                 learning_rate: float = 0.005, text_learning_rate: float = 0.005,
                 momentum: float = 0.7, weight_decay: float = 5e-4,
                 validation_fraction: float = 0.0, n_threads: int | None = None,
                 device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.mu = mu
        self.image_weight = image_weight
        self.eta = eta
        self.pair_weight = pair_weight
        self.decoder_weight = decoder_weight
        self.symmetry_weight = symmetry_weight
        self.image_width = image_width
        self.gat_width = gat_width
        self.n_heads = n_heads
        self.dropout = dropout
        self.leaky_slope = leaky_slope
        self.decoder_width = decoder_width
        self.allow_negative_text = allow_negative_text
        self.standardize = standardize
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

    def _fit(self, views: dict[str, np.ndarray], **kwargs: Any) -> None:
        name, T = list(views.items())[1]
        if not self.allow_negative_text and (T < 0).any():
            raise InvalidInputError(
                f"CCAH's text view {name!r} has negative entries (min {T.min():.4g}): its "
                "text graph links items that share a word (sign(T T^T)) and needs "
                "non-negative text features (counts, bag of words, TF-IDF, topic proportions); "
                "pass allow_negative_text=True to link items whose text vectors have a positive "
                "inner product instead")
        scaled = {}
        for i, (modality, X) in enumerate(views.items()):
            shift, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
            if i == 0 and (self.standardize is True or (
                    self.standardize == "auto" and needs_standardising(X))):
                shift, scale = Standardize.statistics(X)
            elif i == 1 and (self.standardize is True or (
                    self.standardize == "auto" and column_spread(X) > SPREAD_LIMIT)):
                _, scale = Standardize.statistics(X)  # scaled only: the graph keeps its links
            setattr(self, f"input_shift{i}_", shift)
            setattr(self, f"input_scale{i}_", scale)
            scaled[modality] = self._standardised(X, i)
        super()._fit(scaled, **kwargs)

    def _standardised(self, X: np.ndarray, i: int) -> np.ndarray:
        """``(X - input_shift{i}_) / input_scale{i}_`` (the text view is never shifted); ``X``
        itself for the identity (the code's raw inputs)."""
        shift, scale = getattr(self, f"input_shift{i}_"), getattr(self, f"input_scale{i}_")
        if not shift.any() and (scale == 1.0).all():
            return X
        return Standardize.transform(X, shift, scale)

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        return super()._encode(self._standardised(X, self.modalities_.index(modality)), modality)

    def _build_model(self, dims: list[int]) -> CCAHNet:
        return CCAHNet(dims, int(self.n_bits), image_width=int(self.image_width),
                       gat_width=int(self.gat_width), n_heads=int(self.n_heads),
                       dropout=float(self.dropout), slope=float(self.leaky_slope),
                       decoder_width=int(self.decoder_width))

    def _begin_epoch(self, state: TrainingState) -> None:
        set_alpha(state.model, sqrt_schedule(state.epoch))

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        model = state.model
        groups = [
            {"params": [*model.encoders[0].parameters(), *model.image_decoder.parameters()],
             "lr": float(self.learning_rate)},
            {"params": [*model.encoders[1].parameters(), *model.text_decoder.parameters()],
             "lr": float(self.text_learning_rate)},
        ]
        if self.optimizer != "sgd" or float(self.momentum) == 0:
            return {"model": Part(groups)}
        momentum, decay = float(self.momentum), float(self.weight_decay)
        return {"model": Part(groups, optimizer=lambda params: torch.optim.SGD(
            params, lr=float(self.learning_rate), momentum=momentum, weight_decay=decay,
            nesterov=True, fused=True))}

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        X_image, X_text = batch
        return ccah_loss(state.model, X_image, X_text, text_graph(X_text), mu=float(self.mu),
                         image_weight=float(self.image_weight), eta=float(self.eta),
                         pair_weight=float(self.pair_weight),
                         decoder_weight=float(self.decoder_weight),
                         symmetry_weight=float(self.symmetry_weight))

