"""Reference rows for the tables: real-valued rankings with no binarisation at all.

They answer "how much does a hashing method lose to its binary codes?": the same fixed splits,
the same exact metrics (:func:`mmhash.evaluation.evaluate_ranking`, ties included), but items
ranked by the cosine of real vectors. They are not hashers -- ``reference = True``, ``encode``
refuses, tables name them as references above the methods and never mark them best.

* ``cca-real``: linear CCA between the two views, ``k = min(n_bits, rank)`` canonical
  directions, ranked by cosine in the canonical space -- CVH's projection without the sign, so
  ``cca-real`` at ``k`` against a method at ``k`` bits is the cost of binarising ``k`` directions.
* ``feature-cosine``: the cosine of the raw features, for datasets whose views share one space
  (equal dimensions, e.g. CLIP image and text embeddings); refused otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from mmhash.base import REAL_VALUED_RANKING, BaseHasher
from mmhash.errors import InvalidInputError
from mmhash.params import Number


def cosine_distances(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """``1 - cos`` of every query row ``(b, m)`` with every database row ``(N, m)``: float64
    ``(b, N)``. An all-zero row has cosine 0 with everything (distance 1), not NaN."""
    def unit(A):
        A = np.asarray(A, dtype=np.float64)
        norms = np.linalg.norm(A, axis=1, keepdims=True)
        return np.divide(A, norms, out=np.zeros_like(A), where=norms > 0)

    return 1.0 - unit(queries) @ unit(database).T


class _Reference(BaseHasher):
    """What both references share: real-valued ranking by cosine, no codes."""

    reference = True
    capabilities = frozenset({REAL_VALUED_RANKING})

    def encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        raise InvalidInputError(
            f"{self.name} is a reference ranking by the cosine of real vectors and has no "
            "binary codes; use represent(X, modality) and distances(Q, D)")

    def _distances(self, queries: np.ndarray, database: np.ndarray) -> np.ndarray:
        return cosine_distances(queries, database)


class CCAReal(_Reference):
    """Reference: linear CCA between two views, ranked by cosine, no binarisation.

    Each view is standardised (columns to zero mean and unit variance; constant columns are
    left at 0); ``C_xx + reg (d_x / n) I`` and ``C_yy + reg (d_y / n) I`` are whitened and the
    cross-covariance decomposed: ``W_x = C_xx^-1/2 U``, ``W_y = C_yy^-1/2 V`` from the SVD
    ``C_xx^-1/2 C_xy C_yy^-1/2 = U diag(rho) V^T``. An item is ``z = standardised(x) W[:, :k]
    diag(rho^p)`` with ``k = min(n_bits, d_x, d_y)``; its distance to another is ``1 - cos``.

    The weights ``rho^p`` (``p = weight_power``, 4) are Gong, Ke, Isard and Lazebnik's (IJCV
    2014, "A multi-view embedding space for modeling internet images, tags, and their
    semantics"): unweighted, the weakly correlated directions count as much as the strong ones,
    and the cosine gets worse as ``k`` grows (synthetic: mAP .76 at 16 directions, .38 at 64).
    The ridge is in standardised units, so it means the same on any feature scale, and grows
    with ``d_m / n`` (as RFDH's ``projection_reg`` does), which keeps the whitening defined and
    the correlations honest when a view has about as many dimensions as training pairs.

    Parameters
    ----------
    n_bits : how many canonical directions to keep (capped at the smaller view's dimension):
        the column of the table it stands beside.
    reg : ridge added to each (standardised) covariance, times ``d_m / n`` (>= 0; default 1). Chosen
        with ``mmhash tune cca-real --space reg=.01,.1,.3,1,3`` on the validation splits
        (validation mAP, mean of the two tasks): wiki 128 .241/.240/.240/.238/.234, cub10 128
        .283/.468/.552/.555/.525, mfeat fou+kar 64 .668/.668/.668/.666/.659, mfeat pix+fac 64
        .531/.593/.633/.675/.701: 1 is never more than .03 from the best.
    weight_power : ``p`` of the per-direction weights ``rho^p``, >= 0 (0: unweighted).
    random_state : unused (CCA is deterministic); kept so every row of a grid takes a seed.
    """

    name = "cca-real"
    ranking = "cosine of the CCA projections, no binarisation"
    parameter_constraints = {"reg": Number(low=0), "weight_power": Number(low=0)}

    def __init__(self, *, n_bits: int = 32, reg: float = 1.0, weight_power: float = 4.0,
                 random_state: int = 0):
        self.n_bits = n_bits
        self.reg = reg
        self.weight_power = weight_power
        self.random_state = random_state

    def _fit(self, views: dict[str, np.ndarray]) -> None:
        X, Y = (views[m] for m in self.modalities_)
        n = X.shape[0]
        whitened, stats = [], []
        for A in (X, Y):
            mean, scale = A.mean(axis=0), A.std(axis=0)
            scale = np.where(scale > 0, scale, 1.0)
            Z = (A - mean) / scale
            # The ridge grows with d/n, as the optimal ridge of a linear model does: with more
            # dimensions than pairs the plain estimate finds perfect spurious correlations.
            ridge = float(self.reg) * A.shape[1] / n
            cov = Z.T @ Z / max(n - 1, 1) + ridge * np.eye(A.shape[1])
            values, vectors = linalg.eigh(cov)
            floor = max(values.max(), 1.0) * 1e-12  # reg = 0 with d > n: keep it invertible
            inv_sqrt = (vectors / np.sqrt(np.maximum(values, floor))) @ vectors.T
            whitened.append((Z, inv_sqrt))
            stats.append((mean, scale))
        (Zx, Wx), (Zy, Wy) = whitened
        cross = Wx @ (Zx.T @ Zy / max(n - 1, 1)) @ Wy
        U, rho, Vt = linalg.svd(cross, full_matrices=False)
        k = min(int(self.n_bits), U.shape[1])
        self.n_components_ = k
        self.correlations_ = rho[:k]
        weights = np.clip(rho[:k], 0.0, 1.0) ** float(self.weight_power)
        projections = (Wx @ U[:, :k] * weights, Wy @ Vt.T[:, :k] * weights)
        for i, ((mean, scale), proj) in enumerate(zip(stats, projections)):
            setattr(self, f"mean{i}_", mean)
            setattr(self, f"scale{i}_", scale)
            setattr(self, f"proj{i}_", proj)

    def _represent(self, X: np.ndarray, modality: str, role: str) -> np.ndarray:
        i = self.modalities_.index(modality)
        return ((X - getattr(self, f"mean{i}_")) / getattr(self, f"scale{i}_")) \
            @ getattr(self, f"proj{i}_")


class FeatureCosine(_Reference):
    """Reference: the cosine of the raw features, for views that share one space.

    Nothing is learned; fit only checks that every view has the same dimension (a shared
    embedding space, such as CLIP's image and text towers), and refuses otherwise. ``n_bits``
    does not change anything: the row is the same in every column.

    Parameters
    ----------
    n_bits : the column of the table it stands beside (no effect).
    random_state : unused; kept so every row of a grid takes a seed.
    """

    name = "feature-cosine"
    ranking = "cosine of the raw features"
    shared_space = True
    supported_views = (2, None)

    def __init__(self, *, n_bits: int = 32, random_state: int = 0):
        self.n_bits = n_bits
        self.random_state = random_state

    def _fit(self, views: dict[str, np.ndarray]) -> None:
        dims = {m: X.shape[1] for m, X in views.items()}
        if len(set(dims.values())) > 1:
            raise InvalidInputError(
                f"feature-cosine compares features of different views directly, so they must "
                f"share one space (equal dimensions), got {dims}; use cca-real instead")

    def _represent(self, X: np.ndarray, modality: str, role: str) -> np.ndarray:
        return X
