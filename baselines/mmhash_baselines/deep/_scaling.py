"""Column standardisation in front of a deep baseline's networks, where a view needs it.

Used by DGCPN, JDSH, DJSRH, MGAH and UDCMH (:class:`ColumnScaling`) and by AGCH (only the spread
rule, :data:`SPREAD_LIMIT` / :func:`column_spread`, for its similarity). This module holds the
rule for *when* to standardise; the standardisation itself is :class:`mmhash.deep.Standardize`
(the statistics and the map), shared with AGCH's, DBRC's and UMHA's encoders.

The official DGCPN, JDSH and DJSRH codes feed their features to the networks (and to their
cosine similarities) as they are: VGG fc7 activations or bag-of-words counts, whose columns
share one scale of order one. A user's features need not:

* with columns on scales from 1e-4 to 1e6 (the conformance suite's hostile case; UCI mfeat's
  morphological view spans 4,000x), the largest columns decide every cosine, saturate the first
  layer and the codes fall below a random projection's (.38 vs .42 for DGCPN and JDSH; .79 and
  .78 with standardised columns);
* with rows that lie close together -- L1-normalised histograms and topic proportions, whose
  rows sum to 1, like wiki's SIFT bag-of-words image view (RMS distance of a row from the mean
  0.15) and its LDA text view (0.37) -- a default-initialised layer's output is mostly its bias
  and its response to the mean row, the same for every item, so the codes start nearly constant
  and stay so: at their defaults DGCPN gave every wiki training image one and the same 16-bit
  code after its first epoch, DJSRH every text (its first epoch moved the text net's output bias
  to 9x its initial norm), JDSH two text codes; mAP at the constant ranking's .111. Standardised
  (10-20 epochs, 16 bits, image->text / text->image): DGCPN .129/.111 -> .231/.295 (1,647 and
  421 distinct retrieval codes instead of 1 and 9), JDSH .142/.110 -> .190/.200, DJSRH
  .111/.109 -> .176/.144.

:class:`ColumnScaling` (a mixin before the deep base in the class's bases) standardises a view's
columns with the training mean and standard deviation when ``standardize`` says so:

* ``"auto"`` (default): only views whose column standard deviations span more than
  :data:`SPREAD_LIMIT` (largest over median, constant columns left out) or whose rows lie within
  :data:`CLOSE_LIMIT` of their mean (RMS, :func:`row_spread`). On data like the papers' nothing
  changes: the views of cub10, five of mfeat's six (not ``mor``), wiki's TF-IDF view and the
  MIRFlickr-shaped set span at most 8x with rows 0.65 or more from their mean (tags 2.1, fc7-like
  65), so their codes are the official pipeline's, bit for bit; wiki's image and text views are
  standardised (rows 0.15 and 0.37 from their mean).
* ``True`` / ``False``: every view / none (the official code).

The per-view shift and scale are fitted state (``input_mean{i}_``, ``input_std{i}_``, saved with
the model), the identity (0 and 1) for a view left alone; encoding applies them to new rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmhash.deep import Standardize
from mmhash.params import Choice

#: ``standardize="auto"`` standardises a view whose largest column standard deviation exceeds
#: its median one by more than this factor.
SPREAD_LIMIT = 1e3
#: ... or whose rows lie closer than this to their mean (RMS over the training rows): a layer
#: initialised with PyTorch's default (weights and bias uniform in +-1/sqrt(fan_in)) then
#: responds to what tells the items apart less than half as much as to its bias.
CLOSE_LIMIT = 0.5
STANDARDIZE_CHOICES = ("auto", True, False)


def column_spread(X: np.ndarray) -> float:
    """Largest over median standard deviation of the non-constant columns of ``X`` (float64
    (n, d)); 1.0 when fewer than two columns vary."""
    std = X.std(axis=0)
    std = std[std > 0]
    return float(std.max() / np.median(std)) if len(std) > 1 else 1.0


def row_spread(X: np.ndarray) -> float:
    """RMS distance of the rows of ``X`` (float64 (n, d)) from their mean: the square root of
    the summed column variances."""
    return float(np.sqrt(X.var(axis=0).sum()))


def needs_standardising(X: np.ndarray) -> bool:
    """What ``standardize="auto"`` decides for one view, float64 (n, d): columns spread over
    more than :data:`SPREAD_LIMIT`, or rows within :data:`CLOSE_LIMIT` of their mean (a constant
    view is left alone: there is nothing to scale)."""
    spread = row_spread(X)
    return column_spread(X) > SPREAD_LIMIT or 0 < spread < CLOSE_LIMIT


class ColumnScaling:
    """Mixin: standardise the views whose columns need it before the networks (module doc).

    The class using it takes a ``standardize`` parameter, whose rule the mixin declares (merged
    with the class's own ``parameter_constraints``)."""

    standardize: Any
    parameter_constraints = {"standardize": Choice(STANDARDIZE_CHOICES)}

    def _fit(self, views: dict[str, np.ndarray], **kwargs: Any) -> None:
        scaled = {}
        for i, (name, X) in enumerate(views.items()):
            mean, std = np.zeros(X.shape[1]), np.ones(X.shape[1])
            if self.standardize is True or (
                    self.standardize == "auto" and needs_standardising(X)):
                mean, std = Standardize.statistics(X)  # a constant column stays constant (0)
            setattr(self, f"input_mean{i}_", mean)
            setattr(self, f"input_std{i}_", std)
            scaled[name] = self._standardised(X, i)
        super()._fit(scaled, **kwargs)

    def _standardised(self, X: np.ndarray, i: int) -> np.ndarray:
        mean, std = getattr(self, f"input_mean{i}_"), getattr(self, f"input_std{i}_")
        if not mean.any() and (std == 1.0).all():
            return X  # the identity: the official pipeline's inputs, untouched
        return Standardize.transform(X, mean, std)

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        return super()._encode(self._standardised(X, self.modalities_.index(modality)), modality)
