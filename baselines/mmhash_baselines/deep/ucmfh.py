"""UCMFH: Unsupervised Contrastive Multimodal Fusion Hashing (Xia, Dong, Li, Zhu, Ying;
Information Fusion 100, 101968, 2023: "When CLIP meets cross-modal hashing retrieval: a new
strong baseline").

Needs PyTorch. Built from the official code (github.com/XinyuXia97/UCMFH at 116f015);
``file:line`` below refers to that commit. The card ``docs/methods/ucmfh.md`` has the same facts
with the measurements.

Setting: features only, as the paper's. The code trains on pre-extracted CLIP ViT-B/32 features
(512-d image, 512-d text; the pickles ``mmhash.data.formats.ucmfh`` reads) fed as they are; here
the views are whatever the user gives (``d_image``, ``d_text``), fed as they are.

Network (model.py:7-62; ICMR.py:26-32)
    Fusion transformer: the item's token is ``[x_image, x_text]`` (``d = d_image + d_text``
    features; 1024 in the code), through ``TransformerEncoder`` (``n_layers = 2`` post-norm
    layers, ``n_heads = 4``, PyTorch's defaults elsewhere: feed-forward width 2048, dropout 0.1,
    ReLU; ``batch_first=False``), the output L2-normalised over all ``d`` features and split at
    ``d / 2`` into an image half and a text half (model.py:13, 19).
    Hash heads (``ImageMlp``, ``TextMlp``): ``L2-normalise -> Linear(d / 2, 4096) -> ReLU ->
    Dropout(0.3) -> Linear(4096, n_bits) -> tanh -> L2-normalise``. Code ``sign`` of the head's
    output. Initialised in the code's order (transformer, image head, text head), PyTorch's
    default initialisation.

Loss (ICMR.py:176-192; metric.py:5-23)
    ``L = C(f_I, f_T) + hash_weight * C(h_I, h_T)``, ``f`` the fused halves, ``h`` the heads'
    outputs, ``hash_weight = 0.5``. ``C`` is NT-Xent: the ``2b`` rows of both sets
    L2-normalised and stacked, row ``i``'s positive its partner, the denominator every other row
    (partner included), ``-log(exp(cos_ip / tau) / sum_{j != i} exp(cos_ij / tau))`` averaged
    over the ``2b`` rows, ``tau = temperature = 0.5``.

Training tokens (ICMR.py:183-185): ``concat(img, txt).unsqueeze(0)`` is ``(1, b, d)`` with
``batch_first=False``: ``b`` sequences of ONE token each. Attention over one token is the value
projection (softmax over one key is 1), so no item sees another and the query and key weights
play no part; their gradient is zero in exact arithmetic (on the CPU, with the default attention
dropout, they keep their initial values exactly; without dropout another kernel's round-off
gradients, which Adam scales to full steps, move them slightly). The head count still matters in
training: attention dropout is drawn per head.

Optimisation (ICMR.py:34-49, 193-203)
    Three Adams, betas ``(0.5, 0.999)``: the transformer at 1e-4 (``learning_rate``), each head at
    1e-3 (``mlp_learning_rate``); one loss, one backward, three steps -- here one Adam with three
    parameter groups, the same update. The heads' ``MultiStepLR`` is stepped after every BATCH
    (the ``.step()`` calls sit inside the batch loop, ICMR.py:202-203), so its milestones count
    optimiser steps: ``lr_schedule="mirflickr"`` (MIRFlickr and NUS-WIDE) multiplies the heads'
    rate by 1.2 after step 30 and again after step 80 (1.44e-3 from step 81 on, in the third
    of the code's 39-step epochs), ``"mscoco"`` by 0.6 after step 200, ``"constant"`` never. The
    transformer's rate never changes. Batch 128 (ICMR.py:17), epochs 100 for MIRFlickr
    (test-flickr.sh:8; 150 NUS-WIDE test-nus.sh:7, 500 MS-COCO test-mscoco.sh:7).

Where this differs from the code, openly:

* **Every training row.** The code trains on ``train[:4992]`` (load_dataset.py:51-53), and its
  loaders drop the last partial batch (``drop_last=True``, load_dataset.py:57; the fixed-size
  mask of metric.py:10 needs full batches): mmhash trains on every row given to fit, a last
  smaller batch with the same loss over its ``b`` rows (the base merges a last batch of one row
  into the one before).
* **Batch-independent codes.** The code's evaluation (ICMR.py:115-118, 127-130) feeds
  ``concat(img, txt)`` WITHOUT the ``unsqueeze``: ``(b, d)`` is one unbatched sequence of ``b``
  tokens, so attention (with the untrained query/key weights) mixes the 128 items of a loader
  batch and an item's code depends on which batch it is in; its loaders also drop the last
  partial query and retrieval batch, so ``n mod 128`` test items are never scored. mmhash
  encodes one-token sequences, as in training, every item: a code depends on its own item only.
  :func:`official_batched_codes` reproduces the code's encoding, to measure its batch
  dependence.
* **Per-view encoding (necessary deviation).** In the code BOTH codes of an item come from its
  fused token of BOTH modalities, and the paper's evaluation encodes each query from its image
  and its text together. mmhash's contract encodes each view from that view's features alone (a
  query image has no text). Here view ``m`` is encoded as the fused token with the other view's
  half filled by ``missing_view``: ``"mean"`` (default) that view's training mean, ``"zero"``
  zeros; e.g. an image ``x`` gets ``ImageMlp(image half of FuseTrans([x, mean_text]))``.
  Training is unchanged (full fused tokens of the paired rows), so the encoders see a token
  they were not trained on; the fills are fitted state (``fill0_``, ``fill1_``, and a buffer of
  each encoder, saved with it). The paper's numbers are therefore not numbers of this setting.
* **Fixed epochs, no test set.** The code evaluates on the test queries every 10 epochs
  (ICMR.py:80-85, printed; the last epoch is reported, no checkpoint is selected).
  ``validation_fraction=0`` (default) trains the fixed ``n_epochs``; a fraction in (0, 1) holds
  out that share of the training rows and keeps the epoch with the lowest held-out loss (the
  training loss in eval mode on the held-out pairs): no labels, no queries.
* **Metrics.** The code ranks with mAP@50 (``calculate_top_map(..., topk=50)``, ICMR.py:158-159,
  evaluate.py:116-142; ties in the order of numpy's unstable argsort); mmhash's own metrics and
  tie policies apply.

Views of unequal widths: the halves are the output's first and last ``d / 2`` features (the
code's split), so with ``d_image != d_text`` the "text half" also carries image positions. A
variant that zero-pads the narrower view so that the halves line up with the views did not help
on cub10 (1024 + 300; card) and costs a wider transformer, so the code's split is kept. ``d`` must
be even, and divisible by ``n_heads`` (PyTorch's multi-head attention): otherwise fit refuses
with one line naming the divisors, keeping the code's architecture rather than adding a
projection the code does not have (wiki's 128 + 10 = 138 features need ``n_heads`` 1, 2, 3, 6,
...). The encoders hold the transformer once: ``encoders`` is ``[image encoder, text encoder,
transformer]``, each view encoder holding an unregistered reference to the shared transformer (so
the saved state holds its weights once).

Input scale (ours; :mod:`mmhash_baselines.deep._scaling`): ``standardize="auto"`` standardises
only views whose columns span more than 1,000x or whose rows lie within 0.5 of their mean
(wiki's SIFT and LDA views); other views reach the token as the code feeds them, untouched.
Without it, features on scales 1e-4..1e4 fall below the random-projection floor (the
conformance suite's hostile case: 0.38 vs 0.42). A standardised view's training mean is 0, so
there ``missing_view="mean"`` and ``"zero"`` coincide.

What the per-view contract costs (card): the loss aligns the two halves of ONE token that sees
both views, so nothing makes a half depend on its own view alone; the text half in particular
moves with the image. On cub10 (16 bits) per-view codes reach 0.17 / 0.13 (image->text /
text->image, near the random-projection floor 0.14), the code's fused encoding of both views
0.36 / 0.36 item by item and 0.47 / 0.45 in its class-sorted loader batches.

Randomness: initialisation, dropout and shuffling from the base's seeded session; same seed,
same codes on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # the registry lists ucmfh as unavailable with this message
    raise ImportError(
        "UCMFH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.base import check_array
from mmhash.deep import DeepHasher, Part, TrainingState, Updates, mlp
from mmhash.errors import InvalidInputError
from mmhash.params import Choice, Integer, Number
from mmhash_baselines.deep._scaling import ColumnScaling
from mmhash_baselines.deep.ucch import UnitTanh

#: What stands in for the missing view's half of the token at encode time.
MISSING_VIEW_CHOICES = ("mean", "zero")
#: The heads' MultiStepLR, stepped after every optimiser step (ICMR.py:44-49, 202-203):
#: (milestones in steps, gamma).
LR_SCHEDULES: dict[str, tuple[tuple[int, ...], float]] = {
    "mirflickr": ((30, 80), 1.2),  # MIRFlickr and NUS-WIDE
    "mscoco": ((200,), 0.6),
    "constant": ((), 1.0),
}


# ---- network ---------------------------------------------------------------------------------
class FusionTransformer(nn.Module):
    """``FuseTransEncoder`` (model.py:7-20): tokens of ``d = d_image + d_text`` features through
    a ``TransformerEncoder`` (``batch_first=False``), L2-normalised over ``d``, split into two
    halves of ``d / 2`` features, the first the image half, the second the text half (the code's
    split at ``d / 2``, model.py:13, 19; ``d`` must be even).

    ``tokens`` is ``(s, b, d)`` (``b`` sequences of ``s`` tokens; ``s = 1`` in training and in
    mmhash's encoding) or ``(s, d)`` (one unbatched sequence, the code's evaluation). Returns
    ``(image half, text half)``, each ``(s b, d / 2)``, rows in token order.
    """

    def __init__(self, d_model: int, *, n_layers: int, n_heads: int, feedforward_width: int,
                 dropout: float):
        super().__init__()
        self.d_model = int(d_model)
        layer = nn.TransformerEncoderLayer(d_model=self.d_model, nhead=n_heads,
                                           dim_feedforward=feedforward_width, dropout=dropout,
                                           batch_first=False)
        # nested tensors serve only padded batch-first inputs: off, and without its warning
        self.transformer = nn.TransformerEncoder(layer, num_layers=n_layers,
                                                 enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = F.normalize(self.transformer(tokens).reshape(-1, self.d_model), dim=1)
        half = self.d_model // 2
        return out[:, :half], out[:, half:]


def hash_head(d_in: int, width: int, n_bits: int, dropout: float) -> nn.Sequential:
    """``ImageMlp`` / ``TextMlp`` (model.py:23-62): ``L2-normalise -> Linear(d_in, width) ->
    ReLU -> Dropout -> Linear(width, n_bits) -> tanh -> L2-normalise``; ``(n, d_in) -> (n,
    n_bits)``."""
    return mlp(d_in, [width], n_bits, dropout=dropout, normalize_input=True, output=UnitTanh())


class ViewEncoder(nn.Module):
    """``encoders[m]``: view-``m`` features ``(n, d_m)`` -> scores ``(n, n_bits)``.

    Each row becomes a one-token sequence ``[x, fill]`` (image view) or ``[fill, x]`` (text
    view), ``fill`` the buffer standing in for the other view (its training mean or zeros), goes
    through the shared :class:`FusionTransformer`, and view ``m``'s half through its hash head.
    The transformer is held by reference, not registered here: it is registered once, as the
    last entry of the encoders' ``ModuleList``, so it is saved once and moved / cast / copied
    with the list (``copy.deepcopy`` of the list keeps the sharing).
    """

    def __init__(self, view: int, fusion: FusionTransformer, d_other: int, head: nn.Module):
        super().__init__()
        self.view = int(view)
        self._fusion = (fusion,)  # a tuple: not a registered submodule
        self.register_buffer("fill", torch.zeros(d_other))
        self.head = head

    @property
    def fusion(self) -> FusionTransformer:
        return self._fusion[0]

    def tokens(self, X: torch.Tensor) -> torch.Tensor:
        """The fused tokens ``(n, d)`` of view-``m`` rows ``X`` with the fill as the other half."""
        fill = self.fill.to(X.dtype).expand(X.shape[0], -1)
        return torch.cat([X, fill] if self.view == 0 else [fill, X], dim=1)

    def score(self, tokens: torch.Tensor) -> torch.Tensor:
        """The head's output on view ``m``'s half of the transformer's output for ``tokens``
        (any layout :class:`FusionTransformer` takes)."""
        return self.head(self.fusion(tokens)[self.view])

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.score(self.tokens(X).unsqueeze(0))  # (1, n, d): n one-token sequences


class UCMFHNet(nn.Module):
    """``encoders = [image ViewEncoder, text ViewEncoder, FusionTransformer]``: everything the
    codes need (the transformer registered once); nothing else is trained."""

    def __init__(self, dims: Sequence[int], n_bits: int, *, n_layers: int, n_heads: int,
                 feedforward_width: int, fusion_dropout: float, hidden_width: int,
                 dropout: float):
        super().__init__()
        d_image, d_text = (int(d) for d in dims)
        # Created in the code's order (ICMR.py:30-32); each head reads one half of the output.
        fusion = FusionTransformer(d_image + d_text, n_layers=n_layers, n_heads=n_heads,
                                   feedforward_width=feedforward_width, dropout=fusion_dropout)
        half = (d_image + d_text) // 2
        image_head = hash_head(half, hidden_width, n_bits, dropout)
        text_head = hash_head(half, hidden_width, n_bits, dropout)
        self.encoders = nn.ModuleList([ViewEncoder(0, fusion, d_text, image_head),
                                       ViewEncoder(1, fusion, d_image, text_head), fusion])

    @property
    def fusion(self) -> FusionTransformer:
        return self.encoders[2]

    def fused(self, image: torch.Tensor, text: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training forward (ICMR.py:183-190) of paired rows ``(b, d_image)``, ``(b, d_text)``:
        ``(f_I, f_T, h_I, h_T)``, the fused halves of the one-token sequences and the heads'
        outputs."""
        f_image, f_text = self.fusion(torch.cat([image, text], dim=1).unsqueeze(0))
        return (f_image, f_text, self.encoders[0].head(f_image),
                self.encoders[1].head(f_text))


# ---- loss ------------------------------------------------------------------------------------
def contrastive_loss(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent of paired rows ``a``, ``b`` ``(n, k)`` (metric.py:11-23): over the ``2n`` rows of
    both, L2-normalised, ``-log(exp(cos(i, partner) / T) / sum_{j != i} exp(cos(i, j) / T))``,
    averaged. The code's ``negatives_mask`` removes only ``j = i`` (the partner stays in the
    denominator); written with a log-sum-exp, the same value without overflow. Scalar."""
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b], dim=0), dim=1)
    logits = (z @ z.T) / temperature
    self_pair = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    positive = logits[torch.arange(2 * n, device=z.device), partner]
    return (torch.logsumexp(logits.masked_fill(self_pair, -torch.inf), dim=1)
            - positive).mean()


def ucmfh_objective(f_image: torch.Tensor, f_text: torch.Tensor, h_image: torch.Tensor,
                    h_text: torch.Tensor, *, temperature: float, hash_weight: float
                    ) -> tuple[torch.Tensor, dict[str, float]]:
    """``C(f_I, f_T) + hash_weight C(h_I, h_T)`` (ICMR.py:186-192) and its two terms."""
    fusion = contrastive_loss(f_image, f_text, temperature)
    hashing = contrastive_loss(h_image, h_text, temperature)
    return fusion + hash_weight * hashing, {"fusion": float(fusion.detach()),
                                            "hash": float(hashing.detach())}


# ---- the code's evaluation -------------------------------------------------------------------
def official_batched_codes(hasher: UCMFH, image: np.ndarray, text: np.ndarray,
                           batch_size: int, *, drop_last: bool = False
                           ) -> tuple[np.ndarray, np.ndarray]:
    """The codes the official evaluation gives a fitted ``hasher``'s network (ICMR.py:107-151):
    each item from BOTH its views, the rows taken ``batch_size`` at a time in order and each
    batch fed as ONE sequence of ``batch_size`` tokens (``concat(img, txt)`` without the
    training's ``unsqueeze``), in eval mode, so attention mixes the items of a batch and a code
    depends on its batch. ``drop_last=True`` leaves out the last partial batch, as the code's
    loaders (load_dataset.py:57); by default it is encoded as a shorter sequence.

    ``image`` ``(n, d_image)`` and ``text`` ``(n, d_text)`` are paired rows. Runs the saved
    encoders in float64 on the CPU, as :meth:`UCMFH.encode`. Returns ``(image_codes,
    text_codes)``, int8 ``(n', n_bits)`` in {-1, +1}, ``n'`` the rows encoded. For measuring the
    code's batch dependence; never what mmhash's encode does.
    """
    if not isinstance(hasher, UCMFH):
        raise InvalidInputError(f"official_batched_codes needs a fitted UCMFH, got "
                                f"{type(hasher).__name__}")
    hasher._check_fitted()
    batch_size = int(batch_size)
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size}")
    views = []
    for i, (modality, X) in enumerate(zip(hasher.modalities_, (image, text))):
        X = check_array(X, f"X for modality {modality!r}")
        if X.shape[1] != hasher.n_features_[modality]:
            raise InvalidInputError(f"X for modality {modality!r} has {X.shape[1]} features, "
                                    f"but the hasher was fitted with "
                                    f"{hasher.n_features_[modality]}")
        views.append(hasher._standardised(X, i))  # as encode does
    if len(views[0]) != len(views[1]):
        raise InvalidInputError(f"image and text must be paired rows: {len(views[0])} and "
                                f"{len(views[1])}")
    n = len(views[0]) - (len(views[0]) % batch_size if drop_last else 0)
    image_encoder, text_encoder, fusion = hasher._scorers
    scores: list[list[np.ndarray]] = [[], []]
    with torch.no_grad():
        for start in range(0, n, batch_size):
            tokens = torch.from_numpy(np.concatenate(
                [X[start:start + batch_size] for X in views], axis=1))
            f_image, f_text = fusion(tokens)  # (b, d): one sequence of b tokens
            scores[0].append(image_encoder.head(f_image).numpy())
            scores[1].append(text_encoder.head(f_text).numpy())
    k = int(hasher.n_bits)
    return tuple(hasher._sign(np.concatenate(s) if s else np.empty((0, k)), n, "official")
                 for s in scores)


# ---- the hasher ------------------------------------------------------------------------------
class UCMFH(ColumnScaling, DeepHasher):
    """UCMFH: a transformer fuses each item's image and text into one token; contrastive losses
    on the fused halves and on the hash heads' outputs (Xia et al., Information Fusion 2023).

    Two views (image first, then text). See the module docstring for each paper/code choice and
    every deviation, in particular the per-view encoding (``missing_view``): a NECESSARY
    deviation of mmhash's per-view contract, whereas the paper encodes each query from both of
    its modalities. Cost per epoch: O(N (L (4 d^2 + 2 d f) + (d_image + d_text) w + 2 w k + B k))
    for ``L`` layers of width ``d = d_image + d_text``, feed-forward width ``f``, head width
    ``w`` and ``k`` bits; memory O(L (4 d^2 + 2 d f)) for the transformer (67 MB at the code's
    d = 1024).

    Parameters
    ----------
    n_bits : code length (multiple of 8; 16, demo.py:20).
    missing_view : fill of the other view's half of the token when one view is encoded
        (``"mean"``: that view's training mean, default; ``"zero"``). Training is unaffected.
    n_layers, n_heads : transformer layers and attention heads (2, 4; ICMR.py:28).
        ``d_image + d_text`` must be divisible by ``n_heads``.
    feedforward_width : width of each transformer layer's feed-forward block (2048, PyTorch's
        default the code keeps).
    fusion_dropout : dropout inside the transformer layers (0.1, PyTorch's default).
    hidden_width : width of the hash heads' hidden layer (4096, model.py:26).
    dropout : the heads' dropout (0.3, model.py:28).
    temperature : ``tau`` of the contrastive loss (0.5, metric.py:6).
    hash_weight : weight of the heads' contrastive term (0.5, ICMR.py:192).
    mlp_learning_rate : the heads' learning rate (1e-3, ICMR.py:41-42).
    lr_schedule : the heads' rate by optimiser step ("mirflickr", "mscoco" or "constant"): x1.2
        after steps 30 and 80 (the code's MIRFlickr and NUS-WIDE), x0.6 after step 200
        (MS-COCO), or never.
    adam_beta1 : Adam's first beta for every part (0.5, ICMR.py:40-42; second beta 0.999).
    standardize : standardise a view's columns before the token (``"auto"``, default; True;
        False) with its training mean and deviation -- under ``"auto"`` only views whose
        column deviations span more than 1,000x or whose rows lie within 0.5 of their mean
        (ours; the code feeds CLIP features as they are).
    n_epochs, batch_size : 100 (test-flickr.sh), 128 (ICMR.py:17).
    optimizer, learning_rate, momentum, weight_decay : Adam, the transformer's rate 1e-4
        (ICMR.py:40), SGD momentum (unused by Adam), 0.
    validation_fraction : 0 (default): fixed ``n_epochs``, the last kept. In (0, 1): that share
        of the training rows is held out and the epoch with the lowest held-out loss is kept;
        no labels, no queries.
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (a GPU when torch sees one), ``"cpu"``, ``"cuda[:N]"``; encoders always
        encode on the CPU. Identical codes per seed are guaranteed on the CPU.
    random_state : seeds initialisation, dropout, shuffling and the held-out rows.
    """

    name = "ucmfh"
    supported_views = (2, 2)
    conformance_params: ClassVar[dict[str, Any]] = {
        "hidden_width": 64, "feedforward_width": 64, "n_epochs": 10, "batch_size": 64,
        "learning_rate": 1e-3, "n_threads": 1,
    }
    parameter_constraints = {
        "missing_view": Choice(MISSING_VIEW_CHOICES),
        "lr_schedule": Choice(tuple(LR_SCHEDULES)),
        "n_layers": Integer(minimum=1), "n_heads": Integer(minimum=1),
        "feedforward_width": Integer(minimum=1), "hidden_width": Integer(minimum=1),
        "fusion_dropout": Number(0, 1, high_open=True), "dropout": Number(0, 1, high_open=True),
        "temperature": Number(low=0, low_open=True), "hash_weight": Number(low=0),
        "mlp_learning_rate": Number(low=0, low_open=True),
        "adam_beta1": Number(0, 1, high_open=True),
    }

    def __init__(self, *, n_bits: int = 16, missing_view: str = "mean",
                 standardize: bool | str = "auto", n_layers: int = 2,
                 n_heads: int = 4, feedforward_width: int = 2048, fusion_dropout: float = 0.1,
                 hidden_width: int = 4096, dropout: float = 0.3, temperature: float = 0.5,
                 hash_weight: float = 0.5, mlp_learning_rate: float = 1e-3,
                 lr_schedule: str = "mirflickr", adam_beta1: float = 0.5, n_epochs: int = 100,
                 batch_size: int = 128, optimizer: str = "adam", learning_rate: float = 1e-4,
                 momentum: float = 0.9, weight_decay: float = 0.0,
                 validation_fraction: float = 0.0, n_threads: int | None = None,
                 device: str = "auto", random_state: int = 0):
        self.n_bits = n_bits
        self.missing_view = missing_view
        self.standardize = standardize
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.feedforward_width = feedforward_width
        self.fusion_dropout = fusion_dropout
        self.hidden_width = hidden_width
        self.dropout = dropout
        self.temperature = temperature
        self.hash_weight = hash_weight
        self.mlp_learning_rate = mlp_learning_rate
        self.lr_schedule = lr_schedule
        self.adam_beta1 = adam_beta1
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

    # -- fit -------------------------------------------------------------------------------------
    def _fit(self, views: dict[str, np.ndarray], **kwargs: Any) -> None:
        d_image, d_text = (X.shape[1] for X in views.values())
        d, heads = d_image + d_text, int(self.n_heads)
        if d % 2:
            raise InvalidInputError(
                f"UCMFH splits its fused token's output into two halves of d / 2 features "
                f"(model.py:13, 19), but d_image + d_text = {d_image} + {d_text} = {d} is odd")
        if d % heads:
            divisors = [h for h in range(1, d + 1) if d % h == 0]
            shown = ", ".join(map(str, divisors[:6])) + (", ..." if len(divisors) > 6 else "")
            raise InvalidInputError(
                f"n_heads={heads} does not divide UCMFH's fused token of d_image + d_text = "
                f"{d_image} + {d_text} = {d} features (multi-head attention needs it): lower "
                f"or raise n_heads to a divisor of {d} ({shown})")
        super()._fit(views, **kwargs)
        # The fills the encoders use, as fitted state: fill{m}_ stands in for view m.
        self.fill0_ = self._encoders[1].fill.double().numpy().copy()
        self.fill1_ = self._encoders[0].fill.double().numpy().copy()

    def _build_model(self, dims: list[int]) -> UCMFHNet:
        return UCMFHNet(dims, int(self.n_bits), n_layers=int(self.n_layers),
                        n_heads=int(self.n_heads),
                        feedforward_width=int(self.feedforward_width),
                        fusion_dropout=float(self.fusion_dropout),
                        hidden_width=int(self.hidden_width), dropout=float(self.dropout))

    def _begin_training(self, state: TrainingState) -> None:
        image_encoder, text_encoder, _ = state.model.encoders
        if self.missing_view == "mean":  # over every training row given to fit
            with torch.no_grad():
                image_encoder.fill.copy_(torch.from_numpy(state.arrays[1].mean(axis=0)))
                text_encoder.fill.copy_(torch.from_numpy(state.arrays[0].mean(axis=0)))
        state.steps = 0

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        """One optimiser, three parameter groups: the transformer at ``learning_rate``, each
        head at ``mlp_learning_rate`` (the code's three Adams with one shared loss)."""
        net: UCMFHNet = state.model
        rate, head_rate = float(self.learning_rate), float(self.mlp_learning_rate)
        groups = [{"params": list(net.fusion.parameters()), "lr": rate},
                  {"params": list(net.encoders[0].head.parameters()), "lr": head_rate},
                  {"params": list(net.encoders[1].head.parameters()), "lr": head_rate}]
        if self.optimizer != "adam":
            return {"model": Part(groups)}
        betas, decay = (float(self.adam_beta1), 0.999), float(self.weight_decay)
        return {"model": Part(groups, optimizer=lambda params: torch.optim.Adam(
            params, lr=rate, betas=betas, weight_decay=decay, fused=True))}

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        image, text = batch
        return ucmfh_objective(*state.model.fused(image, text),
                               temperature=float(self.temperature),
                               hash_weight=float(self.hash_weight))

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        loss, parts = self._loss(state, batch)
        yield loss, "model"
        # The heads' MultiStepLR.step() after every optimiser step (ICMR.py:202-203).
        state.steps += 1
        milestones, gamma = LR_SCHEDULES[self.lr_schedule]
        rate = float(self.mlp_learning_rate) * gamma ** sum(state.steps >= m for m in milestones)
        for group in state.optimizers["model"].param_groups[1:]:
            group["lr"] = rate
        return float(loss.detach()), parts
