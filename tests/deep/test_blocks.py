"""The deep family's building blocks against plain numpy formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmhash.deep import (  # noqa: E402
    ScaledTanh,
    Standardize,
    check_pairwise_size,
    cosine,
    cosine_mse,
    feature_similarity,
    fused_similarity,
    graph_term,
    keep_largest,
    knn_graph,
    knn_indices,
    mlp,
    pair_block,
    resolve_device,
    second_order,
    set_alpha,
    sqrt_schedule,
)
from mmhash.errors import InvalidInputError  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.random((7, 5))
Y = RNG.standard_normal((7, 3))


def _unit(A):
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.where(norms > 0, norms, 1)


def test_feature_similarity_is_rescaled_cosine():
    Xz = X.copy()
    Xz[2] = 0  # an all-zero row: cosine 0, rescaled -1
    got = feature_similarity(torch.from_numpy(Xz)).numpy()
    want = 2 * _unit(Xz) @ _unit(Xz).T - 1
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.allclose(got[2], -1)
    np.testing.assert_allclose(feature_similarity(torch.from_numpy(X), rescale=False).numpy(),
                               _unit(X) @ _unit(X).T, atol=1e-12)


def test_fused_and_second_order_terms():
    S, T = (torch.from_numpy(A) for A in (X @ X.T, Y @ Y.T))
    np.testing.assert_allclose(fused_similarity([S, T], [0.3, 0.7]).numpy(),
                               0.3 * X @ X.T + 0.7 * Y @ Y.T, atol=1e-12)
    np.testing.assert_allclose(second_order([(S, S)]).numpy(), (X @ X.T) @ (X @ X.T).T / 7,
                               atol=1e-10)
    both = second_order([(S, T), (T, S)]).numpy()
    np.testing.assert_allclose(both, ((X @ X.T) @ (Y @ Y.T).T + (Y @ Y.T) @ (X @ X.T).T) / 14,
                               atol=1e-10)
    with pytest.raises(InvalidInputError, match="weights for 2"):
        fused_similarity([S, T], [1.0])


def test_knn_graph_keeps_k_neighbours_row_normalised():
    S = torch.from_numpy(_unit(X) @ _unit(X).T)
    P = knn_graph(S, 3).numpy()
    S = S.numpy()
    for i in range(7):
        others = [j for j in np.argsort(-S[i], kind="stable") if j != i][:3]
        assert set(np.flatnonzero(P[i])) == set(others)
        np.testing.assert_allclose(P[i, others], S[i, others] / S[i, others].sum())
    np.testing.assert_allclose(graph_term(torch.from_numpy(P)).numpy(), P @ P.T)
    assert knn_graph(torch.from_numpy(S), 2, include_self=True).numpy()[0, 0] > 0
    with pytest.raises(InvalidInputError, match="between 1 and 6"):
        knn_graph(torch.from_numpy(S), 7)


def test_truncation_and_a_batchs_block():
    S = torch.from_numpy(_unit(X) @ _unit(X).T)
    kept = keep_largest(S, 2).numpy()
    for i in range(7):  # the diagonal competes: cosine 1 is each row's largest
        assert set(np.flatnonzero(kept[i])) == set(np.argsort(-S.numpy()[i], kind="stable")[:2])
    rows = torch.tensor([4, 0, 2])
    np.testing.assert_array_equal(pair_block(S, rows).numpy(), S.numpy()[[4, 0, 2]][:, [4, 0, 2]])


def _knn_loop(X, k, metric, exclude_self, farthest=0):
    """Nearest by (key, index), the key a distance (smaller = nearer); the farthest among the
    rest by (-key, index)."""
    n = len(X)
    if metric == "euclidean":
        key = lambda i, j: float(np.sum((X[i] - X[j]) ** 2))  # noqa: E731
    elif metric == "cosine":
        key = lambda i, j: -float(_unit(X)[i] @ _unit(X)[j])  # noqa: E731
    else:
        key = lambda i, j: -float(X[i, j])  # noqa: E731
    near, far = [], []
    for i in range(n):
        others = [j for j in range(n) if j != i or not exclude_self]
        ranked = sorted(others, key=lambda j: (key(i, j), j))
        near.append(ranked[:k])
        rest = [j for j in others if j not in ranked[:k]]
        far.append(sorted(rest, key=lambda j: (-key(i, j), j))[:farthest])
    return np.array(near, dtype=np.int64).reshape(n, k), np.array(far, dtype=np.int64).reshape(
        n, farthest)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "precomputed"])
def test_knn_indices_are_the_nearest_rows_in_chunks_on_numpy_and_torch(metric):
    Xd = RNG.standard_normal((9, 4))
    Xd[6] = Xd[1]  # a duplicate: still excluded by position only
    data = _unit(Xd) @ _unit(Xd).T if metric == "precomputed" else Xd
    for exclude_self in (True, False):
        want, want_far = _knn_loop(data, 3, metric, exclude_self, farthest=2)
        for chunk in (None, 1, 4):
            got = knn_indices(data, 3, metric=metric, exclude_self=exclude_self,
                              chunk_rows=chunk)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, want)
            near, far = knn_indices(data, 3, metric=metric, exclude_self=exclude_self,
                                    chunk_rows=chunk, farthest=2)
            np.testing.assert_array_equal(near, want)
            np.testing.assert_array_equal(far, want_far)
    # A tensor gives the same rows where no two entries tie (topk's order of ties is its own).
    Z = RNG.standard_normal((9, 4))
    data = _unit(Z) @ _unit(Z).T if metric == "precomputed" else Z
    want, want_far = _knn_loop(data, 3, metric, True, farthest=4)
    near, far = knn_indices(torch.from_numpy(data), 3, metric=metric, chunk_rows=2, farthest=4)
    assert near.dtype == torch.int64 and far.dtype == torch.int64
    np.testing.assert_array_equal(near.numpy(), want)
    np.testing.assert_array_equal(far.numpy(), want_far)
    assert knn_indices(torch.from_numpy(data), 0, metric=metric).shape == (9, 0)


def test_knn_indices_refusals():
    with pytest.raises(InvalidInputError, match="at most 6 in all"):
        knn_indices(X, 7)
    with pytest.raises(InvalidInputError, match="at most 7 in all"):
        knn_indices(X, 5, exclude_self=False, farthest=3)
    with pytest.raises(InvalidInputError, match="metric='manhattan'"):
        knn_indices(X, 2, metric="manhattan")
    with pytest.raises(InvalidInputError, match="square similarity"):
        knn_indices(X, 2, metric="precomputed")


def test_standardize_statistics_layer_and_numpy_map():
    Xc = X.copy()
    Xc[:, 1] = 5.0  # a constant column: centred, never divided by 0
    mean, std = Standardize.statistics(Xc)
    np.testing.assert_array_equal(mean, Xc.mean(axis=0))
    np.testing.assert_array_equal(std, np.where(Xc.std(axis=0) > 0, Xc.std(axis=0), 1.0))
    assert std[1] == 1.0
    assert Standardize.statistics(X, min_std=1.0)[1].tolist() == [1.0] * 5
    want = (Xc - mean) / std
    np.testing.assert_array_equal(Standardize.transform(Xc, mean, std), want)
    layer = Standardize(5).double()
    np.testing.assert_array_equal(layer(torch.from_numpy(Xc)).numpy(), Xc)  # identity until fit
    assert layer.fit(Xc) is layer
    np.testing.assert_array_equal(layer(torch.from_numpy(Xc)).numpy(), want)
    assert np.all(want[:, 1] == 0.0)
    assert sorted(layer.state_dict()) == ["scale", "shift"]  # saved with an encoder
    single = Standardize(5).fit(Xc)  # float32 buffers: the statistics rounded once
    assert single.shift.dtype == torch.float32
    np.testing.assert_array_equal(single.shift.numpy(), mean.astype(np.float32))


def test_pairwise_size_is_refused_with_the_memory_it_needs():
    check_pairwise_size(100, 100, method="DGCPN")
    with pytest.raises(InvalidInputError, match=r"186000 training rows exceed max_samples=20000: "
                                                r"DGCPN holds 2 dense .*257\.8 GiB.*max_samples"):
        check_pairwise_size(186_000, 20_000, method="DGCPN", n_matrices=2)


def test_cosine_mse_with_and_without_weights():
    A, B = torch.from_numpy(X[:, :3]), torch.from_numpy(Y)
    target = torch.from_numpy(RNG.uniform(-1, 1, (7, 7)))
    weight = torch.from_numpy(RNG.random((7, 7)))
    cos = _unit(X[:, :3]) @ _unit(Y).T
    np.testing.assert_allclose(cosine(A, B).numpy(), cos, atol=1e-12)
    assert cosine_mse(A, B, target).item() == pytest.approx(((cos - target.numpy()) ** 2).mean())
    assert cosine_mse(A, B, target, weight=weight).item() == pytest.approx(
        (weight.numpy() * (cos - target.numpy()) ** 2).mean())
    unit = torch.nn.functional.normalize(A, dim=1)
    assert cosine_mse(unit, unit, target, normalized=True).item() == pytest.approx(
        cosine_mse(A, A, target).item())


def test_mlp_layers_and_scaled_tanh():
    net = mlp(5, [8, 4], 3, dropout=0.5, batch_norm=True, normalize_input=True,
              output=ScaledTanh(2.0))
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["RowNormalize", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear",
                     "BatchNorm1d", "ReLU", "Dropout", "Linear", "ScaledTanh"]
    assert [type(m).__name__ for m in mlp(5, [8, 4], 3, dropout=0.5, dropout_last_only=True)
            ].count("Dropout") == 1
    h = torch.linspace(-2, 2, 9)
    act = ScaledTanh(3.0)
    np.testing.assert_allclose(act(h).numpy(), np.tanh(3 * h.numpy()), atol=1e-6)
    set_alpha(net, 5.0)
    assert net[-1].alpha == 5.0 and "alpha=5" in repr(net[-1])
    assert torch.equal(torch.sign(ScaledTanh(0.1)(h)), torch.sign(ScaledTanh(9.0)(h)))
    assert [sqrt_schedule(e) for e in (1, 4)] == [1.0, 2.0] and sqrt_schedule(2) == math.sqrt(2)


def test_auto_device_is_the_cpu_without_a_gpu():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    with pytest.raises(InvalidInputError, match="'auto', 'cpu'"):
        resolve_device("tpu")
