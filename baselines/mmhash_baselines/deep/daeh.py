"""DAEH: Deep Adaptively-Enhanced Hashing with Discriminative Similarity Guidance (Shi, Zhao, Liu,
Zheng, Ou, You, Peng; IEEE TCSVT 32(10):7255-7268, 2022; doi 10.1109/TCSVT.2022.3172716).

Needs PyTorch (``pip install 'mmhash-baselines[deep]'``). Followed: the official code
(github.com/reresearcher/DAEH @ 97b8ff1; ``file:line`` below refers to that commit). The paper's
text was not available to us (title, venue and DOI only); the repository's README gives the
citation and nothing else, so the code is authoritative throughout. Image features
``X_I`` are the first view, text ``X_T`` the second; ``n`` is the number of training rows, ``b``
the rows of a batch, ``k = n_bits``.

What the official code trains on (daeh.py:144-167, model_loader.py:45-78, data/flickr25k.py)
    Three inputs per item: the raw image (224 x 224 crops), a 4096-d image feature vector
    ``imgx`` (``XAll`` of Flickr4096.mat, flickr25k.py:113-124) and the 1386-d tag vector.
    * The **teacher** is a pretrained ViT-B/16 (``--arch transformer``, run.py:122) fine-tuned on
      the raw images, topped by ``hash_layer = ReLU -> Linear(768 -> k) -> Tanh``, a decoder
      ``fake_attribute = Linear(k, 256) ReLU Linear(256, 512) ReLU Linear(512, 1000) ReLU`` and a
      re-encoder ``attribute_code = Linear(1000, 512) ReLU Linear(512, 256) ReLU Linear(256, k)
      Tanh`` (ModelWrapper, model_loader.py:125-169).
    * The **attributes** are the 1000 ImageNet logits of a second, frozen pretrained ViT
      (``model0``) on each training image, extracted once (daeh.py:161-167, 558).
    * The **students** work on features: ``myImgNet`` on ``imgx``, ``4096 -> 4096 -> ReLU ->
      Dropout(0.5) -> k -> tanh``, and ``myTxtNet`` on the tags, ``1386 -> 4096 -> ReLU ->
      Dropout(0.5) -> k -> tanh`` with the last weights drawn from ``N(0, 0.3^2)``
      (model_loader.py:204-245). ``set_alpha`` is never called: the slope stays 1. The
      reported codes are the students' (``evaluate(..., 'stu')``, daeh.py:266-276); the teacher
      serves training only.

Features-only setting (what replaces the CNN, and why)
    mmhash gives one image feature vector per item and no pixels, as DJSRH/JDSH
    (:mod:`mmhash_baselines.deep._common`) and every deep baseline here. So:
    * the students are the official ones with the image view's width for the code's
      hard-wired 4096 (model_loader.py:207);
    * the teacher's backbone, the fine-tuned ViT, is replaced by the given image features: the
      teacher is the official head ``ReLU -> Linear(d_I -> k) -> Tanh`` on ``X_I`` (its leading
      ReLU kept: it is the head's own, model_loader.py:140), with ``teacher_width > 0`` adding
      one hidden ReLU layer as a stand-in for the fine-tuned backbone (default 0, the head alone,
      as DJSRH's ``image_width``);
    * the attributes, a frozen pretrained image network's output for the item, become the
      frozen pretrained image features themselves: ``fake_attribute`` decodes the teacher's code
      to ``d_I`` values (its final ReLU kept, as the code's, which cannot fit the logits'
      negative values either) and ``attribute_code`` re-encodes them.
    The teacher therefore sees the same features as the image student, where the official one
    sees a stronger input (a fine-tuned ViT vs. fixed features); its role in the objective --
    a third code set tied to both students, and the "enhancing" branch below -- is unchanged.

Discriminative similarity guidance ``S`` (daeh.py:449-527), built once over every training row
(fit and held-out rows; features only), no gradient; a batch's targets are ``S[rows][:, rows]``
by the rows' positions (``with_row_ids``), as the code indexes its buffer with the loader's
indices (daeh.py:204-205).
    Image side (generate_similarity_matrix, daeh.py:487-527): ``D`` = the cosine distances of
    the image features over the whole ``n x n`` square (diagonal 0, each pair twice). The mode
    ``m`` is the lower edge of the fullest of 100 bins ``(c, c + 0.01)``, open on both sides,
    ``c = 0, 0.01, ...`` accumulated as the code accumulates them (so the last edge is
    1.0000000000000007 and a distance of exactly 1 counts in the last bin; 0, larger distances
    and values on an edge never count; the first fullest bin wins; none counted: ``m = 0``). The
    distances ``<= m`` and ``> m`` are each mirrored about ``m`` and fitted with a normal
    distribution (``scipy.stats.norm.fit``: the mirrored set's mean is ``m`` and its MLE
    deviation ``sqrt(mean((d - m)^2))``, computed so here without building the ``2 n^2``-value
    mirrored arrays; :func:`mirrored_widths`). Image-near: ``D < m - alpha sigma_left``;
    image-far: ``D > m + beta sigma_right``.
    Text side (daeh.py:467-471): ``E`` = Euclidean distances of the text vectors as given;
    text-near ``E <= text_near`` (1), text-far ``E >= text_far`` (5) -- absolute distances,
    meant for 0/1 tag vectors (1: at most one tag differs; 5: at least 25 differ).
    Confident pairs (daeh.py:472-476): ``S = +1`` when image-near **and** text-near, ``-1``
    when image-far **or** text-far. Every other pair gets the fused cosine
    ``2 (a1 cos(X_T) + (1 - a1) cos(X_I)) - 1`` (``a1 = text_weight`` = 0.3: it weights the
    *text* side, daeh.py:477-483). The code computes labels' agreement ``Sbiao`` here
    (daeh.py:451-454) and never uses it: no label leaks into ``S``.

Networks and objective on a batch (daeh.py:210-244)
    ``f = image student(X_I)``, ``g = text student(X_T)``, ``(t, a, r) = teacher(X_I)`` (its
    code, decoded attributes, re-encoded code). ``B_*`` = the L2-normalised rows, ``O = 1 - I_b``
    masks the diagonal, each MSE the mean over its entries (``F.mse_loss``), ``K = pair_target``
    = 1.5 (a cosine never reaches it), ``w_s`` = ``student_weight`` (``ceshi_tri`` = 4),
    ``w_t`` = ``teacher_weight`` (``ceshi_tea`` = 1):
    * ``tri_loss`` (daeh.py:22-63; :func:`tri_loss`), over the pairs (f, g) weighted ``w_s`` and
      (f, t), (g, t) weighted ``w_t``: ``MSE(diag(B_x B_y^T), K) + MSE(O . B_x B_y^T, O . S) +
      MSE(B_x B_x^T, B_y B_y^T)``;
    * the attribute term (daeh.py:219-223; :func:`attribute_loss`):
      ``(||r - t||^2 + ||a - X_I||^2) / b`` (sums of squares over the batch), weight
      ``attribute_weight`` = ``10^gamma`` with ``gamma = -3`` (daeh.py:141, run.py:154);
    * the adaptive enhancement (daeh.py:225-242; :func:`daeh_loss`): the matrix-based Renyi
      mutual information of order 2 (:func:`renyi_mutual_information`, kernel width 1) of the
      batch targets ``S_b`` (each row a variable) with the image codes ``f`` and with the text
      codes ``g``; when the image side carries more (``MI(S_b, f) > MI(S_b, g)``) the teacher
      enhances the text side, ``cross_loss(t, g)``, else the image side, ``cross_loss(f, t)``,
      with ``cross_loss(x, y) = MSE(diag(B_x B_y^T), K) + MSE(O . B_x B_y^T, O . S) +
      MSE(B_y B_y^T, B_x B_x^T)`` (daeh.py:64-82), weight ``enhance_weight`` (``ceshi_cross`` =
      0.1). The comparison is a branch, not a loss: no gradient flows through the MI (the code
      compares two scalars). ``history_`` records each epoch's share of batches where the image
      side led (``image_leads``; the code logs the same choice, ``jilu_zengqiang``).
    ``L = tri_loss + attribute_weight att + enhance_weight cross``, one backward, one step of
    every network (daeh.py:244-254).

Optimisation (daeh.py:153-156, run.py:103-162, test.sh:1)
    SGD, learning rate 0.001, momentum 0.9, weight decay 5e-4, for teacher and both students
    (three optimisers with equal settings over disjoint parameters: one optimiser here, the same
    updates), batch 18, 30 epochs, no schedule. The defaults are the code's MIRFlickr-25K run,
    the only dataset its loader has (data_loader.py:17-26; test.sh lists COCO and NUS-WIDE
    commands, commented out, with the same settings): ``n_bits=16, alpha=beta=2, gamma=-3,
    ceshi_tri=4, ceshi_tea=1, ceshi_cross=0.1, a1=0.3``, 10,000 training pairs.

Deviations from the code, and its bugs (all fixed openly)
    * **Epoch selection on the test queries** (daeh.py:262-292): every other epoch the code
      encodes the test queries and keeps the codes of the epoch with the best image->text +
      text->image mAP (``bestMAP``). Here: ``validation_fraction=0`` (default) trains the fixed
      ``n_epochs`` and keeps the last epoch; a fraction in (0, 1) holds out that share of the
      training rows and keeps the epoch with the lowest held-out DAEH loss (no labels, no
      queries).
    * **Its mAP** (evaluate.py:4-54) ranks the top 5,000 (``--topk``, run.py:124) by
      ``torch.argsort`` of Hamming distances, which orders ties arbitrarily; mmhash reports its
      own metrics.
    * **The mutual-information kernel** (model_loader.py:9-16): ``K = 2G - diag(G)`` then
      ``exp((K - diag(G)) / 2 sigma^2)`` with ``diag(G)`` repeated *as rows* both times gives
      ``exp((G_ij - G_jj) / sigma^2)`` -- not symmetric, not a Gaussian kernel, and overflowing
      (hence the code's NaN/inf clean-up, model_loader.py:21-22). The matrix-based Renyi
      estimator it ports (the numpy/MATLAB ``guassianMatrix``) subtracts ``G_jj`` once and
      ``G_ii`` once: ``exp(-||x_i - x_j||^2 / 2 sigma^2)``. Fixed to that. The kernel is then
      symmetric positive semi-definite, so the order-2 entropy ``-log sum lambda^2`` is
      ``-log ||K||_F^2``, exact and without the eigendecomposition (the code's ``torch.eig``,
      model_loader.py:23, no longer exists in PyTorch).
    * Hard-coded ``.cuda()`` (daeh.py:35, 40, 45, 73, 215, 457-458; model_loader.py:13): runs on
      ``device``; ``np.float`` / ``np.int`` (daeh.py:175, 287-292), gone from NumPy, not used.
    * ``D`` is computed from L2-normalised rows, an all-zero row having cosine 0 (distance 1) to
      everything; ``scipy``'s ``pdist(metric='cosine')`` gives NaN there, and NaN then falls in
      no bin, in neither half of the fit and in no class. The similarity is built in float32 on
      the training device (the code: float64 on the CPU); thresholds see rounding-level
      differences only. An empty upper half (every distance at most ``m``) gives no image-far
      pair (the code's fit would return NaN and mark none either).
    * The code's unused parameters (``lr``, ``near_neighbor``, ``evaluate_interval``,
      ``snapshot_interval``; daeh.py:85-111) have no counterpart; its teacher runs the ViT three
      times per batch (model_loader.py:167-169) -- here once, the same values.
    * Inputs: ``standardize="auto"`` (ours, as DGCPN's) column-standardises a view whose columns
      span more than 1,000x or whose rows lie within 0.5 of their mean
      (:mod:`mmhash_baselines.deep._scaling`) before the networks and the similarity; tag
      vectors and fc7-like features are left untouched. On a standardised text view the absolute
      ``text_near`` / ``text_far`` lose their tag-count meaning (few pairs are text-near).
    * Checked and not bugs: ``S`` is indexed by the items' dataset indices, not by batch
      position (daeh.py:204-205); the loader keeps the last partial batch (no ``drop_last``,
      flickr25k.py:54-60; mmhash merges a one-row last batch into the one before).
    * Deterministic under ``random_state`` (the code's split and shuffles are unseeded).

Memory: ``S`` is a dense ``n x n`` float32 matrix (kept during training); while it is built, two
float32 and two boolean ``n x n`` matrices are alive, plus row blocks
(:data:`PEAK_MATRICES` float32-equivalents for the refusal). Training sets above ``max_samples``
rows (default 12,000: the code's 10,000 and NUS-WIDE's 10,500 fit) are refused before anything
is built.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists daeh as unavailable with this message
    raise ImportError(
        "DAEH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

import numpy as np

from mmhash.deep import (
    DeepHasher,
    ScaledTanh,
    TrainingState,
    Updates,
    check_pairwise_size,
    cosine_mse,
    mlp,
    pair_block,
)
from mmhash.errors import InvalidInputError
from mmhash.params import Integer, Number

from ._graph import training_tensors
from ._scaling import ColumnScaling

#: Float32-equivalent ``n x n`` matrices alive at the peak of :func:`daeh_similarity` (two float32
#: and two boolean matrices, rounded up; for the refusal).
PEAK_MATRICES = 3
#: Bins of the mode search over cosine distances in [0, 1] (daeh.py:502).
N_BINS = 100
#: Kernel width of both variables of the mutual information (daeh.py:225-227: sigma 1.0, 1.0,
#: order 2.0).
MI_SIGMA = 1.0
#: Entries of a row block while the ``n x n`` classes are computed (64 MiB of float32).
_BLOCK_ENTRIES = 2**24
#: Widths of the teacher's attribute decoder and re-encoder (model_loader.py:144-159).
ATTRIBUTE_WIDTHS = (256, 512)


def _row_blocks(n: int, m: int) -> Iterator[slice]:
    step = max(1, _BLOCK_ENTRIES // max(m, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


# ---- the discriminative similarity -----------------------------------------------------------
def bin_edges(n_bins: int = N_BINS) -> list[float]:
    """The bin edges of the mode search, accumulated as daeh.py:502-509 does (``cur +=
    1 / n_bins``): ``n_bins + 1`` Python floats from 0."""
    interval, cur, edges = 1.0 / n_bins, 0.0, [0.0]
    for _ in range(n_bins):
        cur += interval
        edges.append(cur)
    return edges


def distance_mode(D: torch.Tensor, n_bins: int = N_BINS) -> float:
    """``max_cos`` of daeh.py:501-509: the lower edge of the first fullest bin ``(e_i,
    e_{i+1})`` (open on both sides) of the entries of ``D`` (any shape); 0.0 when no entry lies
    inside a bin. Counted a block of rows at a time."""
    edges = bin_edges(n_bins)
    boundaries = torch.tensor(edges, dtype=D.dtype, device=D.device)
    counts = torch.zeros(n_bins, dtype=torch.int64, device=D.device)
    D2 = D.reshape(len(D), -1) if D.dim() > 1 else D.reshape(1, -1)
    for rows in _row_blocks(D2.shape[0], D2.shape[1]):
        d = D2[rows].reshape(-1)
        below = torch.bucketize(d, boundaries, right=False)  # edges < d
        upto = torch.bucketize(d, boundaries, right=True)  # edges <= d
        inside = (below == upto) & (below >= 1) & (below <= n_bins)  # strictly between edges
        counts += torch.bincount(below[inside] - 1, minlength=n_bins)
    counts_np = counts.cpu().numpy()
    return edges[int(np.argmax(counts_np))] if counts_np.max() > 0 else 0.0


def mirrored_widths(D: torch.Tensor, mode: float) -> tuple[float, float]:
    """``(left_std, right_std)`` of daeh.py:512-522: the entries ``<= mode`` and ``> mode`` of
    ``D``, each mirrored about ``mode`` and fitted by ``norm.fit`` -- whose mean is then ``mode``
    and whose deviation ``sqrt(mean((d - mode)^2))`` over the half. NaN for an empty half.
    Accumulated in float64 a block of rows at a time."""
    sums, counts = [0.0, 0.0], [0, 0]
    D2 = D.reshape(len(D), -1) if D.dim() > 1 else D.reshape(1, -1)
    for rows in _row_blocks(D2.shape[0], D2.shape[1]):
        d = D2[rows]
        left = d <= mode
        dev2 = (d.double() - mode) ** 2
        for i, mask in enumerate((left, ~left)):
            sums[i] += float(dev2[mask].sum())
            counts[i] += int(mask.sum())
    return tuple(math.sqrt(s / c) if c else math.nan for s, c in zip(sums, counts))


def daeh_similarity(X_image: torch.Tensor, X_text: torch.Tensor, *, alpha: float, beta: float,
                    text_near: float, text_far: float, text_weight: float) -> torch.Tensor:
    """DAEH's target ``S`` over every training row (``distance_fusion``, daeh.py:449-485; module
    docstring). ``X_image`` ``(n, d_I)``, ``X_text`` ``(n, d_T)``, rows paired. Returns
    ``(n, n)`` in the inputs' dtype and device: +1 on the confident similar pairs, -1 on the
    confident dissimilar ones, ``2 (a1 cos_T + (1 - a1) cos_I) - 1`` elsewhere
    (``a1 = text_weight``)."""
    n = len(X_image)
    unit = F.normalize(X_image, dim=1)
    D = unit @ unit.T  # cosines; becomes the distances, then the cosines again (in place)
    D.neg_().add_(1.0).fill_diagonal_(0.0)  # squareform(pdist(., 'cosine')): diagonal 0
    mode = distance_mode(D)
    left_std, right_std = mirrored_widths(D, mode)
    near = D < mode - alpha * left_std
    far = (D > mode + beta * right_std) if not math.isnan(right_std) else torch.zeros_like(near)
    # Text: Euclidean distances (squared: E <= r iff E^2 <= r^2), a block of rows at a time;
    # S = +1 where image- and text-near, -1 where image- or text-far (daeh.py:467-476).
    sq = (X_text * X_text).sum(dim=1)
    for rows in _row_blocks(n, n):
        E2 = sq[rows, None] + sq[None, :] - 2.0 * (X_text[rows] @ X_text.T)
        E2[torch.arange(E2.shape[0], device=E2.device),
           torch.arange(rows.start, rows.stop, device=E2.device)] = 0.0
        near[rows] &= E2 <= text_near * text_near
        far[rows] |= E2 >= text_far * text_far
    # Back to the image cosines (the diagonal: 1, or 0 for an all-zero row), fused with the text
    # cosines: S_pair = 2 (a1 S_T + (1 - a1) S_I) - 1 (daeh.py:477-481).
    S = D.neg_().add_(1.0)
    S.diagonal().copy_((unit * unit).sum(dim=1))
    del unit
    text_unit = F.normalize(X_text, dim=1)
    S.mul_(1.0 - text_weight).addmm_(text_unit, text_unit.T, alpha=text_weight)
    S.mul_(2.0).sub_(1.0)
    # S_pair[I == 1] = 0; conS = S_pair + S (daeh.py:482-483). near and far are disjoint:
    # image-near and image-far are, and text_near < text_far.
    return S.masked_fill_(near, 1.0).masked_fill_(far, -1.0)


# ---- mutual information ----------------------------------------------------------------------
def gaussian_gram(X: torch.Tensor, sigma: float = MI_SIGMA) -> torch.Tensor:
    """``exp(-||x_i - x_j||^2 / (2 sigma^2))`` of the rows of ``X`` ``(b, d)``: ``(b, b)``,
    written as the matrix-based estimator writes it, ``exp((2 G_ij - G_ii - G_jj) / 2 sigma^2)``
    with ``G = X X^T`` (the official port's kernel subtracts ``G_jj`` twice; module
    docstring)."""
    G = X @ X.T
    d = G.diagonal()
    return torch.exp((2.0 * G - d[None, :] - d[:, None]) / (2.0 * sigma * sigma))


def renyi_entropy2(A: torch.Tensor) -> torch.Tensor:
    """Renyi's order-2 matrix entropy ``-log sum_i lambda_i^2`` of a symmetric ``A``, i.e.
    ``-log ||A||_F^2`` (model_loader.py:23-25 with ``alpha = 2``). Scalar."""
    return -torch.log((A * A).sum())


def renyi_mutual_information(X: torch.Tensor, Y: torch.Tensor, sigma_x: float = MI_SIGMA,
                             sigma_y: float = MI_SIGMA) -> torch.Tensor:
    """``H(K_x) + H(K_y) - H(K_x . K_y b)`` with ``K = gaussian_gram / b`` (unit trace) and
    ``.`` the element-wise product (``mutual_information``, model_loader.py:19-43, order 2,
    with the kernel fixed). ``X`` ``(b, d_x)``, ``Y`` ``(b, d_y)``, rows paired. Scalar."""
    b = X.shape[0]
    K_x = gaussian_gram(X, sigma_x) / b
    K_y = gaussian_gram(Y, sigma_y) / b
    return renyi_entropy2(K_x) + renyi_entropy2(K_y) - renyi_entropy2(K_x * K_y * b)


# ---- losses ----------------------------------------------------------------------------------
def _pair_terms(B_x: torch.Tensor, B_y: torch.Tensor, S: torch.Tensor, off: torch.Tensor,
                pair_target: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(MSE(diag(B_x B_y^T), K), MSE(O . B_x B_y^T, O . S), MSE(B_x B_x^T, B_y B_y^T))`` of
    L2-normalised rows ``B_x``, ``B_y`` ``(b, k)``."""
    diag = (B_x * B_y).sum(dim=1)
    pair = F.mse_loss(diag, torch.full_like(diag, pair_target))
    dis = cosine_mse(B_x, B_y, S, normalized=True, weight=off)
    cons = F.mse_loss(B_x @ B_x.T, B_y @ B_y.T)
    return pair, dis, cons


def tri_loss(code_image: torch.Tensor, code_text: torch.Tensor, code_teacher: torch.Tensor,
             S: torch.Tensor, *, student_weight: float, teacher_weight: float,
             pair_target: float = 1.5) -> torch.Tensor:
    """``tri_loss`` (daeh.py:22-63): the pair, masked-similarity and consistency terms of
    (image, text) weighted ``student_weight`` and of (image, teacher), (text, teacher) weighted
    ``teacher_weight``. Codes ``(b, k)`` real, ``S`` ``(b, b)``. Scalar."""
    B_I, B_T, B_Tea = (F.normalize(c, dim=1) for c in (code_image, code_text, code_teacher))
    off = 1.0 - torch.eye(len(S), dtype=S.dtype, device=S.device)
    total = student_weight * sum(_pair_terms(B_I, B_T, S, off, pair_target))
    for B_x, B_y in ((B_I, B_Tea), (B_T, B_Tea)):
        total = total + teacher_weight * sum(_pair_terms(B_x, B_y, S, off, pair_target))
    return total


def cross_loss(code_a: torch.Tensor, code_b: torch.Tensor, S: torch.Tensor,
               pair_target: float = 1.5) -> torch.Tensor:
    """``cross_loss`` (daeh.py:64-82): ``MSE(diag(B_a B_b^T), K) + MSE(O . B_a B_b^T, O . S) +
    MSE(B_b B_b^T, B_a B_a^T)``. Scalar."""
    B_a, B_b = F.normalize(code_a, dim=1), F.normalize(code_b, dim=1)
    off = 1.0 - torch.eye(len(S), dtype=S.dtype, device=S.device)
    return sum(_pair_terms(B_a, B_b, S, off, pair_target))


def attribute_loss(code_teacher: torch.Tensor, attributes: torch.Tensor,
                   reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(||reconstruction - code_teacher||^2 + ||attributes - target||^2) / b`` (daeh.py:219-223;
    squared errors summed over the batch). Scalar."""
    return (((reconstruction - code_teacher) ** 2).sum()
            + ((attributes - target) ** 2).sum()) / len(code_teacher)


def daeh_loss(code_image: torch.Tensor, code_text: torch.Tensor,
              teacher: tuple[torch.Tensor, torch.Tensor, torch.Tensor], target: torch.Tensor,
              S: torch.Tensor, *, student_weight: float, teacher_weight: float,
              enhance_weight: float, attribute_weight: float, pair_target: float = 1.5
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The DAEH objective on one batch (daeh.py:210-244): ``tri_loss + attribute_weight att +
    enhance_weight cross``, the cross term on (teacher, text) when the image codes carry more
    mutual information with ``S`` than the text codes, else on (image, teacher).

    ``teacher`` is the teacher's ``(code, attributes, re-encoded code)``, ``target`` the
    attribute target (the image features). Returns the scalar loss and the unweighted parts
    ``similarity`` (tri_loss), ``attribute``, ``enhance`` and ``image_leads`` (1.0 when the
    image side led) as floats.
    """
    code_teacher, attributes, reconstruction = teacher
    sim = tri_loss(code_image, code_text, code_teacher, S, student_weight=student_weight,
                   teacher_weight=teacher_weight, pair_target=pair_target)
    att = attribute_loss(code_teacher, attributes, reconstruction, target)
    with torch.no_grad():  # a branch on two scalars: no gradient (daeh.py:235)
        image_leads = bool(renyi_mutual_information(S, code_image)
                           > renyi_mutual_information(S, code_text))
    if image_leads:
        cross = cross_loss(code_teacher, code_text, S, pair_target)
    else:
        cross = cross_loss(code_image, code_teacher, S, pair_target)
    total = sim + attribute_weight * att + enhance_weight * cross
    return total, {"similarity": float(sim.detach()), "attribute": float(att.detach()),
                   "enhance": float(cross.detach()), "image_leads": float(image_leads)}


# ---- the networks ------------------------------------------------------------------------------
class DAEHTeacher(nn.Module):
    """The teacher head on the image features (ModelWrapper, model_loader.py:125-169):
    ``forward(x) -> (code, attributes, re-encoded code)``, ``(b, k)``, ``(b, d_I)``, ``(b, k)``.
    ``width > 0`` puts one hidden ReLU layer into the hash layer."""

    def __init__(self, d_image: int, n_bits: int, width: int):
        super().__init__()
        self.hash_layer = nn.Sequential(
            nn.ReLU(), mlp(d_image, [width] if width > 0 else [], n_bits, output=nn.Tanh()))
        self.fake_attribute = mlp(n_bits, list(ATTRIBUTE_WIDTHS), d_image, output=nn.ReLU())
        self.attribute_code = mlp(d_image, list(reversed(ATTRIBUTE_WIDTHS)), n_bits,
                                  output=nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        code = self.hash_layer(x)
        attributes = self.fake_attribute(code)
        return code, attributes, self.attribute_code(attributes)


class DAEHNet(nn.Module):
    """The students as ``encoders`` ``[image, text]`` (myImgNet, myTxtNet, model_loader.py:204-245:
    ``d -> width -> ReLU -> Dropout -> n_bits -> tanh``; the text net's last weights from
    ``N(0, text_init_std^2)``) and the training-only ``teacher``. Built teacher first, as
    daeh.py:144-146."""

    def __init__(self, dims: list[int], n_bits: int, *, image_width: int, text_width: int,
                 teacher_width: int, dropout: float, text_init_std: float | None):
        super().__init__()
        self.teacher = DAEHTeacher(dims[0], n_bits, teacher_width)
        self.encoders = nn.ModuleList([
            mlp(dims[0], [image_width], n_bits, dropout=dropout, output=ScaledTanh()),
            mlp(dims[1], [text_width], n_bits, dropout=dropout, output=ScaledTanh()),
        ])
        if text_init_std is not None:
            last = [m for m in self.encoders[1] if isinstance(m, nn.Linear)][-1]
            nn.init.normal_(last.weight, mean=0.0, std=text_init_std)


# ---- the hasher ------------------------------------------------------------------------------
class DAEH(ColumnScaling, DeepHasher):
    """DAEH: discriminative similarity guidance and a teacher that adaptively enhances the weaker
    modality (Shi et al., TCSVT 2022), on given image and text features.

    Two views (image first, text second). See the module docstring for the similarity, the
    networks, the loss and every choice against the official code. Fitting holds one float32
    ``n x n`` matrix over the training rows (about three while it is built); per epoch the
    networks cost O(n (d_I w_I + d_T w_T + (w_I + w_T) k + d_I (k + 512) + 2^17)) plus
    O(n b (k + b)) for the batch similarities and mutual information.

    Parameters
    ----------
    n_bits : code length (multiple of 8; the code's default 16, run.py:103).
    alpha, beta : image-near below ``m - alpha sigma_left``, image-far above
        ``m + beta sigma_right`` (2, 2; run.py:148-150).
    text_near, text_far : text-near at Euclidean distance ``<= text_near``, text-far at
        ``>= text_far`` (1, 5; daeh.py:470-471); ``text_near < text_far``.
    text_weight : ``a1``, the text cosine's weight in the fused similarity of the other pairs
        (0.3; run.py:162).
    pair_target : ``K``, the target of an item's cross-code cosines (1.5; daeh.py:36).
    student_weight : ``ceshi_tri``, weight of the image-text terms (4; run.py:156).
    teacher_weight : ``ceshi_tea``, weight of the image-teacher and text-teacher terms (1;
        run.py:158).
    enhance_weight : ``ceshi_cross``, weight of the adaptive enhancement term (0.1; run.py:160).
    attribute_weight : ``10^gamma``, weight of the teacher's attribute term (1e-3: ``gamma=-3``,
        run.py:154, daeh.py:141).
    image_width, text_width : hidden widths of the image and text students (4096 each;
        model_loader.py:207, 229).
    teacher_width : 0 (default): the teacher is the official hash layer on the image features;
        > 0 adds one hidden ReLU layer of that width (a stand-in for its fine-tuned backbone).
    dropout : dropout of the students, training only (0.5; model_loader.py:211, 233).
    text_init_std : standard deviation of the text student's last weights (0.3;
        model_loader.py:235); None keeps PyTorch's default initialisation.
    max_samples : training rows above which fit refuses (the ``n x n`` similarity; 12000).
    n_epochs, batch_size : 30, 18 (run.py:107, 119).
    optimizer, learning_rate, momentum, weight_decay : ``"sgd"``, 0.001, 0.9, 5e-4
        (daeh.py:153-156).
    validation_fraction : 0 (default) trains ``n_epochs`` epochs on every row and keeps the
        last; a fraction in (0, 1) holds out that share of the training rows and keeps the
        students of the epoch with the lowest held-out DAEH loss (never labels or queries; the
        code selects on the test queries).
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (default: a GPU when torch sees one, else the CPU), ``"cpu"`` or
        ``"cuda"``/``"cuda:N"``; the kept students always encode on the CPU.
    standardize : ``"auto"`` (default), True or False: column-standardise the views before the
        networks and the similarity -- under ``"auto"`` only views whose column deviations span
        more than 1,000x or whose rows lie within 0.5 of their mean (ours;
        :mod:`mmhash_baselines.deep._scaling`).
    random_state : seeds initialisation, dropout, shuffling and the held-out rows; the same
        value gives identical codes on the CPU (same ``n_threads``).
    """

    name = "daeh"
    supported_views = (2, 2)
    with_row_ids = True
    conformance_params: ClassVar[dict[str, Any]] = {
        "image_width": 64, "text_width": 64, "n_epochs": 8, "batch_size": 32,
        "learning_rate": 0.05, "n_threads": 1,
    }
    #: standardize is ColumnScaling's; text_near < text_far and max_samples against the training
    #: rows are checked in _check_params / _begin_training.
    parameter_constraints = {
        "alpha": Number(low=0), "beta": Number(low=0),
        "text_near": Number(low=0), "text_far": Number(low=0, low_open=True),
        "text_weight": Number(0, 1),
        "pair_target": Number(low=0), "student_weight": Number(low=0),
        "teacher_weight": Number(low=0), "enhance_weight": Number(low=0),
        "attribute_weight": Number(low=0),
        "image_width": Integer(minimum=1), "text_width": Integer(minimum=1),
        "teacher_width": Integer(minimum=0),
        "dropout": Number(0, 1, high_open=True),
        "text_init_std": Number(low=0, low_open=True, none=True),
        "max_samples": Integer(minimum=1),
    }

    def __init__(self, *, n_bits: int = 16, alpha: float = 2.0, beta: float = 2.0,
                 text_near: float = 1.0, text_far: float = 5.0, text_weight: float = 0.3,
                 pair_target: float = 1.5, student_weight: float = 4.0,
                 teacher_weight: float = 1.0, enhance_weight: float = 0.1,
                 attribute_weight: float = 1e-3, image_width: int = 4096,
                 text_width: int = 4096, teacher_width: int = 0, dropout: float = 0.5,
                 text_init_std: float | None = 0.3, max_samples: int = 12000,
                 n_epochs: int = 30, batch_size: int = 18, optimizer: str = "sgd",
                 learning_rate: float = 0.001, momentum: float = 0.9,
                 weight_decay: float = 5e-4, validation_fraction: float = 0.0,
                 n_threads: int | None = None, device: str = "auto", random_state: int = 0,
                 standardize: bool | str = "auto"):
        self.n_bits = n_bits
        self.alpha = alpha
        self.beta = beta
        self.text_near = text_near
        self.text_far = text_far
        self.text_weight = text_weight
        self.pair_target = pair_target
        self.student_weight = student_weight
        self.teacher_weight = teacher_weight
        self.enhance_weight = enhance_weight
        self.attribute_weight = attribute_weight
        self.image_width = image_width
        self.text_width = text_width
        self.teacher_width = teacher_width
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
    def _check_params(self) -> None:
        super()._check_params()
        if not float(self.text_near) < float(self.text_far):
            raise InvalidInputError(
                f"text_near={self.text_near} must be below text_far={self.text_far} (a pair "
                "cannot be both text-near and text-far)")

    def _weights(self) -> dict[str, float]:
        return {"student_weight": float(self.student_weight),
                "teacher_weight": float(self.teacher_weight),
                "enhance_weight": float(self.enhance_weight),
                "attribute_weight": float(self.attribute_weight),
                "pair_target": float(self.pair_target)}

    # -- training --------------------------------------------------------------------------------
    def _build_model(self, dims: list[int]) -> DAEHNet:
        if len(dims) != 2:
            raise InvalidInputError(f"DAEH takes two views (image, text), got {len(dims)}")
        return DAEHNet(dims, int(self.n_bits), image_width=int(self.image_width),
                       text_width=int(self.text_width), teacher_width=int(self.teacher_width),
                       dropout=float(self.dropout),
                       text_init_std=(None if self.text_init_std is None
                                      else float(self.text_init_std)))

    def _begin_training(self, state: TrainingState) -> None:
        check_pairwise_size(len(state.arrays[0]), int(self.max_samples), method="DAEH",
                            n_matrices=PEAK_MATRICES)
        X_image, X_text = training_tensors(state.arrays, state.device)
        with torch.no_grad():
            state.S = daeh_similarity(X_image, X_text, alpha=float(self.alpha),
                                      beta=float(self.beta), text_near=float(self.text_near),
                                      text_far=float(self.text_far),
                                      text_weight=float(self.text_weight))
        state.image_leads = []

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        X_image, X_text, rows = batch
        model = state.model
        return daeh_loss(model.encoders[0](X_image), model.encoders[1](X_text),
                         model.teacher(X_image), X_image, pair_block(state.S, rows),
                         **self._weights())

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        """One update of every network on :meth:`_loss` (daeh.py:244-254); records which side
        led."""
        loss, parts = self._loss(state, batch)
        state.image_leads.append(parts["image_leads"])
        yield loss, "model"
        return float(loss.detach()), parts

    def _epoch_updates(self, state: TrainingState) -> Updates:
        """No update: reports the epoch's share of batches where the image side led."""
        share = float(np.mean(state.image_leads)) if state.image_leads else 0.0
        state.image_leads = []
        return {"image_leads": share}
        yield  # a generator that yields nothing
