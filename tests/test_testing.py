"""The conformance suite itself: a sound hasher passes, and each broken hasher fails its check."""

from __future__ import annotations

import numpy as np
import pytest

from mmhash.base import EPOCH_PROGRESS, UNIFIED_DATABASE
from mmhash.hashers.rp import RandomProjectionHasher
from mmhash.testing import CHECKS, check_hasher, check_params


class _Learned(RandomProjectionHasher):
    """A sound learned hasher for these tests: shared directions of the two views' cross-
    covariance (PLS-SVD), randomly rotated to n_bits."""

    name = "learned-ok"
    supported_views = (2, 2)

    def _fit(self, views):
        (_, a), (_, b) = views.items()
        k = min(self.n_bits, a.shape[1], b.shape[1])
        self.mean0_, self.mean1_ = a.mean(0), b.mean(0)
        u, _, vt = np.linalg.svd((a - self.mean0_).T @ (b - self.mean1_), full_matrices=False)
        rot = np.random.default_rng(self.random_state).standard_normal((k, self.n_bits))
        self.proj0_, self.proj1_ = u[:, :k] @ rot, vt[:k].T @ rot


class ChangesParams(_Learned):
    name = "changes-params"

    def __init__(self, n_bits=32, random_state=0):
        super().__init__(n_bits=n_bits, random_state=random_state + 1)


class FitReturnsNone(_Learned):
    name = "fit-returns-none"

    def fit(self, views):
        super().fit(views)


class MutatesInput(_Learned):
    name = "mutates-input"

    def _fit(self, views):
        for X in views.values():
            X -= X.mean(axis=0)  # in place: forbidden
        super()._fit(views)


class NotDeterministic(_Learned):
    name = "not-deterministic"

    def _fit(self, views):
        super()._fit(views)
        self.proj0_ = self.proj0_ + np.random.standard_normal(self.proj0_.shape)  # noqa: NPY002


class BatchDependent(_Learned):
    name = "batch-dependent"

    def _encode(self, X, modality):
        i = self.modalities_.index(modality)
        return (X - X.mean(axis=0)) @ getattr(self, f"proj{i}_")  # batch statistic


class ForgetfulSave(_Learned):
    name = "forgetful-save"

    def _get_state(self):
        arrays, values = super()._get_state()
        arrays.pop("proj0_")
        return arrays, values

    def _set_state(self, arrays, values):
        super()._set_state(arrays, values)
        shape = (self.n_features_[self.modalities_[0]], self.n_bits)
        self.proj0_ = np.random.default_rng(123).standard_normal(shape)


class WrongDtype(_Learned):
    name = "wrong-dtype"

    def encode(self, X, modality):
        return super().encode(X, modality).astype(np.int64)


class SkipsValidation(_Learned):
    name = "skips-validation"

    def encode(self, X, modality):
        i = self.modalities_.index(modality) if modality in self.modalities_ else 0
        scores = np.asarray(X)[:, : self.n_bits] @ np.ones((min(self.n_bits, X.shape[1]),
                                                               self.n_bits))
        return np.where(scores >= 0, 1, -1).astype(np.int8) * (i * 0 + 1)


class NoFitGuard(_Learned):
    name = "no-fit-guard"

    def encode(self, X, modality):
        return np.where(self._encode(np.asarray(X, float), modality) >= 0, 1, -1).astype(np.int8)


class CopiesTheFloor(RandomProjectionHasher):
    name = "copies-the-floor"


class SilentEpochs(_Learned):
    """Declares epoch progress but never reports an epoch."""

    name = "silent-epochs"
    capabilities = frozenset({EPOCH_PROGRESS})

    def _fit(self, views, progress=None):
        super()._fit(views)


class BatchDependentDatabase(_Learned):
    """Declares a unified database code that depends on the other items of the batch."""

    name = "batch-dependent-database"
    capabilities = frozenset({UNIFIED_DATABASE})

    def _encode_database(self, views):
        scores = sum(self._encode(X, m) for m, X in views.items())
        return scores - scores.mean(axis=0)


class CrashesOnZeroRows(_Learned):
    """Dies inside LAPACK on an all-zero row, as LSSH did on real TF-IDF text."""

    name = "crashes-on-zero-rows"

    def _fit(self, views):
        if any((~X.any(axis=1)).any() for X in views.values()):
            np.linalg.cholesky(np.zeros((2, 2)))  # LinAlgError: not positive definite
        super()._fit(views)


class RefusesTinySets(_Learned):
    """Refuses small training sets with one clear line: a valid answer to hostile data."""

    name = "refuses-tiny-sets"

    def _fit(self, views):
        from mmhash.errors import InvalidInputError

        n = len(next(iter(views.values())))
        if n < 100:
            raise InvalidInputError(f"{n} training pairs; this method needs at least 100")
        super()._fit(views)


class MadeUpCapability(_Learned):
    name = "made-up-capability"
    capabilities = frozenset({"telepathy"})


def _run(cls, check):
    CHECKS[check](cls, check_params(cls))


def test_sound_hasher_passes_every_check():
    results = check_hasher(_Learned, raise_on_failure=False)
    assert [r.check for r in results if not r.passed] == []
    assert {r.check for r in results} == set(CHECKS)


@pytest.mark.parametrize(
    ("cls", "check"),
    [
        (ChangesParams, "params_stored_unchanged"),
        (FitReturnsNone, "fit_returns_self"),
        (MutatesInput, "inputs_not_mutated"),
        (NotDeterministic, "deterministic"),
        (BatchDependent, "no_batch_dependence"),
        (ForgetfulSave, "save_load_roundtrip"),
        (WrongDtype, "code_format"),
        (SkipsValidation, "bad_input_errors"),
        (NoFitGuard, "encode_before_fit_raises"),
        (CopiesTheFloor, "beats_random_floor"),
        (SilentEpochs, "declared_capabilities"),
        (BatchDependentDatabase, "declared_capabilities"),
        (MadeUpCapability, "declared_capabilities"),
        (CrashesOnZeroRows, "hostile_data"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_broken_hasher_fails_the_check_it_breaks(cls, check):
    with pytest.raises(AssertionError):
        _run(cls, check)


def test_a_clear_refusal_is_a_valid_answer_to_hostile_data():
    _run(RefusesTinySets, "hostile_data")


def test_check_hasher_lists_every_failure():
    with pytest.raises(AssertionError, match="batch-dependent|BatchDependent") as info:
        check_hasher(BatchDependent)
    assert "no_batch_dependence" in str(info.value)
