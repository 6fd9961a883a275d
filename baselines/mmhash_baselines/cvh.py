"""CVH: Cross-View Hashing (Kumar & Udupa, IJCAI 2011)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from mmhash.base import BaseHasher
from mmhash.errors import DegenerateCodesWarning, InvalidInputError
from mmhash.params import Integer, Number
from mmhash_baselines._common import add_relative_ridge, column_signs


class CVH(BaseHasher):
    """Cross-View Hashing: linear hash functions from a generalised eigenproblem over all views.

    Paper: S. Kumar and R. Udupa, "Learning Hash Functions for Cross-View Similarity Search",
    IJCAI 2011.

    Objective (Sec. 3). Each view ``k`` gets a linear hash ``y^(k) = sgn(A_k^T x^(k))``. CVH
    minimises the similarity-weighted Hamming distance between the codes of every pair of views,
    ``d = sum_{k,k'} sum_{i,j} W_ij ||y_i^(k) - y_j^(k')||^2``, subject to balanced bits
    (``Y^(k) e = 0``, i.e. centred data) and uncorrelated bits. Relaxing the sign gives
    ``min Tr(A^T X L' X^T A)  s.t.  A^T X D X^T A = I`` whose solution is the generalised
    eigenproblem ``X L' X^T a = lambda X D X^T a``, keeping the eigenvectors of the *smallest*
    eigenvalues (one per bit). Here, as in the unsupervised setting of the paper, the only
    similarity is the pairing (``W = I``); with ``K`` views and ``C_kl`` the (regularised)
    covariance between views ``k`` and ``l`` the problem reads::

        [(K-1) C_kk on the diagonal, -C_kl off it] w = lambda blockdiag(C_kk) w

    so ``lambda = (K-1) - rho`` where ``rho`` solves the (multi-view) CCA eigenproblem
    ``[0 C_xy; C_yx 0] w = rho blockdiag(C_xx, C_yy) w``: for two views CVH is CCA, as the paper
    notes. Bits are the ``n_bits`` eigenvectors with the smallest ``lambda`` (largest ``rho``),
    ``eigenvalues_`` holds those ``lambda`` in ascending order.

    Choices where the paper is silent (each a parameter or stated here):

    * ``reg``: ridge ``r_k = reg * trace(C_kk) / d_k`` added to each view's covariance so that
      ``X D X^T`` is positive definite (needed e.g. for topic-proportion text features, whose
      centred rows sum to zero). Relative, so it does not depend on the feature scale. Default
      0.1 (until 0.1.0: 1e-4, a pure numerical guard): with feature dimensions near the number
      of training pairs the unregularised eigenproblem fits noise, and CVH fell to the random
      floor on such data. Chosen on the *validation splits* (``mmhash tune cvh --space
      reg=1e-4,...,30`` at 64 bits; the test queries unseen): validation mAP at 1e-4 / 0.1 /
      best: wiki .165 / .169 / .169 (0.1), cub10 .159 / .169 / .192 (3), mfeat .186 / .187 /
      .195 (1e-3) -- the one value no set loses with. On the test queries (16-128 bits) it moves
      wiki by at most .003 (the published-comparison table), cub10 up by .006-.029 in every
      cell, mfeat's 120 cells by -.031..+.032 (mean +.001). ``mmhash tune cvh`` finds the
      set's own value.
    * Only ``min(d_k)`` directions carry cross-view correlation. Longer codes take the next
      eigenvectors, as the paper's eigen-solution does. For eigenvalue ``K-1`` (zero
      correlation) a view's block is often zero, or lies where the view's training data have no
      variance (e.g. the all-ones direction of topic proportions, whose centred rows sum to
      zero); projecting on it gives round-off, whose sign would be noise that changes with the
      BLAS. A block whose projected training variance ``a^T C_kk a`` is below
      ``1e-14 * ||w||^2 * trace(C_kk)`` (``w`` the whole eigenvector) is set exactly to zero, so
      that bit is a constant +1 for that view. Those eigenvectors share one eigenvalue, so the
      other views' blocks are an arbitrary basis of that eigenspace (``eigh``'s, which changes
      with the BLAS library and its thread count: on the synthetic set at 128 bits, text->image
      mAP .256 with one thread, .249 with two). Fit then warns
      (:class:`~mmhash.errors.DegenerateCodesWarning`, :func:`degenerate_bits`), naming the
      views whose rank is below ``n_bits``; bits up to the smallest rank are unique up to sign,
      and the sign is fixed (:func:`~mmhash_baselines._common.column_signs`).
    * Codes are ``sgn(A_k^T (x - mean_k))`` with the training mean of each view.

    Cost: covariances O(n D^2) time, eigenproblem O(D^3) with ``D = sum_k d_k``; memory
    O(n D + D^2). Linear in ``n``; ``D`` above ``max_features`` is refused.

    Parameters
    ----------
    n_bits : int
        Code length (multiple of 8), at most ``sum_k d_k``.
    random_state : int
        Unused: the solution is deterministic. Kept for the common interface.
    reg : float
        Relative ridge on each view's covariance (default 0.1, see above), > 0.
    max_features : int
        Largest total feature dimension ``D`` accepted (dense ``D x D`` eigenproblem).

    Attributes
    ----------
    mean{k}_ : float64 array (d_k,), training mean of the k-th view given to fit
    proj{k}_ : float64 array (d_k, n_bits), ``A_k`` of the k-th view
    eigenvalues_ : float64 array (n_bits,), the selected ``lambda`` (ascending)
    """

    name = "cvh"
    supported_views = (2, None)
    #: ``mmhash tune cvh``: the ridge decides how many directions survive when the feature
    #: dimension approaches the number of training pairs.
    search_space = {"reg": (1e-6, 10.0, "log")}
    parameter_constraints = {"reg": Number(low=0, low_open=True),
                             "max_features": Integer(minimum=2)}

    def __init__(self, *, n_bits: int = 32, random_state: int = 0, reg: float = 0.1,
                 max_features: int = 20000):
        self.n_bits = n_bits
        self.random_state = random_state
        self.reg = reg
        self.max_features = max_features


    def _fit(self, views: dict[str, np.ndarray]) -> None:
        Xs = list(views.values())
        dims = [X.shape[1] for X in Xs]
        total = sum(dims)
        if total > self.max_features:
            raise InvalidInputError(
                f"CVH solves a dense eigenproblem of size sum of view dimensions = {total}, above "
                f"max_features={self.max_features}; reduce the features (e.g. PCA) or raise "
                "max_features"
            )
        if self.n_bits > total:
            raise InvalidInputError(
                f"n_bits={self.n_bits} exceeds the number of CVH directions (sum of view "
                f"dimensions = {total}); use n_bits <= {total}"
            )
        n = Xs[0].shape[0]
        means = [X.mean(axis=0) for X in Xs]
        Z = np.hstack([X - m for X, m in zip(Xs, means)])
        C = (Z.T @ Z) / n
        offsets = np.concatenate([[0], np.cumsum(dims)])
        blocks = [slice(offsets[k], offsets[k + 1]) for k in range(len(Xs))]

        # B = blockdiag(C_kk + r_k I);  M = off-diagonal cross-covariances (the CCA numerator).
        B = np.zeros_like(C)
        for s in blocks:
            B[s, s] = add_relative_ridge(C[s, s].copy(), self.reg)
        M = C.copy()
        for s in blocks:
            M[s, s] = 0.0
        # Largest rho of M w = rho B w  <=>  smallest lambda of ((K-1) B - M) w = lambda B w.
        rho, W = scipy.linalg.eigh(M, B, subset_by_index=[total - self.n_bits, total - 1])
        order = np.argsort(-rho, kind="stable")
        rho, W = rho[order], W[:, order]
        self.eigenvalues_ = (len(Xs) - 1) - rho
        _warn_degenerate(rho, self.n_bits, {name: C[s, s] for name, s in zip(views, blocks)})

        # Fix each vector's sign (eigh's is arbitrary) so the codes are reproducible.
        col_sq = np.einsum("ij,ij->j", W, W)
        W = W * column_signs(W)
        # Per-view arrays go into attributes named after the view index: state stays plain arrays.
        for k, s in enumerate(blocks):
            A = W[s].copy()
            Ckk = C[s, s]
            variance = np.einsum("ij,ij->j", A, Ckk @ A)
            A[:, variance <= 1e-14 * col_sq * np.trace(Ckk)] = 0.0
            setattr(self, f"mean{k}_", means[k])
            setattr(self, f"proj{k}_", A)

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        k = self.modalities_.index(modality)
        return (X - getattr(self, f"mean{k}_")) @ getattr(self, f"proj{k}_")


#: Eigenvalues closer than this (relative to the number of views - 1, the scale of ``rho``)
#: count as one: round-off in ``eigh`` is ~1e-15, distinct canonical correlations are far apart.
TIE_TOLERANCE = 1e-9


def degenerate_bits(rho: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Which selected eigenvectors are not determined by the data: bool ``(n_bits,)``.

    ``rho``: float64 ``(n_bits,)``, the selected cross-view correlations, descending. A vector
    whose ``rho`` is zero carries no cross-view correlation (the code is longer than a view's
    rank); one whose ``rho`` ties another's belongs to an eigenspace of dimension > 1, in which
    ``eigh`` returns an arbitrary basis -- one that changes with the BLAS library and its thread
    count. Either way the bit is not a unique answer of the method's eigenproblem.
    """
    tol = TIE_TOLERANCE * max(scale, 1.0)
    zero = np.abs(rho) <= tol
    gaps = np.abs(np.diff(rho)) <= tol
    tied = np.zeros(len(rho), dtype=bool)
    tied[:-1] |= gaps
    tied[1:] |= gaps
    return zero | tied


def _warn_degenerate(rho: np.ndarray, n_bits: int, covariances: dict[str, np.ndarray]) -> None:
    """Say so (:class:`~mmhash.errors.DegenerateCodesWarning`) when some of CVH's bits are
    degenerate eigenvectors (:func:`degenerate_bits`), naming the views whose rank is below
    ``n_bits`` (from their training covariances, float64 ``(d_k, d_k)``; computed only then)."""
    bad = degenerate_bits(rho, float(len(covariances) - 1))
    if not bad.any():
        return
    ranks = {name: int(np.linalg.matrix_rank(C, hermitian=True))
             for name, C in covariances.items()}
    short = ", ".join(f"{name!r} has rank {r}" for name, r in ranks.items() if r < n_bits)
    warnings.warn(DegenerateCodesWarning(
        f"cvh with n_bits={n_bits}: {int(bad.sum())} bits come from degenerate eigenvectors "
        f"(no cross-view correlation, or a tied eigenvalue){': ' + short if short else ''}. "
        "The eigenproblem has no unique answer for them: their codes are constant for a view "
        "without those directions and, for the others, an arbitrary basis that can change with "
        f"the BLAS library and its thread count. The data determine the first "
        f"{int(np.argmax(bad))} bits only"), stacklevel=4)
