"""LSSH: Latent Semantic Sparse Hashing (Zhou, Ding & Guo, SIGIR 2014)."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso

from mmhash.base import BaseHasher
from mmhash.errors import InvalidInputError
from mmhash.params import check_bool, check_choice, check_integer, check_number
from mmhash_baselines._common import column_signs
from mmhash_baselines._common import squared_norm as sq

THRESHOLDS = ("mean", "median", "zero")


class LSSH(BaseHasher):
    """Latent Semantic Sparse Hashing: sparse codes of images and factorised texts, linked.

    Paper: J. Zhou, G. Ding and Y. Guo, "Latent Semantic Sparse Hashing for Cross-Modal Similarity
    Search", SIGIR 2014.

    Model (column-sample matrices: images ``X`` (p x n), texts ``Y`` (d2 x n)). Images are
    sparse-coded over a dictionary ``B`` (p x m), texts are factorised into a basis ``U``
    (d2 x k) and latent concepts ``A`` (k x n), and a linear map ``R`` (k x m) carries the image
    sparse codes ``S`` (m x n) into the text latent space (k = n_bits)::

        min  ||X - B S||^2 + lambda sum_i |s_i|_1 + mu ||Y - U A||^2 + gamma ||A - R S||^2
        s.t. ||b_j|| <= 1, ||u_j|| <= 1, ||r_j|| <= 1

    optimised alternately (Sec. 3.3), in the order of the authors' release:

    * ``A = (mu U^T U + gamma I)^-1 (mu U^T Y + gamma R S)`` (closed form);
    * ``U``: least squares with unit-ball columns, solved exactly through its Lagrange dual
      (Lee et al., NIPS 2006), as the paper does; likewise ``B`` and ``R``;
    * ``S``: a Lasso per sample on the stacked system ``[x; sqrt(gamma) a] ~ [B; sqrt(gamma) R] s``
      (scikit-learn's ``Lasso``, coordinate descent warm-started at the previous ``S``).

    Every step does not increase the objective; ``objective_`` records it after each iteration.

    Out of sample (Sec. 3.4): an image is sparse-coded with the learned ``B`` (Lasso, same
    ``lambda``) and mapped to ``R s``; a text is projected through ``U`` by
    ``a = (U^T U + gamma/mu I)^-1 U^T y`` (the latent objective with the image term absent, as in
    the authors' code; plain least squares is singular whenever k > d2). The codes are the signs of
    these latents minus per-bit thresholds learned at fit (``threshold``).

    Choices where the paper is silent, taken from the authors' released code unless noted:

    * Preprocessing: centre both views with the training mean, project images on their top
      ``min(n_bits, d1)`` principal components (``image_pca``), and scale every sample (row) to
      unit l2 norm. All of it is per row at encode time.
    * Defaults: ``mu = 0.5``, ``gamma = 1``, dictionary size 512, 20 outer iterations. The l1
      weight ``sparsity = 0.2`` is the paper's constant ``lambda`` on unit-norm features (the
      released code passes 0.2 to SLEP as a fraction of each sample's lambda_max instead, which
      changes with the dictionary; a constant keeps one objective to minimise).
    * Initialisation: ``B``, ``U``, ``R`` with i.i.d. Gaussian entries and unit columns, ``S``
      the sparse codes of the images over the initial ``B``.
    * Thresholds (``threshold``): "mean" (default) or "median" of each bit's latent over the
      training set, encoded out of sample per modality, so bits are balanced; "zero" is the
      authors' ``sign(latent)``. Per-bit constants, never batch statistics.
    * Unused dictionary atoms (a zero row of ``S``) keep their previous value (any unit-ball
      value is optimal for them).

    Cost per iteration: sparse coding O(n m (p + k) t) (t = coordinate-descent sweeps), the
    dictionary duals O(m^3) per solver step, the rest O(n m (p + k) + n k d2); memory O(n m) for
    ``S``. Linear in n; ``n`` above ``max_samples`` is refused (dense ``S``).

    Parameters
    ----------
    n_bits : int
        Code length k (multiple of 8), the dimension of the latent space.
    random_state : int
        Seed of the initial dictionary, basis and map.
    sparsity : float
        lambda, the l1 weight (> 0).
    mu : float
        Weight of the text factorisation (> 0).
    gamma : float
        Weight of the image-to-latent link (> 0).
    dict_size : int
        Number of dictionary atoms m.
    max_iter : int
        Number of alternating iterations.
    image_pca : bool
        Project images onto their top ``min(n_bits, d1)`` principal components before coding.
    threshold : {"mean", "median", "zero"}
        Per-bit binarisation threshold of the latents.
    max_samples : int
        Largest n accepted.

    Attributes
    ----------
    mean0_, mean1_ : float64 (d_m,), training means
    pca0_ : float64 (d1, p), image projection (identity when ``image_pca`` is False)
    dictionary_ : float64 (p, m), ``B``
    basis_ : float64 (d2, k), ``U``
    link_ : float64 (k, m), ``R``
    text_map_ : float64 (d2, k), ``U (U^T U + gamma/mu I)^-1``
    thresh0_, thresh1_ : float64 (k,), per-bit thresholds of the image and text latents
    objective_ : list of float, the objective after each iteration
    """

    name = "lssh"
    supported_views = (2, 2)
    # A small dictionary and few iterations keep the conformance checks fast (never the bench).
    conformance_params = {"dict_size": 32, "max_iter": 3}

    def __init__(self, *, n_bits: int = 32, random_state: int = 0, sparsity: float = 0.2,
                 mu: float = 0.5, gamma: float = 1.0, dict_size: int = 512, max_iter: int = 20,
                 image_pca: bool = True, threshold: str = "mean", max_samples: int = 50000):
        self.n_bits = n_bits
        self.random_state = random_state
        self.sparsity = sparsity
        self.mu = mu
        self.gamma = gamma
        self.dict_size = dict_size
        self.max_iter = max_iter
        self.image_pca = image_pca
        self.threshold = threshold
        self.max_samples = max_samples

    # ---- validation -------------------------------------------------------------------------
    def _check_params(self) -> None:
        for key in ("sparsity", "mu", "gamma"):
            check_number(key, getattr(self, key), minimum=0, exclusive=True)
        for key in ("dict_size", "max_iter", "max_samples"):
            check_integer(key, getattr(self, key), minimum=1)
        check_bool("image_pca", self.image_pca)
        check_choice("threshold", self.threshold, THRESHOLDS)

    # ---- fit --------------------------------------------------------------------------------
    def _fit(self, views: dict[str, np.ndarray]) -> None:
        X_img, X_txt = views.values()
        n = X_img.shape[0]
        if n > self.max_samples:
            raise InvalidInputError(
                f"LSSH keeps a dense {n} x dict_size sparse-code matrix; n={n} is above "
                f"max_samples={self.max_samples}: subsample the training set or raise max_samples"
            )
        k, m = self.n_bits, self.dict_size
        lam, mu, gamma = float(self.sparsity), float(self.mu), float(self.gamma)

        self.mean0_, self.mean1_ = X_img.mean(axis=0), X_txt.mean(axis=0)
        self.pca0_ = self._pca(X_img - self.mean0_)
        X = self._prep_image(X_img)  # (n, p), rows of unit norm
        Y = self._prep_text(X_txt)  # (n, d2)

        rng = np.random.default_rng(self.random_state)
        B = _unit_columns(rng.standard_normal((X.shape[1], m)))
        U = _unit_columns(rng.standard_normal((Y.shape[1], k)))
        R = _unit_columns(rng.standard_normal((k, m)))
        S = _lasso(X, B, lam)  # (n, m): row i is s_i
        duals: dict[str, np.ndarray] = {}

        objective: list[float] = []
        for _ in range(self.max_iter):
            A = np.linalg.solve(mu * U.T @ U + gamma * np.eye(k), mu * U.T @ Y.T + gamma * R @ S.T)
            U = unit_ball_least_squares(Y.T, A, U, duals, "U")
            root = np.sqrt(gamma)
            S = _lasso(np.hstack([X, root * A.T]), np.vstack([B, root * R]), lam, init=S)
            B = unit_ball_least_squares(X.T, S.T, B, duals, "B")
            R = unit_ball_least_squares(A, S.T, R, duals, "R")
            objective.append(lssh_objective(X.T, Y.T, B, S.T, U, A, R, lam, mu, gamma))

        self.dictionary_, self.basis_, self.link_ = B, U, R
        self.text_map_ = np.linalg.solve(U.T @ U + (gamma / mu) * np.eye(k), U.T).T
        self.objective_ = objective
        self.n_iter_ = len(objective)
        # Thresholds from the training set encoded exactly as new items will be.
        self.thresh0_ = self._threshold_of(self._image_latent(X))
        self.thresh1_ = self._threshold_of(Y @ self.text_map_)

    def _pca(self, Xc: np.ndarray) -> np.ndarray:
        d = Xc.shape[1]
        if not self.image_pca:
            return np.eye(d)
        p = min(self.n_bits, d)
        # Top-p eigenvectors of the covariance, largest first, with a deterministic sign.
        _, vecs = scipy.linalg.eigh(Xc.T @ Xc, subset_by_index=[d - p, d - 1])
        vecs = vecs[:, ::-1]
        return vecs * column_signs(vecs)

    def _threshold_of(self, Z: np.ndarray) -> np.ndarray:
        if self.threshold == "mean":
            return Z.mean(axis=0)
        if self.threshold == "median":
            return np.median(Z, axis=0)
        return np.zeros(Z.shape[1])

    # ---- encode -----------------------------------------------------------------------------
    def _prep_image(self, X: np.ndarray) -> np.ndarray:
        return _unit_rows((X - self.mean0_) @ self.pca0_)

    def _prep_text(self, Y: np.ndarray) -> np.ndarray:
        return _unit_rows(Y - self.mean1_)

    def _image_latent(self, X: np.ndarray) -> np.ndarray:
        return _lasso(X, self.dictionary_, float(self.sparsity)) @ self.link_.T

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        if self.modalities_.index(modality) == 0:
            return self._image_latent(self._prep_image(X)) - self.thresh0_
        return self._prep_text(X) @ self.text_map_ - self.thresh1_


# ---- building blocks (module level so the tests can check each one) --------------------------
def _unit_rows(Z: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    # A row equal to the mean has no direction: it stays zero instead of dividing by zero.
    return Z / np.where(norms > 0, norms, 1.0)


def _unit_columns(D: np.ndarray) -> np.ndarray:
    return D / np.linalg.norm(D, axis=0, keepdims=True)


def _lasso(X: np.ndarray, D: np.ndarray, lam: float, init: np.ndarray | None = None) -> np.ndarray:
    """Rows of argmin_s ||x - D s||^2 + lam |s|_1; X (n, p), D (p, m) -> (n, m).

    scikit-learn's ``Lasso`` (coordinate descent on the precomputed Gram matrix, one problem per
    row) minimises ``1/(2p) ||x - D s||^2 + alpha |s|_1``, so ``alpha = lam / (2p)``. Its default
    duality-gap tolerance (1e-4, relative to ``||x||^2``) is used; coordinate descent only
    descends, so a warm start ``init`` never ends above its starting objective. The occasional
    "did not converge" warning at that tolerance is expected and silenced.
    """
    model = Lasso(alpha=lam / (2 * D.shape[0]), fit_intercept=False, precompute=D.T @ D,
                  tol=1e-4, max_iter=2000, warm_start=init is not None,
                  random_state=0)  # cyclic updates; a fixed seed keeps numpy's global RNG untouched
    if init is not None:
        model.coef_ = np.array(init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(D, X.T, check_input=False)
    return np.asarray(model.coef_).reshape(X.shape[0], D.shape[1])


def unit_ball_least_squares(X: np.ndarray, S: np.ndarray, D0: np.ndarray,
                            duals: dict | None = None, key: str = "") -> np.ndarray:
    """argmin_D ||X - D S||_F^2 subject to ||d_j||_2 <= 1 for every column, via the dual.

    X (d, n), S (m, n), D0 (d, m) the current value. The Lagrange dual (Lee et al. 2006) is
    ``max_{nu >= 0} -tr(E (G + diag nu)^-1 E^T) - sum(nu)`` with ``G = S S^T``, ``E = X S^T``, and
    ``D = E (G + diag nu)^-1``; it is solved with L-BFGS-B, warm-started from the previous
    multipliers stored in ``duals[key]``. Atoms with a zero row in ``S`` do not enter the
    objective and keep their value. The result never has a larger objective than ``D0``.
    """
    active = np.einsum("ij,ij->i", S, S) > 0
    if not active.any():
        return D0
    Sa = S[active]
    G, E = Sa @ Sa.T, X @ Sa.T
    size = len(G)
    floor = 1e-10 * max(np.trace(G) / size, np.finfo(float).tiny)

    def primal(Da: np.ndarray) -> float:
        return float(-2 * np.einsum("ij,ij->", Da, E) + np.einsum("ij,ij->", Da @ G, Da))

    def neg_dual(nu: np.ndarray):
        try:
            factor = scipy.linalg.cho_factor(G + np.diag(nu))
        except np.linalg.LinAlgError:
            return np.inf, np.zeros_like(nu)
        Z = scipy.linalg.cho_solve(factor, E.T)  # (size, d) = (G + diag nu)^-1 E^T
        return float(np.einsum("ij,ji->", E, Z) + nu.sum()), 1.0 - np.einsum("ij,ij->i", Z, Z)

    previous = duals.get(key) if duals is not None else None
    nu0 = np.ones(size) if previous is None or len(previous) != len(active) \
        else previous[active]
    result = minimize(neg_dual, np.maximum(nu0, floor), jac=True, method="L-BFGS-B",
                      bounds=[(floor, None)] * size,
                      options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-9})
    nu = result.x
    Da = scipy.linalg.solve(G + np.diag(nu), E.T, assume_a="pos").T
    Da = Da / np.maximum(1.0, np.linalg.norm(Da, axis=0))  # remove round-off outside the ball
    if duals is not None:
        full = np.ones(len(active)) if previous is None or len(previous) != len(active) \
            else previous.copy()
        full[active] = nu
        duals[key] = full
    if primal(Da) > primal(D0[:, active]):
        return D0
    D = D0.copy()
    D[:, active] = Da
    return D


def lssh_objective(X, Y, B, S, U, A, R, lam: float, mu: float, gamma: float) -> float:
    """The LSSH objective.

    X (p, n), Y (d2, n), B (p, m), S (m, n), U (d2, k), A (k, n), R (k, m).
    """
    return (sq(X - B @ S) + lam * float(np.abs(S).sum()) + mu * sq(Y - U @ A)
            + gamma * sq(A - R @ S))
