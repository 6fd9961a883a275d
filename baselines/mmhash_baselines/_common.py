"""Numeric steps that several baselines take in exactly the same way (private to this package).

Each function is the one copy of a step whose formula and float operations used to be repeated
in two or more methods, so a fix reaches all of them:

* :func:`centre_and_scale`: IMH and PDH (``normalize``);
* :func:`column_signs`: CVH, IMH, LCMH and LSSH (the sign convention of eigen/singular vectors);
* :func:`add_relative_ridge`: CVH, LCMH and PDH (the ridge relative to the mean variance);
* :func:`canonical_pairs`: LCMH and PDH (CCA by Cholesky whitening and an SVD);
* :func:`squared_norm`: the CMFH and LSSH objectives.

Changing one changes the codes of every method listed with it.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def centre_and_scale(X: np.ndarray, normalize: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre the rows of ``X`` and, if ``normalize``, scale them to unit mean squared norm.

    Parameters
    ----------
    X : float64 (n, d)
    normalize : divide by ``sqrt(mean_i ||x_i - mean||^2)``; when False the scale is 1.0

    Returns
    -------
    Xc : float64 (n, d), ``(X - mean) / scale`` (a new array)
    mean : float64 (d,), the column means
    scale : float, the divisor (1.0 for a constant ``X``: nothing to scale)
    """
    mean = X.mean(axis=0)
    C = X - mean
    scale = float(np.sqrt((C**2).sum(axis=1).mean())) if normalize else 1.0
    if not scale > 0:  # a constant view: nothing to scale
        scale = 1.0
    return C / scale, mean, scale


#: Entries within this relative distance of a column's largest magnitude tie with it in
#: :func:`column_signs`: round-off is ~1e-15 of the column's norm, far below.
SIGN_TIE_TOLERANCE = 1e-8


def column_signs(W: np.ndarray) -> np.ndarray:
    """Per-column signs that make each column's largest-magnitude entry positive.

    Eigen- and singular vectors come with an arbitrary sign that may change with the LAPACK
    build; multiplying by these fixes it, so the codes are reproducible. ``W``: float64
    (d, m); returns float64 (m,) of +-1. The first entry whose magnitude is within
    :data:`SIGN_TIE_TOLERANCE` of the largest decides: entries equal in exact arithmetic (e.g.
    ``w`` and ``-w`` for two complementary indicator features) differ only by round-off, which
    changes with the BLAS library and its thread count, and must not pick the sign.
    """
    magnitude = np.abs(W)
    top = magnitude.max(axis=0) if W.size else np.zeros(W.shape[1])
    pivot = np.argmax(magnitude >= top * (1 - SIGN_TIE_TOLERANCE), axis=0)
    return np.where(W[pivot, np.arange(W.shape[1])] < 0, -1.0, 1.0)


def add_relative_ridge(C: np.ndarray, reg: float) -> np.ndarray:
    """Add ``reg * trace(C) / d`` (plus the smallest normal float) to the diagonal of ``C``.

    A ridge relative to the mean variance means the same for any feature scale; the tiny
    floor keeps an all-zero ``C`` positive definite. ``C``: float64 (d, d), changed in place
    and returned.
    """
    C[np.diag_indices_from(C)] += reg * np.trace(C) / C.shape[0] + np.finfo(float).tiny
    return C


def canonical_pairs(Cxx: np.ndarray, Cyy: np.ndarray, Cxy: np.ndarray, m: int, *,
                    fix_signs: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``m`` leading pairs of CCA directions for given (regularised) covariances.

    Maximises ``a' Cxy b`` subject to ``a' Cxx a = b' Cyy b = 1`` (and uncorrelated pairs):
    with ``Cxx = Lx Lx'`` and ``Cyy = Ly Ly'`` (Cholesky), the SVD ``Lx^-1 Cxy Ly^-T = U S V'``
    gives ``A = Lx^-T U_m`` and ``B = Ly^-T V_m``.

    Parameters
    ----------
    Cxx : float64 (dx, dx), positive definite
    Cyy : float64 (dy, dy), positive definite
    Cxy : float64 (dx, dy)
    m : number of pairs, at most ``min(dx, dy)``
    fix_signs : flip each pair so the largest-magnitude entry of ``U_m``'s column is positive
        (:func:`column_signs`); otherwise the signs are LAPACK's

    Returns
    -------
    A : float64 (dx, m), B : float64 (dy, m), S : float64 (m,) canonical correlations
    (descending)
    """
    Lx, Ly = np.linalg.cholesky(Cxx), np.linalg.cholesky(Cyy)
    T = scipy.linalg.solve_triangular(Lx, Cxy, lower=True)
    T = scipy.linalg.solve_triangular(Ly, T.T, lower=True).T
    U, S, Vt = np.linalg.svd(T, full_matrices=False)
    U, V = U[:, :m], Vt[:m].T
    if fix_signs:
        flip = column_signs(U)
        U, V = U * flip, V * flip
    A = scipy.linalg.solve_triangular(Lx.T, U, lower=False)
    B = scipy.linalg.solve_triangular(Ly.T, V, lower=False)
    return A, B, S[:m]


def squared_norm(M: np.ndarray) -> float:
    """Squared Frobenius norm of a 2-D array, as a Python float."""
    return float(np.einsum("ij,ij->", M, M))
