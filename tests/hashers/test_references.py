"""The reference rows: cca-real and feature-cosine, and how tables show them."""

from __future__ import annotations

import numpy as np
import pytest

from mmhash.bench.report import REFERENCE_MARK, tables
from mmhash.errors import InvalidInputError
from mmhash.hashers.references import CCAReal, FeatureCosine, cosine_distances


def _paired(n=300, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 3))
    X = latent @ rng.standard_normal((3, 8)) + 0.5 * rng.standard_normal((n, 8))
    Y = latent @ rng.standard_normal((3, 5)) + 0.5 * rng.standard_normal((n, 5))
    return {"image": X, "text": Y}


def test_cca_directions_are_the_canonical_pairs():
    """Unweighted, unregularised: the projections of the training views are uncorrelated within a
    view, and direction j of one view correlates with direction j of the other by rho_j."""
    views = _paired()
    cca = CCAReal(n_bits=8, reg=0.0, weight_power=0.0).fit(views)
    assert cca.n_components_ == 5  # capped at the smaller view's dimension
    A = cca.represent(views["image"], "image")
    B = cca.represent(views["text"], "text")
    corr = np.corrcoef(A.T, B.T)
    np.testing.assert_allclose(corr[:5, :5], np.eye(5), atol=1e-8)
    np.testing.assert_allclose(np.diag(corr[:5, 5:]), cca.correlations_, atol=1e-8)
    assert np.all(np.diff(cca.correlations_) <= 1e-12)


def test_cca_weights_scale_each_direction_by_its_correlation_to_the_power():
    views = _paired()
    plain = CCAReal(n_bits=8, weight_power=0.0).fit(views).represent(views["image"], "image")
    cca = CCAReal(n_bits=8, weight_power=4.0).fit(views)
    np.testing.assert_allclose(cca.represent(views["image"], "image"),
                               plain * cca.correlations_ ** 4, rtol=1e-10)


def test_cosine_distances_with_zero_rows():
    D = cosine_distances(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 3.0]]))
    np.testing.assert_allclose(D, [[0.0, 1.0], [1.0, 1.0]])


def test_references_have_no_codes_and_feature_cosine_needs_one_space():
    views = _paired()
    cca = CCAReal().fit(views)
    with pytest.raises(InvalidInputError, match="reference .* no binary codes"):
        cca.encode(views["image"], "image")
    with pytest.raises(InvalidInputError, match="share one space .*image.*8.*text.*5.*cca-real"):
        FeatureCosine().fit(views)
    same = {"image": views["image"], "text": views["image"] + 0.1}
    fc = FeatureCosine().fit(same)
    np.testing.assert_array_equal(fc.represent(same["text"], "text"), same["text"])


def test_tables_put_references_on_top_marked_and_never_best():
    rows = []
    for method, value in (("cvh", 0.5), ("cca-real", 0.9), ("rp", 0.2)):
        for task in ("image->text", "text->image"):
            rows.append(dict(dataset="d", fingerprint="f", method=method, params="{}", bits=16,
                             seed=0, views="image,text", database="per-view", task=task,
                             metric="map", tie="expected", value=value))
    (table,) = tables(rows)
    assert table.methods == [f"cca-real {REFERENCE_MARK}", "cvh", "rp"]
    assert table.best("image->text", 16) == "cvh"
    assert "cca-real: cosine of the CCA projections" in table.caption
    assert "Hamming distance of the codes" in table.caption
