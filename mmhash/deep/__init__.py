"""Public base for deep hashers: the training loop and the building blocks of the deep family.

``import mmhash.deep`` needs PyTorch (``pip install 'mmhash[deep]'``); ``import mmhash`` does
not import it. What a deep plugin uses:

* :class:`DeepHasher` -- subclass it, build a network with one encoder per view
  (``_build_model``) and write the mini-batch loss (``_loss``); every hook gets the fit's
  :class:`TrainingState`; a method with several optimised parts declares them as
  :class:`Part` s and its step as the ``(loss, part)`` updates it yields (``_updates``,
  :func:`run_updates`, :func:`frozen`); seeding, threads, device
  (``"auto"``: a GPU when torch sees one), batching, epoch progress (the bench's epoch bar),
  held-out epoch selection and early stopping, encoding and pickle-free saving come with it;
* the loop's parts (:mod:`mmhash.deep.training`): :func:`torch_session`, :func:`train_loop`,
  :func:`make_optimizer`, :func:`update` (one checked optimiser step, optionally clipped),
  :func:`holdout_split`, :func:`iter_batches`, :func:`resolve_device`;
* the family's blocks (:mod:`mmhash.deep.blocks`): :func:`feature_similarity`,
  :func:`fused_similarity`, :func:`second_order`, :func:`knn_graph`, :func:`graph_term`,
  :func:`keep_largest`, :func:`pair_block`, :func:`knn_indices` (the one chunked
  nearest-neighbour selection), :class:`Standardize` (per-column standardisation),
  :func:`check_pairwise_size`, :func:`cosine`, :func:`cosine_mse`, :func:`mlp`,
  :class:`ScaledTanh` with :func:`sqrt_schedule` / :func:`set_alpha`.

The README's plugin guide has a complete deep plugin.
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # one clear line instead of a deep traceback
    raise ImportError(
        "mmhash.deep needs PyTorch: pip install 'mmhash[deep]' (torch==2.13.0, CPU build)"
    ) from exc

from mmhash.deep.blocks import (
    RowNormalize,
    ScaledTanh,
    Standardize,
    check_pairwise_size,
    cosine,
    cosine_mse,
    feature_similarity,
    fused_similarity,
    graph_term,
    keep_largest,
    knn_graph,
    knn_indices,
    mlp,
    pair_block,
    pairwise_memory,
    second_order,
    set_alpha,
    sqrt_schedule,
)
from mmhash.deep.hasher import DeepHasher
from mmhash.deep.state import Part, TrainingState, Update, Updates, frozen, run_updates
from mmhash.deep.training import (
    DEVICES,
    ENCODE_CHUNK,
    OPTIMIZERS,
    Diverged,
    StepFn,
    TrainResult,
    check_finite,
    check_fraction,
    check_seed,
    evaluate_loss,
    holdout_split,
    iter_batches,
    loss_step,
    make_optimizer,
    resolve_device,
    resolve_threads,
    torch_session,
    train_loop,
    update,
)

__all__ = [
    "DEVICES",
    "ENCODE_CHUNK",
    "OPTIMIZERS",
    "DeepHasher",
    "Part",
    "TrainingState",
    "Update",
    "Updates",
    "Diverged",
    "RowNormalize",
    "ScaledTanh",
    "Standardize",
    "StepFn",
    "TrainResult",
    "check_finite",
    "check_fraction",
    "check_pairwise_size",
    "check_seed",
    "cosine",
    "cosine_mse",
    "evaluate_loss",
    "feature_similarity",
    "frozen",
    "fused_similarity",
    "graph_term",
    "holdout_split",
    "iter_batches",
    "keep_largest",
    "knn_graph",
    "knn_indices",
    "loss_step",
    "make_optimizer",
    "mlp",
    "pair_block",
    "pairwise_memory",
    "resolve_device",
    "resolve_threads",
    "run_updates",
    "second_order",
    "set_alpha",
    "sqrt_schedule",
    "torch_session",
    "train_loop",
    "update",
]
