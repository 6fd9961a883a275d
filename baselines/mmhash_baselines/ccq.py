"""CCQ: Composite Correlation Quantization (Long, Cao, Wang & Yu, SIGIR 2016)."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.optimize

from mmhash.base import MAX_BITS, REAL_VALUED_RANKING, BaseHasher
from mmhash.errors import InvalidInputError
from mmhash.params import Flag, Integer, Number


class CCQ(BaseHasher):
    """Composite Correlation Quantization: orthogonal mappings of every view into one latent space
    and a composite quantizer there, learned jointly; ranks by the asymmetric distance.

    Paper: M. Long, Y. Cao, J. Wang and P. S. Yu, "Composite Correlation Quantization for
    Efficient Multimodal Retrieval", SIGIR 2016 (arXiv 1504.04818). Only the abstract and the
    introduction of the paper could be read for this implementation; the objective below is the
    paper's as its abstract states it (correlation-maximal mappings into an isomorphic latent
    space, composite quantizers there, trained by minimising reconstruction and quantization
    errors) written in the form of composite quantization (Zhang, Du & Wang, ICML 2014). Every
    detail that is ours is listed in ``docs/methods/ccq.md``.

    Objective. Each view ``v`` is preprocessed (standardised columns, scaled; ours) into
    ``Xv`` (n x d_v) and mapped by ``R_v`` (d_v x D, orthonormal columns) into the latent space.
    Paired items share one composite code: ``z_i = sum_m C_m[b_im]``, one codeword from each of
    ``M`` codebooks ``C_m`` (K x D). CCQ minimises::

        F = 1/n [ sum_v ||Xv - Z R_v^T||^2
                  + V mu / s sum_i (sum_{m != l} C_m[b_im] . C_l[b_il] - eps)^2 ]

    subject to ``R_v^T R_v = I``; ``V`` views, ``s`` the mean squared norm of the initial latent
    targets (makes ``mu`` scale-free). Because ``R_v`` has orthonormal columns, ``||Xv - Z R_v^T||^2
    = ||Xv - Xv R_v R_v^T||^2 + ||Xv R_v - Z||^2``: the reconstruction error of the mapping (what a
    PCA-like mapping keeps of the view) plus the quantization error in the latent space. The
    second term is composite quantization's near-orthogonality constraint (the cross inner
    products of an item's codewords sum to one constant ``eps``), as a quadratic penalty.
    With the views whitened, the mapping part alone is maximised by the canonical (maximal
    correlation) directions: for two views and ``Z = (X1 R_1 + X2 R_2) / 2`` it reads
    ``max tr(R_1^T X1^T X2 R_2)``.

    Alternating updates (each minimises ``F`` over one block, so ``F`` never increases;
    ``objective_history_`` records it after every iteration):

    * mappings: ``R_v = U W^T`` from the SVD ``Xv^T Z = U S W^T`` (orthogonal Procrustes);
    * codebooks: L-BFGS on ``F`` as a function of ``C`` (``lbfgs_iter`` steps from the current
      ``C``, as composite quantization does);
    * codes: iterated conditional modes, one codebook at a time, each item independently,
      minimising ``V ||t_i - z_i||^2`` plus the penalty, with ``t_i = mean_v Xv[i] R_v``;
    * epsilon: the mean of the items' cross terms (the exact minimiser).

    Retrieval (asymmetric distance). A query is its latent projection ``q = x_v R_v``
    (:meth:`represent` with ``role="query"``); a database item is quantised from its own view's
    projection by the same iterated conditional modes (greedy initialisation, ``icm_sweeps``
    sweeps, penalty included) and represented by its reconstruction ``sum_m C_m[b_m]``
    (``role="database"``). :meth:`distances` is the squared Euclidean distance between the two,
    computed exactly. Composite quantization's table lookup ``sum_m ||q - C_m[b_m]||^2`` differs
    from it by ``(M - 1) ||q||^2`` (the same for every item of one query) and by the item's
    deviation of its cross terms from ``eps``; where the constraint holds exactly both rank the
    database identically, and here it holds to ``constraint_violation_`` (see below).

    Codes. :meth:`encode` returns ``n_bits = M log2(K)`` bits: codebook ``m``'s index in binary,
    least significant bit first, bit set -> +1, clear -> -1. They store the composite code (and
    make save/load, the contract's format checks and bit accounting work), but the Hamming
    distance between them is meaningless: the bench ranks CCQ by :meth:`distances`
    (:data:`~mmhash.base.REAL_VALUED_RANKING`).

    Parameters
    ----------
    n_bits : int
        Code length, a multiple of 8 and of ``log2(codewords)``: ``M = n_bits / log2(codewords)``
        codebooks (with 256 codewords, 16 bits -> 2 codebooks, 64 -> 8).
    random_state : int
        Seeds the k-means initialisation of the codebooks.
    codewords : int
        ``K``, codewords per codebook, a power of two >= 2 and at most the number of training
        pairs (default 256: one byte per codebook, composite quantization's setting).
    latent_dim : int or None
        ``D``, the latent dimension, at most the smallest view dimension (orthonormal mappings).
        None (default): ``min(n_bits, smallest view dimension)``.
    whiten : bool
        False (default): each view is standardised and scaled to total variance ``D``, so the
        reconstruction term keeps the view's own (PCA-like) geometry, the intra-modal similarity
        the paper's reconstruction error is for. True: ridge-whiten each standardised view, which
        makes the orthogonal mappings exactly correlation-maximal (CCA); better on Wikipedia's
        validation split, worse on cub10's and on the synthetic sets (docs/methods/ccq.md).
    reg : float
        Ridge of the whitening in standardised units, times ``d_v / n`` (> 0; default 1, as the
        ``cca-real`` reference).
    mu : float
        Weight of the near-orthogonality penalty relative to the quantization error (>= 0;
        default 10: the constraint then holds to about 0.3-2% of the mean squared latent norm).
    max_iter : int
        Alternating iterations (default 10).
    tol : float
        Stop when ``F`` decreases by less than ``tol`` relative to its value (>= 0; default 1e-4).
    icm_sweeps : int
        Sweeps over the codebooks per code update and per encoding (default 3).
    lbfgs_iter : int
        L-BFGS iterations per codebook update (default 10).

    Attributes
    ----------
    mean{v}_, scale{v}_ : float64 (d_v,), the standardisation of the v-th view given to fit
    proj{v}_ : float64 (d_v, D), preprocessing times ``R_v``: ``q = (x - mean) / scale @ proj``
    codebooks_ : float64 (M, K, D)
    epsilon_ : float, the constant of the near-orthogonality constraint
    penalty_scale_ : float, ``s``
    objective_history_ : float64 (iterations + 1,), ``F`` at initialisation and after every
        iteration (never increases)
    quantization_error_history_ : likewise, ``1/n sum_v ||Xv - Z R_v^T||^2``, each view's
        features approximated by its mapped composite code (reconstruction + latent error)
    latent_error_history_ : likewise, ``1/n sum_v ||Xv R_v - Z||^2``, the latent part alone
    constraint_violation_ : float, ``sqrt(mean_i (cross_i - eps)^2) / s`` on the training pairs
        at the end of fit
    n_iter_ : int, iterations run
    """

    name = "ccq"
    supported_views = (2, None)
    capabilities = frozenset({REAL_VALUED_RANKING})
    ranking = "asymmetric distance to the composite-quantised database (CCQ)"
    parameter_constraints = {
        "codewords": Integer(minimum=2),  # a power of two dividing n_bits: _check_params
        "latent_dim": Integer(minimum=1, none=True),
        "whiten": Flag(),
        "reg": Number(low=0, low_open=True),
        "mu": Number(low=0),
        "max_iter": Integer(minimum=1),
        "tol": Number(low=0),
        "icm_sweeps": Integer(minimum=1),
        "lbfgs_iter": Integer(minimum=1),
    }

    def __init__(self, *, n_bits: int = 32, random_state: int = 0, codewords: int = 256,
                 latent_dim: int | None = None, whiten: bool = False, reg: float = 1.0,
                 mu: float = 10.0, max_iter: int = 10, tol: float = 1e-4, icm_sweeps: int = 3,
                 lbfgs_iter: int = 10):
        self.n_bits = n_bits
        self.random_state = random_state
        self.codewords = codewords
        self.latent_dim = latent_dim
        self.whiten = whiten
        self.reg = reg
        self.mu = mu
        self.max_iter = max_iter
        self.tol = tol
        self.icm_sweeps = icm_sweeps
        self.lbfgs_iter = lbfgs_iter

    # ---- parameters ---------------------------------------------------------------------------
    def _check_params(self) -> None:
        """The rules a declaration cannot express: ``codewords`` a power of two whose log2
        divides ``n_bits``."""
        K = int(self.codewords)  # an integer >= 2: the declarations have been applied
        if K & (K - 1):
            raise InvalidInputError(
                f"codewords must be a power of two (each codeword index is stored in "
                f"log2(codewords) bits), got {K}; e.g. 16, 64, 256")
        bits = K.bit_length() - 1
        if self.n_bits % bits:
            valid = [b for b in range(8, MAX_BITS + 1, 8) if b % bits == 0][:8]
            fits = [2 ** b for b in range(1, 17) if self.n_bits % b == 0]
            raise InvalidInputError(
                f"n_bits={self.n_bits} is not a multiple of log2(codewords)={bits} bits per "
                f"codebook (codewords={K}); with codewords={K} use n_bits in "
                f"{', '.join(map(str, valid))}, ...; with n_bits={self.n_bits} use codewords in "
                f"{', '.join(map(str, fits))}")

    @property
    def bits_per_codebook(self) -> int:
        """``log2(codewords)``."""
        return int(self.codewords).bit_length() - 1

    # ---- fit ----------------------------------------------------------------------------------
    def _fit(self, views: dict[str, np.ndarray]) -> None:
        Xs = list(views.values())
        n = Xs[0].shape[0]
        K = int(self.codewords)
        if K > n:
            raise InvalidInputError(
                f"codewords={K} exceeds the {n} training pairs: k-means cannot place {K} "
                f"codewords on {n} points; use codewords <= {1 << (n.bit_length() - 1)} (a power "
                "of two) or more training pairs")
        M = self.n_bits // self.bits_per_codebook
        smallest = min(X.shape[1] for X in Xs)
        D = min(self.n_bits, smallest) if self.latent_dim is None else int(self.latent_dim)
        if D > smallest:
            raise InvalidInputError(
                f"latent_dim={D} exceeds the smallest view dimension {smallest}: the mappings "
                f"have orthonormal columns; use latent_dim <= {smallest}")
        rng = np.random.default_rng(self.random_state)
        V = len(Xs)

        # Preprocessing (ours): standardise, then ridge-whiten (or scale to total variance D).
        P = []
        for k, X in enumerate(Xs):
            mean, scale = X.mean(axis=0), X.std(axis=0)
            scale = np.where(scale > 0, scale, 1.0)
            S = (X - mean) / scale
            if self.whiten:
                cov = S.T @ S / n + float(self.reg) * X.shape[1] / n * np.eye(X.shape[1])
                w, U = scipy.linalg.eigh(cov)
                W = (U / np.sqrt(np.maximum(w, w.max() * 1e-12))) @ U.T
            else:
                total = float(np.einsum("ij,ij->", S, S)) / n
                W = np.eye(X.shape[1]) * (math.sqrt(D / total) if total > 0 else 1.0)
            setattr(self, f"mean{k}_", mean)
            setattr(self, f"scale{k}_", scale)
            P.append(W)
            Xs[k] = S @ W

        # Initial latent space (ours): the top-D principal scores of the concatenated views,
        # then each mapping by Procrustes onto them.
        Ucat, scat, _ = np.linalg.svd(np.hstack(Xs), full_matrices=False)
        Z0 = Ucat[:, :D] * scat[:D]
        R = [_procrustes(X, Z0) for X in Xs]
        T = sum(X @ r for X, r in zip(Xs, R)) / V
        s = float(np.einsum("ij,ij->", T, T)) / n
        s = s if s > 0 else 1.0
        self.penalty_scale_ = s
        mu = float(self.mu) / s

        # Initial codebooks (ours): residual k-means on the latent targets.
        C = np.zeros((M, K, D))
        B = np.zeros((n, M), dtype=np.int64)
        residual = T.copy()
        for m in range(M):
            C[m], B[:, m] = _kmeans(residual, K, rng)
            residual -= C[m][B[:, m]]
        eps = float(_cross_terms(C, B).mean())

        def objective(R, C, B, eps):
            Z = _reconstruct(C, B)
            fit = sum(float(np.einsum("ij,ij->", X - Z @ r.T, X - Z @ r.T)) for X, r in zip(Xs, R))
            latent = sum(float(np.einsum("ij,ij->", X @ r - Z, X @ r - Z)) for X, r in zip(Xs, R))
            pen = float(np.sum((_cross_terms(C, B) - eps) ** 2))
            return (fit + V * mu * pen) / n, fit / n, latent / n

        history = [objective(R, C, B, eps)]
        self.n_iter_ = 0
        for _ in range(int(self.max_iter)):
            Z = _reconstruct(C, B)
            R = [_procrustes(X, Z) for X in Xs]                       # mappings
            T = sum(X @ r for X, r in zip(Xs, R)) / V
            C = _update_codebooks(T, C, B, eps, mu, int(self.lbfgs_iter))  # codebooks
            B = _icm(T, C, B, eps, mu, int(self.icm_sweeps))           # codes
            eps = float(_cross_terms(C, B).mean())                     # epsilon
            history.append(objective(R, C, B, eps))
            self.n_iter_ += 1
            if history[-2][0] - history[-1][0] <= float(self.tol) * abs(history[-2][0]):
                break

        self.codebooks_ = C
        self.epsilon_ = eps
        self.objective_history_, self.quantization_error_history_, \
            self.latent_error_history_ = (np.array(h) for h in zip(*history))
        self.constraint_violation_ = float(
            np.sqrt(np.mean((_cross_terms(C, B) - eps) ** 2)) / s)
        for k, (W, r) in enumerate(zip(P, R)):
            setattr(self, f"proj{k}_", W @ r)

    # ---- out of sample ------------------------------------------------------------------------
    def _project(self, X: np.ndarray, modality: str) -> np.ndarray:
        k = self.modalities_.index(modality)
        return ((X - getattr(self, f"mean{k}_")) / getattr(self, f"scale{k}_")) \
            @ getattr(self, f"proj{k}_")

    def quantize(self, X: np.ndarray, modality: str) -> np.ndarray:
        """Codeword indices ``(n, M)`` of items seen through one modality: iterated conditional
        modes on the latent projection, from a greedy start (each item on its own)."""
        X = self._check_encode_input(X, modality)
        return self._quantize(self._project(X, modality))

    def _quantize(self, Q: np.ndarray) -> np.ndarray:
        C = self.codebooks_
        M = C.shape[0]
        B = np.zeros((Q.shape[0], M), dtype=np.int64)
        residual = Q.copy()
        for m in range(M):  # greedy start: each codebook quantises what the previous left
            B[:, m] = _nearest(residual, C[m])
            residual -= C[m][B[:, m]]
        return _icm(Q, C, B, self.epsilon_, float(self.mu) / self.penalty_scale_,
                    int(self.icm_sweeps))

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        B = self._quantize(self._project(X, modality))
        bits = (B[:, :, None] >> np.arange(self.bits_per_codebook)) & 1
        return np.where(bits.reshape(len(B), -1) == 1, 1.0, -1.0)

    def _represent(self, X: np.ndarray, modality: str, role: str) -> np.ndarray:
        Q = self._project(X, modality)
        if role == "query":
            return Q
        return _reconstruct(self.codebooks_, self._quantize(Q))

    def _distances(self, queries: np.ndarray, database: np.ndarray) -> np.ndarray:
        Q = np.asarray(queries, dtype=np.float64)
        D = np.asarray(database, dtype=np.float64)
        out = (np.einsum("ij,ij->i", Q, Q)[:, None] - 2.0 * (Q @ D.T)
               + np.einsum("ij,ij->i", D, D)[None, :])
        return np.maximum(out, 0.0)


# ---- the steps ------------------------------------------------------------------------------
def _procrustes(X: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """``argmin_R ||X - Z R^T||^2`` over ``R`` (d x D) with orthonormal columns: ``U W^T`` from
    the SVD ``X^T Z = U S W^T``."""
    U, _, Wt = np.linalg.svd(X.T @ Z, full_matrices=False)
    return U @ Wt


def _reconstruct(C: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``z_i = sum_m C_m[b_im]``: (n, D)."""
    Z = np.zeros((B.shape[0], C.shape[2]))
    for m in range(C.shape[0]):
        Z += C[m][B[:, m]]
    return Z


def _cross_terms(C: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``sum_{m != l} C_m[b_im] . C_l[b_il]`` per item: ``||z_i||^2 - sum_m ||C_m[b_im]||^2``."""
    Z = _reconstruct(C, B)
    own = sum(np.einsum("ij,ij->i", C[m][B[:, m]], C[m][B[:, m]]) for m in range(C.shape[0]))
    return np.einsum("ij,ij->i", Z, Z) - own


def _nearest(Y: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of each row (ties: the lowest index)."""
    d = np.einsum("ij,ij->i", centres, centres)[None, :] - 2.0 * (Y @ centres.T)
    return np.argmin(d, axis=1)


def _kmeans(Y: np.ndarray, K: int, rng: np.random.Generator,
            n_iter: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means from ``K`` distinct rows drawn by ``rng`` (all rows when fewer are
    distinct); an emptied centre moves to the row farthest from its centre."""
    distinct = np.unique(Y, axis=0)
    pool = distinct if len(distinct) >= K else Y
    centres = pool[np.sort(rng.choice(len(pool), size=K, replace=False))].copy()
    labels = _nearest(Y, centres)
    for _ in range(n_iter):
        counts = np.bincount(labels, minlength=K)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, Y)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
        if not filled.all():
            far = np.argsort(-np.einsum("ij,ij->i", Y - centres[labels], Y - centres[labels]),
                             kind="stable")
            centres[~filled] = Y[far[: int((~filled).sum())]]
        new = _nearest(Y, centres)
        if np.array_equal(new, labels):
            break
        labels = new
    return centres, labels


def _icm(T: np.ndarray, C: np.ndarray, B: np.ndarray, eps: float, mu: float,
         sweeps: int) -> np.ndarray:
    """Iterated conditional modes: for each codebook in turn, every item takes the codeword that
    minimises ``||t - z||^2 + mu (cross - eps)^2`` with its other codewords fixed (the current
    one is a candidate, so the cost never increases). Items are independent."""
    B = B.copy()
    M = C.shape[0]
    if M == 1:
        B[:, 0] = _nearest(T, C[0])
        return B
    rows = np.arange(len(T))
    chosen = [C[m][B[:, m]] for m in range(M)]
    norms = [np.einsum("ij,ij->i", c, c) for c in chosen]
    for _ in range(sweeps):
        changed = False
        for m in range(M):
            Y = sum(chosen[j] for j in range(M) if j != m)        # the other codewords' sum
            q = sum(norms[j] for j in range(M) if j != m)
            a = np.einsum("ij,ij->i", Y, Y) - q - eps
            Cm = C[m]
            cost = (np.einsum("ij,ij->i", Cm, Cm)[None, :] - 2.0 * ((T - Y) @ Cm.T)
                    + mu * (a[:, None] + 2.0 * (Y @ Cm.T)) ** 2)
            best = np.argmin(cost, axis=1)
            keep = cost[rows, best] >= cost[rows, B[:, m]]  # no gain: keep the current one
            best = np.where(keep, B[:, m], best)
            changed |= bool(np.any(best != B[:, m]))
            B[:, m] = best
            chosen[m] = Cm[best]
            norms[m] = np.einsum("ij,ij->i", chosen[m], chosen[m])
        if not changed:
            break
    return B


def _update_codebooks(T: np.ndarray, C: np.ndarray, B: np.ndarray, eps: float, mu: float,
                      max_iter: int) -> np.ndarray:
    """L-BFGS from ``C`` on ``1/n [||T - Z||^2 + mu sum_i (cross_i - eps)^2]``."""
    M, K, D = C.shape
    n = len(T)

    def f(flat):
        Cf = flat.reshape(M, K, D)
        chosen = [Cf[m][B[:, m]] for m in range(M)]
        Z = sum(chosen)
        E = T - Z
        cross = np.einsum("ij,ij->i", Z, Z) - sum(np.einsum("ij,ij->i", c, c) for c in chosen)
        e = cross - eps
        value = (float(np.einsum("ij,ij->", E, E)) + mu * float(e @ e)) / n
        grad = np.zeros_like(Cf)
        for m in range(M):
            g = -2.0 * E + 4.0 * mu * e[:, None] * (Z - chosen[m])
            np.add.at(grad[m], B[:, m], g)
        return value, grad.ravel() / n

    res = scipy.optimize.minimize(f, C.ravel(), jac=True, method="L-BFGS-B",
                                  options={"maxiter": max_iter})
    new = res.x.reshape(M, K, D)
    # L-BFGS-B returns its best point; keep the old codebooks if it found nothing better.
    return new if f(res.x)[0] <= f(C.ravel())[0] else C
