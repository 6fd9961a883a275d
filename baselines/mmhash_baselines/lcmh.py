"""LCMH: Linear Cross-Modal Hashing (Zhu, Huang, Shen & Zhao, ACM MM 2013)."""

from __future__ import annotations

import numpy as np
import scipy.sparse
from sklearn.cluster import KMeans

from mmhash.base import BaseHasher
from mmhash.errors import InvalidInputError
from mmhash.params import Integer, Number
from mmhash_baselines._common import add_relative_ridge, canonical_pairs


def anchor_representation(X: np.ndarray, anchors: np.ndarray, s: int,
                          sigma: float | None = None) -> tuple[scipy.sparse.csr_matrix, float]:
    """Represent each row of ``X`` by its kernel similarities to its ``s`` nearest anchors.

    ``z_ij = exp(-||x_i - c_j||^2 / (2 sigma^2)) / sum_{j' in N_s(i)} exp(...)`` for the ``s``
    nearest anchors ``j in N_s(i)`` and 0 otherwise, so each row is non-negative, has ``s``
    non-zeros and sums to 1.

    Parameters
    ----------
    X : float64 (n, d)
    anchors : float64 (k, d)
    s : nearest anchors kept per item, 1 <= s <= k
    sigma : kernel width; None = mean distance of the rows to their s-th nearest anchor

    Returns
    -------
    Z : scipy.sparse.csr_matrix float64 (n, k)
    sigma : the width used
    """
    n, k = X.shape[0], anchors.shape[0]
    # Squared distances by the expansion, clipped at 0 against round-off; O(n k d).
    d2 = ((X**2).sum(axis=1)[:, None] - 2.0 * X @ anchors.T + (anchors**2).sum(axis=1)[None, :])
    np.maximum(d2, 0.0, out=d2)
    nearest = np.argpartition(d2, s - 1, axis=1)[:, :s] if s < k else np.tile(np.arange(k), (n, 1))
    near_d2 = np.take_along_axis(d2, nearest, axis=1)
    if sigma is None:
        sigma = float(np.sqrt(near_d2.max(axis=1)).mean())
        if not sigma > 0:  # every item sits on an anchor: any width gives the same weights
            sigma = 1.0
    # Subtracting each row's smallest distance leaves the normalised weights unchanged and keeps
    # at least one weight at exp(0) = 1, so far-away items never divide 0 by 0.
    w = np.exp(-(near_d2 - near_d2.min(axis=1, keepdims=True)) / (2.0 * sigma**2))
    w /= w.sum(axis=1, keepdims=True)
    Z = scipy.sparse.csr_matrix((w.ravel(), (np.repeat(np.arange(n), s), nearest.ravel())),
                                shape=(n, k))
    return Z, float(sigma)


def centred_gram(Za: scipy.sparse.csr_matrix, Zb: scipy.sparse.csr_matrix,
                 mean_a: np.ndarray, mean_b: np.ndarray) -> np.ndarray:
    """``(Za - 1 mean_a^T)^T (Zb - 1 mean_b^T) / n`` without densifying Z: O(n s^2 + k^2)."""
    n = Za.shape[0]
    return np.asarray((Za.T @ Zb).todense()) / n - np.outer(mean_a, mean_b)


class LCMH(BaseHasher):
    """Linear Cross-Modal Hashing: k-means anchor representation, consistent linear hashes.

    Paper: X. Zhu, Z. Huang, H. T. Shen and X. Zhao, "Linear Cross-Modal Hashing for Efficient
    Multimedia Search", ACM Multimedia 2013.

    Provenance: only the paper's abstract could be consulted when this was written (no released
    code exists), so equation numbers are not given and step 2's exact constraint and
    regulariser are our reading of "transform the representations into a common subspace in
    which the codes of all modalities are consistent; the transformation outputs the hash
    functions of all modalities at once". Check it against the paper before comparing numbers.

    Method (Sec. 3).

    1. *Intra-similarity.* Each modality ``m`` is partitioned into ``n_anchors`` clusters
       (k-means); an item is represented by its similarities to its ``n_nearest`` closest
       centroids, ``z_ij = K(x_i, c_j) / sum_{j' in N_s(i)} K(x_i, c_j')`` (Gaussian kernel), a
       sparse k-dimensional vector. The paper proves that nearby items keep nearby
       representations, so intra-modal similarity is carried by ``Z_m``; every later step costs
       O(n) in the number of training items.
    2. *Inter-similarity.* Linear maps ``W_x, W_y`` of the (centred) representations send the
       two modalities into a common space in which the codes of the same object agree::

           min ||Z_x W_x - Z_y W_y||_F^2 + gamma (||W_x||_F^2 + ||W_y||_F^2)
           s.t. W_m^T (Z_m^T Z_m / n + gamma I) W_m = I   (uncorrelated, unit-variance bits)

       which equals ``2 n_bits - 2 tr(W_x^T C_xy W_y)``: both hash functions come out of one
       SVD, ``T = Lx^{-1} C_xy Ly^{-T} = U S V^T`` with ``C_mm + gamma I = Lm Lm^T``, ``W_x =
       Lx^{-T} U_r``, ``W_y = Ly^{-T} V_r`` for the ``n_bits`` largest singular values ``S_r``
       (the correlation of each bit pair across modalities, stored in ``correlations_``).
    3. Hash functions ``h_m(x) = sgn(W_m^T (z_m(x) - mean(Z_m)))``; training bits have mean 0.

    Choices where the paper is silent or which we state explicitly (each a parameter):

    * ``sigma`` of the kernel: the mean distance of the training items to their ``s``-th
      nearest centroid (per modality, learned at fit); kernel ``exp(-d^2 / (2 sigma^2))``.
    * ``gamma``: ridge, relative to the mean variance of ``Z_m`` (``gamma * tr(C_mm) / k``),
      which also makes the constraint well posed (centred ``Z_m`` has rank <= k - 1).
    * k-means: scikit-learn ``KMeans`` (k-means++, ``kmeans_n_init`` restarts), one seed per
      modality drawn from ``random_state``.
    * ``n_bits`` must stay below ``n_anchors`` of either modality (rank of centred ``Z``).

    Cost: k-means O(n k d t) time; the representation O(n k d); the Gram matrices O(n s^2) with
    sparse Z; the SVD O(k^3). Memory O(n k) for the distance block (computed in one pass) and
    O(k^2). Linear in ``n``, as the paper's title says (Wikipedia, one core: about 0.5 s);
    ``n_anchors`` above ``max_anchors`` is refused.

    Parameters
    ----------
    n_bits : int
        Code length (multiple of 8), less than ``n_anchors``.
    random_state : int
        Seed of k-means.
    n_anchors : int
        Clusters (anchors) per modality (default 300); at most the number of training items.
    n_nearest : int
        Nearest anchors kept per item, ``s`` (default 3).
    gamma : float
        Relative ridge (default 1e-3), > 0.
    kmeans_n_init : int
        k-means restarts (default 1).
    kmeans_max_iter : int
        k-means iterations per restart (default 100).
    max_anchors : int
        Largest ``n_anchors`` accepted (dense k x k algebra).

    Attributes
    ----------
    anchors{m}_ : float64 (k, d_m), centroids of the m-th view given to fit
    sigma{m}_ : float, kernel width of the m-th view
    zmean{m}_ : float64 (k,), training mean of ``Z_m``
    proj{m}_ : float64 (k, n_bits), ``W_m``
    correlations_ : float64 (n_bits,), cross-modal correlation of each bit (descending)
    """

    name = "lcmh"
    supported_views = (2, 2)
    #: Fewer anchors keep the conformance suite's many small fits fast (k-means dominates).
    conformance_params = {"n_anchors": 100}
    #: random_state is BaseHasher's integer >= 0 (np.random.default_rng refuses negative seeds
    #: with its own traceback).
    parameter_constraints = {
        "n_anchors": Integer(minimum=2),
        "n_nearest": Integer(minimum=1),
        "kmeans_n_init": Integer(minimum=1),
        "kmeans_max_iter": Integer(minimum=1),
        "max_anchors": Integer(minimum=2),
        "gamma": Number(low=0, low_open=True),
    }

    def __init__(self, *, n_bits: int = 32, random_state: int = 0, n_anchors: int = 300,
                 n_nearest: int = 3, gamma: float = 1e-3, kmeans_n_init: int = 1,
                 kmeans_max_iter: int = 100, max_anchors: int = 5000):
        self.n_bits = n_bits
        self.random_state = random_state
        self.n_anchors = n_anchors
        self.n_nearest = n_nearest
        self.gamma = gamma
        self.kmeans_n_init = kmeans_n_init
        self.kmeans_max_iter = kmeans_max_iter
        self.max_anchors = max_anchors

    def _check_params(self) -> None:
        """The rules relating two parameters: n_nearest <= n_anchors <= max_anchors, and
        n_bits < n_anchors."""
        if self.n_anchors > self.max_anchors:
            raise InvalidInputError(
                f"n_anchors={self.n_anchors} exceeds max_anchors={self.max_anchors} (dense "
                "k x k algebra); lower n_anchors or raise max_anchors"
            )
        if self.n_nearest > self.n_anchors:
            raise InvalidInputError(
                f"n_nearest={self.n_nearest} exceeds n_anchors={self.n_anchors}"
            )
        if self.n_bits >= self.n_anchors:
            raise InvalidInputError(
                f"n_bits={self.n_bits} must be below n_anchors={self.n_anchors} (centred anchor "
                "representations have rank n_anchors - 1); raise n_anchors"
            )

    def _fit(self, views: dict[str, np.ndarray]) -> None:
        Xs = list(views.values())
        n = Xs[0].shape[0]
        k = int(self.n_anchors)
        if n < k:
            raise InvalidInputError(
                f"n_anchors={k} clusters need at least {k} training items, got {n}; lower "
                "n_anchors"
            )
        seeds = np.random.default_rng(int(self.random_state)).integers(0, 2**31 - 1, size=len(Xs))
        Zs, means = [], []
        for m, (X, seed) in enumerate(zip(Xs, seeds)):
            km = KMeans(n_clusters=k, init="k-means++", n_init=int(self.kmeans_n_init),
                        max_iter=int(self.kmeans_max_iter), random_state=int(seed))
            anchors = km.fit(X).cluster_centers_
            Z, sigma = anchor_representation(X, anchors, int(self.n_nearest))
            zmean = np.asarray(Z.mean(axis=0)).ravel()
            setattr(self, f"anchors{m}_", anchors)
            setattr(self, f"sigma{m}_", sigma)
            setattr(self, f"zmean{m}_", zmean)
            Zs.append(Z)
            means.append(zmean)

        Cxx, Cyy = (add_relative_ridge(centred_gram(Z, Z, zmean, zmean), float(self.gamma))
                    for Z, zmean in zip(Zs, means))
        Cxy = centred_gram(Zs[0], Zs[1], means[0], means[1])
        # The SVD of Lx^{-1} C_xy Ly^{-T} (the cross-covariance of the whitened representations);
        # the joint sign of each bit pair is fixed (SVD's is arbitrary): reproducible codes.
        Wx, Wy, S = canonical_pairs(Cxx, Cyy, Cxy, self.n_bits, fix_signs=True)
        self.proj0_, self.proj1_ = Wx, Wy
        self.correlations_ = S

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        m = self.modalities_.index(modality)
        Z, _ = anchor_representation(X, getattr(self, f"anchors{m}_"), int(self.n_nearest),
                                     getattr(self, f"sigma{m}_"))
        return Z @ getattr(self, f"proj{m}_") - getattr(self, f"zmean{m}_") @ getattr(
            self, f"proj{m}_")
