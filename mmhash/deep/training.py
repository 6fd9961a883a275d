"""The training machinery of deep hashers: seeding, threads, devices, batching, the loop.

Part of the public :mod:`mmhash.deep` API (it imports torch at the top; ``import mmhash`` never
does). What it provides, so that every deep method -- mmhash's and a plugin's -- trains the
same way:

* :func:`torch_session` -- a context that seeds a *forked* torch RNG (the caller's global torch
  RNG state is untouched) and sets the torch thread count, restoring it on exit;
* :func:`iter_batches` / :func:`holdout_split` -- seeded shuffling and the unsupervised held-out
  rows used for epoch selection (never labels, never queries);
* :func:`resolve_device` -- ``"auto"`` (a GPU when torch sees one, else the CPU), ``"cpu"``,
  ``"cuda[:N]"``, ``"mps"``, with a clear error for an accelerator the machine lacks;
* :func:`make_optimizer` -- SGD (with momentum) or Adam by name, over parameter groups;
* :func:`reused_memory` -- memory freed inside the block stays in the process for reuse (the
  training loop runs in it);
* :func:`train_loop` -- epochs of mini-batch steps with a progress callback and ``logging``;
  optionally keeps the parameters of the epoch with the lowest held-out loss (and stops after
  ``patience`` epochs without a better one), calls ``on_epoch_start`` / ``on_epoch_end`` hooks,
  and takes either a loss (one optimiser step per batch) or a whole ``step`` (methods with
  several updates per batch);
* :func:`module_to_arrays` / :func:`arrays_to_module` -- a module's tensors as numpy arrays
  (save without pickle) and back.

:class:`mmhash.deep.DeepHasher` ties these together.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mmhash.base import ProgressCallback
from mmhash.errors import DataError, InvalidInputError, UnknownNameError
from mmhash.params import check_integer, check_number
from mmhash.threads import thread_budget

logger = logging.getLogger(__name__)

# ``progress(epoch, n_epochs, metrics)`` (mmhash.base.ProgressCallback) is called after every
# epoch; ``metrics`` holds ``"loss"`` (mean training loss of the epoch) and, with epoch selection,
# ``"val_loss"``. The CLI plugs a progress bar in here; library code never prints.

OPTIMIZERS = ("adam", "sgd")
#: Rows encoded per forward pass at encode time (bounds memory; codes do not depend on it).
ENCODE_CHUNK = 4096



# ---- seeding and threads ---------------------------------------------------------------------
def resolve_threads(n_threads: int | None) -> int:
    """``n_threads`` as a positive int within the process's thread budget
    (:func:`mmhash.threads.thread_budget`): ``None`` means the whole budget (every available
    core unless a parallel runner set a smaller one), and an explicit count above the budget is
    lowered to it, so worker processes never oversubscribe the machine."""
    if n_threads is None:
        return thread_budget()
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise InvalidInputError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    return min(int(n_threads), thread_budget())


#: The device names a deep hasher takes (``cuda:N`` too).
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: Any) -> torch.device:
    """``device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``) as a usable
    ``torch.device``; ``"auto"`` is the first CUDA device when torch sees one, else the CPU.

    Raises :class:`InvalidInputError` for a malformed name or an accelerator this machine lacks,
    so a configuration written for a GPU machine fails with one clear line elsewhere.
    """
    if not isinstance(device, str):
        raise InvalidInputError(f"device must be a string such as 'auto', 'cpu' or 'cuda', "
                                f"got {device!r}")
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InvalidInputError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from None
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
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
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

    ``parameters`` is an iterable of tensors or of parameter groups (dicts with ``"params"`` and
    per-group settings such as ``"lr"``: DJSRH's image and text networks learn at different
    rates); the keyword values are the defaults of every group.

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


# ---- memory reuse ----------------------------------------------------------------------------
# glibc's mallopt parameters (malloc.h) and their default values.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: Free memory glibc may keep at the top of its heap inside :func:`reused_memory` (the largest
#: value mallopt takes: never trim while training).
_KEPT_TRIM_THRESHOLD = 2**31 - 1
_reuse_lock = threading.Lock()
_reuse_depth = 0


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """This process's C library when it is glibc (it has ``mallopt`` and ``malloc_trim``),
    else None (macOS, Windows, musl)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None)
        for name in ("mallopt", "malloc_trim"):
            getattr(libc, name).restype = ctypes.c_int
    except (AttributeError, OSError, ValueError):
        return None
    return libc


@contextlib.contextmanager
def reused_memory() -> Iterator[None]:
    """Inside the block, memory freed by the process is kept for its next allocations.

    Why: a training step frees the gradients (``zero_grad(set_to_none=True)``) and backward
    allocates them again. glibc hands out a block above its mmap threshold (32 MiB at most: the
    gradient of a 4096 x 4096 layer is 64 MiB) as fresh pages from the kernel, returns them on
    free, and each page is then faulted in and zeroed again on first touch: at UJSAH's paper
    widths, on one core, 10 to 30 % of a step's CPU time (measured as the machine's other load
    varied). In the block glibc serves every block from its heap (``M_MMAP_MAX`` 0) and never
    trims it (``M_TRIM_THRESHOLD``), so a step reuses the pages of the step before; the
    process keeps what it freed until the block ends (a UJSAH fit at 128 bits peaked at 842 MB
    resident against 796 MB). The buffers and kernels are the same (torch aligns every buffer
    to 64 bytes either way): results do not change.

    On exit glibc's default limits are set back and the free memory is returned to the system
    (``malloc_trim``); the mmap threshold keeps the value it had adapted to and adapts no
    further (glibc stops adapting it once mallopt is called). Blocks may nest and run in
    several threads: the last one out restores. Elsewhere than glibc it does nothing.
    """
    global _reuse_depth
    libc = _glibc()
    if libc is None:
        yield
        return
    with _reuse_lock:
        if _reuse_depth == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _KEPT_TRIM_THRESHOLD)
        _reuse_depth += 1
    try:
        yield
    finally:
        with _reuse_lock:
            _reuse_depth -= 1
            if _reuse_depth == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)


# ---- the loop --------------------------------------------------------------------------------
LossFn = Callable[[list[torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]
#: One training step on a batch: updates the parameters itself and returns
#: ``(loss as float, {part: float})``.
StepFn = Callable[[list[torch.Tensor]], tuple[float, dict[str, float]]]


def update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, *, name: str = "model",
           clip_norm: float = 0.0, parameters: Any = None) -> None:
    """One optimiser update from a scalar ``loss``: refuse a NaN / infinite loss
    (:class:`Diverged`), zero the gradients (to None: a network the loss does not reach gets no
    gradient and the optimiser skips it), backpropagate, clip the global gradient norm of
    ``parameters`` (default: the optimiser's) to ``clip_norm`` when it is > 0, and step. Every
    deep method's update goes through here, also those that make several per batch."""
    check_finite(loss, name)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_norm > 0:
        params = [p for group in optimizer.param_groups for p in group["params"]] \
            if parameters is None else list(parameters)
        nn.utils.clip_grad_norm_(params, clip_norm)
    optimizer.step()


def loss_step(loss_fn: LossFn, optimizer: torch.optim.Optimizer, name: str = "model") -> StepFn:
    """The usual step: the batch loss and one :func:`update`. Raises
    :class:`InvalidInputError` when the loss is NaN or infinite (diverged training)."""

    def step(batch: list[torch.Tensor]) -> tuple[float, dict[str, float]]:
        loss, parts = loss_fn(batch)
        update(loss, optimizer, name=name)
        return float(loss.detach()), parts

    return step


class Diverged(InvalidInputError):
    """A training loss became NaN or infinite; :func:`train_loop` adds the epoch."""

    def __init__(self, name: str, loss: float, epoch: int | None = None):
        self.name, self.loss, self.epoch = name, loss, epoch
        when = "" if epoch is None else f" at epoch {epoch}"
        super().__init__(f"{name} training diverged{when} (loss {loss}); lower learning_rate "
                         "or the loss weights")


def check_finite(loss: torch.Tensor, name: str = "model") -> None:
    """Raise :class:`Diverged` (an :class:`InvalidInputError` naming the fix) when a loss is
    NaN or infinite."""
    if not torch.isfinite(loss):
        raise Diverged(name, loss.item())


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
               optimizer: torch.optim.Optimizer | None, *, n_epochs: int, batch_size: int,
               rng: np.random.Generator, validation: Sequence[torch.Tensor] | None = None,
               select: nn.Module | None = None, progress: ProgressCallback | None = None,
               on_epoch_start: Callable[[int], None] | None = None,
               on_epoch_end: Callable[[int], Mapping[str, float] | None] | None = None,
               step: StepFn | None = None, patience: int | None = None,
               name: str = "model") -> TrainResult:
    """Train ``model`` for ``n_epochs`` epochs of shuffled mini-batches.

    Parameters
    ----------
    model : the module being trained (put in train mode here).
    loss_fn : maps a batch -- one float tensor ``(b, d_m)`` per view, rows paired -- to
        ``(scalar loss, {part: float})``; the loss must be a per-batch mean so that its scale does
        not depend on the batch size. It is the training objective (unless ``step`` is given)
        and the held-out criterion.
    data : the training views, float tensors with the same number of rows.
    optimizer : updates the parameters from ``loss_fn`` (:func:`loss_step`); None with ``step``.
    rng : shuffles the rows each epoch (seeded by the caller).
    validation : held-out views (same layout). When given, the held-out loss is computed after
        every epoch and the parameters of ``select`` (default: the whole model) at the epoch with
        the lowest held-out loss are restored at the end -- unsupervised epoch selection.
    progress : called as ``progress(epoch, n_epochs, {"loss": ..., "val_loss": ...})``.
    on_epoch_start : called as ``on_epoch_start(epoch)`` before the epoch's first step (e.g. to
        set a schedule such as DJSRH's ``tanh(sqrt(epoch) h)``).
    on_epoch_end : called as ``on_epoch_end(epoch)`` after the epoch's training steps and before
        the held-out loss (e.g. to update training-only state from the model); it must leave the
        model in train mode, and may return values to add to the epoch's history record.
    step : a whole training step per batch (:data:`StepFn`) for methods that make several
        updates per batch; default: :func:`loss_step` of ``loss_fn`` and ``optimizer``.
    patience : with ``validation``, stop after this many epochs without a lower held-out loss
        (early stopping); None trains all ``n_epochs``.

    Raises :class:`InvalidInputError` when the loss becomes NaN or infinite (diverged training).
    """
    result = TrainResult()
    select = model if select is None else select
    best_loss, best_state = math.inf, None
    n = len(data[0])
    if step is None:
        if optimizer is None:
            raise ValueError("train_loop needs an optimizer or a step")
        step = loss_step(loss_fn, optimizer, name)
    model.train()
    # The steps reuse the memory of the steps before (the gradients above all): see
    # reused_memory.
    with reused_memory():
        for epoch in range(1, n_epochs + 1):
            start = time.perf_counter()
            if on_epoch_start is not None:
                on_epoch_start(epoch)
            total = 0.0
            for idx in iter_batches(n, batch_size, rng):
                try:
                    loss, _ = step(_batch(data, idx))
                except Diverged as exc:
                    raise Diverged(exc.name, exc.loss, epoch) from None
                total += loss * len(idx)
            extras = on_epoch_end(epoch) if on_epoch_end is not None else None
            record = {"epoch": epoch, "loss": total / n, **(extras or {})}
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
            if (patience is not None and validation is not None
                    and epoch - result.best_epoch >= patience):
                logger.info("%s: no lower held-out loss for %d epochs; stopped at epoch %d", name,
                            patience, epoch)
                break
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
