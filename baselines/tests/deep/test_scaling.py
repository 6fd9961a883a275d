"""Column standardisation in front of DGCPN's, JDSH's and DJSRH's nets: only where a view
needs it."""

from __future__ import annotations

import numpy as np
import pytest
from mmhash_baselines.deep._scaling import (
    CLOSE_LIMIT,
    SPREAD_LIMIT,
    column_spread,
    needs_standardising,
    row_spread,
)

from mmhash.data.synthetic import make_synthetic
from mmhash.errors import DegenerateCodesWarning, InvalidInputError
from mmhash.registry import get_hasher, get_hasher_class


@pytest.fixture(scope="module")
def views():
    data = make_synthetic(n=240, dims=(24, 16), n_labels=4, latent_dim=6, random_state=5)
    return data.part("train")[0]


def _fit(name, views, **params):
    cls = get_hasher_class(name)
    return get_hasher(name, **{"n_bits": 16, **cls.conformance_params, "n_epochs": 2,
                               **params}).fit(views)


def test_column_spread():
    X = np.random.default_rng(0).standard_normal((50, 5)) * [1, 2, 3, 4, 0]
    assert column_spread(X) == pytest.approx(X[:, :4].std(0).max() / np.median(X[:, :4].std(0)))
    assert column_spread(np.ones((4, 3))) == 1.0


@pytest.mark.parametrize("name", ["dgcpn", "jdsh", "djsrh"])
def test_auto_leaves_features_like_the_papers_untouched(name, views):
    assert max(column_spread(X) for X in views.values()) < SPREAD_LIMIT
    assert min(row_spread(X) for X in views.values()) > CLOSE_LIMIT
    auto, off = _fit(name, views), _fit(name, views, standardize=False)
    for m, X in views.items():
        np.testing.assert_array_equal(auto.encode(X, m), off.encode(X, m))


@pytest.mark.parametrize("name", ["dgcpn", "jdsh", "djsrh"])
def test_auto_standardises_a_view_on_many_scales_and_saves_it(name, views, tmp_path):
    skewed = dict(views)
    skewed["image"] = views["image"] * 10.0 ** (np.arange(views["image"].shape[1]) % 9 - 4)
    auto = _fit(name, skewed)
    # the image view is standardised with its training statistics, the text view left alone
    np.testing.assert_allclose(auto.input_std0_, skewed["image"].std(axis=0))
    np.testing.assert_allclose(auto.input_mean0_, skewed["image"].mean(axis=0))
    assert not auto.input_mean1_.any() and (auto.input_std1_ == 1.0).all()
    auto.save(tmp_path / "m.npz")
    loaded = get_hasher_class(name).load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.encode(skewed["image"], "image"),
                                  auto.encode(skewed["image"], "image"))


def test_auto_standardises_row_normalised_histograms():
    # wiki's views: SIFT bag-of-words histograms and LDA topic proportions, rows summing to 1
    rng = np.random.default_rng(1)
    histograms = rng.gamma(0.5, size=(300, 128))
    histograms /= histograms.sum(axis=1, keepdims=True)
    topics = rng.dirichlet(np.full(10, 0.5), size=300)
    assert row_spread(histograms) < CLOSE_LIMIT and row_spread(topics) < CLOSE_LIMIT
    assert needs_standardising(histograms) and needs_standardising(topics)
    assert not needs_standardising(histograms * 100)  # the same shape at a net's scale
    assert not needs_standardising(np.ones((20, 4)))  # constant: nothing to scale


@pytest.mark.parametrize("name", ["dgcpn", "djsrh"])
def test_row_normalised_views_no_longer_collapse(name, views):
    # As on wiki: fed raw, the nets' codes are nearly one code for every item.
    close = {m: np.exp(X) / np.exp(X).sum(axis=1, keepdims=True) for m, X in views.items()}
    with pytest.warns(DegenerateCodesWarning, match="constant bits"):  # fit says so
        raw = _fit(name, close, n_bits=16, standardize=False)
    auto = _fit(name, close, n_bits=16)
    assert (auto.input_std0_ < 1).all()  # standardised with the views' tiny deviations
    for m, X in close.items():
        distinct = [len(np.unique(h.encode(X, m), axis=0)) for h in (raw, auto)]
        assert distinct[1] > 4 * distinct[0], (m, distinct)


def test_a_bad_choice_is_one_clear_line(views):
    with pytest.raises(InvalidInputError, match="standardize must be one of"):
        _fit("jdsh", views, standardize="yes")
