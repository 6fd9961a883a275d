"""IMH: Inter-Media Hashing (Song, Yang, Yang, Huang & Shen, SIGMOD 2013)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.sparse
from sklearn.neighbors import NearestNeighbors

from mmhash.base import UNIFIED_DATABASE, BaseHasher
from mmhash.errors import InvalidInputError
from mmhash.params import Choice, Flag, Integer, Number
from mmhash_baselines._common import centre_and_scale, column_signs

AFFINITIES = ("heat", "binary")
THRESHOLDS = ("median", "zero")


def knn_affinity(X: np.ndarray, k: int, affinity: str = "heat",
                 sigma: float | None = None) -> tuple[scipy.sparse.csr_array, float]:
    """Affinity ``A`` of the symmetrised kNN graph of the rows of ``X`` (see
    :func:`knn_laplacian`): float64 (n, n) sparse, about ``k`` to ``2k`` entries a row, and the
    heat-kernel width used."""
    n = X.shape[0]
    dist, idx = NearestNeighbors(n_neighbors=k).fit(X).kneighbors()  # excludes each point
    if affinity == "heat":
        if sigma is None:
            sigma = float(dist.mean())
            if not sigma > 0:  # every neighbour a duplicate: any width gives weight 1
                sigma = 1.0
        weights = np.exp(-(dist / sigma) ** 2)
    else:
        sigma, weights = 1.0, np.ones_like(dist)
    A = scipy.sparse.csr_array((weights.ravel(), (np.repeat(np.arange(n), k), idx.ravel())),
                               shape=(n, n))
    return ((A + A.T) * 0.5).tocsr(), float(sigma)


def knn_laplacian(X: np.ndarray, k: int, affinity: str = "heat",
                  sigma: float | None = None) -> tuple[np.ndarray, float]:
    """Graph Laplacian ``L = D - A`` of the symmetrised kNN graph of the rows of ``X``.

    ``A_pq`` is non-zero when ``q`` is among the ``k`` nearest neighbours of ``p`` (Euclidean,
    the point itself excluded) or vice versa; ``A = (A + A^T) / 2``. Weights are
    ``exp(-||x_p - x_q||^2 / sigma^2)`` ("heat") or 1 ("binary").

    Parameters
    ----------
    X : float64 (n, d)
    k : number of neighbours, 1 <= k < n
    affinity : "heat" or "binary"
    sigma : heat-kernel width; None = mean distance of the points to their k neighbours

    Returns
    -------
    L : float64 (n, n), dense symmetric positive semi-definite with ``L @ 1 = 0``
    sigma : the width used (1.0 for "binary")
    """
    A, sigma = knn_affinity(X, k, affinity, sigma)
    A = A.toarray()
    return np.diag(A.sum(axis=1)) - A, sigma


def ridge_hat(X: np.ndarray, beta: float) -> np.ndarray:
    """``P = (X^T X + beta I)^{-1} X^T`` for ``X`` (n, d); float64 (d, n). The ridge hat matrix
    is ``X P``."""
    d = X.shape[1]
    return scipy.linalg.solve(X.T @ X + beta * np.eye(d), X.T, assume_a="pos")


def regression_residual(X: np.ndarray, beta: float) -> np.ndarray:
    """``B = I - X (X^T X + beta I)^{-1} X^T`` for centred ``X`` (n, d); float64 (n, n).

    ``tr(F^T B F) = min_W ||X W - F||^2 + beta ||W||^2``: the cost of the best ridge-regression
    hash functions for relaxed codes ``F``, i.e. the paper's linear-hash-function term with W
    eliminated.
    """
    B = -(X @ ridge_hat(X, beta))
    B[np.diag_indices_from(B)] += 1.0
    return (B + B.T) * 0.5


def inter_media_matrix(K1: np.ndarray, K2: np.ndarray, mu: float,
                       K2_times: Callable[[np.ndarray], np.ndarray] | None = None
                       ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Eliminate ``F2`` from ``tr(F1'K1F1) + tr(F2'K2F2) + mu ||F1 - F2||^2``.

    The minimiser over ``F2`` is ``F2 = mu (K2 + mu I)^{-1} F1``; substituting it leaves
    ``tr(F1' D F1)`` with ``D = K1 + mu K2 (K2 + mu I)^{-1}`` (symmetric: ``K2`` and
    ``(K2 + mu I)^{-1}`` commute). Returns ``D`` float64 (n, n) and ``solve``, the map
    ``V -> (K2 + mu I)^{-1} V`` of float64 (n, r) arrays (to recover ``F2``).

    From the Cholesky factor of ``K2 + mu I``, ``D`` takes a solve with the ``n`` columns of
    ``K2`` (2 n^3 flops). ``K2_times``, if given, computes ``K2 @ V`` for a dense (n, n) ``V``
    in well under n^3 flops (IMH's ``K2`` is the identity minus a low-rank term plus a sparse
    Laplacian): then the inverse comes from the factor (``potri``, 2/3 n^3) and
    ``D = K1 + mu K2_times(inverse)``. Either way the product is not formed as
    ``I - mu (K2 + mu I)^{-1}``, which would lose ``log10(mu / ||K2||)`` digits to cancellation
    at IMH's large ``mu``.
    """
    M = K2.copy()
    M[np.diag_indices_from(M)] += mu
    if K2_times is None:
        chol = scipy.linalg.cho_factor(M, lower=True, overwrite_a=True)
        D = K1 + mu * scipy.linalg.cho_solve(chol, K2)
        return (D + D.T) * 0.5, lambda V: scipy.linalg.cho_solve(chol, V)
    # potrf/potri on M^T, the Fortran-ordered view of the symmetric M: no copies
    factor, info = scipy.linalg.lapack.dpotrf(M.T, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError("K2 + mu I is not positive definite")
    inverse, info = scipy.linalg.lapack.dpotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError("K2 + mu I is singular")
    inverse = np.tril(inverse.T)  # C order; potri filled the lower triangle of this transpose
    inverse += np.tril(inverse, -1).T
    D = K2_times(inverse)
    D *= mu
    D += K1
    return (D + D.T) * 0.5, lambda V: inverse @ V


def relaxed_codes(X1: np.ndarray, X2: np.ndarray, *, n_bits: int, k: int, lam: float,
                  beta: float, mu: float, affinity: str = "heat", sigma: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """Solve IMH's relaxed problem for centred paired views ``X1`` (n, d1), ``X2`` (n, d2).

    Returns ``F1`` (n, n_bits), the eigenvectors of ``D`` with the smallest eigenvalues other
    than the constant vector (orthonormal, each orthogonal to 1, signs fixed so the largest
    entry is positive); ``F2 = mu (K2 + mu I)^{-1} F1``; the eigenvalues (ascending); and the
    heat-kernel widths used for the two views.
    """
    Ks, sigmas = [], []
    for X in (X1, X2):
        A, used = knn_affinity(X, k, affinity, sigma)
        L = A.toarray()
        degree = L.sum(axis=1)
        L = np.diag(degree) - L  # knn_laplacian's L
        K = regression_residual(X, beta)
        K += lam * L
        del L
        Ks.append(K)
        sigmas.append(used)
    # K2 @ V from K2's parts (the loop ended on the second view): the symmetrised ridge
    # residual I - (X2 P2 + P2^T X2^T) / 2 plus lam (diag(degree) - A), 2 n^2 (4 d2 + nnz / n)
    # flops. Used while that is below n^3: then the inverse and the product (see
    # inter_media_matrix) cost less than the 7/3 n^3 of the factor and the solve.
    A2, degree2 = A, degree
    n, d2 = X2.shape
    structured = 4 * d2 + A2.nnz / n < n / 2
    P2 = ridge_hat(X2, beta) if structured else None

    def K2_times(V):
        out = X2 @ (P2 @ V)
        out += P2.T @ (X2.T @ V)
        out *= -0.5
        out += V
        out += (lam * degree2)[:, None] * V
        out -= lam * (A2 @ V)
        return out

    D, solve = inter_media_matrix(Ks[0], Ks[1], mu, K2_times if structured else None)
    del Ks
    # 1 is an exact eigenvector of D (centred features); lift it above the spectrum
    # (Gershgorin bound) so the smallest eigenpairs are the non-trivial ones.
    D += (float(np.abs(D).sum(axis=1).max()) + 1.0) / n
    vals, F1 = scipy.linalg.eigh(D, subset_by_index=[0, n_bits - 1], overwrite_a=True,
                                 driver="evr")
    del D
    F1 *= column_signs(F1)  # fix eigh's arbitrary signs: reproducible codes
    F2 = mu * solve(F1)
    return F1, F2, vals, (sigmas[0], sigmas[1])


class IMH(BaseHasher):
    """Inter-Media Hashing: spectral codes with inter- and intra-media consistency, linear hashes.

    Paper: J. Song, Y. Yang, Y. Yang, Z. Huang and H. T. Shen, "Inter-Media Hashing for
    Large-Scale Retrieval from Heterogeneous Data Sources", SIGMOD 2013.

    Provenance: the paper's text could not be consulted when this was written (so no equation
    numbers); the objective and its elimination below match the authors' released MATLAB code
    (``IMH_learn.m``: the matrices B, E, C and U of the paper, F from the eigenvectors of C with
    the smallest eigenvalues, ridge-regression hash functions).

    Objective (Sec. 4). Relaxed codes ``F_g`` (n, n_bits) of each medium ``g`` minimise

    * intra-media consistency ``lam * sum_g tr(F_g^T L_g F_g)``, ``L_g`` the Laplacian of the
      kNN graph of medium ``g`` (neighbours in one medium get similar codes);
    * inter-media consistency ``||S_1 F_1 - S_2 F_2||_U^2`` over the paired items (here every
      item is paired, so the selection matrices are ``I``, and ``U = mu I``);
    * the linear hash-function term ``sum_g ||X_g W_g + 1 b_g^T - F_g||^2 + beta ||W_g||^2``,

    subject to ``F_1^T F_1 = I``. Eliminating ``W_g, b_g`` (ridge regression) gives
    ``tr(F_g^T B_g F_g)`` with ``B_g = I - X_g (X_g^T X_g + beta I)^{-1} X_g^T`` for centred
    ``X_g``; eliminating ``F_2 = mu (K_2 + mu I)^{-1} F_1`` with ``K_g = B_g + lam L_g`` leaves
    ``min tr(F_1^T D F_1)  s.t.  F_1^T F_1 = I``, ``D = K_1 + mu K_2 (K_2 + mu I)^{-1}``: the
    ``n_bits`` eigenvectors of ``D`` with the smallest eigenvalues. Then
    ``W_g = (X_g^T X_g + beta I)^{-1} X_g^T F_g`` and the hash of a new item is
    ``sgn(W_g^T (x - mean_g) - t_g)``.

    Unified database codes (:data:`~mmhash.base.UNIFIED_DATABASE`, :meth:`encode_database`):
    IMH learns one code per training item from both media jointly, and the paper's protocol
    ranks queries against those learned codes when the database is the training set. Those
    codes are the eigen-solution of the training set and exist for no other item, so
    :meth:`encode_database` never looks them up (nor tries to recognise training rows): for any
    item given through both media it returns the estimate that applies out of sample. With
    the hash functions fixed, the paper's linear hash-function term for one new item with code
    ``y`` is ``sum_g ||W_g^T c_g - y||^2`` (``c_g`` the normalised view, bias zero), whose
    minimiser is the mean of the two projections::

        y = (W_1^T c_1 + W_2^T c_2) / 2,     code = sgn(y - t_u)

    Both ``W_g`` regress the same joint code (``F_2 ~ F_1`` for the default large ``mu``), so
    the mean is the two media's estimates of one code pooled. ``t_u`` (``thresh_unified_``)
    follows ``threshold``: the per-bit median of ``y`` over the training items ("median") or 0.

    Choices where the paper is silent or which we state explicitly (each a parameter):

    * The constant vector ``1`` is an exact eigenvector of ``D`` (eigenvalue
      ``1 + mu / (1 + mu)``) because the features are centred. It is the trivial solution the
      paper's bias term ``b_g`` absorbs (a constant code predicts nothing) and it is excluded;
      every other eigenvector is orthogonal to ``1``, so all bits have zero training mean and
      the bias is zero.
    * ``affinity``: heat-kernel weights ``exp(-d^2 / sigma^2)`` on the kNN graph (the paper),
      ``sigma`` = mean kNN distance when not given; "binary" = 0/1 weights (the authors' code).
    * ``threshold``: "median" = the per-bit median of the training projections, learned at fit
      (balanced bits, as the authors' released code thresholds; the released code takes the
      median of whatever batch is encoded, which would make codes batch-dependent);
      "zero" = ``sgn`` of the centred projection (= threshold at the training mean).
    * ``normalize``: each view is centred and scaled to unit mean squared row norm before
      anything else (statistics learned at fit), so that ``beta`` and ``lam`` mean the same for
      topic proportions and for raw CNN features.
    * ``mu``: the weight ``U = mu I`` of the inter-media term; large values force paired items
      to (almost) the same relaxed code. Default 1e4.

    Cost: the kNN graphs O(n^2 d) time; ``B_g`` O(n^2 d); eliminating ``F2`` (a Cholesky
    factor and solve, 7/3 n^3 flops, or, when the second view has far fewer dimensions than
    ``n``, the inverse from the factor and ``K_2``'s product from its sparse and low-rank parts,
    n^3: :func:`inter_media_matrix`) and the partial eigendecomposition of the dense n x n ``D``
    (4/3 n^3) O(n^3) time and about eight n x n float64 matrices of memory. Quadratic memory
    and cubic time in ``n``: training sets above ``max_samples`` (default 5000: 1.4 GB peak and
    about 25 s of one core, measured) are refused with an
    :class:`~mmhash.errors.InvalidInputError`; subsample the training set or raise
    ``max_samples``. Encoding is O(d n_bits) per item.

    Parameters
    ----------
    n_bits : int
        Code length (multiple of 8), less than the number of training items minus one.
    random_state : int
        Unused: the solution is deterministic. Kept for the common interface.
    k : int
        Neighbours of the kNN graph of each medium (default 10).
    lam : float
        Weight of intra-media consistency (default 1, the authors' demo value).
    beta : float
        Ridge weight of the linear hash functions (default 1, the authors' demo value).
    mu : float
        Weight of inter-media consistency (default 1e4).
    affinity : {"heat", "binary"}
        kNN graph weights.
    sigma : float or None
        Heat-kernel width in normalised feature units; None = mean kNN distance per medium.
    threshold : {"median", "zero"}
        How projections become bits (see above).
    normalize : bool
        Centre and scale each view (see above); centring alone when False.
    max_samples : int
        Largest training set accepted (dense n x n eigenproblem).

    Attributes
    ----------
    mean{g}_ : float64 (d_g,) training mean of the g-th view given to fit
    scale{g}_ : float, the view's scale divisor (1.0 when ``normalize`` is False)
    proj{g}_ : float64 (d_g, n_bits), ``W_g``
    thresh{g}_ : float64 (n_bits,), ``t_g``
    thresh_unified_ : float64 (n_bits,), ``t_u``, the threshold of the unified codes
    sigma{g}_ : float, heat-kernel width used for the g-th view
    eigenvalues_ : float64 (n_bits,), the selected eigenvalues of ``D`` (ascending)
    objective_ : float, ``tr(F_1^T D F_1)`` at the solution (their sum)
    """

    name = "imh"
    supported_views = (2, 2)
    capabilities = frozenset({UNIFIED_DATABASE})
    parameter_constraints = {
        "k": Integer(minimum=1),
        "lam": Number(low=0),
        "beta": Number(low=0, low_open=True),
        "mu": Number(low=0, low_open=True),
        "sigma": Number(low=0, low_open=True, none=True),
        "affinity": Choice(AFFINITIES),
        "threshold": Choice(THRESHOLDS),
        "normalize": Flag(),
        "max_samples": Integer(minimum=2),
    }

    def __init__(self, *, n_bits: int = 32, random_state: int = 0, k: int = 10, lam: float = 1.0,
                 beta: float = 1.0, mu: float = 1e4, affinity: str = "heat",
                 sigma: float | None = None, threshold: str = "median", normalize: bool = True,
                 max_samples: int = 5000):
        self.n_bits = n_bits
        self.random_state = random_state
        self.k = k
        self.lam = lam
        self.beta = beta
        self.mu = mu
        self.affinity = affinity
        self.sigma = sigma
        self.threshold = threshold
        self.normalize = normalize
        self.max_samples = max_samples

    def _fit(self, views: dict[str, np.ndarray]) -> None:
        X1, X2 = views.values()
        n = X1.shape[0]
        if n > self.max_samples:
            raise InvalidInputError(
                f"IMH solves a dense {n} x {n} eigenproblem (O(n^2) memory, O(n^3) time); "
                f"{n} training items exceed max_samples={self.max_samples}. Subsample the "
                "training set or raise max_samples"
            )
        if self.k >= n:
            raise InvalidInputError(f"k={self.k} neighbours need more than {self.k} training "
                                    f"items, got {n}; lower k")
        if self.n_bits > n - 2:
            raise InvalidInputError(f"n_bits={self.n_bits} needs at least n_bits + 2 training "
                                    f"items (the constant eigenvector is excluded), got {n}")

        Xc = []
        for g, X in enumerate((X1, X2)):
            C, mean, scale = centre_and_scale(X, self.normalize)
            setattr(self, f"mean{g}_", mean)
            setattr(self, f"scale{g}_", scale)
            Xc.append(C)
        F1, F2, vals, sigmas = relaxed_codes(
            Xc[0], Xc[1], n_bits=self.n_bits, k=int(self.k), lam=float(self.lam),
            beta=float(self.beta), mu=float(self.mu), affinity=self.affinity, sigma=self.sigma)
        self.sigma0_, self.sigma1_ = sigmas
        self.eigenvalues_ = vals
        self.objective_ = float(vals.sum())

        projections = []
        for g, (C, F) in enumerate(zip(Xc, (F1, F2))):
            d = C.shape[1]
            W = scipy.linalg.solve(C.T @ C + float(self.beta) * np.eye(d), C.T @ F,
                                   assume_a="pos")
            projections.append(C @ W)
            setattr(self, f"proj{g}_", W)
            setattr(self, f"thresh{g}_", self._threshold_of(projections[-1]))
        # The unified codes' threshold, from the training items encoded as database items are.
        self.thresh_unified_ = self._threshold_of(0.5 * (projections[0] + projections[1]))

    def _threshold_of(self, Z: np.ndarray) -> np.ndarray:
        """Per-bit threshold (float64 (n_bits,)) of training projections Z (n, n_bits)."""
        return np.median(Z, axis=0) if self.threshold == "median" else np.zeros(Z.shape[1])

    def _normalised(self, X: np.ndarray, g: int) -> np.ndarray:
        return (X - getattr(self, f"mean{g}_")) / getattr(self, f"scale{g}_")

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        g = self.modalities_.index(modality)
        return self._normalised(X, g) @ getattr(self, f"proj{g}_") - getattr(self, f"thresh{g}_")

    def _encode_database(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """``(W_1^T c_1 + W_2^T c_2) / 2 - t_u``, float64 (n, n_bits), of items given as float64
        (n, d_g) views (see the class docstring); the sign is the code."""
        if not hasattr(self, "thresh_unified_"):  # state saved before unified codes existed
            raise InvalidInputError("this IMH was saved without a unified database threshold; "
                                    "refit it to use encode_database")
        C1, C2 = (self._normalised(views[m], g) for g, m in enumerate(self.modalities_))
        return 0.5 * (C1 @ self.proj0_ + C2 @ self.proj1_) - self.thresh_unified_
