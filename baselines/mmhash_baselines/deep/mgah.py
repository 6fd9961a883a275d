"""MGAH: Multi-Pathway Generative Adversarial Hashing (Zhang, Peng; IEEE TMM 2019/2020), a
reconstruction.

Needs PyTorch. The paper's text could not be read beyond its abstract; the method card
``docs/methods/mgah.md`` lists the sentences used (S1-S7), the code facts (C1-C14) and every
choice that is ours; the labels below refer to it. Sources: the MGAH abstract; UGACH (Zhang,
Peng, Yuan, AAAI 2018, the two-modality method MGAH extends) through its abstract and its official
code (github.com/PKU-ICST-MIPL/UGACH_AAAI2018 @ 98c163f); MGAH's official repository
(github.com/PKU-ICST-MIPL/MGAH_TMM2019 @ 0286d3b), which holds only the discriminator stage for
five media (its generator is defined but never trained) and whose README sends two-media users to
the UGACH code. ``file:line`` below refers to those commits.

Setting: features only. Every network is a head on the given feature vectors of its modality
(the codes feed VGG-19 fc7 image features, no fine-tuned CNN). Views are standardised per column
with the training mean and standard deviation first (``standardize=True``: MGAH's
``feature_znorm`` inputs, train_argv.py:53-57), and both the networks and the correlation graph
see the standardised features.

Multi-pathway correlation graph (built once from the features; S4, S5; C1, C2)
    For each modality ``m``, ``kNN_m(i)``: the ``n_neighbors`` training items nearest to item ``i``
    by Euclidean distance in modality ``m`` (the item itself first). ``N(i) = union_m kNN_m(i)``;
    with two modalities and 5 neighbours each this is UGACH's ``KNN_cross`` (5 image + 5 text
    neighbours, knn_mir_cross5.py:72-79). Items of ``N(i)`` in any modality are the "true
    positives" of query ``i``. Fit rows get their neighbours among the fit rows, held-out rows
    among the held-out rows. Computed in row chunks: no ``n x n`` matrix is ever held.

Networks (S6; C3, C4): per modality ``m`` a discriminator / hash network ``f_m`` and a generator
    network ``g_m``, both ``x -> Linear(d_m, hidden_width) -> tanh -> Linear(hidden_width,
    n_bits) -> sigmoid`` (dis_model_nn.py / gen_model_nn.py of both codes). The hash code of an
    item is ``sigmoid(f_m(x)) > 0.5``, i.e. ``sign`` of the hash layer's output (test_16.py: the
    discriminator encodes); the generators are training only.

Pathways (S3): every ordered pair of modalities ``a -> m`` (``a != m``): a query of modality ``a``,
    candidates of modality ``m``.

Generator (S3, S4, S6; C5): for query ``i`` and candidates ``j`` (the other rows of the mini-batch
    that are not in ``N(i)``: ours, for CPU cost; UGACH draws a random 1/50 of the training set),
    ``p_{a->m}(j | i) = softmax_j(-||g_a(x_i) - g_m(x_j)||^2)``; ``n_samples`` candidates per
    query and pathway are drawn with replacement.

Discriminator (S4; C6, C7): a tuple ``(i, {p_m}, {n_m})`` per anchor modality ``a``, with a true
    positive ``p_m`` drawn uniformly from ``N(i)`` and a generated negative ``n_m`` for every
    other modality ``m``; with ``h = sigmoid(f(x))``,
    ``d_pos = sum_{m != a} ||h_a(i) - h_m(p_m)||^2``, ``d_neg = sum_{m != a} ||h_a(i) -
    h_m(n_m)||^2`` (MGAH's sum over pathways, dis_model_nn.py ``compute_distance``; one term with
    two modalities, as UGACH), ``L_D = sum_a mean max(0, margin + d_pos - d_neg)``,
    ``margin = n_bits / 8`` (UGACH's ``BETA``).

Reward and policy gradient (C8, C9): ``r = sigmoid(max(0, margin + d_pos - d_neg))`` from the
    current discriminator, no gradient; ``L_G = -sum_a mean_{i,s} r sum_{m != a} log q_{a->m}(n_m
    | i)``. ``generator_objective="sampled"`` (default): ``q`` is the generator's softmax
    renormalised over the query's drawn samples, as the codes compute it (they feed the generator
    the drawn items alone, gen_model_nn.py:72, train_16.py:205-213); ``"softmax"``: ``q = p``
    (REINFORCE over all candidates), which on wiki's validation split let the generator wreck the
    discriminator (card, "Measurements").

Schedule (C10, C11): ``pretrain_epochs`` epochs of the discriminator alone with uniformly drawn
    non-neighbour negatives (UGACH's ``unsuper-pretrain`` stage, whose result the adversarial
    stage loads), then adversarial epochs: per mini-batch one discriminator step on the
    generator's samples, then ``generator_steps`` generator steps with fresh samples and rewards
    from the updated discriminator (UGACH: 1 discriminator epoch, then 2 generator epochs). The
    discriminators' learning rate drops to ``adversarial_learning_rate`` (default a tenth of
    ``learning_rate``: UGACH's 0.01 pretraining, 0.001 adversarial) when the adversarial epochs
    start. The discriminators and the generators are two parts with an optimiser each; a
    batch's updates are yielded in this order as ``(loss, part)`` pairs from
    :meth:`DeepHasher._updates`, each made before the next loss is built. Adam (ours) replaces
    the codes' plain SGD on batches of 1 / 16 / 20 (C11): see the card.

Model selection: never on queries. ``validation_fraction = 0`` keeps the last epoch; otherwise
the held-out criterion is the discriminator's triplet loss on held-out rows against uniformly
drawn held-out non-neighbours (the same draws at every epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists mgah as unavailable with this message
    raise ImportError(
        "MGAH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import DeepHasher, Part, TrainingState, Updates, knn_indices
from mmhash.params import Choice, Integer, Number, check_number
from mmhash_baselines.deep._contrastive import (
    derived_seed,
    seeded_generator,
    set_learning_rate,
)
from mmhash_baselines.deep._scaling import ColumnScaling

#: Random streams: training draws (positives, negatives); held-out draws (reset every epoch).
_TRAIN_STREAM, _HELD_OUT_STREAM = 11, 12
#: ``generator_objective`` values (:func:`generator_loss`).
GENERATOR_OBJECTIVES = ("sampled", "softmax")
#: Rows per chunk of the kNN search (a chunk x n block of distances at a time).
_KNN_CHUNK = 512


# ---- the multi-pathway correlation graph -----------------------------------------------------
def nearest_neighbours(X: np.ndarray, k: int, chunk: int = _KNN_CHUNK) -> np.ndarray:
    """The ``k`` nearest rows of each row of ``X`` (float ``(n, d)``) by Euclidean distance,
    the row itself first, then by increasing distance (ties: lower index first). Int64
    ``(n, min(k, n))``. Computed ``chunk`` rows at a time (memory ``O(chunk n)``).

    The item itself is its own nearest neighbour (the codes' argsort puts it first, at distance
    0); placing it first by position keeps that true for duplicated rows too. The others are
    :func:`mmhash.deep.knn_indices` (float64, stable argsort, self excluded)."""
    n = len(X)
    k = min(int(k), n)
    if k == 0:
        return np.empty((n, 0), dtype=np.int64)
    others = knn_indices(np.asarray(X, dtype=np.float64), k - 1, metric="euclidean",
                         chunk_rows=chunk)
    return np.concatenate([np.arange(n, dtype=np.int64)[:, None], others], axis=1)


def correlation_graph(views: Sequence[np.ndarray], n_neighbors: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``N(i) = union_m kNN_m(i)`` over the views (float ``(n, d_m)`` each, rows paired).

    Returns ``(neighbours, counts)``: int64 ``(n, L)`` with row ``i``'s distinct neighbours
    (itself included) in increasing index order in its first ``counts[i]`` entries, padded with
    ``i``; int64 ``(n,)``."""
    lists = np.concatenate([nearest_neighbours(X, n_neighbors) for X in views], axis=1)
    n = len(lists)
    rows = [np.unique(r) for r in lists]
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    neighbours = np.repeat(np.arange(n, dtype=np.int64)[:, None], int(counts.max()), axis=1)
    for i, r in enumerate(rows):
        neighbours[i, :len(r)] = r
    return neighbours, counts


def neighbour_mask(neighbours: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``mask[i, j]``: batch row ``j`` is in ``N(rows[i])``. ``neighbours`` int64 ``(n, L)``
    (padding repeats the row itself), ``rows`` int64 ``(b,)`` -> bool ``(b, b)``."""
    nb = neighbours.index_select(0, rows)
    return (nb[:, :, None] == rows[None, None, :]).any(dim=1)


def sample_positives(neighbours: torch.Tensor, counts: torch.Tensor, rows: torch.Tensor,
                     n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """``n_samples`` true positives per row, uniform over ``N(rows[i])``. Int64 ``(b, s)``
    training-row positions."""
    u = torch.rand((len(rows), n_samples), generator=generator,
                   device=generator.device).to(rows.device)
    count = counts.index_select(0, rows)
    pick = torch.minimum((u * count[:, None]).long(), count[:, None] - 1)
    return neighbours.index_select(0, rows).gather(1, pick)


# ---- generator and discriminator terms -------------------------------------------------------
def squared_distances(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``||a_i - b_j||^2`` of the rows of ``A`` ``(n, k)`` and ``B`` ``(m, k)``: ``(n, m)``."""
    return ((A[:, None, :] - B[None, :, :]) ** 2).sum(dim=-1)


def generator_log_probs(g_query: torch.Tensor, g_candidates: torch.Tensor,
                        excluded: torch.Tensor) -> torch.Tensor:
    """``log p(j | i) = log softmax_j(-||g_query_i - g_candidates_j||^2)`` over the candidates
    not ``excluded`` (bool ``(b, c)``; excluded entries get ``-inf``; a row with every candidate
    excluded is all ``-inf``). ``g_*`` are sigmoid outputs ``(b, k)``, ``(c, k)``. ``(b, c)``."""
    scores = (-squared_distances(g_query, g_candidates)).masked_fill(excluded, -torch.inf)
    valid = ~excluded.all(dim=1, keepdim=True)
    # log_softmax of an all -inf row is NaN; such rows are dropped by the caller.
    return torch.where(valid, torch.log_softmax(scores.masked_fill(~valid, 0.0), dim=1),
                       torch.full_like(scores, -torch.inf))


def sample_candidates(log_probs: torch.Tensor, n_samples: int, generator: torch.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n_samples`` candidate columns per row from ``exp(log_probs)`` (``(b, c)``), with
    replacement. Returns int64 ``(b, s)`` and bool ``(b,)``: whether the row had a candidate
    (rows without one draw uniformly, to be ignored)."""
    probs = log_probs.detach().exp()
    valid = probs.sum(dim=1) > 0
    probs = torch.where(valid[:, None], probs, torch.ones_like(probs))
    picks = torch.multinomial(probs.to(generator.device), n_samples, replacement=True,
                              generator=generator).to(log_probs.device)
    return picks, valid


def pathway_distances(h: Sequence[torch.Tensor], h_positive: dict[tuple[int, int], torch.Tensor],
                      negatives: dict[tuple[int, int], torch.Tensor]
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per anchor modality ``a``: ``d_pos = sum_{m != a} ||h_a(i) - h_m(p)||^2`` and ``d_neg =
    sum_{m != a} ||h_a(i) - h_m(n)||^2``, each ``(b, s)``.

    ``h[m]``: the batch's outputs in modality ``m`` ``(b, k)``; ``h_positive[(a, m)]``: the
    outputs of the positives of pathway ``a -> m`` ``(b, s, k)``; ``negatives[(a, m)]``: int64
    ``(b, s)`` batch rows of modality ``m``."""
    d_pos, d_neg = [], []
    for a, anchor in enumerate(h):
        pos = neg = 0.0
        for m, outputs in enumerate(h):
            if m == a:
                continue
            pos = pos + ((anchor[:, None, :] - h_positive[(a, m)]) ** 2).sum(dim=-1)
            neg = neg + ((anchor[:, None, :] - outputs[negatives[(a, m)]]) ** 2).sum(dim=-1)
        d_pos.append(pos)
        d_neg.append(neg)
    return d_pos, d_neg


def _valid_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` ``(b, s)`` over the rows where ``valid`` ``(b,)``; 0 (with a graph)
    when there are none."""
    weight = valid.to(values.dtype)[:, None].expand_as(values)
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


def discriminator_loss(d_pos: Sequence[torch.Tensor], d_neg: Sequence[torch.Tensor],
                       valid: Sequence[torch.Tensor], margin: float) -> torch.Tensor:
    """``sum_a mean max(0, margin + d_pos - d_neg)`` over the valid rows (dis_model_nn.py
    ``svm_loss``). Scalar."""
    return sum(_valid_mean(F.relu(margin + p - q), v) for p, q, v in zip(d_pos, d_neg, valid))


def rewards(d_pos: torch.Tensor, d_neg: torch.Tensor, margin: float) -> torch.Tensor:
    """``sigmoid(max(0, margin + d_pos - d_neg))``: the discriminator's reward of a generated
    negative, high when it is hard to tell from the true positive (dis_model_nn.py
    ``i2t_reward``). Same shape, no gradient."""
    return torch.sigmoid(F.relu(margin + d_pos - d_neg)).detach()


def generator_loss(log_probs: dict[tuple[int, int], torch.Tensor],
                   negatives: dict[tuple[int, int], torch.Tensor],
                   reward: Sequence[torch.Tensor], valid: Sequence[torch.Tensor], *,
                   objective: str = "sampled") -> torch.Tensor:
    """The generators' policy-gradient loss
    ``-sum_a mean_{i,s} r_a[i, s] sum_{m != a} log q_{a->m}(n_{a,m}[i, s] | i)`` over the valid
    rows of each anchor ``a`` (gen_model_nn.py ``gen_loss``; MGAH's sum over pathways).

    ``objective="softmax"``: ``q = p``, the softmax over all the query's candidates (REINFORCE).
    ``"sampled"``: ``q`` is the softmax of the scores renormalised over the query's ``s`` drawn
    samples only -- what the codes compute, as they feed the generator the drawn items alone
    (gen_model_nn.py:72, train_16.py:205-213). ``log_probs[(a, m)]`` ``(b, c)``,
    ``negatives[(a, m)]`` ``(b, s)``."""
    total = 0.0
    for a, (r, v) in enumerate(zip(reward, valid)):
        logp = 0.0
        for m in range(len(reward)):
            if m == a:
                continue
            drawn = log_probs[(a, m)].gather(1, negatives[(a, m)])
            # Invalid rows hold -inf: zero them before the weighting (0 * -inf is NaN).
            drawn = torch.where(v[:, None], drawn, torch.zeros_like(drawn))
            # log p differs from the scores by a per-row constant: renormalising it over the
            # samples is the softmax of the samples' scores.
            logp = logp + (torch.log_softmax(drawn, dim=1) if objective == "sampled" else drawn)
        total = total - _valid_mean(r * logp, v)
    return total


# ---- networks ------------------------------------------------------------------------------
def hash_net(d_in: int, hidden: int, n_bits: int) -> nn.Sequential:
    """``Linear(d_in, hidden) -> tanh -> Linear(hidden, n_bits)``: the codes' two layers; the
    sigmoid on top is applied by the losses, so the output's sign is the code."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, n_bits))


class MGAHNet(nn.Module):
    """``encoders``: one discriminator / hash network per modality (kept after fit);
    ``generators``: one generator network per modality (training only). Each maps float
    ``(n, d_m)`` to ``(n, n_bits)`` hash-layer outputs (before the sigmoid)."""

    def __init__(self, dims: Sequence[int], n_bits: int, hidden_width: int):
        super().__init__()
        self.encoders = nn.ModuleList(hash_net(d, hidden_width, n_bits) for d in dims)
        self.generators = nn.ModuleList(hash_net(d, hidden_width, n_bits) for d in dims)


# ---- the hasher ------------------------------------------------------------------------------
class MGAH(ColumnScaling, DeepHasher):
    """MGAH: multi-pathway generative adversarial hashing (Zhang, Peng, TMM 2019), reconstructed.

    Any number of views (every view a modality with its own generator and discriminator). See
    the module docstring and ``docs/methods/mgah.md`` for the equations and each choice. Cost per
    epoch: network passes over about ``(1 + (M - 1) n_samples) N`` rows per modality for the
    discriminator step and ``generator_steps`` times that again in adversarial epochs, each
    ``O(d h + h k)`` per row, plus ``O(b^2 k)`` per pathway and batch for the generator's scores;
    the graph costs ``O(M N^2 d)`` once, in ``O(chunk N)`` memory (no ``n x n`` matrix, so no
    training-set size limit).

    Parameters
    ----------
    n_bits : code length (multiple of 8).
    n_neighbors : neighbours per modality in the correlation graph (5: UGACH's 5 + 5).
    n_samples : (true positive, generated negative) pairs per query and pathway (2: UGACH's
        ``SELECTNUM``).
    margin : the triplet margin on squared distances of sigmoid outputs; None: ``n_bits / 8``
        (UGACH's ``BETA``).
    hidden_width : hidden width of every network (4096: MGAH's ``HIDDEN_DIM``).
    pretrain_epochs : epochs of discriminator-only training with uniform negatives before the
        adversarial epochs (5, ours; at most ``n_epochs``, which trains no generator).
    generator_steps : generator updates per discriminator update (2: UGACH's ``G_EPOCH``).
    adversarial_learning_rate : the discriminators' learning rate in adversarial epochs (None:
        ``learning_rate / 10``, UGACH's ratio).
    generator_learning_rate : the generators' learning rate (1e-3: ten times the adversarial
        discriminator's, UGACH's ratio).
    generator_objective : ``"sampled"`` (the codes') or ``"softmax"`` (REINFORCE), see
        :func:`generator_loss`.
    standardize : True (default: MGAH's z-normalised features), ``"auto"`` or False.
    n_epochs, batch_size : all epochs, pretraining included (35 = 5 + UGACH's 30 adversarial),
        rows per mini-batch (128, ours; the batch is also the generator's candidate pool).
    optimizer, learning_rate, momentum, weight_decay : the optimiser of the discriminators and,
        with ``generator_learning_rate``, of the generators (Adam, 1e-3, -, 5e-4: MGAH's weight
        decay; the codes use plain SGD on batches of 1-20).
    validation_fraction : 0 keeps the last epoch; in (0, 1) the epoch with the lowest held-out
        discriminator loss (module docstring).
    n_threads, device, random_state : as every deep method (identical codes per seed on CPU).
    """

    name = "mgah"
    supported_views = (2, None)
    with_row_ids = True
    conformance_params: ClassVar[dict[str, Any]] = {
        "hidden_width": 64, "n_epochs": 8, "pretrain_epochs": 4, "batch_size": 64,
        "n_threads": 1,
    }
    #: standardize is ColumnScaling's.
    parameter_constraints = {
        "n_neighbors": Integer(minimum=1), "n_samples": Integer(minimum=1),
        "hidden_width": Integer(minimum=1),
        "generator_steps": Integer(minimum=0),
        "pretrain_epochs": Integer(minimum=0),  # <= n_epochs: _check_params
        "margin": Number(low=0, low_open=True, none=True),
        "generator_learning_rate": Number(low=0, low_open=True),
        "generator_objective": Choice(GENERATOR_OBJECTIVES),
        "adversarial_learning_rate": Number(low=0, low_open=True, none=True),
    }

    def __init__(self, *, n_bits: int = 64, n_neighbors: int = 5, n_samples: int = 2,
                 margin: float | None = None, hidden_width: int = 4096,
                 pretrain_epochs: int = 5, generator_steps: int = 2,
                 adversarial_learning_rate: float | None = None,
                 generator_learning_rate: float = 1e-3, generator_objective: str = "sampled",
                 standardize: bool | str = True,
                 n_epochs: int = 35, batch_size: int = 128, optimizer: str = "adam",
                 learning_rate: float = 1e-3, momentum: float = 0.9, weight_decay: float = 5e-4,
                 validation_fraction: float = 0.0, n_threads: int | None = None,
                 device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.n_neighbors = n_neighbors
        self.n_samples = n_samples
        self.margin = margin
        self.hidden_width = hidden_width
        self.pretrain_epochs = pretrain_epochs
        self.generator_steps = generator_steps
        self.adversarial_learning_rate = adversarial_learning_rate
        self.generator_learning_rate = generator_learning_rate
        self.generator_objective = generator_objective
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
        """The rule relating two parameters: ``pretrain_epochs <= n_epochs``."""
        super()._check_params()
        # pretrain_epochs = n_epochs trains the discriminators alone (MGAH's released stage).
        check_number("pretrain_epochs", self.pretrain_epochs, maximum=int(self.n_epochs))

    def _adversarial_learning_rate(self) -> float:
        # UGACH: the discriminator learns at 0.01 while pretrained, 0.001 once adversarial.
        return (float(self.learning_rate) / 10.0 if self.adversarial_learning_rate is None
                else float(self.adversarial_learning_rate))

    def _margin(self) -> float:
        return int(self.n_bits) / 8.0 if self.margin is None else float(self.margin)

    # -- training --------------------------------------------------------------------------------
    def _build_model(self, dims: list[int]) -> MGAHNet:
        return MGAHNet(dims, int(self.n_bits), int(self.hidden_width))

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        # The discriminators (the kept hash networks) learn at learning_rate, the generators at
        # generator_learning_rate; each part has its own optimiser.
        return {"discriminator": Part(state.model.encoders.parameters()),
                "generator": Part(state.model.generators.parameters(),
                                  learning_rate=float(self.generator_learning_rate))}

    def _begin_training(self, state: TrainingState) -> None:
        arrays, fit_rows, device, seed = state.arrays, state.fit_rows, state.device, state.seed
        n = len(arrays[0])
        # Fit rows are neighbours among fit rows, held-out rows among held-out rows: the
        # held-out criterion never sees a fit row, training never a held-out one.
        width = 1
        parts = []
        for rows in (fit_rows, state.val_rows):
            if len(rows):
                nb, count = correlation_graph([X[rows] for X in arrays],
                                              int(self.n_neighbors))
                parts.append((rows, rows[nb], count))
                width = max(width, nb.shape[1])
        neighbours = np.repeat(np.arange(n, dtype=np.int64)[:, None], width, axis=1)
        counts = np.ones(n, dtype=np.int64)
        for rows, nb, count in parts:
            neighbours[rows, :nb.shape[1]] = nb
            counts[rows] = count
        state.neighbours = torch.from_numpy(neighbours).to(device)
        state.counts = torch.from_numpy(counts).to(device)
        state.all_views = [torch.from_numpy(X.astype(np.float32)).to(device) for X in arrays]
        state.generator = seeded_generator(seed, _TRAIN_STREAM, device)
        state.held_out_generator = seeded_generator(seed, _HELD_OUT_STREAM, device)

    def _begin_epoch(self, state: TrainingState) -> None:
        if state.epoch == int(self.pretrain_epochs) + 1:  # the first adversarial epoch
            set_learning_rate(state.optimizers["discriminator"],
                              self._adversarial_learning_rate())

    def _end_epoch(self, state: TrainingState) -> None:
        # The held-out rows get the same draws at every epoch's evaluation.
        state.held_out_generator.manual_seed(derived_seed(state.seed, _HELD_OUT_STREAM))

    def _pathways(self, n_views: int) -> list[tuple[int, int]]:
        return [(a, m) for a in range(n_views) for m in range(n_views) if a != m]

    def _positive_outputs(self, state: TrainingState, nets: nn.ModuleList, rows: torch.Tensor,
                          generator: torch.Generator) -> dict[tuple[int, int], torch.Tensor]:
        """Sigmoid outputs ``(b, s, k)`` of fresh true positives for every pathway."""
        out = {}
        s = int(self.n_samples)
        for a, m in self._pathways(len(nets)):
            pos = sample_positives(state.neighbours, state.counts, rows, s, generator)
            X = state.all_views[m].index_select(0, pos.reshape(-1))
            out[(a, m)] = torch.sigmoid(nets[m](X)).reshape(len(rows), s, -1)
        return out

    def _negatives(self, log_probs: dict[tuple[int, int], torch.Tensor],
                   generator: torch.Generator, n_views: int
                   ) -> tuple[dict[tuple[int, int], torch.Tensor], list[torch.Tensor]]:
        """Draw the negatives of every pathway; per anchor, the rows valid in all of its
        pathways."""
        negatives, valid = {}, []
        for a in range(n_views):
            ok = None
            for m in range(n_views):
                if m != a:
                    negatives[(a, m)], v = sample_candidates(log_probs[(a, m)],
                                                             int(self.n_samples), generator)
                    ok = v if ok is None else ok & v
            valid.append(ok)
        return negatives, valid

    def _generator_log_probs(self, model: MGAHNet, views: Sequence[torch.Tensor],
                             excluded: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
        g = [torch.sigmoid(net(X)) for net, X in zip(model.generators, views)]
        return {(a, m): generator_log_probs(g[a], g[m], excluded)
                for a, m in self._pathways(len(views))}

    def _uniform_log_probs(self, excluded: torch.Tensor, n_views: int
                           ) -> dict[tuple[int, int], torch.Tensor]:
        """Uniform over each query's non-neighbour candidates (pretraining, held-out)."""
        b, c = excluded.shape
        uniform = generator_log_probs(torch.zeros(b, 1, device=excluded.device),
                                      torch.zeros(c, 1, device=excluded.device), excluded)
        return dict.fromkeys(self._pathways(n_views), uniform)

    def _discriminator_terms(self, state: TrainingState, views: Sequence[torch.Tensor],
                             rows: torch.Tensor, negatives: dict[tuple[int, int], torch.Tensor],
                             generator: torch.Generator
                             ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        encoders = state.model.encoders
        h = [torch.sigmoid(net(X)) for net, X in zip(encoders, views)]
        return pathway_distances(h, self._positive_outputs(state, encoders, rows, generator),
                                 negatives)

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        *views, rows = batch
        model, gen, M = state.model, state.generator, len(views)
        margin = self._margin()
        excluded = neighbour_mask(state.neighbours, rows)
        adversarial = state.epoch > int(self.pretrain_epochs)
        # 1. The discriminators, on the generators' samples (uniform while pretraining).
        with torch.no_grad():
            log_probs = (self._generator_log_probs(model, views, excluded) if adversarial
                         else self._uniform_log_probs(excluded, M))
        negatives, valid = self._negatives(log_probs, gen, M)
        d_pos, d_neg = self._discriminator_terms(state, views, rows, negatives, gen)
        d_loss = discriminator_loss(d_pos, d_neg, valid, margin)
        yield d_loss, "discriminator"
        parts = {"discriminator": float(d_loss.detach())}
        # 2. The generators, by policy gradient with the updated discriminators' reward.
        for _ in range(int(self.generator_steps) if adversarial else 0):
            log_probs = self._generator_log_probs(model, views, excluded)
            negatives, valid = self._negatives(log_probs, gen, M)
            with torch.no_grad():
                d_pos, d_neg = self._discriminator_terms(state, views, rows, negatives, gen)
            reward = [rewards(p, q, margin) for p, q in zip(d_pos, d_neg)]
            g_loss = generator_loss(log_probs, negatives, reward, valid,
                                    objective=str(self.generator_objective))
            yield g_loss, "generator"
            parts["generator"] = float(g_loss.detach())
        return parts["discriminator"], parts

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        """The held-out criterion: the discriminators' triplet loss against uniformly drawn
        held-out non-neighbours (the same draws at every epoch)."""
        *views, rows = batch
        gen, M = state.held_out_generator, len(views)
        excluded = neighbour_mask(state.neighbours, rows)
        negatives, valid = self._negatives(self._uniform_log_probs(excluded, M), gen, M)
        d_pos, d_neg = self._discriminator_terms(state, views, rows, negatives, gen)
        loss = discriminator_loss(d_pos, d_neg, valid, self._margin())
        return loss, {"discriminator": float(loss)}
