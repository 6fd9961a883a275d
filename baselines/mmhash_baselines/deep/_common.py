"""What DJSRH and JDSH share: the two hash networks, the reconstruction loss, the alpha schedule.

JDSH's official code is derived from DJSRH's (same TxtNet, same AlexNet-fc7 image net, same
``tanh(sqrt(epoch + 1) h)`` schedule, same II / IT / TT reconstruction of a batch similarity
``S``), so both baselines build on :class:`TwoNetHasher` here; each module documents its own
similarity, loss weights and defaults. Only public :mod:`mmhash.deep` API is used.

Features-only setting: the image network is a head on the given image feature vectors, standing
in for the official codes' AlexNet fc7 (4096-d, after ReLU): by default the hash layer alone,
``Linear(d_image -> n_bits)`` (models.py ``fc_encode`` / ``hash_layer``), optionally with one
hidden ReLU layer of ``image_width`` units. The text network is the official TxtNet,
``d_text -> text_width (4096) -> ReLU -> n_bits``. Both end in ``tanh(alpha h)``
(:class:`mmhash.deep.ScaledTanh`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mmhash.deep import (
    DeepHasher,
    Part,
    ScaledTanh,
    TrainingState,
    cosine_mse,
    mlp,
    set_alpha,
    sqrt_schedule,
)
from mmhash.params import Flag, Integer, Number


class ImageTextNets(nn.Module):
    """The two hash networks, ``encoders[0]`` for the image view, ``encoders[1]`` for the text
    view; each maps float ``(n, d_m)`` features to ``(n, n_bits)`` values of ``tanh(alpha h)``.

    ``image_width = 0``: the image net is the official hash layer alone, ``Linear(d -> n_bits)``;
    ``> 0`` adds one hidden ReLU layer of that width. The text net is ``d -> text_width -> ReLU
    -> n_bits``. ``normalize_inputs`` L2-normalises each input row first (the official codes
    feed raw fc7 and raw text vectors: default off).
    """

    def __init__(self, dims: Sequence[int], n_bits: int, *, image_width: int, text_width: int,
                 normalize_inputs: bool = False):
        super().__init__()
        d_image, d_text = dims
        self.encoders = nn.ModuleList([
            mlp(d_image, [image_width] if image_width > 0 else [], n_bits,
                normalize_input=normalize_inputs, output=ScaledTanh()),
            mlp(d_text, [text_width], n_bits, normalize_input=normalize_inputs,
                output=ScaledTanh()),
        ])


def reconstruction_loss(unit_image: torch.Tensor, unit_text: torch.Tensor, S: torch.Tensor, *,
                        intra_image: float, intra_text: float, cross: float = 1.0
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``intra_image MSE(B_I B_I^T, S) + cross MSE(B_I B_T^T, S) + intra_text MSE(B_T B_T^T, S)``.

    ``unit_image`` / ``unit_text`` are ``B_I`` / ``B_T``: the row-L2-normalised codes, float
    ``(m, k)``; ``S`` is the ``(m, m)`` target. Each MSE is the mean over the ``m^2`` entries
    (``F.mse_loss``, as DJSRH train.py:112-115 and JDSH JDSH.py:147-161). Returns the weighted
    sum (scalar tensor) and the unweighted terms ``ii``, ``it``, ``tt`` (scalar tensors).
    """
    ii = cosine_mse(unit_image, unit_image, S, normalized=True)
    it = cosine_mse(unit_image, unit_text, S, normalized=True)
    tt = cosine_mse(unit_text, unit_text, S, normalized=True)
    return intra_image * ii + cross * it + intra_text * tt, {"ii": ii, "it": it, "tt": tt}


class TwoNetHasher(DeepHasher):
    """Base of DJSRH and JDSH: two views (image first, text second), :class:`ImageTextNets`,
    ``alpha = sqrt(epoch)`` (epochs from 1; the codes' ``sqrt(epoch + 1)`` from 0), and two SGD
    parameter groups: the image net at ``learning_rate``, the text net at
    ``text_learning_rate`` (the codes' separate ``opt_I`` / ``opt_T``, which share momentum and
    weight decay). Subclasses set the parameters ``image_width``, ``text_width``,
    ``normalize_inputs``, ``text_learning_rate`` and write ``_loss``."""

    supported_views = (2, 2)
    parameter_constraints = {
        "image_width": Integer(minimum=0),
        "text_width": Integer(minimum=1),
        "normalize_inputs": Flag(),
        "text_learning_rate": Number(low=0, low_open=True),
    }

    def _build_model(self, dims: list[int]) -> ImageTextNets:
        return ImageTextNets(dims, int(self.n_bits), image_width=int(self.image_width),
                             text_width=int(self.text_width),
                             normalize_inputs=bool(self.normalize_inputs))

    def _begin_epoch(self, state: TrainingState) -> None:
        set_alpha(state.model, sqrt_schedule(state.epoch))

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        image_net, text_net = state.model.encoders
        return {"model": Part([{"params": list(image_net.parameters()),
                                "lr": float(self.learning_rate)},
                               {"params": list(text_net.parameters()),
                                "lr": float(self.text_learning_rate)}])}
