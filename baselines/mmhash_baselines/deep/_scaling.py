"""Column standardisation in front of a deep baseline's networks, where a view needs it.

The official DGCPN and JDSH codes feed their features to the networks (and to their cosine
similarities) as they are: VGG fc7 activations or bag-of-words counts, whose columns share one
scale. A user's features need not: with columns on scales from 1e-4 to 1e6 (the conformance
suite's hostile case; UCI mfeat's morphological view spans 4,000x), the largest columns decide
every cosine, saturate the first layer and the codes fall below a random projection's (.38 vs
.42 for both methods; .79 and .78 with standardised columns).

:class:`ColumnScaling` (a mixin before the deep base in the class's bases) standardises a view's
columns with the training mean and standard deviation when ``standardize`` says so:

* ``"auto"`` (default): only views whose column standard deviations span more than
  :data:`SPREAD_LIMIT` (largest over median, constant columns left out). On data like the
  papers' nothing changes: every view of wiki and cub10, five of mfeat's six (not ``mor``) and the
  MIRFlickr-shaped set spans at most 8x, so their codes are the official pipeline's, bit for bit.
* ``True`` / ``False``: every view / none (the official code).

The per-view shift and scale are fitted state (``input_mean{i}_``, ``input_std{i}_``, saved with
the model), the identity (0 and 1) for a view left alone; encoding applies them to new rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmhash.params import check_choice

#: ``standardize="auto"`` standardises a view whose largest column standard deviation exceeds
#: its median one by more than this factor.
SPREAD_LIMIT = 1e3
STANDARDIZE_CHOICES = ("auto", True, False)


def column_spread(X: np.ndarray) -> float:
    """Largest over median standard deviation of the non-constant columns of ``X`` (float64
    (n, d)); 1.0 when fewer than two columns vary."""
    std = X.std(axis=0)
    std = std[std > 0]
    return float(std.max() / np.median(std)) if len(std) > 1 else 1.0


class ColumnScaling:
    """Mixin: standardise the views whose columns need it before the networks (module doc).

    The class using it takes a ``standardize`` parameter and calls
    :meth:`_check_standardize` from its ``_check_params``."""

    standardize: Any

    def _check_standardize(self) -> None:
        check_choice("standardize", self.standardize, STANDARDIZE_CHOICES)

    def _fit(self, views: dict[str, np.ndarray], **kwargs: Any) -> None:
        scaled = {}
        for i, (name, X) in enumerate(views.items()):
            mean, std = np.zeros(X.shape[1]), np.ones(X.shape[1])
            if self.standardize is True or (
                    self.standardize == "auto" and column_spread(X) > SPREAD_LIMIT):
                mean = X.mean(axis=0)
                spread = X.std(axis=0)
                std = np.where(spread > 0, spread, 1.0)  # a constant column stays constant (0)
            setattr(self, f"input_mean{i}_", mean)
            setattr(self, f"input_std{i}_", std)
            scaled[name] = self._standardised(X, i)
        super()._fit(scaled, **kwargs)

    def _standardised(self, X: np.ndarray, i: int) -> np.ndarray:
        mean, std = getattr(self, f"input_mean{i}_"), getattr(self, f"input_std{i}_")
        if not mean.any() and (std == 1.0).all():
            return X  # the identity: the official pipeline's inputs, untouched
        return (X - mean) / std

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        return super()._encode(self._standardised(X, self.modalities_.index(modality)), modality)
