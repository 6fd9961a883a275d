"""Fixtures shared by the baseline tests: the synthetic sets and the accuracy / refusal helpers.

Helpers are fixtures that return a function (pytest's factory pattern), so test modules never
import this file by name (``conftest`` is not an importable module name across test folders).
"""

from __future__ import annotations

import pytest

from mmhash.data.synthetic import make_synthetic
from mmhash.errors import InvalidInputError
from mmhash.evaluation import mean_average_precision
from mmhash.hashers.rp import RandomProjectionHasher


@pytest.fixture(scope="module")
def data():
    """Synthetic set, 600 items, views of 30 and 20 features (retrieval set = training set)."""
    return make_synthetic(n=600, dims=(30, 20), n_labels=6, latent_dim=8, noise=0.3,
                          random_state=3)


@pytest.fixture(scope="module")
def wide_data():
    """Synthetic set, 600 items, views of 40 and 24 features (retrieval set = training set)."""
    return make_synthetic(n=600, dims=(40, 24), n_labels=6, latent_dim=10, noise=0.3,
                          random_state=3)


def _cross_modal_maps(hasher, dataset) -> list[float]:
    (query, lq), (retrieval, lr) = dataset.part("query"), dataset.part("retrieval")
    return [mean_average_precision(hasher.encode(query[a], a), hasher.encode(retrieval[b], b),
                                   lq, lr)
            for a, b in (("image", "text"), ("text", "image"))]


@pytest.fixture(scope="session")
def cross_modal_maps():
    """``maps(fitted_hasher, dataset)``: [image->text mAP, text->image mAP], the query codes of
    one modality ranked against the retrieval codes of the other."""
    return _cross_modal_maps


def _unified_maps(hasher, dataset) -> list[float]:
    (query, lq), (retrieval, lr) = dataset.part("query"), dataset.part("retrieval")
    database = hasher.encode_database(retrieval)
    return [mean_average_precision(hasher.encode(query[a], a), database, lq, lr)
            for a in ("image", "text")]


@pytest.fixture(scope="session")
def unified_maps():
    """``maps(fitted_hasher, dataset)``: [image->database mAP, text->database mAP], the query
    codes of one modality ranked against the unified codes ``encode_database`` gives the
    retrieval items (the ``--database unified`` protocol)."""
    return _unified_maps


@pytest.fixture(scope="session")
def random_floor():
    """``floor(dataset)``: the two cross-modal mAPs of a 16-bit random projection fitted on the
    dataset's training part, the floor every method must clear."""

    def floor(dataset) -> list[float]:
        train, _ = dataset.part("train")
        return _cross_modal_maps(RandomProjectionHasher(n_bits=16).fit(train), dataset)

    return floor


@pytest.fixture(scope="session")
def assert_refused():
    """``refused(cls, views, **bad)``: fitting ``cls(n_bits=8, **bad)`` on ``views`` raises
    InvalidInputError whose message names the first bad parameter."""

    def refused(cls, views, **bad) -> None:
        name = next(iter(bad))
        with pytest.raises(InvalidInputError, match=name):
            cls(n_bits=8, **bad).fit(views)

    return refused


def _training_state_left(hasher) -> list[str]:
    import torch

    kinds = (torch.Tensor, torch.Generator, torch.optim.Optimizer)
    return [k for k, v in vars(hasher).items()
            if any(isinstance(x, kinds) for x in (v if isinstance(v, (list, tuple)) else [v]))]


@pytest.fixture(scope="session")
def training_state_left():
    """``left(fitted_hasher)``: the names of the hasher's attributes holding a tensor, a random
    stream or an optimiser, directly or in a list -- training-only state that outlived fit (a
    deep method keeps it on the fit's TrainingState instead)."""
    return _training_state_left
