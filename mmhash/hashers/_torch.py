"""Shared machinery of the PyTorch hashers: seeding, threads, batching, the training loop.

Only deep hashers import this module (it imports torch at the top); ``import mmhash`` never does.
What it provides, so that every deep method trains the same way:

* :func:`torch_session` -- a context that seeds a *forked* torch RNG (the caller's global torch
  RNG state is untouched) and sets the torch thread count, restoring it on exit;
* :func:`iter_batches` / :func:`holdout_split` -- seeded shuffling and the unsupervised held-out
  rows used for epoch selection (never labels, never queries);
* :func:`make_optimizer` -- SGD (with momentum) or Adam by name;
* :func:`train_loop` -- epochs of mini-batch steps with a progress callback and ``logging``;
  optionally keeps the parameters of the epoch with the lowest held-out loss, and calls an
  ``on_epoch_end`` hook (methods that update training-only state from the model use it);
* :func:`module_to_arrays` / :func:`arrays_to_module` -- a module's tensors as numpy arrays
  (save without pickle) and back;
* :class:`TorchHasher` -- a :class:`~mmhash.base.BaseHasher` that ties these together: a subclass
  builds a network with one encoder per view and defines the mini-batch loss; fitting, encoding
  (float64, eval mode, in chunks) and saving/loading the encoders come from here.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from mmhash.base import EPOCH_PROGRESS, BaseHasher, ProgressCallback
from mmhash.errors import DataError, InvalidInputError, UnknownNameError
from mmhash.params import check_choice, check_integer, check_number

logger = logging.getLogger(__name__)

# ``progress(epoch, n_epochs, metrics)`` (mmhash.base.ProgressCallback) is called after every
# epoch; ``metrics`` holds ``"loss"`` (mean training loss of the epoch) and, with epoch selection,
# ``"val_loss"``. The CLI plugs a progress bar in here; library code never prints.

OPTIMIZERS = ("adam", "sgd")
#: Rows encoded per forward pass at encode time (bounds memory; codes do not depend on it).
ENCODE_CHUNK = 4096
_STATE_PREFIX = "torch__"


# ---- seeding and threads ---------------------------------------------------------------------
def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_threads(n_threads: int | None) -> int:
    """``n_threads`` as a positive int; ``None`` means every available core."""
    if n_threads is None:
        return available_cores()
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise InvalidInputError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return int(n_threads)


def resolve_device(device: Any) -> torch.device:
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``) as a usable ``torch.device``.

    Raises :class:`InvalidInputError` for a malformed name or an accelerator this machine lacks,
    so a configuration written for a GPU machine fails with one clear line elsewhere.
    """
    if not isinstance(device, str):
        raise InvalidInputError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InvalidInputError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = 0 if resolved.index is None else resolved.index
        if index >= count:
            raise InvalidInputError(
                f"device={device!r}, but this machine has {count} usable CUDA device(s)")
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise InvalidInputError(f"device={device!r}, but MPS is not available here")
    elif resolved.type != "cpu":
        raise InvalidInputError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    return resolved


def check_seed(random_state: Any) -> int:
    """``random_state`` as a non-negative int (deep hashers seed torch and numpy from one
    concrete integer)."""
    return check_integer("random_state", random_state, minimum=0)


def check_fraction(name: str, value: Any) -> float:
    """``value`` as ``float`` if it is a finite real number in ``[0, 1)``, else raise.

    :func:`mmhash.params.check_number` takes one kind of bound for both ends, so the half-open
    interval is two checks; the message names the end that was broken (``momentum must be a
    finite number < 1, got 1.0``).
    """
    check_number(name, value, minimum=0)
    return check_number(name, value, maximum=1, exclusive=True)


@contextlib.contextmanager
def torch_session(random_state: int, n_threads: int | None = None) -> Iterator[None]:
    """Seed torch's CPU RNG and set the thread count for the duration of the block.

    The global torch RNG state is forked (restored on exit), so fitting a hasher never changes
    the random numbers the caller draws afterwards; the previous thread count is restored too.
    Parameter initialisation and dropout inside the block are therefore fixed by
    ``random_state``. CPU results are bitwise reproducible for the same thread count.
    """
    threads = resolve_threads(n_threads)
    previous = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        # default_generator only: torch.manual_seed would also reseed CUDA, outside the fork.
        torch.default_generator.manual_seed(check_seed(random_state))
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


# ---- batching --------------------------------------------------------------------------------
def holdout_split(n: int, fraction: float, rng: np.random.Generator,
                  min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (fit rows, held-out rows); ``fraction=0`` holds out nothing.

    Both parts are sorted int64 arrays. The held-out part has ``round(fraction * n)`` rows, at
    least ``min_rows``; the fit part must keep at least ``min_rows`` too.
    """
    check_fraction("validation_fraction", fraction)
    if fraction == 0:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    n_val = max(min_rows, int(round(fraction * n)))
    if n - n_val < min_rows:
        raise InvalidInputError(
            f"validation_fraction={fraction} leaves {n - n_val} of {n} rows for training; "
            f"at least {min_rows} are needed (lower validation_fraction or use more rows)"
        )
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def iter_batches(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index arrays of the mini-batches of one epoch over ``n`` rows.

    Rows are shuffled with ``rng`` (kept in order when ``rng`` is None). Every row is used once;
    a last batch of a single row is merged into the one before, since the batch similarity
    losses need at least two rows.
    """
    order = rng.permutation(n) if rng is not None else np.arange(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        last = batches.pop()
        batches[-1] = np.concatenate([batches[-1], last])
    return batches


def make_optimizer(name: str, parameters: Any, *, learning_rate: float, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``"sgd"`` (with ``momentum``) or ``"adam"`` over ``parameters``; L2 ``weight_decay``.

    The fused implementations do the same update in one pass over each parameter; with the
    paper-width UJSAH networks (26M parameters) the separate passes of the per-tensor version
    were a third of the step time on two cores.
    """
    if name not in OPTIMIZERS:
        raise UnknownNameError("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=momentum,
                               weight_decay=weight_decay, fused=True)
    return torch.optim.Adam(parameters, lr=learning_rate, weight_decay=weight_decay, fused=True)


# ---- the loop --------------------------------------------------------------------------------
LossFn = Callable[[list[torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class TrainResult:
    """What :func:`train_loop` returns.

    ``history`` has one dict per epoch: ``epoch`` (from 1), ``loss`` (mean training loss over the
    epoch's rows), ``seconds`` and, with held-out rows, ``val_loss``. ``best_epoch`` is the epoch
    whose parameters the model holds at the end (the last one without held-out rows).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0


def _batch(data: Sequence[torch.Tensor], idx: np.ndarray) -> list[torch.Tensor]:
    index = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).to(data[0].device)
    return [X.index_select(0, index) for X in data]


def evaluate_loss(model: nn.Module, loss_fn: LossFn, data: Sequence[torch.Tensor],
                  batch_size: int) -> float:
    """Mean loss over fixed (unshuffled) batches of ``data``, in eval mode, without gradients."""
    was_training = model.training
    model.eval()
    total, rows = 0.0, 0
    with torch.no_grad():
        for idx in iter_batches(len(data[0]), batch_size, rng=None):
            loss, _ = loss_fn(_batch(data, idx))
            total += float(loss) * len(idx)
            rows += len(idx)
    model.train(was_training)
    return total / rows


def train_loop(model: nn.Module, loss_fn: LossFn, data: Sequence[torch.Tensor],
               optimizer: torch.optim.Optimizer, *, n_epochs: int, batch_size: int,
               rng: np.random.Generator, validation: Sequence[torch.Tensor] | None = None,
               select: nn.Module | None = None, progress: ProgressCallback | None = None,
               on_epoch_end: Callable[[int], None] | None = None,
               name: str = "model") -> TrainResult:
    """Train ``model`` for ``n_epochs`` epochs of shuffled mini-batches.

    Parameters
    ----------
    model : the module whose parameters ``optimizer`` updates (put in train mode here).
    loss_fn : maps a batch -- one float tensor ``(b, d_m)`` per view, rows paired -- to
        ``(scalar loss, {part: float})``; the loss must be a per-batch mean so that its scale does
        not depend on the batch size.
    data : the training views, float tensors with the same number of rows.
    rng : shuffles the rows each epoch (seeded by the caller).
    validation : held-out views (same layout). When given, the held-out loss is computed after
        every epoch and the parameters of ``select`` (default: the whole model) at the epoch with
        the lowest held-out loss are restored at the end -- unsupervised epoch selection.
    progress : called as ``progress(epoch, n_epochs, {"loss": ..., "val_loss": ...})``.
    on_epoch_end : called as ``on_epoch_end(epoch)`` after the epoch's training steps and before
        the held-out loss (e.g. to update training-only state from the model); it must leave the
        model in train mode.

    Raises :class:`InvalidInputError` when the loss becomes NaN or infinite (diverged training).
    """
    result = TrainResult()
    select = model if select is None else select
    best_loss, best_state = math.inf, None
    n = len(data[0])
    model.train()
    for epoch in range(1, n_epochs + 1):
        start = time.perf_counter()
        total = 0.0
        for idx in iter_batches(n, batch_size, rng):
            loss, _ = loss_fn(_batch(data, idx))
            if not torch.isfinite(loss):
                raise InvalidInputError(
                    f"{name} training diverged at epoch {epoch} (loss {loss.item()}); "
                    "lower learning_rate or the loss weights"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        record = {"epoch": epoch, "loss": total / n}
        if validation is not None:
            record["val_loss"] = evaluate_loss(model, loss_fn, validation, batch_size)
            if record["val_loss"] < best_loss:  # strict: ties keep the earlier epoch
                best_loss, result.best_epoch = record["val_loss"], epoch
                best_state = copy.deepcopy(select.state_dict())
        else:
            result.best_epoch = epoch
        record["seconds"] = time.perf_counter() - start
        result.history.append(record)
        metrics = {k: v for k, v in record.items() if k in ("loss", "val_loss")}
        logger.info("%s epoch %d/%d %s", name, epoch, n_epochs,
                    " ".join(f"{k}={v:.6g}" for k, v in metrics.items()))
        if progress is not None:
            progress(epoch, n_epochs, metrics)
    if best_state is not None:
        select.load_state_dict(best_state)
        logger.info("%s: kept epoch %d (lowest held-out loss %.6g)", name, result.best_epoch,
                    best_loss)
    model.eval()
    return result


# ---- state without pickle --------------------------------------------------------------------
def module_to_arrays(module: nn.Module, prefix: str) -> dict[str, np.ndarray]:
    """Every tensor of ``module.state_dict()`` as a numpy copy, keyed ``prefix + name``."""
    return {prefix + key: value.detach().cpu().numpy().copy()
            for key, value in module.state_dict().items()}


def arrays_to_module(module: nn.Module, arrays: Mapping[str, np.ndarray], prefix: str) -> None:
    """Load the arrays written by :func:`module_to_arrays` into ``module`` (built on any device,
    ``meta`` included: tensors are assigned, not copied). A missing, extra or mis-shaped tensor
    raises :class:`DataError`."""
    state = {key[len(prefix):]: torch.from_numpy(np.array(value))
             for key, value in arrays.items() if key.startswith(prefix)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise DataError(
            f"saved network state does not match: missing {missing}, unexpected {extra}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise DataError(f"saved tensor {prefix}{key} has shape {tuple(value.shape)}, "
                            f"expected {tuple(expected[key].shape)}")
    module.load_state_dict(state, strict=True, assign=True)


# ---- the base class of deep hashers ----------------------------------------------------------
class TorchHasher(BaseHasher):
    """A :class:`BaseHasher` trained with PyTorch; subclasses define the network and the loss.

    A subclass must

    * take the training hyperparameters ``n_epochs``, ``batch_size``, ``optimizer``,
      ``learning_rate``, ``momentum``, ``weight_decay``, ``validation_fraction``, ``n_threads``,
      ``device`` and ``random_state`` in ``__init__`` (stored unchanged, like every parameter);
    * implement :meth:`_build_model` (an ``nn.Module`` with an ``encoders`` ``ModuleList``: one
      per view, mapping ``(n, d_m)`` features to ``(n, n_bits)`` real scores whose sign is the
      code) and :meth:`_loss` (the mini-batch objective).

    It may set :attr:`with_row_ids` and override :meth:`_begin_training` / :meth:`_end_epoch` to
    keep training-only state across batches and update it once per epoch.

    Training runs on ``device`` (default ``"cpu"``; ``"cuda"`` trains on a GPU). Parameters are
    initialised on the CPU from the seed before the model moves there, so the starting point is
    the same on every device; GPU kernels are not bitwise reproducible, so identical codes for
    the same seed are guaranteed on the CPU only. Subclasses that create tensors during training
    put them on :attr:`_device`.

    Fitting runs in :func:`torch_session` (seeded, ``n_threads`` threads), in float32. Only the
    encoders are kept after fit (on the CPU) and saved (as numpy arrays): they alone produce
    out-of-sample codes; decoders and other training-only parts are discarded. Encoding runs the
    encoders on the CPU in float64, in eval mode, in chunks of rows, so a code depends only on its
    own item, with ``n_threads`` torch threads when it is set (None keeps the caller's count).

    ``fit(views, progress=callback)`` reports each epoch to ``callback`` (see
    :data:`ProgressCallback`). ``history_`` holds the per-epoch losses, ``best_epoch_`` the epoch
    whose encoders were kept.
    """

    supported_views = (2, None)
    capabilities = frozenset({EPOCH_PROGRESS})
    #: A subclass that keeps per-row training state (e.g. a similarity matrix over the whole
    #: training set) sets this: every batch given to :meth:`_loss` then ends with an int64 tensor
    #: of the rows' positions in the views given to fit, after the view tensors.
    with_row_ids: ClassVar[bool] = False
    #: Where the current fit trains (set from ``device`` at the start of each fit).
    _device: torch.device = torch.device("cpu")

    # -- subclass hooks ------------------------------------------------------------------------
    def _build_model(self, dims: list[int]) -> nn.Module:
        """The full training network for views of dimensions ``dims`` (in view order)."""
        raise NotImplementedError

    def _loss(self, model: nn.Module, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        """The mini-batch objective: (scalar tensor, {part name: float}) for paired rows."""
        raise NotImplementedError

    def _begin_training(self, model: nn.Module, arrays: list[np.ndarray],
                        fit_rows: np.ndarray) -> None:
        """Called once inside the torch session, before the first epoch, with the new model,
        every training row (fit and held-out) of each view, float64 ``(n, d_m)`` in view order,
        and the sorted int64 positions of the fit rows. Default: nothing."""

    def _end_epoch(self, model: nn.Module, epoch: int, data: list[torch.Tensor]) -> None:
        """Called after each epoch's training steps, before the held-out loss, with the fit rows'
        tensors (row ids last when :attr:`with_row_ids`); must leave ``model`` in train mode.
        Default: nothing."""

    # -- validation ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Validate the training hyperparameters; subclasses extend it (call super())."""
        check_integer("n_epochs", self.n_epochs, minimum=1)
        # The batch similarity losses compare rows with each other: one row has no pairs.
        check_integer("batch_size", self.batch_size, minimum=2)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_number("learning_rate", self.learning_rate, minimum=0, exclusive=True)
        check_fraction("momentum", self.momentum)
        check_number("weight_decay", self.weight_decay, minimum=0)
        check_fraction("validation_fraction", self.validation_fraction)
        # These resolve as well as check (None -> every core; a device this machine has), and
        # fit and encode call them again; calling them here fails before training.
        resolve_threads(self.n_threads)
        resolve_device(self.device)
        check_seed(self.random_state)

    # -- fit / encode ----------------------------------------------------------------------------
    def _fit(self, views: dict[str, np.ndarray], *,
             progress: ProgressCallback | None = None) -> None:
        arrays = list(views.values())
        dims = [X.shape[1] for X in arrays]
        seed = check_seed(self.random_state)
        # A numpy stream of its own for shuffling and the held-out rows: never the global one.
        rng = np.random.default_rng([seed, 0x5EED])
        fit_rows, val_rows = holdout_split(len(arrays[0]), self.validation_fraction, rng)
        self._device = device = resolve_device(self.device)
        with torch_session(seed, self.n_threads):
            model = self._build_model(dims)  # initialised on the CPU: same start on any device
            self._begin_training(model, arrays, fit_rows)
            model.to(device)
            data = [torch.from_numpy(X[fit_rows].astype(np.float32)).to(device) for X in arrays]
            validation = ([torch.from_numpy(X[val_rows].astype(np.float32)).to(device)
                           for X in arrays] if len(val_rows) else None)
            if self.with_row_ids:
                data.append(torch.from_numpy(fit_rows).to(device))
                if validation is not None:
                    validation.append(torch.from_numpy(val_rows).to(device))
            optimizer = make_optimizer(self.optimizer, model.parameters(),
                                       learning_rate=float(self.learning_rate),
                                       momentum=float(self.momentum),
                                       weight_decay=float(self.weight_decay))
            result = train_loop(
                model, lambda batch: self._loss(model, batch), data, optimizer,
                n_epochs=int(self.n_epochs), batch_size=int(self.batch_size), rng=rng,
                validation=validation, select=model.encoders,
                progress=progress,
                on_epoch_end=lambda epoch: self._end_epoch(model, epoch, data),
                name=type(self).__name__,
            )
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self._set_encoders(model.encoders.cpu())

    def _set_encoders(self, encoders: nn.ModuleList) -> None:
        encoders = encoders.float().eval()
        for p in encoders.parameters():
            p.requires_grad_(False)
        self._encoders = encoders
        # float64 copies for encoding: fewer rounding-induced sign flips near zero.
        self._scorers = copy.deepcopy(encoders).double().eval()

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        scorer = self._scorers[self.modalities_.index(modality)]
        out = np.empty((X.shape[0], self.n_bits), dtype=np.float64)
        # An explicit n_threads holds for encoding too (tiny batches on a busy machine are far
        # slower with more threads); None keeps the caller's setting, e.g. a bench worker's cap.
        previous = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(resolve_threads(self.n_threads))
        try:
            with torch.no_grad():
                for start in range(0, X.shape[0], ENCODE_CHUNK):
                    chunk = torch.from_numpy(
                        np.array(X[start:start + ENCODE_CHUNK], dtype=np.float64))
                    out[start:start + ENCODE_CHUNK] = scorer(chunk).numpy()
        finally:
            torch.set_num_threads(previous)
        return out

    # -- persistence ---------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, values = super()._get_state()
        arrays.update(module_to_arrays(self._encoders, _STATE_PREFIX + "encoders."))
        return arrays, values

    def _set_state(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        own = {k: v for k, v in arrays.items() if k.startswith(_STATE_PREFIX)}
        super()._set_state({k: v for k, v in arrays.items() if k not in own}, values)
        dims = [int(self.n_features_[m]) for m in self.modalities_]
        with torch.device("meta"):  # no parameter initialisation, no RNG use
            model = self._build_model(dims)
        arrays_to_module(model.encoders, own, _STATE_PREFIX + "encoders.")
        self._set_encoders(model.encoders)
