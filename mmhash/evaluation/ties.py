"""Ranking metrics from per-query distance histograms, exact under each tie policy.

Hamming distances take only ``n_bits + 1`` values, so a query's ranking is fully described (up to
the order inside each group of equal distance) by two histograms over the distance ``g``:

* ``n[q, g]`` -- items of the retrieval set at distance ``g`` from query ``q``;
* ``r[q, g]`` -- how many of them are relevant to ``q``.

Write ``N_b = sum_{h<g} n[h]`` and ``R_b = sum_{h<g} r[h]`` for the items (relevant items) ranked
before group ``g``; the group occupies positions ``N_b + 1 .. N_b + n[g]``. Everything here works
on these count arrays only (int64 of shape ``(Q, G)``, ``G = n_bits + 1``), so any engine that can
produce the histograms -- this reference one or a later bit-packed one -- gets identical metrics.
The ``index`` policy needs the actual retrieval order and is handled by the caller.

Per group, every policy needs the sum over its relevant items of the precision at their
positions (the group's "precision sum"). For a deterministic order with the group's relevant items
at positions ``M + 1 .. M + r`` (``M = N_b``: optimistic, relevant first; ``M = N_b + n - r``:
pessimistic, relevant last) it is::

    sum_{j=1..r} (R_b + j) / (M + j)  =  r + (R_b - M) * (H(M + r) - H(M))

For the uniformly random order inside the group (``expected``; McSherry & Najork, ECIR 2008),
position ``N_b + i`` holds a relevant item with probability ``r/n``; given that, the ``i - 1``
positions before it in the group hold ``(i-1)(r-1)/(n-1)`` relevant items on average, so by
linearity of expectation::

    E[sum] = sum_{i=1..n} (r/n) (R_b + 1 + (i-1)(r-1)/(n-1)) / (N_b + i)
           = (r/n) [ (R_b + 1) dH + c (n - (N_b + 1) dH) ],   dH = H(N_b + n) - H(N_b),
                                                              c = (r-1)/(n-1)  (0 if n = 1)

using ``(i-1)/(N_b+i) = 1 - (N_b+1)/(N_b+i)``. ``H`` is the harmonic number; differences of it are
computed by :func:`harmonic_diff` to full relative precision, which keeps the closed forms
accurate to ~1e-15 absolute even for millions of items (a plain digamma difference would lose
about ``log10(N)`` digits and the ``(N_b+1) dH`` products would amplify that by ``N_b``).
"""

from __future__ import annotations

import numpy as np

#: How ties in Hamming distance are broken; see :mod:`mmhash.evaluation` for the definitions.
TIE_POLICIES = ("expected", "optimistic", "pessimistic", "index")

# Below this argument the harmonic sums are added term by term; from it on the asymptotic
# expansion of digamma, truncated after the x**-6 term, has relative error < 1/(30 x**8) < 2e-16.
_DIRECT_BELOW = 64

# Cap on rows x support size of the hypergeometric grid in expected_ap_at_k (memory bound).
_GRID_ELEMENTS = 1 << 20


def harmonic_diff(a, n) -> np.ndarray:
    """``sum_{i=1..n} 1/(a + i) = H(a + n) - H(a)`` to full relative precision.

    Parameters
    ----------
    a, n : array_like of non-negative integers (any int or float dtype), broadcastable.

    Returns
    -------
    float64 array of the broadcast shape; exactly 0 where ``n == 0``.

    Terms ``1/k`` with ``k < 64`` are added directly; the rest is ``psi(y) - psi(x)`` over
    ``[x, y) = [max(a+1, 64), max(a+n+1, 64))`` from the asymptotic series of digamma, written as
    differences that never subtract nearly equal numbers (``log1p(n/x)``, ``n(x+y)/(x y)**2``, ...).
    A plain ``digamma(a+n+1) - digamma(a+1)`` has absolute error ~1e-16 * log(a), i.e. a relative
    error up to ~1e-9 when ``a`` ~ 1e6 and ``n`` is small.
    """
    a = np.asarray(a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    x = a + 1.0
    y = x + n  # the sum runs over k in [x, y)

    small = np.zeros(np.broadcast_shapes(x.shape, y.shape))
    for k in range(_DIRECT_BELOW - 1, 0, -1):  # smallest terms first: less rounding
        small += np.where((x <= k) & (k < y), 1.0 / k, 0.0)

    xl = np.maximum(x, _DIRECT_BELOW)
    yl = np.maximum(y, _DIRECT_BELOW)
    d = yl - xl
    ix2 = 1.0 / (xl * xl)
    iy2 = 1.0 / (yl * yl)
    d2 = d * (xl + yl) * ix2 * iy2  # 1/x^2 - 1/y^2
    d4 = d2 * (ix2 + iy2)  # 1/x^4 - 1/y^4
    d6 = d2 * (ix2 * ix2 + ix2 * iy2 + iy2 * iy2)  # 1/x^6 - 1/y^6
    # psi(z) ~ ln z - 1/(2z) - 1/(12 z^2) + 1/(120 z^4) - 1/(252 z^6) + ...
    large = np.log1p(d / xl) + d / (2.0 * xl * yl) + d2 / 12.0 - d4 / 120.0 + d6 / 252.0
    return small + large


def _before(counts: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum along the distance axis: items ranked before each group."""
    return np.cumsum(counts, axis=1) - counts


def _deterministic_sum(r, R_b, M) -> np.ndarray:
    """Precision sum of ``r`` relevant items at positions ``M+1..M+r``, ranks ``R_b+1..R_b+r``."""
    return r + (R_b - M) * harmonic_diff(M, r)


def _expected_sum(n, r, R_b, N_b) -> np.ndarray:
    """Expected precision sum of a group of ``n`` items, ``r`` relevant, in uniform random order.

    Arrays broadcast; the value is 0 where ``r == 0`` (including empty groups).
    """
    n = np.asarray(n, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    dh = harmonic_diff(N_b, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(n > 0, r / n, 0.0)
        c = np.where(n > 1, (r - 1.0) / (n - 1.0), 0.0)
    inner = n - (N_b + 1.0) * dh  # sum_{i=1..n} (i-1)/(N_b+i)
    return np.where(r > 0, frac * ((R_b + 1.0) * dh + c * inner), 0.0)


def group_precision_sums(n: np.ndarray, r: np.ndarray, tie: str) -> np.ndarray:
    """Per-group precision sums of the full ranking under a count-based tie policy.

    Parameters
    ----------
    n, r : int arrays (Q, G): items and relevant items at each distance (``r <= n``).
    tie : "expected", "optimistic" or "pessimistic".

    Returns
    -------
    float64 (Q, G): for group ``g``, the (expected) sum over its relevant items of the precision
    at their rank. ``sum(axis=1) / R`` is the average precision.
    """
    N_b = _before(n).astype(np.float64)
    R_b = _before(r).astype(np.float64)
    if tie == "expected":
        return _expected_sum(n, r, R_b, N_b)
    if tie == "optimistic":
        return _deterministic_sum(r, R_b, N_b)
    if tie == "pessimistic":
        return _deterministic_sum(r, R_b, N_b + (n - r))
    raise ValueError(f"group_precision_sums handles count-based policies, not {tie!r}")


def average_precision_from_counts(n: np.ndarray, r: np.ndarray, tie: str) -> np.ndarray:
    """AP of each query over the whole ranking; 0 for a query with no relevant item.

    ``n, r``: int (Q, G) histograms. Returns float64 (Q,).
    """
    total = group_precision_sums(n, r, tie).sum(axis=1)
    R = r.sum(axis=1)
    return np.divide(total, R, out=np.zeros(len(R)), where=R > 0)


def _boundary(n: np.ndarray, r: np.ndarray, k: int):
    """Locate the group holding position ``k`` (1 <= k <= N) of each query's ranking.

    Returns ``(g, n_g, r_g, N_b, R_b, m)``, each (Q,): the group index, its size and relevant
    count, the items and relevant items before it, and ``m = k - N_b`` in ``1..n_g``, the number
    of its positions inside the top ``k``.
    """
    ends = np.cumsum(n, axis=1)
    g = np.argmax(ends >= k, axis=1)
    rows = np.arange(len(n))
    n_g, r_g = n[rows, g], r[rows, g]
    N_b = ends[rows, g] - n_g
    R_b = np.cumsum(r, axis=1)[rows, g] - r_g
    return g, n_g, r_g, N_b, R_b, k - N_b


def relevant_in_top_k_from_counts(n: np.ndarray, r: np.ndarray, k: int, tie: str) -> np.ndarray:
    """(Expected) number of relevant items among the first ``k`` positions.

    ``n, r``: int (Q, G); ``1 <= k <= N``. Returns float64 (Q,). Under ``expected`` the boundary
    group contributes ``m r_g / n_g`` (each of its positions is relevant with probability
    ``r_g / n_g``); optimistic/pessimistic take as many/few of its relevant items as fit.
    """
    _, n_g, r_g, _, R_b, m = _boundary(n, r, k)
    if tie == "expected":
        return R_b + m * r_g / n_g
    if tie == "optimistic":
        return (R_b + np.minimum(m, r_g)).astype(np.float64)
    if tie == "pessimistic":
        return (R_b + np.maximum(0, m - (n_g - r_g))).astype(np.float64)
    raise ValueError(f"relevant_in_top_k_from_counts handles count-based policies, not {tie!r}")


def average_precision_at_k_from_counts(
    n: np.ndarray, r: np.ndarray, k: int, tie: str
) -> np.ndarray:
    """AP of the ranking truncated at ``k`` positions, normalised by relevant items in the top k.

    ``n, r``: int (Q, G); ``1 <= k <= N``. Returns float64 (Q,); 0 where the top ``k`` holds no
    relevant item.

    Groups ending at or before position ``k`` contribute their whole precision sum ``S_b``. Of
    the boundary group only ``m`` positions count. For optimistic/pessimistic the relevant items
    in them are the first ``j`` of the group's relevant run. For ``expected`` the number ``j`` of
    relevant items among the ``m`` positions is hypergeometric (``n_g`` items, ``r_g`` relevant,
    ``m`` drawn), and given ``j`` those ``m`` positions are a uniformly ordered group of ``m``
    items with ``j`` relevant, so::

        E[AP@k] = sum_j P(j) (E[S_b] + E[sum | j]) / (R_b + j)

    which is exact because ``S_b`` depends only on the orders of earlier groups.
    """
    g, n_g, r_g, N_b, R_b, m = _boundary(n, r, k)
    if tie == "expected":
        sums = group_precision_sums(n, r, tie)
        S_b = np.where(np.arange(n.shape[1]) < g[:, None], sums, 0.0).sum(axis=1)
        return _expected_ap_at_boundary(S_b, n_g, r_g, N_b, R_b, m)
    if tie in ("optimistic", "pessimistic"):
        sums = group_precision_sums(n, r, tie)
        S_b = np.where(np.arange(n.shape[1]) < g[:, None], sums, 0.0).sum(axis=1)
        M = N_b if tie == "optimistic" else N_b + (n_g - r_g)  # before the group's relevant run
        j = np.clip(k - M, 0, r_g)
        total = S_b + _deterministic_sum(j, R_b, M)
        hits = R_b + j
        return np.divide(total, hits, out=np.zeros(len(hits)), where=hits > 0)
    raise ValueError(f"AP@k from counts handles count-based policies, not {tie!r}")


def _expected_ap_at_boundary(S_b, n_g, r_g, N_b, R_b, m) -> np.ndarray:
    """``sum_j P(j) (S_b + E[sum | j]) / (R_b + j)`` for j ~ Hypergeom(n_g, r_g, m); all (Q,)."""
    from scipy.stats import hypergeom  # scipy.stats is slow to import; only map@K needs it

    j_lo = np.maximum(0, m - (n_g - r_g))
    j_hi = np.minimum(m, r_g)
    width = int((j_hi - j_lo).max()) + 1
    out = np.empty(len(m))
    step = max(1, _GRID_ELEMENTS // width)
    for s in range(0, len(m), step):
        q = slice(s, s + step)
        j = j_lo[q, None] + np.arange(width)[None, :]
        p = hypergeom.pmf(j, n_g[q, None], r_g[q, None], m[q, None])
        p = np.where(j <= j_hi[q, None], p, 0.0)
        # The grid covers the whole support, so the weights sum to 1 exactly in theory. Dividing
        # by their computed sum removes the pmf's common rounding bias (~1e-11 relative for
        # groups of ~1e5 items), gives P = 1 exactly for a single-point support, and keeps the
        # result a proper weighted mean of the conditional APs.
        p /= p.sum(axis=1, keepdims=True)
        cond = _expected_sum(m[q, None], j, R_b[q, None], N_b[q, None])
        hits = R_b[q, None] + j
        ratio = np.divide(S_b[q, None] + cond, hits, out=np.zeros(j.shape), where=hits > 0)
        out[q] = (p * ratio).sum(axis=1)
    return out
