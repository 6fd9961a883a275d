"""PDH: Predictable Dual-View Hashing (Rastegari, Choi, Fakhraei, Daumé & Davis, ICML 2013)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

try:  # liblinear itself, as LinearSVC calls it (see _linear_svm)
    from sklearn.svm._liblinear import set_verbosity_wrap as _liblinear_quiet
    from sklearn.svm._liblinear import train_wrap as _liblinear_train
except ImportError:  # pragma: no cover - depends on the scikit-learn version
    _liblinear_quiet = _liblinear_train = None

from mmhash.base import BaseHasher
from mmhash.errors import InvalidInputError
from mmhash.params import Flag, Integer, Number
from mmhash_baselines._common import add_relative_ridge, canonical_pairs, centre_and_scale


def hinge(margins: np.ndarray) -> np.ndarray:
    """``max(0, 1 - margins)`` elementwise."""
    return np.maximum(0.0, 1.0 - margins)


def pdh_objective(B: np.ndarray, scores: list[np.ndarray], norms: list[np.ndarray], C: float,
                  lam: float) -> float:
    """The PDH objective for codes ``B`` (n, r) in {-1, +1}.

    ``sum_v sum_k [ 0.5 ||(w_vk, b_vk)||^2 + C sum_i hinge(B_ik f_vk(x_vi)) ]
    + (lam / n) ||B^T B - n I||_F^2``, with ``scores[v] = f_v(X_v)`` (n, r) and
    ``norms[v][k] = ||(w_vk, b_vk)||^2``.
    """
    n = B.shape[0]
    G = B.T @ B - n * np.eye(B.shape[1])
    svm = sum(0.5 * nv.sum() + C * hinge(B * S).sum() for S, nv in zip(scores, norms))
    return float(svm + lam / n * (G**2).sum())


def update_codes(B: np.ndarray, scores: list[np.ndarray], C: float, lam: float) -> np.ndarray:
    """One exact coordinate-descent sweep over the entries of ``B`` (in place).

    Returns the number of flipped entries per bit, int64 (r,).

    For entry ``(i, k)`` with current sign ``s`` the change of the objective when it flips is
    ``C sum_v [hinge(-s f_vik) - hinge(s f_vik)]`` (prediction) plus
    ``(8 lam / n) [(r - 1) - s sum_{l != k} B_il G_kl]`` (decorrelation, ``G = B^T B``); the
    entry flips when that change is negative, so the objective never increases. Entries are
    visited bit by bit, items in order; ``G`` is kept up to date after every flip.

    The sweep is sequential (each flip changes the decorrelation cost of the items after it),
    but items between two flips need not be visited one by one: a block of items is scored with
    one matrix-vector product, and after a flip at item ``j`` the scores of the block's later
    items change by ``-2 s_j B_{-k} b_{j,-k}`` (one more product), so Python only runs per flip
    and per block. All decorrelation terms are integers held exactly in float64, so every
    decision is the one the item-by-item loop takes. Bits where many items flip (more than
    ``n / 16`` candidates) are swept item by item, which is cheaper there.
    """
    n, r = B.shape
    G = B.T @ B
    c8 = 8.0 * lam / n
    flips = np.zeros(r, dtype=np.int64)
    for k in range(r):
        s = B[:, k]
        # Prediction part of the flip cost for every item, for the current signs.
        dh = C * sum(hinge(-s * S[:, k]) - hinge(s * S[:, k]) for S in scores)
        g = G[k].copy()
        g[k] = 0.0
        delta = dh + c8 * ((r - 1) - s * (B @ g))
        start = np.flatnonzero(delta < 0)
        if start.size == 0:  # nothing improves: skip the item loop (common after a few rounds)
            continue
        if start.size > n // 16:
            flips[k] = _sweep_items(B, k, int(start[0]), dh, g, c8)
        else:
            flips[k] = _sweep_blocks(B, k, int(start[0]), dh, g, c8)
        G[k] = g
        G[:, k] = g
        G[k, k] = n
    return flips


def _sweep_items(B, k, first, dh, g, c8) -> int:
    """The sweep of bit ``k`` from item ``first``, item by item; updates ``B`` and ``g``."""
    n, r = B.shape
    flips = 0
    # Python floats: the same IEEE operations as numpy scalars, without their overhead.
    costs, signs, rest = dh.tolist(), B[:, k].tolist(), r - 1
    for i in range(first, n):
        si = signs[i]
        row = B[i]
        if costs[i] + c8 * (rest - si * float(row @ g)) < 0:
            row[k] = -si
            g -= (2.0 * si) * row  # G_kl changes by -2 s B_il for l != k
            g[k] = 0.0
            flips += 1
    return flips


def _sweep_blocks(B, k, first, dh, g, c8, block: int = 256) -> int:
    """The same sweep as :func:`_sweep_items`, block by block (exact; see update_codes)."""
    n, r = B.shape
    flips = 0
    pos = first
    while pos < n:
        end = min(pos + block, n)
        rows = B[pos:end]  # view: flips below write through
        sgn = rows[:, k].copy()
        dots = rows @ g  # g[k] = 0: column k does not count
        cost = dh[pos:end] + c8 * ((r - 1) - sgn * dots)
        j = _first_negative(cost, 0)
        while j >= 0:
            sj = sgn[j]
            rows[j, k] = -sj
            step = -2.0 * sj * rows[j]
            step[k] = 0.0
            g += step
            flips += 1
            if j + 1 < len(sgn):
                later = slice(j + 1, None)
                dots[later] += rows[later] @ step
                cost[later] = dh[pos + j + 1:end] + c8 * ((r - 1) - sgn[later] * dots[later])
            j = _first_negative(cost, j + 1)
        pos = end
    return flips


def _first_negative(values: np.ndarray, start: int) -> int:
    """Index of the first negative entry of ``values`` at or after ``start``, or -1."""
    hit = np.flatnonzero(values[start:] < 0)
    return start + int(hit[0]) if hit.size else -1


def _canonical_directions(X1: np.ndarray, X2: np.ndarray, reg: float, m: int):
    """The ``m`` leading CCA direction pairs of centred X1, X2 (ridge relative to the trace)."""
    n = X1.shape[0]
    C11, C22 = (add_relative_ridge(X.T @ X / n, reg) for X in (X1, X2))
    P1, P2, _ = canonical_pairs(C11, C22, X1.T @ X2 / n, m)
    return P1, P2


def _linear_svm(X: np.ndarray, y: np.ndarray, C: float, tol: float, seed: int):
    """``LinearSVC(C=C, loss="hinge", dual=True, tol=tol, max_iter=10000, random_state=seed)``
    fitted on ``(X, y)`` (``y`` in {-1, +1}, both classes present); returns ``(w, b)``.

    liblinear is called the way ``LinearSVC.fit`` calls it (same arguments, same seed, so the
    same hyperplane bit for bit) without the estimator's per-call validation, label encoding
    and class-weight bookkeeping, which cost a third of liblinear's own time on PDH's 2 x n_bits
    small problems per iteration. Should the private entry point change, ``LinearSVC`` is used.
    """
    global _liblinear_train
    if _liblinear_train is not None:
        n = X.shape[0]
        seed_ = np.random.RandomState(seed).randint(np.iinfo("i").max)
        try:
            _liblinear_quiet(0)  # the library prints its progress unless told (LinearSVC does too)
            raw, _ = _liblinear_train(X, (y > 0).astype(np.float64), False, 3, tol, 1.0, C,
                                      np.ones(2), 10000, seed_, 0.1, np.ones(n))
            return raw[0, :-1].copy(), float(raw[0, -1])
        except TypeError:  # pragma: no cover - depends on the scikit-learn version
            _liblinear_train = None
    svm = LinearSVC(C=C, loss="hinge", dual=True, tol=tol, max_iter=10000, random_state=seed)
    with warnings.catch_warnings():
        # A stop at max_iter is harmless: the W-step keeps the better hyperplane.
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm.fit(X, y)
    return svm.coef_.ravel(), float(svm.intercept_[0])


class PDH(BaseHasher):
    """Predictable Dual-View Hashing: codes both views can predict with max-margin hyperplanes.

    Paper: M. Rastegari, J. Choi, S. Fakhraei, H. Daumé III and L. S. Davis, "Predictable
    Dual-View Hashing", ICML 2013.

    Provenance: the paper's full text (and so its equation numbers) could not be consulted when
    this was written and no released code exists; the formulation below is our reading of the
    method (max-margin predictability of the bits from each view, a bit-correlation penalty,
    CCA initialisation, alternating SVM / code updates). Check it against the paper before
    comparing numbers with it. The paper evaluates on PASCAL-Sentence and SUN-Attribute, not
    Wikipedia.

    Objective. Training codes ``B`` (n, r) in {-1, +1} and, for each view ``v`` and bit ``k``, a
    hyperplane ``f_vk(x) = w_vk^T x + b_vk``::

        min_{B, w, b}  sum_v sum_k [ 0.5 ||(w_vk, b_vk)||^2 + C sum_i hinge(B_ik f_vk(x_vi)) ]
                       + (lam / n) ||B^T B - n I||_F^2

    The hinge terms make every bit *predictable* from each view with a margin (an SVM per view
    and bit); the last term pushes the bits to be uncorrelated (the paper's orthogonality /
    correlation term), which keeps them from collapsing into one. Because every training item
    is paired here, the two views share one training code ``B``, so each view's hyperplanes
    predict the code the other view also predicts: the cross-view Hamming space.

    Optimisation: block coordinate descent.

    1. Initialise ``B`` with the signs of CCA (the paper's initialisation): the sum of both
       views' canonical projections. Beyond the ``m = min(d_1, d_2, n - 1)`` canonical pairs the
       remaining bits use random unit combinations of the ``m`` canonical variates (seeded by
       ``random_state``).
    2. W-step: for each view and bit, a linear SVM (scikit-learn ``LinearSVC``, hinge loss, bias
       regularised as liblinear does) on ``(X_v, B[:, k])``; liblinear is called directly with
       ``LinearSVC``'s arguments (:func:`_linear_svm`, the same hyperplane bit for bit). The new
       hyperplane replaces the old one only if it lowers that term, so the step can never raise
       the objective even when the solver stops short of its tolerance.
    3. B-step: one exact coordinate-descent sweep over the entries of ``B``
       (:func:`update_codes`).

    Steps 2-3 repeat ``max_iter`` times or until no entry of ``B`` flips; a bit whose column of
    ``B`` did not change keeps its hyperplanes (the SVM problem is the same); ``objective_`` holds
    the objective after every half-step (non-increasing). Hash of a new item:
    ``sgn(f_v(x))``.

    Choices where the paper is silent or which we state explicitly (each a parameter):

    * ``normalize``: each view is centred and scaled to unit mean squared row norm (learned at
      fit), so that ``C`` means the same for topic proportions and raw CNN features.
    * ``lam`` is divided by ``n`` so the decorrelation term grows like the hinge sums.
    * A bit that is constant in ``B`` gets ``w = 0`` and ``b = +-1`` for every view (the SVM
      optimum of a one-class problem) instead of a solver call.

    Cost: per iteration 2 r linear SVMs, O(n d) each per solver pass, and a B-sweep of
    O(n r^2) (items scored by blocks, Python only per flip, or item by item for bits where many
    items flip, as in the first iterations); memory O(n (d + r)). Linear in ``n``; total
    O(max_iter * r * n * (d + r)). Measured on Wikipedia (2,173 items, one core): about 2 s at
    16 bits and 20 s at 128 bits, four fifths of it inside liblinear (the 2 r SVM fits per
    iteration); ``max_iter`` scales it linearly. At the MIRFlickr protocol's size (5,000 x
    4,096 image features, 27M entries over both views) a 64-bit fit ran past 10 minutes on 2
    cores, so a view above ``max_entries`` (5M: about 3 minutes at 64 bits by the same rate) is
    refused before fitting, naming the limit; raise it to run anyway, or reduce the features.

    Parameters
    ----------
    n_bits : int
        Code length (multiple of 8).
    random_state : int
        Seed of the extra initial directions and of liblinear's coordinate order.
    C : float
        SVM hinge weight (default 1).
    lam : float
        Weight of the bit decorrelation term (default 1).
    max_iter : int
        Outer iterations (default 10).
    cca_reg : float
        Relative ridge of the CCA initialisation (default 1e-4).
    svm_tol : float
        liblinear stopping tolerance (default 1e-2: each SVM objective within about 1e-4 of
        relative error of the 1e-4 solution at a third of the time on Wikipedia).
    normalize : bool
        Centre and scale each view; centring alone when False.
    max_entries : int
        Largest ``n x d`` of a view's training features accepted (default 5,000,000; see Cost).

    Attributes
    ----------
    mean{v}_ : float64 (d_v,), training mean of the v-th view given to fit
    scale{v}_ : float, the view's scale divisor
    coef{v}_ : float64 (d_v, n_bits), hyperplanes ``w_vk`` (columns)
    intercept{v}_ : float64 (n_bits,), ``b_vk``
    objective_ : list of float, objective after each W-step and B-step
    n_iter_ : int, outer iterations run
    """

    name = "pdh"
    supported_views = (2, 2)
    #: Fewer outer iterations keep the conformance suite's many small fits fast.
    conformance_params = {"max_iter": 3}
    #: random_state is BaseHasher's integer >= 0 (np.random.default_rng refuses negative seeds
    #: with its own traceback).
    parameter_constraints = {
        "C": Number(low=0, low_open=True),
        "lam": Number(low=0),
        "cca_reg": Number(low=0, low_open=True),
        "svm_tol": Number(low=0, low_open=True),
        "max_iter": Integer(minimum=1),
        "normalize": Flag(),
        "max_entries": Integer(minimum=1),
    }

    def __init__(self, *, n_bits: int = 32, random_state: int = 0, C: float = 1.0,
                 lam: float = 1.0, max_iter: int = 10, cca_reg: float = 1e-4,
                 svm_tol: float = 1e-2, normalize: bool = True, max_entries: int = 5_000_000):
        self.n_bits = n_bits
        self.random_state = random_state
        self.C = C
        self.lam = lam
        self.max_iter = max_iter
        self.cca_reg = cca_reg
        self.svm_tol = svm_tol
        self.normalize = normalize
        self.max_entries = max_entries

    # ---- steps -------------------------------------------------------------------------------
    def _initial_codes(self, Xs: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        n, r = Xs[0].shape[0], self.n_bits
        m = min(Xs[0].shape[1], Xs[1].shape[1], n - 1, r)
        P1, P2 = _canonical_directions(Xs[0], Xs[1], float(self.cca_reg), m)
        V = Xs[0] @ P1 + Xs[1] @ P2  # (n, m) joint canonical variates
        if r > m:
            R = rng.standard_normal((m, r - m))
            R /= np.linalg.norm(R, axis=0, keepdims=True)
            V = np.hstack([V, V @ R])
        return np.where(V >= 0, 1.0, -1.0)

    def _svm_step(self, X: np.ndarray, B: np.ndarray, coef: np.ndarray, icpt: np.ndarray,
                  seeds: np.ndarray, bits: np.ndarray) -> None:
        """Refit the hyperplanes of ``bits`` for one view in place (kept only if they improve)."""
        C = float(self.C)
        X = np.ascontiguousarray(X, dtype=np.float64)
        for k in bits:
            y = B[:, k]

            def cost(w, b, y=y):
                return 0.5 * (w @ w + b * b) + C * hinge(y * (X @ w + b)).sum()

            if np.all(y == y[0]):
                w_new, b_new = np.zeros(X.shape[1]), float(y[0])
            else:
                w_new, b_new = _linear_svm(X, y, C, float(self.svm_tol), int(seeds[k]))
            if cost(w_new, b_new) < cost(coef[:, k], icpt[k]):
                coef[:, k], icpt[k] = w_new, b_new

    def _fit(self, views: dict[str, np.ndarray]) -> None:
        for name, X in views.items():
            if X.size > self.max_entries:
                raise InvalidInputError(
                    f"view {name!r} has {X.shape[0]} x {X.shape[1]} = {X.size:,} training "
                    f"entries, above max_entries={self.max_entries:,} (PDH trains 2 x n_bits "
                    "linear SVMs on them per iteration: over 10 minutes at 64 bits on 2 cores "
                    "for 5,000 x 4,096); reduce the features (e.g. PCA) or training rows, or "
                    "raise max_entries")
        rng = np.random.default_rng(int(self.random_state))
        Xs = []
        for v, X in enumerate(views.values()):
            Xc, mean, scale = centre_and_scale(X, self.normalize)
            setattr(self, f"mean{v}_", mean)
            setattr(self, f"scale{v}_", scale)
            Xs.append(Xc)
        r = self.n_bits
        C, lam = float(self.C), float(self.lam)

        B = self._initial_codes(Xs, rng)
        coefs = [np.zeros((X.shape[1], r)) for X in Xs]
        icpts = [np.zeros(r) for _ in Xs]
        seeds = rng.integers(0, 2**31 - 1, size=(len(Xs), r))

        def objective() -> float:
            scores = [X @ W + b for X, W, b in zip(Xs, coefs, icpts)]
            norms = [(W**2).sum(axis=0) + b**2 for W, b in zip(coefs, icpts)]
            return pdh_objective(B, scores, norms, C, lam)

        history = []
        n_iter = 0
        changed = np.arange(r)  # bits whose column of B changed since their last SVM fit
        for _ in range(int(self.max_iter)):
            n_iter += 1
            for X, W, b, s in zip(Xs, coefs, icpts, seeds):
                self._svm_step(X, B, W, b, s, changed)
            history.append(objective())
            flips = update_codes(B, [X @ W + b for X, W, b in zip(Xs, coefs, icpts)], C, lam)
            history.append(objective())
            changed = np.flatnonzero(flips)
            if changed.size == 0:  # B is a fixed point: the W-step would refit the same problems
                break
        self.objective_ = history
        self.n_iter_ = n_iter
        for v, (W, b) in enumerate(zip(coefs, icpts)):
            setattr(self, f"coef{v}_", W)
            setattr(self, f"intercept{v}_", b)

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        v = self.modalities_.index(modality)
        Xc = (X - getattr(self, f"mean{v}_")) / getattr(self, f"scale{v}_")
        return Xc @ getattr(self, f"coef{v}_") + getattr(self, f"intercept{v}_")
