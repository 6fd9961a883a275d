"""The base class of deep hashers: a :class:`~mmhash.base.BaseHasher` trained with PyTorch.

Part of the public :mod:`mmhash.deep` API: mmhash's UJSAH and UMHA and the deep baselines of
``mmhash-baselines`` derive from :class:`DeepHasher`, and so can a third party's deep plugin. A
subclass defines the network and the mini-batch loss; seeding, threads, device, batching, epoch
progress, held-out epoch selection, encoding and pickle-free saving come from here.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from mmhash.base import EPOCH_PROGRESS, BaseHasher, ProgressCallback
from mmhash.deep.state import Part, TrainingState, Updates, run_updates
from mmhash.deep.training import (
    ENCODE_CHUNK,
    OPTIMIZERS,
    arrays_to_module,
    check_seed,
    holdout_split,
    module_to_arrays,
    resolve_device,
    resolve_threads,
    torch_session,
    train_loop,
)
from mmhash.params import Choice, Integer, Number

_STATE_PREFIX = "torch__"


class DeepHasher(BaseHasher):
    """A :class:`BaseHasher` trained with PyTorch; subclasses define the network and the loss.

    A subclass must

    * take the training hyperparameters ``n_epochs``, ``batch_size``, ``optimizer``,
      ``learning_rate``, ``momentum``, ``weight_decay``, ``validation_fraction``, ``n_threads``,
      ``device`` and ``random_state`` in ``__init__`` (stored unchanged, like every parameter);
    * implement :meth:`_build_model` (an ``nn.Module`` with an ``encoders`` ``ModuleList``: one
      per view, mapping ``(n, d_m)`` features to ``(n, n_bits)`` real scores whose sign is the
      code) and :meth:`_loss` (the mini-batch objective).

    It may set :attr:`with_row_ids` and :attr:`patience` (early stopping on the held-out loss),
    and override the hooks below. Each gets the fit's :class:`~mmhash.deep.state.TrainingState`
    (the model, the training rows, the optimisers, the epoch), where a method also keeps its own
    training-only state; the base creates it per fit and drops it after, so nothing needs
    cleaning up:

    * :meth:`_begin_training` -- compute per-fit state (similarities, memory banks, streams);
    * :meth:`_begin_epoch` / :meth:`_end_epoch` -- schedules and per-epoch state updates;
    * :meth:`_parts` -- the separately optimised parts (name -> :class:`~mmhash.deep.state.Part`:
      parameters, optimiser settings, gradient clipping); default one part, ``"model"``;
    * :meth:`_updates` -- a step as the ``(loss, part)`` updates it makes in order (several for
      DGCPN, discriminator then generator for a GAN); default one update on :meth:`_loss`;
    * :meth:`_epoch_updates` -- updates made once per epoch after the batches (a second stage).

    Training runs on ``device``: ``"auto"`` (the default of mmhash's deep methods) takes a GPU
    when torch sees one, else the CPU; ``"cpu"``, ``"cuda[:N]"``, ``"mps"`` force one, and
    ``device_`` records where a fit ran (the bench stores it with the cell). Parameters are
    initialised on the CPU from the seed before the model moves there, so the starting point is
    the same on every device; GPU kernels are not bitwise reproducible, so identical codes for
    the same seed are guaranteed on the CPU only. Subclasses that create tensors during training
    put them on ``state.device``.

    Fitting runs in :func:`torch_session` (seeded, ``n_threads`` threads), in float32. Only the
    encoders are kept after fit (on the CPU) and saved (as numpy arrays): they alone produce
    out-of-sample codes; decoders and other training-only parts are discarded. Encoding runs the
    encoders on the CPU in float64, in eval mode, in chunks of rows, so a code depends only on its
    own item, with ``n_threads`` torch threads when it is set (None keeps the caller's count).

    It declares :data:`~mmhash.base.EPOCH_PROGRESS`: ``fit(views, progress=callback)`` reports
    each epoch to ``callback``. ``history_`` holds the per-epoch losses, ``best_epoch_`` the
    epoch whose encoders were kept.
    """

    supported_views = (2, None)
    capabilities = frozenset({EPOCH_PROGRESS})
    #: The training parameters every deep method takes, declared once here (a method declares
    #: only its own): one pass over the batches per epoch, pairs within a batch (so at least
    #: two rows), a held-out share below the whole.
    parameter_constraints = {
        "n_epochs": Integer(minimum=1),
        "batch_size": Integer(minimum=2),  # the batch similarity losses compare rows
        "optimizer": Choice(OPTIMIZERS),
        "learning_rate": Number(low=0, low_open=True),
        "momentum": Number(0, 1, high_open=True),
        "weight_decay": Number(low=0),
        "validation_fraction": Number(0, 1, high_open=True),
    }
    #: A subclass that keeps per-row training state (e.g. a similarity matrix over the whole
    #: training set) sets this: every batch given to :meth:`_loss` then ends with an int64 tensor
    #: of the rows' positions in the views given to fit, after the view tensors.
    with_row_ids: ClassVar[bool] = False
    #: Early stopping: with held-out rows (``validation_fraction`` > 0), stop after this many
    #: epochs without a lower held-out loss; None trains every epoch.
    patience: ClassVar[int | None] = None

    # -- subclass hooks ------------------------------------------------------------------------
    def _build_model(self, dims: list[int]) -> nn.Module:
        """The full training network for views of dimensions ``dims`` (in view order)."""
        raise NotImplementedError

    def _loss(self, state: TrainingState, batch: list[torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        """The mini-batch objective of ``state.model``: (scalar tensor, {part name: float}) for
        paired rows. It is the training loss of the default :meth:`_updates` and always the
        held-out criterion (computed in eval mode, without gradients)."""
        raise NotImplementedError

    def _begin_training(self, state: TrainingState) -> None:
        """Called once inside the torch session, before the first epoch, with the new model
        (still on the CPU), every training row and the fit rows in ``state``; the place to
        compute training-only state and keep it on ``state``. Default: nothing."""

    def _begin_epoch(self, state: TrainingState) -> None:
        """Called before each epoch's first step (``state.epoch`` counts from 1), e.g. to set
        the slope of a :class:`~mmhash.deep.blocks.ScaledTanh`. Default: nothing."""

    def _end_epoch(self, state: TrainingState) -> None:
        """Called after each epoch's steps and :meth:`_epoch_updates`, before the held-out loss
        (``state.data`` holds the fit rows); must leave the model in train mode. Default:
        nothing."""

    def _parts(self, state: TrainingState) -> dict[str, Part]:
        """The separately optimised parts, by name (each gets its own optimiser). Default: one
        part ``"model"``, every parameter, the hasher's optimiser settings."""
        return {"model": Part(state.model.parameters())}

    def _updates(self, state: TrainingState, batch: list[torch.Tensor]) -> Updates:
        """One training step: yield ``(loss, part)`` for each update, in order (each is made
        before the generator goes on) and return the step's report ``(loss, {part: float})``.
        Default: one update of the only part on :meth:`_loss`."""
        if len(state.optimizers) != 1:
            raise ValueError(f"{type(self).__name__} declares several parts; its _updates "
                             "must say which loss updates which")
        loss, parts = self._loss(state, batch)
        yield loss, next(iter(state.optimizers))
        return float(loss.detach()), parts

    def _epoch_updates(self, state: TrainingState) -> Updates:
        """Updates made once per epoch after its batches (CIRH's second stage), as
        :meth:`_updates`; it may return a dict of values to add to the epoch's ``history_``
        record. Default: none."""
        return
        yield  # a generator that yields nothing

    # -- validation ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Check what the declarations cannot: a thread count and a device this machine has
        (subclasses extend it, calling super())."""
        # These resolve as well as check (None -> every core; a device this machine has), and
        # fit and encode call them again; calling them here fails before training.
        resolve_threads(self.n_threads)
        resolve_device(self.device)

    # -- fit / encode ----------------------------------------------------------------------------
    def _fit(self, views: dict[str, np.ndarray], *,
             progress: ProgressCallback | None = None) -> None:
        arrays = list(views.values())
        dims = [X.shape[1] for X in arrays]
        seed = check_seed(self.random_state)
        # A numpy stream of its own for shuffling and the held-out rows: never the global one.
        rng = np.random.default_rng([seed, 0x5EED])
        fit_rows, val_rows = holdout_split(len(arrays[0]), self.validation_fraction, rng)
        device = resolve_device(self.device)
        self.device_ = str(device)
        name = type(self).__name__
        with torch_session(seed, self.n_threads):
            model = self._build_model(dims)  # initialised on the CPU: same start on any device
            state = TrainingState(model, arrays, fit_rows, val_rows, seed, device)
            self._begin_training(state)
            model.to(device)
            state.data = self._tensors(arrays, fit_rows, device)
            validation = self._tensors(arrays, val_rows, device) if len(val_rows) else None
            parts = self._parts(state)
            defaults = {"optimizer": self.optimizer, "learning_rate": self.learning_rate,
                        "momentum": self.momentum, "weight_decay": self.weight_decay}
            state.optimizers = {key: part.build(defaults) for key, part in parts.items()}
            clip_norms = {key: float(part.clip_norm) for key, part in parts.items()}

            def step(batch: list[torch.Tensor]) -> tuple[float, dict[str, float]]:
                first, report = run_updates(self._updates(state, batch), state.optimizers,
                                            clip_norms, name=name)
                return report if report is not None else (first or 0.0, {})

            def begin_epoch(epoch: int) -> None:
                state.epoch = epoch
                self._begin_epoch(state)

            def end_epoch(epoch: int) -> dict[str, float] | None:
                _, extras = run_updates(self._epoch_updates(state), state.optimizers,
                                        clip_norms, name=name)
                self._end_epoch(state)
                return extras

            result = train_loop(
                model, lambda batch: self._loss(state, batch), state.data, None,
                n_epochs=int(self.n_epochs), batch_size=int(self.batch_size), rng=rng,
                validation=validation, select=model.encoders, progress=progress,
                on_epoch_start=begin_epoch, on_epoch_end=end_epoch, step=step,
                patience=self.patience, name=name,
            )
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self._set_encoders(model.encoders.cpu())

    def _tensors(self, arrays: list[np.ndarray], rows: np.ndarray, device: torch.device
                 ) -> list[torch.Tensor]:
        """``rows`` of each view as float32 tensors on ``device``, then the int64 row positions
        when :attr:`with_row_ids` is set."""
        tensors = [torch.from_numpy(X[rows].astype(np.float32)).to(device) for X in arrays]
        if self.with_row_ids:
            tensors.append(torch.from_numpy(rows).to(device))
        return tensors

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
