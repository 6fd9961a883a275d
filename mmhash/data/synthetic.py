"""A deterministic synthetic multi-label multi-view set (tests and the embedded default).

Generative model: each item has a multi-hot label vector ``y`` (each item gets 1 + Poisson(0.5)
labels, at most ``n_labels``), and a latent vector ``z = (y @ C) / ||y|| + noise_latent``, where
the rows of ``C`` are random unit "concept" directions in ``latent_dim`` dimensions. View ``m`` is
a fixed random linear-nonlinear map of ``z`` plus view noise:
``X_m = tanh(z @ A_m) + noise * N(0, 1)``. Items that share labels therefore have nearby latent
vectors, in every view, which is the planted cross-view structure a hasher should recover; a
random projection of one view carries no information about another view's projection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmhash.data.dataset import Dataset, Split
from mmhash.errors import InvalidInputError


def make_synthetic(
    n: int = 2000,
    dims: Sequence[int] = (128, 64),
    *,
    view_names: Sequence[str] | None = None,
    n_labels: int = 12,
    latent_dim: int = 24,
    noise: float = 0.3,
    n_query: int | None = None,
    validation_fraction: float = 0.1,
    random_state: int = 0,
    name: str = "synthetic",
) -> Dataset:
    """Generate a synthetic multi-label dataset with paired views and a fixed split.

    Parameters
    ----------
    n : total number of items.
    dims : feature dimension of each view; ``len(dims)`` is the number of views.
    view_names : names of the views; default ``image``, ``text`` for two views, else ``view0``...
    n_labels : number of classes (multi-hot labels).
    latent_dim : dimension of the shared latent space.
    noise : standard deviation of the per-view Gaussian noise (larger = harder).
    n_query : size of the query set (default 10% of n, at least 1); the rest is train/retrieval.
    validation_fraction : share of the training items also marked as validation queries.
    random_state : seed; the same arguments always give the same arrays.

    Returns
    -------
    Dataset with float64 views, uint8 labels (n, n_labels), ``synthetic=True``. As in the
    Wikipedia protocol, the retrieval set is the training set.
    """
    dims = [int(d) for d in dims]
    if len(dims) < 1 or min(dims) < 1:
        raise InvalidInputError(f"dims must be positive view dimensions, got {dims}")
    if n < 10:
        raise InvalidInputError(f"n must be at least 10, got {n}")
    if view_names is None:
        view_names = ["image", "text"] if len(dims) == 2 else [f"view{i}" for i in range(len(dims))]
    if len(view_names) != len(dims):
        raise InvalidInputError(f"{len(view_names)} view names for {len(dims)} views")
    rng = np.random.default_rng(random_state)

    counts = np.minimum(1 + rng.poisson(0.5, size=n), n_labels)
    labels = np.zeros((n, n_labels), dtype=np.uint8)
    for i, c in enumerate(counts):
        labels[i, rng.choice(n_labels, size=c, replace=False)] = 1

    concepts = rng.standard_normal((n_labels, latent_dim))
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    z = labels @ concepts / np.sqrt(labels.sum(axis=1, keepdims=True))
    z += 0.1 * rng.standard_normal(z.shape)

    views = {}
    for name_m, d in zip(view_names, dims):
        mixing = rng.standard_normal((latent_dim, d)) / np.sqrt(latent_dim)
        views[name_m] = np.tanh(2.0 * z @ mixing) + noise * rng.standard_normal((n, d))

    n_query = max(1, n // 10) if n_query is None else int(n_query)
    if not 0 < n_query < n - 1:
        raise InvalidInputError(f"n_query must be in 1..{n - 2}, got {n_query}")
    order = rng.permutation(n)
    query, train = np.sort(order[:n_query]), np.sort(order[n_query:])
    n_val = max(1, int(round(validation_fraction * len(train))))
    validation = np.sort(rng.choice(train, size=n_val, replace=False))
    split = Split(query=query, retrieval=train, train=train, validation=validation)
    info = {
        "description": "synthetic multi-label data (mmhash.data.synthetic.make_synthetic)",
        "params": {"n": n, "dims": dims, "n_labels": n_labels, "latent_dim": latent_dim,
                   "noise": noise, "random_state": random_state},
    }
    return Dataset(name, views, labels, split, synthetic=True, info=info)
