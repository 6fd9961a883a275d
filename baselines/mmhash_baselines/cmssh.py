"""CMSSH: Cross-Modal Similarity-Sensitive Hashing by boosting.

M. M. Bronstein, A. M. Bronstein, F. Michel and N. Paragios, "Data fusion through
cross-modality metric learning using similarity-sensitive hashing", CVPR 2010.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import svds

from mmhash.base import BaseHasher
from mmhash.params import Integer

# Clip of the weighted correlation before alpha = atanh(r): a perfect weak learner (r = 1) would
# give an infinite weight and zero every other pair's weight.
_R_MAX = 1.0 - 1e-12
# Below this many columns (or rows) of C a full SVD is cheaper and more robust than ARPACK.
_DENSE_SVD_MAX = 64


class CMSSH(BaseHasher):
    """Cross-Modal Similarity-Sensitive Hashing (Bronstein et al., CVPR 2010).

    Each bit ``i`` is a pair of affine hash functions, one per modality,
    ``xi_i(x) = sign(p_i'(x - mu_x) + a_i)`` and ``eta_i(y) = sign(q_i'(y - mu_y) + b_i)``, learned
    by AdaBoost over pairs ``(x_k, y_k)`` labelled ``s_k = +1`` (similar) or ``-1`` (dissimilar):

    1. Weak learner (the paper's Sec. 3): maximise the weighted correlation
       ``r = sum_k w_k s_k xi(x_k) eta(y_k)``. Replacing the signs by their arguments gives
       ``max p' C q`` over unit ``p, q`` with ``C = sum_k w_k s_k (x_k - mu_x)(y_k - mu_y)'``,
       the difference of the weighted cross-covariances of the similar and the dissimilar pairs,
       so ``p, q`` are the leading left / right singular vectors of ``C``. The thresholds
       ``a, b`` are then chosen on the *signed* objective: exact alternating 1-D maximisation
       over all distinct split points of the projected values (start ``a = b = 0``, i.e. at the
       training means), which never lowers ``r``. If ``r < 0`` the bit is negated on one side.
    2. ``alpha_i = 1/2 log((1 + r) / (1 - r))`` and ``w_k <- w_k exp(-alpha_i s_k xi_i(x_k)
       eta_i(y_k))``, renormalised: the pairs the bit gets wrong weigh more for the next bit.
       With this alpha the bit just chosen has zero correlation under the new weights.

    The codes are the signs of the affine maps; ``alpha_`` (the boosting weights of a weighted
    Hamming metric) is kept but a plain Hamming ranking does not use it.

    Similarity from unlabelled pairs (the paper assumes given similar / dissimilar pairs; the
    Hasher contract has no labels): the positives are the ``n`` training pairs ``(x_i, y_i)``.
    The negatives are ``n * n_negatives`` pairs ``(x_i, y_j)``: for each ``i`` and each of
    ``n_negatives`` rounds, ``j`` is drawn uniformly from ``{0..n-1} \\ {i}`` by
    ``np.random.default_rng(random_state)`` (draw ``j' ~ U{0..n-2}`` and use
    ``j = j' + (j' >= i)``); rounds are independent, so a partner can repeat. Initial weights:
    each class gets half of the mass (``1/(2n)`` per positive, ``1/(2 n n_negatives)`` per
    negative), so the imbalance of the two sets does not decide the first bit.

    Cost: per bit ``O(n n_negatives d_y + n d_x d_y)`` to form ``C`` plus a rank-1 SVD of the
    ``d_x x d_y`` matrix and ``O(m log m)`` for the thresholds, ``m = n (1 + n_negatives)``;
    memory ``O(n (d_x + d_y + n_negatives) + d_x d_y)``. Linear in n, no n x n matrix, so no
    sample limit is needed.

    Parameters
    ----------
    n_bits : int
        Number of boosting rounds = code length, a multiple of 8.
    random_state : int
        Seed of the negative pairs.
    n_negatives : int
        Dissimilar partners drawn per training item (>= 1). Default 10: on a validation split
        carved from the Wikipedia *training* pairs (1,700 / 473), 3 to 20 gave mAP within
        about 0.01 of each other and 1 was 0.01-0.02 lower.
    n_threshold_rounds : int
        Maximum rounds of the alternating exact threshold search per bit.

    Attributes
    ----------
    mean0_, mean1_ : float64 (d_x,), (d_y,)
        Training means of the two views (the centring of the projections).
    projection0_, projection1_ : float64 (d_x, n_bits), (d_y, n_bits)
        ``p_i`` and ``q_i`` as columns.
    threshold0_, threshold1_ : float64 (n_bits,)
        ``a_i`` and ``b_i``.
    alpha_ : float64 (n_bits,)
        AdaBoost weight of each bit.
    correlation_ : float64 (n_bits,)
        Weighted correlation ``r_i`` of each bit under the weights it was chosen with.
    """

    name = "cmssh"
    supported_views = (2, 2)
    parameter_constraints = {"n_negatives": Integer(minimum=1),
                             "n_threshold_rounds": Integer(minimum=1)}

    def __init__(
        self,
        *,
        n_bits: int = 32,
        random_state: int = 0,
        n_negatives: int = 10,
        n_threshold_rounds: int = 5,
    ):
        self.n_bits = n_bits
        self.random_state = random_state
        self.n_negatives = n_negatives
        self.n_threshold_rounds = n_threshold_rounds

    # ---- fit --------------------------------------------------------------------------------
    def _fit(self, views: dict[str, np.ndarray]) -> None:
        X, Y = views.values()
        n, k = X.shape[0], int(self.n_bits)
        mean_x, mean_y = X.mean(axis=0), Y.mean(axis=0)
        Xc, Yc = X - mean_x, Y - mean_y
        partners = negative_partners(n, int(self.n_negatives), self.random_state)
        # Pair k: x-index left[k], y-index right[k], label sign[k]; positives first.
        left = np.concatenate([np.arange(n)] + [np.arange(n)] * partners.shape[1])
        right = np.concatenate([np.arange(n)] + list(partners.T))
        sign = np.concatenate([np.ones(n), -np.ones(partners.size)])
        weights = np.where(sign > 0, 0.5 / n, 0.5 / partners.size)

        P, Q = np.empty((X.shape[1], k)), np.empty((Y.shape[1], k))
        a, b, alpha, corr = np.empty(k), np.empty(k), np.empty(k), np.empty(k)
        for i in range(k):
            ws = weights * sign
            # C = sum_k ws_k x_k y_k' = Xc' M, M summing the y-sides per x-index: O(n d_x d_y).
            C = Xc.T @ _pair_sum(ws, left, right, Yc, n)
            p, q = top_singular_pair(C)
            u, v = Xc @ p, Yc @ q
            a_i, b_i, r = best_thresholds(u[left], v[right], ws, int(self.n_threshold_rounds))
            if r < 0:  # negating one side of the bit flips the sign of its correlation
                p, a_i, r = -p, -a_i, -r
            agree = _sign(u[left] + a_i) * _sign(v[right] + b_i)
            r_clip = min(r, _R_MAX)
            alpha[i] = 0.5 * np.log((1.0 + r_clip) / (1.0 - r_clip))
            weights = weights * np.exp(-alpha[i] * sign * agree)
            weights /= weights.sum()
            P[:, i], Q[:, i], a[i], b[i], corr[i] = p, q, a_i, b_i, r

        self.mean0_, self.mean1_ = mean_x, mean_y
        self.projection0_, self.projection1_ = P, Q
        self.threshold0_, self.threshold1_ = a, b
        self.alpha_ = alpha
        self.correlation_ = corr

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        i = self.modalities_.index(modality)
        return (X - getattr(self, f"mean{i}_")) @ getattr(self, f"projection{i}_") + getattr(
            self, f"threshold{i}_"
        )


# ---- the steps of one boosting round (module level so tests can check them) ---------------------
def negative_partners(n: int, n_negatives: int, random_state: int) -> np.ndarray:
    """Dissimilar partners: int64 (n, n_negatives), entry [i, r] uniform over {0..n-1} \\ {i}."""
    rng = np.random.default_rng(random_state)
    draw = rng.integers(0, n - 1, size=(n, n_negatives))
    return draw + (draw >= np.arange(n)[:, None])


def top_singular_pair(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit ``p``, ``q`` maximising ``p' C q`` (leading singular vectors), sign fixed so that the
    largest-magnitude entry of ``p`` is positive. ``C``: float64 (d_x, d_y)."""
    if min(C.shape) <= _DENSE_SVD_MAX:
        U, _, Vt = np.linalg.svd(C, full_matrices=False)
        p, q = U[:, 0], Vt[0]
    else:
        # A fixed start vector makes ARPACK deterministic.
        U, _, Vt = svds(C, k=1, v0=np.ones(min(C.shape)) / np.sqrt(min(C.shape)))
        p, q = U[:, 0], Vt[0]
    flip = 1.0 if p[np.argmax(np.abs(p))] >= 0 else -1.0
    return flip * p, flip * q


def best_threshold(values: np.ndarray, coef: np.ndarray) -> tuple[float, float]:
    """Exact maximiser over ``t`` of ``sum_k coef_k sign(values_k + t)`` (sign(0) = +1).

    Only splits between distinct values are considered (a constant bit carries no
    information), each at the midpoint. Returns (t, value); with one distinct value, (0, value
    at t = 0). O(m log m).
    """
    order = np.argsort(values, kind="stable")
    v, c = values[order], coef[order]
    # With the j smallest values below -t: objective = total - 2 * (sum of their coefficients).
    below = np.cumsum(c)[:-1]
    valid = v[1:] > v[:-1]
    if not valid.any():
        return 0.0, float(np.sum(coef * _sign(values)))
    below = np.where(valid, below, np.inf)
    j = int(np.argmin(below))
    t = -0.5 * (v[j] + v[j + 1])
    return t, float(c.sum() - 2.0 * below[j])


def best_thresholds(
    u: np.ndarray, v: np.ndarray, ws: np.ndarray, rounds: int
) -> tuple[float, float, float]:
    """Alternating exact maximisation of ``r(a, b) = sum_k ws_k sign(u_k + a) sign(v_k + b)``.

    Starts at ``a = b = 0`` and stops when a round does not raise ``r`` (it never lowers it).
    Returns (a, b, r).
    """
    a = b = 0.0
    r = float(np.sum(ws * _sign(u) * _sign(v)))
    for _ in range(rounds):
        b_new, r_b = best_threshold(v, ws * _sign(u + a))
        if r_b > r:
            b, r = b_new, r_b
        a_new, r_a = best_threshold(u, ws * _sign(v + b))
        if r_a > r:
            a, r = a_new, r_a
        else:
            break
    return a, b, r


def _pair_sum(ws: np.ndarray, left: np.ndarray, right: np.ndarray, Yc: np.ndarray, n: int):
    """``M`` (n, d_y) with row i = sum over pairs k with left[k] = i of ws[k] * Yc[right[k]],
    so that ``Xc' M = sum_k ws_k x_k y_k'``; pairs come in blocks of n with left = 0..n-1."""
    M = np.zeros((n, Yc.shape[1]))
    for start in range(0, left.shape[0], n):
        block = slice(start, start + n)
        M += ws[block, None] * Yc[right[block]]
    return M


def _sign(x: np.ndarray) -> np.ndarray:
    """sign with sign(0) = +1, as the codes use."""
    return np.where(x >= 0, 1.0, -1.0)
