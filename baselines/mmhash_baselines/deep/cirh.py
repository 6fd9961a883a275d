"""CIRH: Cross-modal Interaction and Reconstruction Hashing (Zhu, Wu, Li, Zhang, Guan, Shen;
IEEE TKDE 2022).

Needs PyTorch (``pip install 'mmhash-baselines[deep]'``). Followed: the official code
(github.com/XizeWu/CIRH @ 0f6439d; file:line below). The paper's full text was not available to
us (only its abstract: a multi-modal collaborated graph, intra- and cross-modal aggregation on
homogeneous and heterogeneous graph networks, correlation and identity reconstruction), so the
code is authoritative throughout. Image features ``X_I`` are the first view, text ``X_T`` the
second; ``n`` is the number of training rows.

Global similarity (my_opt.py:189-208), built once over the whole training set, no gradient
    ``S1 = a1 cos(X_I) + (1 - a1) cos(X_T)`` (cosines of L2-normalised rows; here ``a1`` weights
    the *image* side), each row truncated to its ``k`` largest entries -- the item itself
    included -- the others set to 0 (:func:`mmhash.deep.keep_largest`; no row normalisation, not
    symmetrised). ``S2 = 2 / (1 + exp(-S1)) - 1 + I = tanh(S1 / 2) + I``, symmetrised
    ``(S2 + S2^T) / 2``; ``S = a2 S1 + (1 - a2) S2`` (:func:`cirh_similarity`). With non-negative
    features ``S`` is never negative (a truncated pair gets 0, not -1) and its diagonal is about
    ``a2 + (1 - a2)(1 + tanh 0.5)``.

    **The neighbour count** ``n_neighbors = k`` is the number of entries each row keeps; the
    code's ``K`` is its complement, the number zeroed (``n - K`` kept, my_opt.py:201-202). The
    code's MIRFlickr ``K = 3000`` at ``n = 5000`` training rows (the training-set size of the
    DJSRH line of work that CIRH's MIRFlickr files come from; not verifiable here: the .mat files
    are not public) keeps ``k = 2000``, 40% of the training set. The default ``n_neighbors=None``
    keeps that share of any training set (``round(0.4 n)``), so it equals the code at its ``n``
    and never refuses a smaller set.

Stage 1, the graph model (MyNet, models.py:8-116; my_opt.py:48-95)
    On each shuffled batch of ``b`` rows, with ``A = S[rows][:, rows]`` (by the rows' ids,
    my_opt.py:60), the raw features are first mixed with two graph neighbours:
    ``X~ = 0.7 X + 0.2 X[3rd] + 0.1 X[4th]``, the 3rd- and 4th-largest entries of the row of
    ``A`` (the largest is the item itself; the code's ``sort()[:, -4:-1]`` never uses the
    2nd-largest, my_opt.py:181-187 -- followed, as the paper is not available to say otherwise;
    :func:`neighbour_mix`). Then, with ``w = 512``:
    encoders ``V_m = normalize(ReLU(BN(Linear(d_m -> w)(X~_m))))``;
    intra-modal graph convolution ``G_m = ReLU(BN(A V_m W_m))``;
    joint (cross-modal) graph convolution over the ``2b``-node graph ``[[A, I], [I, A]]``:
    ``J = BN([[A, I], [I, A]] [V_I; V_T] W_J)`` (one ``W_J`` for both modalities, batch norm over
    the ``2b`` rows, :func:`joint_propagation`), ``V_J = ReLU(J[:b] + J[b:])``;
    heads ``H_J = BN(Linear(V_J))``, ``H_I = BN(Linear([G_I, V_J]))``,
    ``H_T = BN(Linear([V_J, G_T]))``, fused ``H = tanh(BN(Linear([H_I, H_J, H_T])))``,
    ``B = sign(H)``; decoders ``De_m = BN(Linear(ReLU(BN(Linear(H + tanh(H_m))))))`` back to
    ``d_m``. ``A`` is used as the adjacency as it is (no degree normalisation, as in the code).
    Loss (my_opt.py:77-78, 210-224; :func:`cirh_graph_loss`):
    ``lambda1 [MSE(De_I, X~_I) + MSE(De_T, X~_T)] + lambda2 [MSE(A, cos(H_I, H_I))
    + MSE(A, cos(H_T, H_T)) + MSE(A, cos(H, H))] + MSE(H, B)``, one optimiser step on the graph
    model. ``B`` of each batch's forward pass (train mode, before its update) is recorded: one
    code per training row per epoch (my_opt.py:72-73).

Stage 2, the hash networks (Img_Net / Txt_Net, models.py:119-155; my_opt.py:97-153)
    ``h_I = tanh(Linear(4096 -> n_bits)(Dropout(0.3)(ReLU(Linear(d_I -> 4096)(normalize(x))))))``
    and the same for text with hidden width ``d_T`` (the code's Txt_Net, models.py:142); the
    last weights drawn from ``N(0, 1)`` (models.py:129, 148). They see L2-normalised features,
    in training and at test time (my_opt.py:109-110, utils.py:114-140): the normalisation is
    their first layer. After stage 1, the same batches in the same order (the code's chunk
    ``kk`` is stage-1 batch ``kk``) train them on (:func:`cirh_hash_loss`)
    ``MSE(h_I, B) + MSE(h_T, B) + MSE(h_I, h_T) + beta [MSE(cos(h_I, h_T), S_b)
    + MSE(cos(h_I, h_I), S_b) + MSE(cos(h_T, h_T), S_b)]``, one step on both nets per batch.
    **Only these two networks are the out-of-sample encoders** (``encoders``): kept, saved and
    used by ``encode``; the graph model serves training only (it needs a batch graph).

    **Fixed bug.** The official stage 2 slices the similarity by batch *position*,
    ``S_cmm[kk*BS:(kk+1)*BS, kk*BS:(kk+1)*BS]`` (my_opt.py:120-121, 126), while its features
    and codes are the *shuffled* rows ``record_index[kk*BS:(kk+1)*BS]``: the targets belong to
    unrelated items. Here ``S_b = S[rows][:, rows]`` by the rows' ids (``with_row_ids``), as
    stage 1 does.

Optimisation (my_opt.py:41-43; main_mir.py:61-78)
    Adam (default betas, no weight decay) for each network: the graph model at
    ``graph_learning_rate`` 1e-3, the hash networks at ``learning_rate`` 1e-4 (the code's
    ``LR_IMG = LR_TXT``; one optimiser per stage here, the declared parts ``graph`` and ``hash``:
    Adam keeps per-parameter state, so one optimiser over both hash networks updates them as
    the code's two do). Stage 1 is the step (``CIRH._updates``), stage 2 the epoch's updates
    after it (``CIRH._epoch_updates``). Batch 512 in
    both stages, 60 epochs, no schedule. Defaults: the code's MIRFlickr setting (main_mir.py;
    the field's main benchmark): ``K=3000 (k=2000), a1=a2=0.6, lambda1=10, lambda2=1,
    beta=0.01``, ``n_bits=16`` (HASH_BIT). The other datasets of the code (no Wiki setting):

    * NUS-WIDE (main_nus.py:62-79): ``K=3300, a1=a2=0.5, graph_learning_rate=1e-4,
      learning_rate=1e-4, n_epochs=120``;
    * MS-COCO (main_coco.py:61-77): ``K=3000, a1=0.1, a2=0.3, graph_learning_rate=1e-3,
      learning_rate=5e-4, n_epochs=100``.

Model selection. The code evaluates the *test queries* every 10 epochs and keeps the best
checkpoint (main_mir.py:40-47); never here. ``validation_fraction = 0`` (default) trains the
fixed ``n_epochs``. ``validation_fraction > 0`` holds out that share of the training rows and
keeps the hash networks of the epoch with the lowest held-out stage-2 loss, its code targets
``B = sign(H)`` given by the graph model (eval mode) on the held-out rows and their own block
``S[val][:, val]`` -- no labels, no queries; no early stopping (the code has none).

``history_``: per epoch, ``loss`` is stage 1's mean loss, ``stage2_loss`` stage 2's,
``stage1_seconds`` and ``stage2_seconds`` the time of each stage (``seconds`` is the whole epoch,
held-out loss included).

Memory: the similarity is built as dense float32 ``n x n`` matrices, about six alive at the peak
(while the two cosine matrices are fused; ``24 n^2`` bytes: 2.4 GB at ``n = 10000``) and one
kept during training (``4 n^2``); training sets above ``max_samples`` rows (default 12000, so
the NUS-WIDE protocol's 10,500 training pairs fit: 2.6 GB at the peak there) are refused before
anything is built.

Also differs from the code: the last batch of an epoch keeps every row (the code's loaders keep
a short last batch too; mmhash merges a single leftover row into the batch before, and a batch
of fewer than 4 rows mixes with its last-ranked rows instead of the 3rd and 4th).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists cirh as unavailable with this message
    raise ImportError(
        "CIRH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import (
    DeepHasher,
    Part,
    ScaledTanh,
    TrainingState,
    Updates,
    cosine_mse,
    feature_similarity,
    fused_similarity,
    keep_largest,
    mlp,
    pair_block,
)
from mmhash.errors import InvalidInputError
from mmhash.params import Integer, Number

from ._graph import check_neighbours, neighbours_for, training_tensors

#: Dense float32 n x n matrices alive at the peak of :func:`cirh_similarity` (for the refusal).
PEAK_MATRICES = 6


# ---- the global similarity -------------------------------------------------------------------
def cirh_similarity(X_image: torch.Tensor, X_text: torch.Tensor, *, image_weight: float,
                    cosine_weight: float, n_neighbors: int) -> torch.Tensor:
    """CIRH's ``S_cmm`` over every training row (module docstring; my_opt.py:189-208).

    ``X_image`` ``(n, d_I)``, ``X_text`` ``(n, d_T)``, rows paired. ``S1 = a1 cos_I + (1 - a1)
    cos_T`` (``a1 = image_weight``) kept at each row's ``n_neighbors`` largest entries;
    ``S2 = sym(tanh(S1 / 2) + I)``; returns ``a2 S1 + (1 - a2) S2`` (``a2 = cosine_weight``),
    ``(n, n)`` in the inputs' dtype and device (not symmetric in general).
    """
    S1 = keep_largest(
        fused_similarity([feature_similarity(X_image, rescale=False),
                          feature_similarity(X_text, rescale=False)],
                         [image_weight, 1.0 - image_weight]),
        n_neighbors)
    S2 = torch.tanh(S1 / 2.0)  # = 2 / (1 + exp(-S1)) - 1
    S2.diagonal().add_(1.0)
    S2 = (S2 + S2.T) / 2.0
    return S2.mul_(1.0 - cosine_weight).add_(S1, alpha=cosine_weight)


# ---- stage 1: the graph model -------------------------------------------------------------------
def neighbour_mix(X: torch.Tensor, A: torch.Tensor, *, own: float = 0.7, third: float = 0.2,
                  fourth: float = 0.1) -> torch.Tensor:
    """``own X + third X[r3] + fourth X[r4]`` (my_opt.py:62-68, 181-187): each row of ``X``
    ``(b, d)`` mixed with the rows at the 3rd- and 4th-largest entries of its row of the batch
    graph ``A`` ``(b, b)`` (the largest being the item itself). With fewer than 4 rows the ranks
    stop at the last one. ``(b, d)``."""
    b = len(A)
    order = A.topk(min(4, b), dim=1).indices  # descending: rank 1, 2, 3, 4
    r3, r4 = order[:, min(2, b - 1)], order[:, min(3, b - 1)]
    return own * X + third * X.index_select(0, r3) + fourth * X.index_select(0, r4)


def joint_propagation(A: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """``[[A, I], [I, A]] U`` for ``U = [U_I; U_T]`` ``(2b, w)`` and ``A`` ``(b, b)``: the joint
    graph convolution's propagation over image and text nodes (models.py:93-98), without
    building the ``2b x 2b`` matrix. ``(2b, w)``."""
    b = len(A)
    U_image, U_text = U[:b], U[b:]
    return torch.cat([A @ U_image + U_text, U_image + A @ U_text])


def _coder(d_in: int, width: int, d_out: int) -> nn.Sequential:
    """``Linear -> BN -> ReLU -> Linear -> BN`` (the code's decoders, models.py:24-31)."""
    return nn.Sequential(nn.Linear(d_in, width), nn.BatchNorm1d(width), nn.ReLU(),
                         nn.Linear(width, d_out), nn.BatchNorm1d(d_out))


class GraphModel(nn.Module):
    """MyNet (models.py:8-116): encoders, intra-modal and joint graph convolutions, hash heads
    and decoders (module docstring). Layers are created in the code's order."""

    def __init__(self, d_image: int, d_text: int, n_bits: int, width: int = 512):
        super().__init__()
        self.encoder_image = nn.Sequential(nn.Linear(d_image, width), nn.BatchNorm1d(width),
                                           nn.ReLU())
        self.gcn_image = nn.Linear(width, width)
        self.bn_image = nn.BatchNorm1d(width)
        self.decoder_image = _coder(n_bits, width, d_image)
        self.encoder_text = nn.Sequential(nn.Linear(d_text, width), nn.BatchNorm1d(width),
                                          nn.ReLU())
        self.gcn_text = nn.Linear(width, width)
        self.bn_text = nn.BatchNorm1d(width)
        self.decoder_text = _coder(n_bits, width, d_text)
        self.gcn_joint = nn.Linear(width, width)
        self.bn_joint = nn.BatchNorm1d(width)
        self.head_joint = nn.Linear(width, n_bits)
        self.head_image = nn.Linear(2 * width, n_bits)
        self.head_text = nn.Linear(2 * width, n_bits)
        self.head_fused = nn.Linear(3 * n_bits, n_bits)
        self.bn_head_image = nn.BatchNorm1d(n_bits)
        self.bn_head_text = nn.BatchNorm1d(n_bits)
        self.bn_head_joint = nn.BatchNorm1d(n_bits)
        self.bn_head_fused = nn.BatchNorm1d(n_bits)

    def forward(self, X_image: torch.Tensor, X_text: torch.Tensor, A: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        """``(H_I, H_T, H, De_I, De_T)`` for a batch ``(b, d_m)`` and its graph ``A`` ``(b, b)``:
        codes ``(b, n_bits)`` (``H`` in ``(-1, 1)``) and reconstructions ``(b, d_m)``."""
        b = len(A)
        V_image = F.normalize(self.encoder_image(X_image), dim=1)
        V_text = F.normalize(self.encoder_text(X_text), dim=1)
        G_image = F.relu(self.bn_image(A @ self.gcn_image(V_image)))
        G_text = F.relu(self.bn_text(A @ self.gcn_text(V_text)))
        J = self.bn_joint(joint_propagation(A, self.gcn_joint(torch.cat([V_image, V_text]))))
        V_joint = F.relu(J[:b] + J[b:])
        H_joint = self.bn_head_joint(self.head_joint(V_joint))
        H_image = self.bn_head_image(self.head_image(torch.cat([G_image, V_joint], dim=1)))
        H_text = self.bn_head_text(self.head_text(torch.cat([V_joint, G_text], dim=1)))
        H = torch.tanh(self.bn_head_fused(self.head_fused(
            torch.cat([H_image, H_joint, H_text], dim=1))))
        De_image = self.decoder_image(H + torch.tanh(H_image))
        De_text = self.decoder_text(H + torch.tanh(H_text))
        return H_image, H_text, H, De_image, De_text


def cirh_graph_loss(H_image: torch.Tensor, H_text: torch.Tensor, H: torch.Tensor,
                    De_image: torch.Tensor, De_text: torch.Tensor, X_image: torch.Tensor,
                    X_text: torch.Tensor, A: torch.Tensor, *, reconstruction_weight: float = 10.0,
                    similarity_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage 1's loss (my_opt.py:77-78, 210-224) for the graph model's outputs, the mixed
    inputs ``X_m`` ``(b, d_m)`` and the batch graph ``A`` ``(b, b)``: ``lambda1`` times the
    reconstruction, ``lambda2`` times the three cosine fits of ``A`` (diagonal included), plus
    ``MSE(H, sign(H))``. Returns the scalar and the unweighted parts ``reconstruction``,
    ``similarity``, ``quantization``."""
    reconstruction = F.mse_loss(De_image, X_image) + F.mse_loss(De_text, X_text)
    similarity = (cosine_mse(H_image, H_image, A) + cosine_mse(H_text, H_text, A)
                  + cosine_mse(H, H, A))
    # sign() has no gradient: this pulls H towards its own signs.
    quantization = F.mse_loss(H, torch.sign(H).detach())
    total = (reconstruction_weight * reconstruction + similarity_weight * similarity
             + quantization)
    parts = {"reconstruction": reconstruction, "similarity": similarity,
             "quantization": quantization}
    return total, {key: float(value.detach()) for key, value in parts.items()}



def graph_loss(graph: GraphModel, X_image: torch.Tensor, X_text: torch.Tensor, A: torch.Tensor,
               *, mix: Sequence[float], reconstruction_weight: float, similarity_weight: float
               ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """Stage 1's objective on a batch (my_opt.py:55-84): mix the inputs, run the graph model.
    Returns the loss, its parts and the batch's codes ``sign(H)`` ``(b, n_bits)`` from this
    forward pass, before the update (the code's ``coll_B``)."""
    own, third, fourth = mix
    # One graph for both modalities: the same neighbours (the code's Iind == Tind).
    X_image = neighbour_mix(X_image, A, own=own, third=third, fourth=fourth)
    X_text = neighbour_mix(X_text, A, own=own, third=third, fourth=fourth)
    H_image, H_text, H, De_image, De_text = graph(X_image, X_text, A)
    loss, parts = cirh_graph_loss(H_image, H_text, H, De_image, De_text, X_image, X_text, A,
                                  reconstruction_weight=reconstruction_weight,
                                  similarity_weight=similarity_weight)
    return loss, parts, torch.sign(H).detach()


# ---- stage 2: the hash networks -----------------------------------------------------------------
def cirh_hash_loss(h_image: torch.Tensor, h_text: torch.Tensor, B: torch.Tensor,
                   S: torch.Tensor, *, beta: float = 0.01) -> torch.Tensor:
    """Stage 2's loss (my_opt.py:134-141): the hash nets' outputs ``(b, n_bits)`` fitted to the
    graph model's codes ``B`` and to each other, plus ``beta`` times the three cosine fits of the
    batch's targets ``S`` ``(b, b)`` -- which must be the rows' own block (see the fixed bug)."""
    fit = F.mse_loss(h_image, B) + F.mse_loss(h_text, B) + F.mse_loss(h_image, h_text)
    similarity = (cosine_mse(h_image, h_text, S) + cosine_mse(h_image, h_image, S)
                  + cosine_mse(h_text, h_text, S))
    return fit + beta * similarity


def hash_network_updates(image_net: nn.Module, text_net: nn.Module,
                         batches: Sequence[tuple[torch.Tensor, ...]], S: torch.Tensor, *,
                         beta: float) -> Updates:
    """Stage 2 of one epoch (my_opt.py:97-153): one update of the ``"hash"`` part per recorded
    stage-1 batch ``(X_image, X_text, rows, B)``, in stage 1's order, with targets
    ``S[rows][:, rows]`` by the rows' ids (the fix). Returns the mean loss per row."""
    total, count = 0.0, 0
    for X_image, X_text, rows, B in batches:
        loss = cirh_hash_loss(image_net(X_image), text_net(X_text), B, pair_block(S, rows),
                              beta=beta)
        yield loss, "hash"
        total += float(loss.detach()) * len(rows)
        count += len(rows)
    return total / count


def _hash_net(d: int, width: int, n_bits: int, dropout: float,
              init_std: float | None) -> nn.Sequential:
    net = mlp(d, [width], n_bits, dropout=dropout, normalize_input=True, output=ScaledTanh())
    if init_std is not None:
        last = [m for m in net if isinstance(m, nn.Linear)][-1]
        nn.init.normal_(last.weight, mean=0.0, std=init_std)
    return net


class CIRHNet(nn.Module):
    """The graph model (``graph``, training only) and the hash networks (``encoders``
    ``[image, text]``, ``(b, d_m)`` -> ``(b, n_bits)`` tanh outputs on L2-normalised rows)."""

    def __init__(self, dims: list[int], n_bits: int, *, graph_width: int, image_width: int,
                 text_width: int | None, dropout: float, init_std: float | None):
        super().__init__()
        self.graph = GraphModel(dims[0], dims[1], n_bits, graph_width)
        self.encoders = nn.ModuleList([
            _hash_net(dims[0], image_width, n_bits, dropout, init_std),
            _hash_net(dims[1], dims[1] if text_width is None else text_width, n_bits, dropout,
                      init_std)])


# ---- the hasher ------------------------------------------------------------------------------
class CIRH(DeepHasher):
    """CIRH: graph-model codes for the training set, learned by hash networks (TKDE 2022).

    Zhu et al., TKDE 2022: a joint graph model produces the training codes, per-modality hash
    networks learn them.

    Two views (image first, text second). See the module docstring for the similarity, both
    stages, the fixed stage-2 indexing and every choice against the official code. Fitting
    holds one float32 ``n x n`` matrix over the training rows (about six while it is built).

    Parameters
    ----------
    n_bits : code length (multiple of 8; the code's default 16).
    image_weight : ``a1``, the image cosine's weight in ``S1`` (0.6; the text's is ``1 - a1``).
    cosine_weight : ``a2``, the weight of ``S1`` against ``S2`` in ``S`` (0.6).
    n_neighbors : entries each row of ``S1`` keeps, the item itself included; None (default) is
        40% of the training rows (2000 at ``n = 5000``, the code's ``K = 3000`` zeroed); at most
        the number of training rows.
    mix_own, mix_third, mix_fourth : weights of an item and of its 3rd- and 4th-ranked batch
        neighbours in stage 1's input mixing (0.7, 0.2, 0.1).
    reconstruction_weight : ``lambda1``, weight of stage 1's reconstruction (10).
    similarity_weight : ``lambda2``, weight of stage 1's cosine fits of ``S`` (1).
    hash_similarity_weight : ``beta``, weight of stage 2's cosine fits of ``S`` (0.01).
    graph_width : width of the graph model's layers (512).
    image_width : hidden width of the image hash net (4096).
    text_width : hidden width of the text hash net; None (default) is the text dimension, as
        in the code.
    dropout : dropout in the hash nets, training only (0.3).
    init_std : standard deviation of the hash nets' last weights (1.0); None keeps PyTorch's
        default initialisation.
    graph_learning_rate : Adam learning rate of the graph model (1e-3).
    max_samples : training rows above which fit refuses (the ``n x n`` matrices; 12000).
    n_epochs : epochs, each stage 1 then stage 2 (60).
    batch_size : rows per batch in both stages (512).
    optimizer, learning_rate, momentum, weight_decay : ``"adam"`` with learning rate 1e-4 for
        the hash networks (the graph model's is ``graph_learning_rate``), no weight decay;
        ``momentum`` is used by ``"sgd"`` only.
    validation_fraction : 0 trains ``n_epochs`` epochs on every row. A fraction in (0, 1) holds
        out that share of the training rows and keeps the hash networks of the epoch with the
        lowest held-out stage-2 loss (module docstring) -- no labels, no queries.
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : where training runs: ``"auto"`` (default: a GPU when torch sees one, else the CPU),
        ``"cpu"`` or ``"cuda"``/``"cuda:N"``; the kept encoders always encode on the CPU.
    random_state : seeds the initialisation, dropout, the shuffling and the held-out rows;
        the same value gives identical codes on the CPU (same ``n_threads``).
    """

    name = "cirh"
    supported_views = (2, 2)
    with_row_ids = True
    conformance_params: ClassVar[dict[str, Any]] = {
        "n_neighbors": 40, "graph_width": 32, "image_width": 64, "n_epochs": 8,
        "batch_size": 100, "graph_learning_rate": 1e-2, "learning_rate": 3e-3,
        "n_threads": 1,
    }
    #: n_neighbors and max_samples against the training rows need the data: _fit checks them
    #: before anything is built.
    parameter_constraints = {
        "image_weight": Number(0, 1), "cosine_weight": Number(0, 1),
        "mix_own": Number(low=0), "mix_third": Number(low=0), "mix_fourth": Number(low=0),
        "reconstruction_weight": Number(low=0), "similarity_weight": Number(low=0),
        "hash_similarity_weight": Number(low=0),
        "graph_width": Integer(minimum=1), "image_width": Integer(minimum=1),
        "max_samples": Integer(minimum=1),
        "n_neighbors": Integer(minimum=1, none=True),
        "text_width": Integer(minimum=1, none=True),
        "dropout": Number(0, 1, high_open=True),
        "init_std": Number(low=0, low_open=True, none=True),
        "graph_learning_rate": Number(low=0, low_open=True),
    }

    def __init__(self, *, n_bits: int = 16, image_weight: float = 0.6,
                 cosine_weight: float = 0.6, n_neighbors: int | None = None, mix_own: float = 0.7,
                 mix_third: float = 0.2, mix_fourth: float = 0.1,
                 reconstruction_weight: float = 10.0, similarity_weight: float = 1.0,
                 hash_similarity_weight: float = 0.01, graph_width: int = 512,
                 image_width: int = 4096, text_width: int | None = None, dropout: float = 0.3,
                 init_std: float | None = 1.0, graph_learning_rate: float = 1e-3,
                 max_samples: int = 12000, n_epochs: int = 60, batch_size: int = 512,
                 optimizer: str = "adam", learning_rate: float = 1e-4, momentum: float = 0.9,
                 weight_decay: float = 0.0, validation_fraction: float = 0.0,
                 n_threads: int | None = None, device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.image_weight = image_weight
        self.cosine_weight = cosine_weight
        self.n_neighbors = n_neighbors
        self.mix_own = mix_own
        self.mix_third = mix_third
        self.mix_fourth = mix_fourth
        self.reconstruction_weight = reconstruction_weight
        self.similarity_weight = similarity_weight
        self.hash_similarity_weight = hash_similarity_weight
        self.graph_width = graph_width
        self.image_width = image_width
        self.text_width = text_width
        self.dropout = dropout
        self.init_std = init_std
        self.graph_learning_rate = graph_learning_rate
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
    # -- training --------------------------------------------------------------------------------
    def _begin_training(self, state: TrainingState) -> None:
        n = len(state.arrays[0])
        self.n_neighbors_ = neighbours_for(n, self.n_neighbors)
        check_neighbours(n, n_neighbors=self.n_neighbors_, max_samples=int(self.max_samples),
                         method="CIRH", n_matrices=PEAK_MATRICES)
        X_image, X_text = training_tensors(state.arrays, state.device)
        with torch.no_grad():
            state.S = cirh_similarity(X_image, X_text, image_weight=float(self.image_weight),
                                      cosine_weight=float(self.cosine_weight),
                                      n_neighbors=self.n_neighbors_)

    def _build_model(self, dims: list[int]) -> CIRHNet:
        if len(dims) != 2:
            raise InvalidInputError(f"CIRH takes two views (image, text), got {len(dims)}")
        return CIRHNet(dims, int(self.n_bits), graph_width=int(self.graph_width),
                       image_width=int(self.image_width),
                       text_width=None if self.text_width is None else int(self.text_width),
                       dropout=float(self.dropout),
                       init_std=None if self.init_std is None else float(self.init_std))

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        """The graph model (stage 1) at ``graph_learning_rate``, the hash networks (stage 2) at
        the hasher's ``learning_rate``."""
        model = state.model
        return {"graph": Part(model.graph.parameters(),
                              learning_rate=float(self.graph_learning_rate)),
                "hash": Part(model.encoders.parameters())}

    def _mix(self) -> tuple[float, float, float]:
        return float(self.mix_own), float(self.mix_third), float(self.mix_fourth)

    def _begin_epoch(self, state: TrainingState) -> None:
        state.batches = []  # stage 1's batches and codes, for stage 2
        state.epoch_started = time.perf_counter()

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        """Stage 1: one update of the graph model; the batch and its codes are kept for
        stage 2."""
        X_image, X_text, rows = batch
        loss, parts, codes = graph_loss(
            state.model.graph, X_image, X_text, pair_block(state.S, rows), mix=self._mix(),
            reconstruction_weight=float(self.reconstruction_weight),
            similarity_weight=float(self.similarity_weight))
        yield loss, "graph"
        state.batches.append((X_image, X_text, rows, codes))
        return float(loss.detach()), parts

    def _epoch_updates(self, state: TrainingState) -> Updates:
        """Stage 2: the hash networks on stage 1's batches, after every stage-1 update."""
        stage2_start = time.perf_counter()
        image_net, text_net = state.model.encoders
        loss = yield from hash_network_updates(image_net, text_net, state.batches, state.S,
                                               beta=float(self.hash_similarity_weight))
        state.batches = []
        return {"stage2_loss": loss, "stage1_seconds": stage2_start - state.epoch_started,
                "stage2_seconds": time.perf_counter() - stage2_start}

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        # The held-out criterion (eval mode): stage 2's loss against the graph model's codes.
        model = state.model
        X_image, X_text, rows = batch
        A = pair_block(state.S, rows)
        own, third, fourth = self._mix()
        _, _, H, _, _ = model.graph(neighbour_mix(X_image, A, own=own, third=third,
                                                  fourth=fourth),
                                    neighbour_mix(X_text, A, own=own, third=third,
                                                  fourth=fourth), A)
        image_net, text_net = model.encoders
        loss = cirh_hash_loss(image_net(X_image), text_net(X_text), torch.sign(H), A,
                              beta=float(self.hash_similarity_weight))
        return loss, {}
