"""Random projection: the floor every learned hasher must beat."""

from __future__ import annotations

import numpy as np

from mmhash.base import BaseHasher


class RandomProjectionHasher(BaseHasher):
    """Random projection floor: sign of a Gaussian projection of each centred view.

    Each modality gets its own projection matrix ``W_m`` of shape ``(d_m, n_bits)`` with i.i.d.
    N(0, 1) entries, and codes are ``sign((X - mean_m) W_m)``. Nothing is learned across views, so
    cross-modal mAP sits at chance level plus whatever the label frequencies give; any method that
    learns from the pairing must beat it. Cost: O(n d n_bits) time, O(d n_bits) memory.

    Parameters
    ----------
    n_bits : int
        Code length, a multiple of 8.
    random_state : int
        Seed of the projections; modality ``m`` (the m-th view given to fit) uses the stream
        ``(random_state, m)``, so the codes of one view do not depend on the dimensions of another.
    """

    name = "rp"
    supported_views = (1, None)

    def __init__(self, n_bits: int = 32, random_state: int = 0):
        self.n_bits = n_bits
        self.random_state = random_state

    def _fit(self, views: dict[str, np.ndarray]) -> None:
        # Per-view arrays go into attributes named after the view index: state stays plain arrays.
        for i, X in enumerate(views.values()):
            rng = np.random.default_rng([int(self.random_state), i])
            setattr(self, f"mean{i}_", X.mean(axis=0))
            setattr(self, f"proj{i}_", rng.standard_normal((X.shape[1], self.n_bits)))

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        i = self.modalities_.index(modality)
        return (X - getattr(self, f"mean{i}_")) @ getattr(self, f"proj{i}_")
