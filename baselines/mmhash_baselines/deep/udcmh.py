"""UDCMH: Unsupervised Deep Cross-Modal Hashing via binary latent factor models (a reconstruction).

Wu, Lin, Han, Liu, Ding, Zhang, Shen, "Unsupervised Deep Hashing via Binary Latent Factor Models
for Large-scale Cross-modal Retrieval", IJCAI 2018, pp. 2854-2860. Needs PyTorch. No code was
published and the paper's full text was not available to us (its abstract, its Fig. 1 caption
and a third-party summary were): this is a **reconstruction**; docs/methods/udcmh.md traces every
part to a sentence of what we could read (S1..S8 there) or marks it as our choice.

For ``M`` views (image first, text second; any ``M >= 2`` works) of ``n`` training rows ``X^m``:

Networks (feature learning, S3, S6), features-only
    ``F^m = f_m(X^m)``: ``d_m -> hidden_width (ReLU) x n_hidden_layers -> n_bits -> tanh``, real
    valued ``(n, k)`` with ``k = n_bits``. The paper's networks take raw images / texts (a CNN
    for images); here the image network is a head on the given image feature vectors. Inputs are
    column-standardised with the training mean / deviation (``standardize=True``, ours; the
    mixin :mod:`mmhash_baselines.deep._scaling`). Out of sample: ``code = sign(f_m(x))``.

Binary latent factor model (binary latent representation learning, S2, S4, S6)
    One binary matrix ``B in {-1, +1}^(n x k)`` shared by the views (the "unified binary
    matrix") factorises every view's deep features, ``F^m ~ B U_m`` with real ``U_m`` ``(k, k)``;
    the networks also fit ``B`` itself (hash function learning, S6), and ``B`` is smooth on a
    signed neighbourhood graph of the original features (S5)::

        J(B, U, theta) = sum_m alpha ||F^m - B U_m||^2 + eta sum_m ||B - F^m||^2
                         - gamma tr(B^T S B)

    ``alpha = mf_weight``, ``eta = fit_weight``, ``gamma = graph_weight``. For binary ``B``,
    ``-tr(B^T S B)`` equals ``tr(B^T L B)`` up to a constant, ``L = D - S`` the graph Laplacian
    (``b_i^T b_i = k`` makes ``tr(B^T D B)`` constant): the Laplacian constraint.

Signed neighbourhood graph ``S`` (S5), built once from the (standardised) original features
    Per view, cosine of the rows: each row's ``n_neighbors`` most similar other rows get
    ``+1 / n_neighbors``, its ``n_farthest`` least similar ``-far_weight / n_farthest``
    ("preserve not only the nearest neighbours ... but also the farthest neighbours");
    symmetrised ``(A + A^T) / 2`` and averaged over the views. Sparse (``n (k_near + k_far)``
    entries per view, built in row chunks): memory is linear in ``n``, so no ``n x n`` matrix
    is ever held and no training-set size is refused (the kNN search is still O(n^2 d) time).

Alternating optimisation (S7)
    Before the first epoch, ``B = sign(F - colmedian(F))``, ``F = sum_m F^m`` of the initial
    networks (balanced bits, :func:`initial_codes`), then a code step.
    Each epoch: (1) network step: mini-batches of the fit rows, Adam on
    ``sum_m [alpha ||F^m_I - B_I U_m||^2 + eta ||B_I - F^m_I||^2] / (|I| k)`` with ``B``, ``U``
    fixed; (2) ``U_m = (B^T B + ridge n I)^-1 B^T F^m`` (least squares); (3) code step:
    ``n_bit_passes`` sweeps of the bitwise discrete update (DCC-style, no relaxation, S4) over
    the columns of ``B``. For column ``l`` with the others fixed,
    ``J(b) = -2 b^T r - gamma b^T S b + const``, ``r = sum_m [alpha F^m U_m[l]^T + eta F^m_l
    - alpha B' U_m' U_m[l]^T]``; the candidate ``sign(r + gamma S b0)`` is kept when it lowers
    ``J``, else the majorise-minimise step ``sign(r + gamma (S + c I) b0)`` (``c`` the largest
    absolute row sum of ``S``, so ``S + c I`` is positive semi-definite and the step never
    raises ``J``): ``J`` never increases in a code step (:func:`update_codes`).

Held-out rows (``validation_fraction > 0``) are part of ``S`` and ``B`` (features only; their
codes follow their own network outputs and the graph) but never of a network step; their
network loss after every epoch chooses the kept epoch. No labels, no queries.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

try:
    import torch
    from torch import nn
except ImportError as exc:  # the registry lists udcmh as unavailable with this message
    raise ImportError(
        "UDCMH needs PyTorch, which is not installed: pip install 'mmhash-baselines[deep]'"
    ) from exc

from mmhash.deep import DeepHasher, TrainingState, knn_indices, mlp
from mmhash.errors import InvalidInputError
from mmhash.params import Integer, Number

from ._graph import training_tensors
from ._scaling import ColumnScaling

#: Entries of one chunk of the cosine matrix while the graph is built (64 MiB in float32): the
#: chunks of :func:`mmhash.deep.knn_indices` and of the edge list.
_CHUNK_ENTRIES = 2**24


# ---- the signed neighbourhood graph ------------------------------------------------------------
def neighbour_counts(n: int, n_neighbors: int, n_farthest: int) -> tuple[int, int]:
    """The nearest / farthest counts used for ``n`` rows: ``n_neighbors`` at most ``n - 1``,
    ``n_farthest`` at most the rows left (``n - 1 - k_near``), so the two sets never overlap."""
    near = min(int(n_neighbors), n - 1)
    return near, min(int(n_farthest), n - 1 - near)


def signed_knn_edges(X: torch.Tensor, n_near: int, n_far: int, far_weight: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """One view's directed signed kNN graph ``A``: edges ``(2, E)`` int64 (row, column) and
    their weights ``(E,)`` in ``X``'s dtype.

    ``X`` ``(n, d)``: cosine of the rows (an all-zero row has cosine 0 to every row). Row ``i``
    links to its ``n_near`` most similar other rows with ``+1 / n_near`` and to its ``n_far``
    least similar rows among the others with ``-far_weight / n_far``
    (:func:`mmhash.deep.knn_indices`, ``farthest=n_far``). Built ``chunk`` rows at a time, so no
    ``n x n`` matrix is allocated; the edges are listed chunk by chunk, each chunk's nearest
    before its farthest."""
    n = X.shape[0]
    chunk = max(1, _CHUNK_ENTRIES // max(n, 1))
    near, far = knn_indices(X, n_near, metric="cosine", chunk_rows=chunk, farthest=n_far)
    picks = [(near, n_near, 1.0 / max(n_near, 1)),
             (far, n_far, -float(far_weight) / max(n_far, 1))]
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):
        idx = torch.arange(start, min(start + chunk, n), device=X.device)
        for picked, count, weight in picks:
            if count > 0:
                rows.append(idx.repeat_interleave(count))
                cols.append(picked[start:start + chunk].reshape(-1))
                vals.append(torch.full((len(idx) * count,), weight, dtype=X.dtype,
                                       device=X.device))
    if not rows:
        return (torch.zeros((2, 0), dtype=torch.int64, device=X.device),
                torch.zeros(0, dtype=X.dtype, device=X.device))
    return torch.stack([torch.cat(rows), torch.cat(cols)]), torch.cat(vals)


def signed_affinity(views: Sequence[torch.Tensor], *, n_neighbors: int, n_farthest: int,
                    far_weight: float) -> torch.Tensor:
    """``S``: the symmetrised signed kNN graphs ``(A^m + A^m^T) / 2`` of the views
    (:func:`signed_knn_edges`), averaged over the views; a coalesced sparse COO ``(n, n)``
    tensor in the views' dtype and device. Counts are clipped by :func:`neighbour_counts`."""
    n = views[0].shape[0]
    near, far = neighbour_counts(n, n_neighbors, n_farthest)
    indices, values = [], []
    for X in views:
        edges, weights = signed_knn_edges(X, near, far, far_weight)
        scaled = weights / (2.0 * len(views))
        indices += [edges, edges.flip(0)]
        values += [scaled, scaled]
    return torch.sparse_coo_tensor(torch.cat(indices, dim=1), torch.cat(values),
                                   (n, n), check_invariants=True).coalesce()


def psd_shift(S: torch.Tensor) -> float:
    """``c``: the largest absolute row sum of the sparse ``S``; ``S + c I`` is positive
    semi-definite (Gershgorin), which makes the majorise-minimise code step monotone."""
    rows = S.indices()[0]
    sums = torch.zeros(S.shape[0], dtype=S.dtype, device=S.device)
    sums.index_add_(0, rows, S.values().abs())
    return float(sums.max()) if len(sums) else 0.0


# ---- the objective and its exact / discrete steps ----------------------------------------------
def udcmh_objective(features: Sequence[torch.Tensor], B: torch.Tensor,
                    factors: Sequence[torch.Tensor], S: torch.Tensor, *, mf_weight: float,
                    fit_weight: float, graph_weight: float) -> float:
    """``J = sum_m alpha ||F^m - B U_m||^2 + eta sum_m ||B - F^m||^2 - gamma tr(B^T S B)``.

    ``features`` ``F^m`` ``(n, k)``, ``B`` ``(n, k)`` of ±1, ``factors`` ``U_m`` ``(k, k)``,
    ``S`` sparse or dense ``(n, n)``. Returns a float (sums, not means)."""
    total = 0.0
    for Fm, U in zip(features, factors):
        total += mf_weight * float(((Fm - B @ U) ** 2).sum())
        total += fit_weight * float(((B - Fm) ** 2).sum())
    SB = torch.sparse.mm(S, B) if S.is_sparse else S @ B
    return total - graph_weight * float((B * SB).sum())


def initial_codes(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """``B0 = sign(F - median(F))`` of ``F = sum_m F^m`` ``(n, k)``, the median taken per
    column: every bit starts balanced (our choice). Untrained networks on inputs of small
    magnitude give nearly the same output to every row, and ``sign(F)`` alone then starts every
    row with the same code, a fixed point of the code step that training never leaves."""
    total = sum(features)
    centred = total - total.median(dim=0, keepdim=True).values
    return torch.where(centred > 0, 1.0, -1.0).to(total.dtype)


def update_factors(features: Sequence[torch.Tensor], B: torch.Tensor, ridge: float
                   ) -> list[torch.Tensor]:
    """``U_m = (B^T B + ridge n I)^-1 B^T F^m``: the least-squares latent factors of each view
    for fixed ``B`` ``(n, k)`` (the ridge keeps them defined when bits coincide). ``(k, k)``."""
    n, k = B.shape
    gram = B.T @ B + ridge * n * torch.eye(k, dtype=B.dtype, device=B.device)
    return [torch.linalg.solve(gram, B.T @ Fm) for Fm in features]


def _sign_or_keep(arg: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``sign(arg)``, the old bit where ``arg`` is exactly 0."""
    return torch.where(arg != 0, arg.sign(), old)


def update_codes(features: Sequence[torch.Tensor], B: torch.Tensor,
                 factors: Sequence[torch.Tensor], S: torch.Tensor, *, mf_weight: float,
                 fit_weight: float, graph_weight: float, n_passes: int = 1) -> torch.Tensor:
    """The discrete code step: ``n_passes`` sweeps of bitwise updates of ``B`` (a new tensor;
    module docstring). For each column ``l``, with ``r`` the linear coefficient of the column
    in ``J``, the candidate ``sign(r + gamma S b0)`` is kept if it lowers
    ``J(b) = -2 b^T r - gamma b^T S b``, else ``sign(r + gamma (S + c I) b0)``, which never
    raises it; a zero argument keeps the old bit. ``J`` never increases."""
    B = B.clone()
    k = B.shape[1]
    Q = sum(mf_weight * Fm @ U.T + fit_weight * Fm for Fm, U in zip(features, factors))
    P = sum(mf_weight * U @ U.T for U in factors)  # (k, k)
    shift = psd_shift(S) if S.is_sparse else float(S.abs().sum(1).max())

    # CSR: one sparse matrix-vector product per candidate, several times faster than COO's.
    if S.is_sparse:
        with warnings.catch_warnings():  # "CSR support is in beta": matvec is all we use
            warnings.simplefilter("ignore", UserWarning)
            S_rows = S.to_sparse_csr()
    else:
        S_rows = S

    def times_s(b: torch.Tensor) -> torch.Tensor:
        return (S_rows @ b[:, None])[:, 0]

    def column_cost(b: torch.Tensor, r: torch.Tensor, Sb: torch.Tensor) -> float:
        return float(-2.0 * (b @ r) - graph_weight * (b @ Sb))

    for _ in range(int(n_passes)):
        for col in range(k):
            b0 = B[:, col]
            # r: Q's column less the coupling with the other columns through U U^T.
            r = Q[:, col] - (B @ P[:, col] - b0 * P[col, col])
            Sb0 = times_s(b0)
            candidate = _sign_or_keep(r + graph_weight * Sb0, b0)
            if column_cost(candidate, r, times_s(candidate)) > column_cost(b0, r, Sb0):
                candidate = _sign_or_keep(r + graph_weight * (Sb0 + shift * b0), b0)
            B[:, col] = candidate
    return B


def network_loss(outputs: Sequence[torch.Tensor], B: torch.Tensor,
                 factors: Sequence[torch.Tensor], *, mf_weight: float, fit_weight: float
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """The network step's objective on a batch: ``sum_m [alpha ||F^m - B U_m||^2 + eta ||B -
    F^m||^2] / (b k)`` for outputs ``F^m`` ``(b, k)``, the rows' codes ``B`` ``(b, k)`` and
    fixed ``U_m``. Returns the loss (scalar tensor) and its unweighted parts ``factor`` and
    ``fit`` (floats)."""
    size = B.numel()
    factor = sum(((Fm - B @ U) ** 2).sum() for Fm, U in zip(outputs, factors)) / size
    fit = sum(((B - Fm) ** 2).sum() for Fm in outputs) / size
    return (mf_weight * factor + fit_weight * fit,
            {"factor": float(factor.detach()), "fit": float(fit.detach())})


# ---- the networks ------------------------------------------------------------------------------
class UDCMHNet(nn.Module):
    """One network per view in ``encoders``: ``(b, d_m)`` -> ``(b, n_bits)`` tanh outputs,
    ``d_m -> hidden_width (ReLU) x n_hidden_layers -> n_bits``."""

    def __init__(self, dims: Sequence[int], n_bits: int, *, hidden_width: int,
                 n_hidden_layers: int):
        super().__init__()
        self.encoders = nn.ModuleList(
            mlp(d, [hidden_width] * n_hidden_layers, n_bits, output=nn.Tanh()) for d in dims)


# ---- the hasher ------------------------------------------------------------------------------
class UDCMH(ColumnScaling, DeepHasher):
    """UDCMH: deep networks fitted to a binary latent factor model with a signed Laplacian
    (Wu et al., IJCAI 2018), a reconstruction (module docstring, docs/methods/udcmh.md).

    Any number (>= 2) of views. Fitting holds the sparse signed graph (``n (k_near + k_far)``
    entries per view), the codes ``B`` and the features ``F^m`` of every training row
    (``(n, n_bits)`` each); per epoch the networks cost O(n d_m w) per view and the code step
    O(n_bit_passes k (nnz(S) + n k)).

    Parameters
    ----------
    n_bits : code length (64; ours: the paper's lengths were not readable).
    mf_weight : ``alpha``, the factorisation term ``||F^m - B U_m||^2`` (1; ours).
    fit_weight : ``eta``, the networks' fit to the codes ``||B - F^m||^2`` (1; ours).
    graph_weight : ``gamma``, the signed Laplacian term ``-tr(B^T S B)`` (2; ours).
    n_neighbors : nearest neighbours per row and view in ``S`` (10; ours), at least 1.
    n_farthest : farthest neighbours per row and view (10; ours), 0 drops them.
    far_weight : total weight of a row's farthest neighbours against its nearest ones' 1
        (0.5; ours).
    ridge : ridge of the least-squares ``U_m``, times ``n`` (1e-3; ours).
    n_bit_passes : sweeps over the bits per code step (1; ours).
    hidden_width, n_hidden_layers : the networks' hidden layers (1024 units, 1 layer; ours).
    n_epochs : alternations (network epoch + code step) (50; ours).
    batch_size, optimizer, learning_rate, momentum, weight_decay : 128, ``"adam"``, 1e-3, 0.9
        (SGD only), 0 (ours).
    validation_fraction : 0 (default) trains ``n_epochs`` and keeps the last; in (0, 1) keeps
        the epoch with the lowest network loss on that share of the training rows.
    n_threads : torch threads while training (None: the thread budget, mmhash.threads).
    device : ``"auto"`` (a GPU when torch sees one), ``"cpu"``, ``"cuda[:N]"``; the kept
        networks always encode on the CPU. Identical codes per seed are guaranteed on the CPU.
    standardize : True (default), ``"auto"`` or False: standardise the columns of each view with
        the training mean and deviation before the graph and the networks (ours; ``"auto"``
        only views whose column deviations span more than 1,000x or whose rows lie within 0.5
        of their mean).
    random_state : seeds the initialisation, the shuffling and the held-out rows.
    """

    name = "udcmh"
    supported_views = (2, None)
    with_row_ids = True
    conformance_params: ClassVar[dict[str, Any]] = {
        "hidden_width": 64, "n_epochs": 8, "batch_size": 64, "learning_rate": 3e-3,
        "n_threads": 1,
    }
    #: standardize is ColumnScaling's.
    parameter_constraints = {
        "mf_weight": Number(low=0), "fit_weight": Number(low=0),  # not both 0: _check_params
        "graph_weight": Number(low=0), "far_weight": Number(low=0),
        "ridge": Number(low=0, low_open=True),
        "n_neighbors": Integer(minimum=1), "n_bit_passes": Integer(minimum=1),
        "hidden_width": Integer(minimum=1),
        "n_farthest": Integer(minimum=0), "n_hidden_layers": Integer(minimum=0),
    }

    def __init__(self, *, n_bits: int = 64, mf_weight: float = 1.0, fit_weight: float = 1.0,
                 graph_weight: float = 2.0, n_neighbors: int = 10, n_farthest: int = 10,
                 far_weight: float = 0.5, ridge: float = 1e-3, n_bit_passes: int = 1,
                 hidden_width: int = 1024, n_hidden_layers: int = 1, n_epochs: int = 50,
                 batch_size: int = 128, optimizer: str = "adam", learning_rate: float = 1e-3,
                 momentum: float = 0.9, weight_decay: float = 0.0,
                 validation_fraction: float = 0.0, n_threads: int | None = None,
                 device: str = "auto", standardize: bool | str = True, random_state: int = 0):
        self.n_bits = n_bits
        self.mf_weight = mf_weight
        self.fit_weight = fit_weight
        self.graph_weight = graph_weight
        self.n_neighbors = n_neighbors
        self.n_farthest = n_farthest
        self.far_weight = far_weight
        self.ridge = ridge
        self.n_bit_passes = n_bit_passes
        self.hidden_width = hidden_width
        self.n_hidden_layers = n_hidden_layers
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.n_threads = n_threads
        self.device = device
        self.standardize = standardize
        self.random_state = random_state

    # -- parameters ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        super()._check_params()
        if float(self.mf_weight) + float(self.fit_weight) == 0:
            raise InvalidInputError("mf_weight and fit_weight are both 0: the networks would "
                                    "learn nothing; make one of them > 0")

    def _weights(self) -> dict[str, float]:
        return {"mf_weight": float(self.mf_weight), "fit_weight": float(self.fit_weight)}

    # -- training --------------------------------------------------------------------------------
    # The training-only state lives on the fit's TrainingState: ``X`` (every training row of each
    # view, float32 on the device), ``S`` (the signed graph), ``B`` (the codes) and ``U`` (the
    # latent factors).
    def _build_model(self, dims: list[int]) -> UDCMHNet:
        return UDCMHNet(dims, int(self.n_bits), hidden_width=int(self.hidden_width),
                        n_hidden_layers=int(self.n_hidden_layers))

    def _begin_training(self, state: TrainingState) -> None:
        state.X = training_tensors(state.arrays, state.device)
        n = len(state.arrays[0])
        self.n_neighbors_, self.n_farthest_ = neighbour_counts(
            n, int(self.n_neighbors), int(self.n_farthest))
        with torch.no_grad():
            state.S = signed_affinity(state.X, n_neighbors=int(self.n_neighbors),
                                      n_farthest=int(self.n_farthest),
                                      far_weight=float(self.far_weight))
        state.B = state.U = None  # set from the networks at the start of epoch 1

    def _features(self, state: TrainingState) -> list[torch.Tensor]:
        """``F^m`` of every training row, eval mode, no gradient (the model is left in train
        mode, as the loop needs)."""
        model = state.model
        model.eval()
        with torch.no_grad():
            out = [encoder(X) for encoder, X in zip(model.encoders, state.X)]
        model.train()
        return out

    def _code_step(self, state: TrainingState, features: list[torch.Tensor]) -> None:
        state.U = update_factors(features, state.B, float(self.ridge))
        state.B = update_codes(features, state.B, state.U, state.S,
                               mf_weight=float(self.mf_weight),
                               fit_weight=float(self.fit_weight),
                               graph_weight=float(self.graph_weight),
                               n_passes=int(self.n_bit_passes))
        state.U = update_factors(features, state.B, float(self.ridge))

    def _begin_epoch(self, state: TrainingState) -> None:
        if state.epoch == 1:
            features = self._features(state)
            state.B = initial_codes(features)
            self._code_step(state, features)

    def _end_epoch(self, state: TrainingState) -> None:
        self._code_step(state, self._features(state))

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        *views, rows = batch
        outputs = [encoder(X) for encoder, X in zip(state.model.encoders, views)]
        return network_loss(outputs, state.B.index_select(0, rows), state.U, **self._weights())
