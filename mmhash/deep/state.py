"""What one fit of a deep hasher holds while it trains, and how a step's updates are run.

Part of the public :mod:`mmhash.deep` API. :class:`~mmhash.deep.DeepHasher` creates a
:class:`TrainingState` at the start of each fit, hands it to every hook and drops it at the
end, so training-only tensors (a similarity matrix over the training set, a memory bank, a
per-fit random stream, the optimisers) never live on the hasher and need no clean-up code.

A method declares what it optimises as named :class:`Part` s (parameters and the optimiser
settings that differ from the hasher's) and a training step as the updates it makes, in order:
a generator of ``(loss, part name)`` pairs (:meth:`DeepHasher._updates`). :func:`run_updates`
makes each update (:func:`~mmhash.deep.training.update`: finite check, zeroed gradients,
backward, optional clipping, step) before the generator goes on, so a later loss sees the
parameters an earlier update changed -- DGCPN's three updates per batch, a GAN's
discriminator-then-generator alternation and CIRH's epoch-end stage are all written this way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mmhash.deep.training import make_optimizer, update

#: What a step or an epoch-end stage yields: ``(scalar loss tensor, name of the part to update)``.
Update = tuple[torch.Tensor, str]
#: A method's updates for one batch; it may return ``(loss as float, {part: float})``, the
#: step's report for the epoch's training loss (default: the first update's loss, no parts).
Updates = Generator[Update, None, Any]


@dataclass(frozen=True)
class Part:
    """One separately optimised part of a network.

    ``parameters`` is an iterable of tensors or of parameter groups (dicts with ``"params"`` and
    per-group settings such as ``"lr"``). The settings left None take the hasher's own
    (``optimizer``, ``learning_rate``, ``momentum``, ``weight_decay``). ``optimizer`` may also be
    a callable that builds the optimiser from the parameters, for settings the named ones do not
    have (DUCH's discriminator: Adam with its own betas). ``clip_norm`` > 0 clips the global
    gradient norm of the part's parameters before each of its steps.
    """

    parameters: Any
    optimizer: str | Callable[[Any], torch.optim.Optimizer] | None = None
    learning_rate: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    clip_norm: float = 0.0

    def build(self, defaults: Mapping[str, Any]) -> torch.optim.Optimizer:
        """The part's optimiser; ``defaults`` holds the hasher's ``optimizer``,
        ``learning_rate``, ``momentum`` and ``weight_decay``."""
        if callable(self.optimizer):
            return self.optimizer(self.parameters)

        def setting(name: str) -> Any:
            own = getattr(self, name)
            return defaults[name] if own is None else own

        return make_optimizer(setting("optimizer"), self.parameters,
                              learning_rate=float(setting("learning_rate")),
                              momentum=float(setting("momentum")),
                              weight_decay=float(setting("weight_decay")))


@dataclass(eq=False)
class TrainingState:
    """The training-only state of one fit; every :class:`~mmhash.deep.DeepHasher` hook gets it.

    The base fills the fields below; a method keeps its own per-fit state (a similarity matrix,
    a memory bank, a random stream) as further attributes of it, set in
    :meth:`~mmhash.deep.DeepHasher._begin_training`. Nothing here outlives the fit.

    Attributes
    ----------
    model : the whole training network (encoders, decoders, discriminators, ...).
    arrays : every training row (fit and held-out) of each view, float64 ``(n, d_m)``, in view
        order, as given to fit (after any input scaling of the method).
    fit_rows, val_rows : sorted int64 positions of the rows trained on and of the held-out rows
        (``val_rows`` empty without ``validation_fraction``).
    seed : the fit's seed (``random_state`` as an int).
    device : where training runs.
    data : the fit rows as float32 tensors on ``device``, one per view, then their int64 row
        positions when the method sets ``with_row_ids``; filled after ``_begin_training``.
    optimizers : the optimiser of each declared :class:`Part`, by name; filled after
        ``_begin_training``.
    epoch : the current epoch, from 1 (0 before the first).
    """

    model: nn.Module
    arrays: list[np.ndarray]
    fit_rows: np.ndarray
    val_rows: np.ndarray
    seed: int
    device: torch.device
    data: list[torch.Tensor] = field(default_factory=list)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    epoch: int = 0


def run_updates(updates: Updates, optimizers: Mapping[str, torch.optim.Optimizer],
                clip_norms: Mapping[str, float], *, name: str
                ) -> tuple[float | None, Any]:
    """Make every update ``updates`` yields, each before the generator goes on.

    Returns ``(first update's loss or None, the generator's return value)``. An unknown part
    name raises ValueError (a method's own bug, never the user's). A diverged loss raises
    :class:`~mmhash.deep.training.Diverged` naming the method and, when it has several parts,
    the part; the generator is closed, so its ``with`` blocks (e.g. :func:`frozen`) unwind.
    """
    first = None
    try:
        loss, part = next(updates)
        while True:
            if part not in optimizers:
                raise ValueError(f"{name} updates an undeclared part {part!r}; "
                                 f"declared: {', '.join(optimizers)}")
            label = name if len(optimizers) == 1 else f"{name} {part}"
            update(loss, optimizers[part], name=label, clip_norm=clip_norms.get(part, 0.0))
            if first is None:
                first = float(loss.detach())
            loss, part = next(updates)  # the generator goes on after the update
    except StopIteration as done:
        return first, done.value
    finally:
        updates.close()


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """``module``'s parameters take no gradient inside the block (a GAN's discriminator while
    the generator's loss is built and stepped); restored on exit, also on an error."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)
