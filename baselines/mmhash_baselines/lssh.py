"""LSSH: Latent Semantic Sparse Hashing (Zhou, Ding & Guo, SIGIR 2014)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
from scipy.linalg import blas, lapack

from mmhash.base import UNIFIED_DATABASE, BaseHasher
from mmhash.errors import InvalidInputError
from mmhash.params import Choice, Flag, Integer, Number
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
      (Lee et al., NIPS 2006), as the paper does, by projected Newton warm-started at the
      previous multipliers (:func:`unit_ball_least_squares`); likewise ``B`` and ``R``;
    * ``S``: a Lasso per sample on the stacked system ``[x; sqrt(gamma) a] ~ [B; sqrt(gamma) R] s``
      (coordinate descent on the Gram matrix with scikit-learn's updates, per sample on a
      working set of atoms, warm-started at the previous ``S``, every sample within ``Lasso``'s
      duality-gap tolerance on the full problem: :func:`_lasso`).

    Every step does not increase the objective; ``objective_`` records it after each iteration.

    Out of sample (Sec. 3.4): an image is sparse-coded with the learned ``B`` (Lasso, same
    ``lambda``) and mapped to ``R s``; a text is projected through ``U`` by
    ``a = (U^T U + gamma/mu I)^-1 U^T y`` (the latent objective with the image term absent, as in
    the authors' code; plain least squares is singular whenever k > d2). The codes are the signs of
    these latents minus per-bit thresholds learned at fit (``threshold``).

    Unified database codes (:data:`~mmhash.base.UNIFIED_DATABASE`, :meth:`encode_database`):
    "the unified hashcodes are generated through the high level abstraction space by
    quantization" (abstract): a database item's latent ``a`` is learned from its image and its
    text together. A pair ``(x, y)`` gets the minimiser of the objective above for that one
    column, with ``B``, ``U``, ``R`` fixed (:func:`unified_latents`)::

        (s, a) = argmin ||x - B s||^2 + lambda |s|_1 + mu ||y - U a||^2 + gamma ||a - R s||^2

    ``a`` in closed form given ``s`` (the fit's A-step), ``s`` by a Lasso with ``a`` eliminated.
    On the training pairs this is the point the fit's S- and A-steps converge to, so it
    approaches the learned ``A`` as they do (synthetic test set, 16 bits, defaults: 99% of the
    bits agree with those of the ``A`` of the last iteration). The code is ``a`` minus a per-bit
    threshold of the same ``threshold`` rule, learned from the training pairs encoded the same
    way (``thresh_unified_``). The authors' ``LSSHcoding.m`` takes a shortcut: it sparse-codes the
    image alone (``s`` from ``B``, ignoring the text) and applies one A-step,
    ``sign((U^T U + gamma/mu I)^-1 (U^T y + gamma/mu R s))``; that is one block step of this
    minimisation, not its solution (never a lower objective per pair).

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

    Cost per iteration: sparse coding O(n w^2 t) for working sets of w atoms (a few dozen; t =
    coordinate-descent sweeps, ~10-25 a row) plus O(n m s) per full-problem check (s non-zeros
    a row) and the O(n m (p + k)) product ``X D``; the dictionary duals O(m^3) per Newton step
    (3-5 steps from the previous multipliers); the products with ``S``, through its sparse
    copy, O(n s (p + k + s)); the rest O(n k (k + d2)); memory O(n m) for ``S``. Linear in n;
    ``n`` above ``max_samples`` is refused (dense ``S``). Measured on Wikipedia (2,173 items,
    one core, defaults): about 3.5 s per fit at 16 bits and 5 s at 128 bits, half of it sparse
    coding and a third the dictionary duals.

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
    thresh_unified_ : float64 (k,), per-bit threshold of the unified latents of pairs
    objective_ : list of float, the objective after each iteration
    """

    name = "lssh"
    supported_views = (2, 2)
    capabilities = frozenset({UNIFIED_DATABASE})
    # A small dictionary and few iterations keep the conformance checks fast (never the bench).
    conformance_params = {"dict_size": 32, "max_iter": 3}
    parameter_constraints = {
        "sparsity": Number(low=0, low_open=True),
        "mu": Number(low=0, low_open=True),
        "gamma": Number(low=0, low_open=True),
        "dict_size": Integer(minimum=1),
        "max_iter": Integer(minimum=1),
        "max_samples": Integer(minimum=1),
        "image_pca": Flag(),
        "threshold": Choice(THRESHOLDS),
    }

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
        # S has a few dozen non-zeros per row: its products go through a sparse copy, O(nnz)
        # instead of O(n m) per product (same values up to the order of the sums).
        Ssp = scipy.sparse.csr_array(S)
        for _ in range(self.max_iter):
            A = np.linalg.solve(mu * U.T @ U + gamma * np.eye(k),
                                mu * U.T @ Y.T + gamma * (Ssp @ R.T).T)
            U = unit_ball_least_squares(Y.T, A, U, duals, "U")
            root = np.sqrt(gamma)
            S = _lasso(np.hstack([X, root * A.T]), np.vstack([B, root * R]), lam, init=S)
            Ssp = scipy.sparse.csr_array(S)
            gram = (Ssp.T @ Ssp).toarray()
            B = unit_ball_least_squares(X.T, Ssp.T, B, duals, "B", gram)
            R = unit_ball_least_squares(A, Ssp.T, R, duals, "R", gram)
            objective.append(lssh_objective(X.T, Y.T, B, Ssp.T, U, A, R, lam, mu, gamma))

        self.dictionary_, self.basis_, self.link_ = B, U, R
        self.text_map_ = np.linalg.solve(U.T @ U + (gamma / mu) * np.eye(k), U.T).T
        self.objective_ = objective
        self.n_iter_ = len(objective)
        # Thresholds from the training set encoded exactly as new items will be.
        self.thresh0_ = self._threshold_of(self._image_latent(X))
        self.thresh1_ = self._threshold_of(Y @ self.text_map_)
        # "zero" needs no training latents: skip their sparse coding.
        self.thresh_unified_ = (np.zeros(k) if self.threshold == "zero"
                                else self._threshold_of(self._unified_latent(X, Y)))

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

    def _unified_latent(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Latents ``a`` (float64 (n, k)) of preprocessed pairs X (n, p), Y (n, d2)."""
        return unified_latents(X, Y, self.dictionary_, self.basis_, self.link_,
                               float(self.sparsity), float(self.mu), float(self.gamma))[1]

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        if self.modalities_.index(modality) == 0:
            return self._image_latent(self._prep_image(X)) - self.thresh0_
        return self._prep_text(X) @ self.text_map_ - self.thresh1_

    def _encode_database(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """Unified latents minus their thresholds, float64 (n, k), of pairs given as float64
        (n, d_m) views (see the class docstring); the sign is the code."""
        if not hasattr(self, "thresh_unified_"):  # state saved before unified codes existed
            raise InvalidInputError("this LSSH was saved without unified database thresholds; "
                                    "refit it to use encode_database")
        X_img, X_txt = (views[m] for m in self.modalities_)
        X, Y = self._prep_image(X_img), self._prep_text(X_txt)
        return self._unified_latent(X, Y) - self.thresh_unified_


# ---- building blocks (module level so the tests can check each one) --------------------------
def _unit_rows(Z: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    # A row equal to the mean has no direction: it stays zero instead of dividing by zero.
    return Z / np.where(norms > 0, norms, 1.0)


def unified_latents(X: np.ndarray, Y: np.ndarray, B: np.ndarray, U: np.ndarray, R: np.ndarray,
                    lam: float, mu: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, argmin_{s, a} ||x - B s||^2 + lam |s|_1 + mu ||y - U a||^2 + gamma ||a - R s||^2.

    The LSSH objective of one column with the dictionary, basis and link fixed (jointly convex).
    X (n, p) and Y (n, d2) preprocessed rows, B (p, m), U (d2, k), R (k, m); returns S (n, m)
    and A (n, k), float64.

    Given ``s`` the best ``a`` is the fit's A-step, ``a = M^-1 (mu U^T y + gamma R s)`` with
    ``M = mu U^T U + gamma I``. Substituted, the text terms become ``z^T H z - 2 z^T g`` plus a
    constant, in ``z = R s``, with ``H = mu gamma M^-1 U^T U`` and ``g = mu gamma M^-1 U^T y``.
    With ``U^T U = Q diag(e) Q^T``: ``H = C^T C`` for ``C = diag(sqrt(h)) Q^T``,
    ``h = mu gamma e / (mu e + gamma)``, and ``g = C^T t`` for ``t = diag(sqrt(h) / e) Q^T U^T y``
    (0 where ``e = 0``: ``U^T y`` has no component there, and ``U^T U`` is singular whenever
    k > d2). So ``s`` is the Lasso on the stacked system ``[x; t] ~ [B; C R] s``, solved by the
    same sparse coder as the fit (:func:`_lasso`), whose rows are independent problems.
    """
    k = U.shape[1]
    e, Q = np.linalg.eigh(U.T @ U)
    e = np.maximum(e, 0.0)  # round-off below zero
    keep = e > 1e-12 * max(e.max(), np.finfo(float).tiny)
    h = mu * gamma * e / (mu * e + gamma)
    C = np.sqrt(h)[:, None] * Q.T  # (k, k)
    t = (Y @ U @ Q) * np.where(keep, np.sqrt(h) / np.where(keep, e, 1.0), 0.0)  # (n, k) rows t
    S = _lasso(np.hstack([X, t]), np.vstack([B, C @ R]), lam)
    A = np.linalg.solve(mu * U.T @ U + gamma * np.eye(k), mu * U.T @ Y.T + gamma * R @ S.T)
    return S, A.T


def _unit_columns(D: np.ndarray) -> np.ndarray:
    return D / np.linalg.norm(D, axis=0, keepdims=True)


def _lasso(X: np.ndarray, D: np.ndarray, lam: float, init: np.ndarray | None = None) -> np.ndarray:
    """Rows of argmin_s ||x - D s||^2 + lam |s|_1; X (n, p), D (p, m) -> (n, m), float64.

    The rows are independent problems sharing the Gram matrix ``G = D^T D``, solved one after
    the other by :func:`_lasso_rows` (compiled by numba): cyclic coordinate descent on the Gram
    matrix (scikit-learn's ``Lasso`` updates) restricted to a working set of atoms, the row's
    support plus the atoms whose residual correlation ``|d_j^T (x - D s)|`` is largest and above
    ``0.9 lam / 2`` (at most ``max(16, support size)`` of them). When the working set is solved,
    the duality gap of the row's *full* problem (all ``m`` atoms) is checked against the
    tolerance ``Lasso`` uses, ``1e-4 ||x||^2`` on its half objective
    ``0.5 ||x - D s||^2 + (lam / 2) |s|_1``; a row above it gets its violating atoms added and is
    solved again (the last of the rounds uses all atoms). So every row ends within the same
    duality-gap tolerance as a full ``Lasso`` fit of ``m`` atoms, while the sweeps touch a few
    dozen atoms. Every step descends, so a warm start ``init`` never ends above its objective.
    """
    S = np.zeros((X.shape[0], D.shape[1])) if init is None else np.array(init, dtype=np.float64)
    _lasso_kernel()(np.ascontiguousarray(D.T @ D), np.ascontiguousarray(X @ D),
                    np.einsum("ij,ij->i", X, X), S, lam / 2, _LASSO_TOL, _LASSO_MAX_ITER,
                    _WORKING_SET, _GROWTH, _LASSO_ROUNDS)
    return S


#: Lasso's stopping tolerance (duality gap relative to ||x||^2) and sweep limit per round.
_LASSO_TOL, _LASSO_MAX_ITER = 1e-4, 2000
#: Working set: atoms whose correlation exceeds this fraction of the l1 weight (first round).
_WORKING_SET = 0.9
_LASSO_ROUNDS = 8
_GROWTH = 16


def _lasso_gap(xx, Q, S, corr, tau):
    """Per-row duality gap of ``0.5 ||x - D s||^2 + tau |s|_1`` (scikit-learn's formula).

    ``xx = ||x||^2``, ``Q = X D``, ``corr = Q - S G`` for the rows; returns float64 (rows,).
    With ``r = x - D s``: ``||r||^2 = ||x||^2 - s.q - s.corr`` and ``r.x = ||x||^2 - s.q``.
    """
    sq = np.einsum("ij,ij->i", S, Q)
    rx = xx - sq
    rr = rx - np.einsum("ij,ij->i", S, corr)
    dual_norm = np.abs(corr).max(axis=1)
    scale = np.where(dual_norm > tau, tau / np.where(dual_norm > 0, dual_norm, 1.0), 1.0)
    primal = 0.5 * rr + tau * np.abs(S).sum(axis=1)
    return primal - (scale * rx - 0.5 * scale**2 * rr)


def _lasso_rows(G, Q, xx, S, tau, tol, max_iter, first, growth, rounds):  # pragma: no cover
    """Every row of ``S`` as a minimiser of ``0.5 ||x - D s||^2 + tau |s|_1`` within a duality
    gap of ``tol ||x||^2`` (plain Python, compiled by :func:`_lasso_kernel`).

    ``G`` float64 (m, m) is ``D^T D``, ``Q`` float64 (n, m) ``X D``, ``xx`` float64 (n,)
    ``||x||^2``; ``S`` float64 (n, m) holds the warm start and receives the solution. Per row,
    working-set rounds (see :func:`_lasso`): the first working set is the support plus the
    candidates with ``|corr| > first * tau``, later rounds add those above ``tau``, each time at
    most the ``max(growth, support size)`` largest; the last of ``rounds`` takes every atom.

    On a working set: scikit-learn's coordinate-descent updates (cyclic, atoms in index order,
    ``G w`` kept up to date), with two changes to when it stops, neither to what it minimises:

    * the working set's duality gap, O(size) given ``G w``, is checked before every sweep and
      the row stops as soon as it is within ``tol ||x||^2`` (or after ``max_iter`` sweeps).
      scikit-learn computes the gap only once a sweep's largest change falls below ``tol``
      times the largest coefficient, and so keeps sweeping rows that already meet it;
    * after a sweep that left every sign unchanged, the row jumps to the minimiser on that
      support with those signs, ``G_AA w_A = q_A - tau sign_A``, when the solution keeps every
      sign (once per sign pattern). Both points lie on the same face of the l1 ball, where the
      objective is that quadratic, so the jump never ascends; with the right support it lands
      on the minimiser itself, where coordinate descent only approaches it geometrically
      (tens to hundreds of sweeps on the coherent dictionaries of short codes).

    Returns int64 (n,), the sweeps each row took over all its rounds.
    """

    def gap(xx, sq, sc, l1, dual_norm):
        """:func:`_lasso_gap` of one row from ``s.q``, ``s.corr``, ``|s|_1``, ``max |corr|``."""
        rx = xx - sq
        rr = rx - sc
        scale = tau / dual_norm if dual_norm > tau else 1.0
        return 0.5 * rr + tau * l1 - (scale * rx - 0.5 * scale * scale * rr)

    def support_step(Gw, qw, w, Qw, signs):
        """``w`` := the minimiser on the support of ``signs`` with those signs, if it keeps
        them; ``Qw = Gw w`` follows. Cholesky written out: the support is a few dozen atoms."""
        A = np.nonzero(signs)[0]
        k = len(A)
        if k == 0:
            return
        L = np.zeros((k, k))
        for i in range(k):
            for j in range(i + 1):
                v = Gw[A[i], A[j]]
                for l in range(j):
                    v -= L[i, l] * L[j, l]
                if i == j:
                    if v <= 1e-10 * Gw[A[i], A[i]]:  # atoms (nearly) dependent: no unique jump
                        return
                    L[i, i] = np.sqrt(v)
                else:
                    L[i, j] = v / L[j, j]
        z = np.empty(k)
        for i in range(k):
            v = qw[A[i]] - tau * signs[A[i]]
            for l in range(i):
                v -= L[i, l] * z[l]
            z[i] = v / L[i, i]
        for i in range(k - 1, -1, -1):
            v = z[i]
            for l in range(i + 1, k):
                v -= L[l, i] * z[l]
            z[i] = v / L[i, i]
        for i in range(k):
            if z[i] * signs[A[i]] <= 0.0:  # leaves the face: keep descending by sweeps
                return
        for i in range(k):
            w[A[i]] = z[i]
        for b in range(len(w)):
            v = 0.0
            for i in range(k):
                v += Gw[b, A[i]] * z[i]
            Qw[b] = v

    n, m = S.shape
    sweeps = np.zeros(n, dtype=np.int64)
    corr = np.empty(m)
    inset = np.zeros(m, dtype=np.bool_)
    cand = np.empty(m)
    for r in range(n):
        s = S[r]
        q = Q[r]
        bound = tol * xx[r]
        for j in range(m):  # full correlations q - G s, from the support
            corr[j] = q[j]
        for l in range(m):
            if s[l] != 0.0:
                for j in range(m):
                    corr[j] -= G[l, j] * s[l]
        threshold = first * tau
        for j in range(m):
            inset[j] = s[j] != 0.0
        for round_ in range(rounds):
            if round_ == rounds - 1:
                inset[:] = True
            else:  # add the largest `cap` candidates above the threshold
                support = 0
                count = 0
                for j in range(m):
                    support += s[j] != 0.0
                    cand[j] = 0.0 if inset[j] else abs(corr[j])
                    count += cand[j] > threshold
                cap = max(growth, support)
                kth = np.partition(cand, m - cap)[m - cap] if count > cap else 0.0
                for j in range(m):
                    if cand[j] > threshold and cand[j] >= kth:
                        inset[j] = True
            idx = np.nonzero(inset)[0]
            size = len(idx)
            w = np.empty(size)
            qw = np.empty(size)
            Gw = np.empty((size, size))  # the working set's Gram matrix, contiguous
            Qw = np.zeros(size)
            for a in range(size):
                w[a] = s[idx[a]]
                qw[a] = q[idx[a]]
            for a in range(size):
                for b in range(size):
                    Gw[a, b] = G[idx[a], idx[b]]
                    Qw[a] += Gw[a, b] * w[b]
            signs = np.zeros(size, dtype=np.int64)  # after the last sweep
            tried = False  # the support step, on these signs
            it = 0
            while True:
                sq = 0.0
                sc = 0.0
                l1 = 0.0
                dual_norm = 0.0
                for a in range(size):
                    c = qw[a] - Qw[a]
                    sq += w[a] * qw[a]
                    sc += w[a] * c
                    l1 += abs(w[a])
                    dual_norm = max(dual_norm, abs(c))
                if gap(xx[r], sq, sc, l1, dual_norm) <= bound or it == max_iter:
                    break
                for a in range(size):
                    gaa = Gw[a, a]
                    if gaa == 0.0:
                        continue
                    old = w[a]
                    tmp = qw[a] - Qw[a] + old * gaa
                    new = (max(abs(tmp) - tau, 0.0) / gaa) * (1.0 if tmp >= 0.0 else -1.0)
                    if new != old:
                        delta = new - old
                        for b in range(size):
                            Qw[b] += delta * Gw[a, b]
                        w[a] = new
                it += 1
                same = True
                for a in range(size):
                    sign = 1 if w[a] > 0.0 else (-1 if w[a] < 0.0 else 0)
                    if sign != signs[a]:
                        same = False
                        signs[a] = sign
                if not same:
                    tried = False
                elif not tried:
                    tried = True
                    support_step(Gw, qw, w, Qw, signs)
            sweeps[r] += it
            for a in range(size):
                s[idx[a]] = w[a]
            # the full problem: correlations and duality gap over every atom
            for j in range(m):
                corr[j] = q[j]
            sq = 0.0
            l1 = 0.0
            for l in range(m):
                if s[l] != 0.0:
                    sq += s[l] * q[l]
                    l1 += abs(s[l])
                    for j in range(m):
                        corr[j] -= G[l, j] * s[l]
            sc = 0.0
            dual_norm = 0.0
            for j in range(m):
                sc += s[j] * corr[j]
                dual_norm = max(dual_norm, abs(corr[j]))
            if gap(xx[r], sq, sc, l1, dual_norm) <= bound:
                break
            threshold = tau
    return sweeps


_KERNEL = None


def _lasso_kernel():
    """:func:`_lasso_rows` compiled by numba, on first use (numba is imported then, not with
    this module; the compiled code is cached on disk, so a fresh checkout compiles it once)."""
    global _KERNEL
    if _KERNEL is None:
        from numba import njit

        _KERNEL = njit(cache=True, boundscheck=False)(_lasso_rows)
    return _KERNEL


def unit_ball_least_squares(X: np.ndarray, S: np.ndarray, D0: np.ndarray,
                            duals: dict | None = None, key: str = "",
                            gram: np.ndarray | None = None) -> np.ndarray:
    """argmin_D ||X - D S||_F^2 subject to ||d_j||_2 <= 1 for every column, via the dual.

    X float64 (d, n), S float64 (m, n) (an array or a scipy.sparse array), D0 float64 (d, m)
    the current value; ``gram``, if given, is ``S S^T`` (the dictionary and link steps share
    it). The Lagrange dual (Lee et al. 2006) is
    ``max_{nu >= 0} -tr(E (G + diag nu)^-1 E^T) - sum(nu)`` with ``G = S S^T``, ``E = X S^T``, and
    ``D = E (G + diag nu)^-1``; it is solved by projected Newton (:func:`_dual_newton`), as Lee
    et al. do, warm-started from the previous multipliers stored in ``duals[key]``. Atoms with a
    zero row in ``S`` do not enter the objective and keep their value. The result never has a
    larger objective than ``D0``.
    """
    if gram is None:
        gram = S @ S.T
        gram = gram.toarray() if scipy.sparse.issparse(gram) else gram
    active = np.diag(gram) > 0
    if not active.any():
        return D0
    if active.all():
        G, E = gram, X @ S.T
    else:
        G, E = gram[np.ix_(active, active)], X @ S[active].T
    size = len(G)
    floor = 1e-10 * max(np.trace(G) / size, np.finfo(float).tiny)

    def primal(Da: np.ndarray) -> float:
        return float(-2 * np.einsum("ij,ij->", Da, E) + np.einsum("ij,ij->", Da @ G, Da))

    previous = duals.get(key) if duals is not None else None
    nu0 = np.ones(size) if previous is None or len(previous) != len(active) \
        else previous[active]
    nu, Z = _dual_newton(G, E, np.maximum(nu0, floor), floor)
    Da = Z.T  # E (G + diag nu)^-1
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


def _dual_value(G: np.ndarray, E: np.ndarray, nu: np.ndarray):
    """``phi(nu) = tr(E M^-1 E^T) + sum(nu)`` with ``M = G + diag nu`` (the negated dual).

    Returns ``(phi, gradient 1 - ||z_j||^2, Cholesky factor of M (upper), Z = M^-1 E^T)``, or
    ``phi = inf`` and Nones when ``M`` is not numerically positive definite.
    """
    M = G.copy()
    M[np.diag_indices_from(M)] += nu
    # M is symmetric: its transpose is the Fortran-ordered array LAPACK wants, without a copy.
    factor, info = lapack.dpotrf(M.T, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        return np.inf, None, None, None
    Z, info = lapack.dpotrs(factor, E.T, lower=0)
    return (float(np.einsum("ij,ji->", E, Z) + nu.sum()), 1.0 - np.einsum("ij,ij->i", Z, Z),
            factor, Z)


def _dual_newton(G: np.ndarray, E: np.ndarray, nu: np.ndarray, floor: float,
                 gtol: float = 1e-9, max_iter: int = 100):
    """Minimise ``phi(nu)`` (:func:`_dual_value`) over ``nu >= floor`` by projected Newton.

    The Hessian is ``2 M^-1 o (Z Z^T)`` (elementwise product; Lee et al. 2006). Bertsekas'
    projected Newton method: variables at the bound whose gradient pushes them out of the
    feasible set (``nu_j <= floor + eps`` and ``g_j > 0``: the atom is strictly inside the unit
    ball) take a projected gradient step, the others a Newton step on their block of the
    Hessian; an Armijo search along the projected path keeps each step a descent (up to
    ``phi``'s round-off). Stops when the projected gradient ``max |nu - max(floor, nu - g)|``,
    the largest violation of ``||d_j|| = 1`` by a constrained atom, is at most ``gtol`` (the
    tolerance L-BFGS-B was given before). Each step costs two Cholesky factorisations of the
    ``size x size`` matrices ``M`` and ``H``, O(size^3); from the previous iteration's
    multipliers it usually takes 3-6 steps. Returns ``(nu, Z)``, ``Z^T`` the primal solution.
    """
    f, g, factor, Z = _dual_value(G, E, nu)
    if factor is None:  # G + diag(floor) is singular to working precision: lift the start
        nu = nu + 1e-6 * max(np.trace(G) / len(G), 1.0)
        f, g, factor, Z = _dual_value(G, E, nu)
    for _ in range(max_iter):
        pg = np.abs(nu - np.maximum(floor, nu - g)).max()
        if pg <= gtol:
            break
        eps = min(1e-3, pg)
        bound = (nu <= floor + eps) & (g > 0)
        free = ~bound
        H, _ = lapack.dpotri(factor, lower=0)  # upper triangle of M^-1 (Fortran order)
        H *= blas.dsyrk(1.0, Z, lower=0)  # upper triangle of the Hessian / 2 (Z Z^T's)
        step = np.where(bound, -g, 0.0)
        if free.any():  # with every atom at its bound there is no Newton block to solve
            # (LAPACK refuses a 0 x 0 system: real TF-IDF data with all-zero rows got here)
            Hf = H if free.all() else np.asfortranarray(H[np.ix_(free, free)])
            _, sol, info = lapack.dposv(Hf, -0.5 * g[free], lower=0, overwrite_a=1)
            step[free] = sol if info == 0 else -g[free]
        t, slack = 1.0, 1e-12 * abs(f)  # slack: round-off of phi near the optimum
        while True:
            trial = np.maximum(floor, nu + t * step)
            f_new, g_new, factor_new, Z_new = _dual_value(G, E, trial)
            if factor_new is not None and f_new <= f + 1e-4 * float(g @ (trial - nu)) + slack:
                break
            t *= 0.5
            if t < 1e-12:
                return nu, Z
        nu, f, g, factor, Z = trial, f_new, g_new, factor_new, Z_new
    return nu, Z


def lssh_objective(X, Y, B, S, U, A, R, lam: float, mu: float, gamma: float) -> float:
    """The LSSH objective.

    X (p, n), Y (d2, n), B (p, m), S (m, n) (an array or a scipy.sparse array), U (d2, k),
    A (k, n), R (k, m); float64.
    """
    return (sq(X - B @ S) + lam * float(np.abs(S).sum()) + mu * sq(Y - U @ A)
            + gamma * sq(A - R @ S))
