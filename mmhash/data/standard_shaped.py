"""SYNTHETIC sets shaped like the field's standard protocols: MIRFlickr-25K (DCMH) and NUS-WIDE.

Neither is a real dataset. They exist so that methods can be run at the shapes and sizes of the
two protocols most papers report (4,096-d non-negative fc7-like image features, binary tag
vectors, multi-hot labels with "share a label" relevance, 2,000 or 2,100 queries against 18k or
184k items) while the real image features cannot be had (``datasets/README.md``):

- ``synthetic-mirflickr`` (:func:`make_synthetic_mirflickr`): the REAL MIRFlickr-25K tags
  (``YAll``, 1,386-d binary) and labels (``LAll``, 24 multi-hot) of the DCMH files, read with
  :mod:`mmhash.data.formats.dcmh`; only the image view is generated, from each item's real
  labels. The split is the family's (rows 0..1,999 query, the rest retrieval, the stored
  5,000-row training draw).
- ``synthetic-nuswide`` (:func:`make_synthetic_nuswide`): everything generated, shaped like the
  10-class NUS-WIDE protocol (186,577 pairs, 4,096-d image, 1,000-d tags, 10 labels).

Generative model. Each item has multi-hot labels ``y`` (real, or drawn: 1 + Poisson(0.4) distinct
labels, at most ``n_labels``, classes Zipf-weighted). The rows of ``C`` are random unit "concept"
directions in ``latent_dim`` dimensions, and each view sees its own noisy copy of the label
mean, ``z_v = y C / |y|_1 ** 0.5 + latent_noise * g_v / latent_dim ** 0.5`` (``g_v ~ N(0, I)``
per item and view): labels do not fix what a picture or a tag list shows, so cross-view retrieval
is far from perfect.

- image: ``x = gain * max(0, [z_image, u] A + bias + pixel_noise * e)``, ``u ~ N(0, I)`` a
  label-free "nuisance" latent (what the picture shows besides its labels; it dominates the
  image's own variance, so a method that only looks at image variance is misled), ``A`` a fixed
  random map to ``image_dim`` dims, ``bias`` per dimension so that about 70% of the values are
  zero (like ReLU fc7 features), ``gain`` a per-dimension log-normal scale, ``e`` pixel noise
  of unit variance (uniform on +-sqrt(3): five times cheaper to draw than normal noise).
- tags (nuswide): tag ``j`` is drawn Bernoulli with ``p = min(1, rate_j * exp(tag_gain * s -
  tag_gain ** 2 * v / 2))``, ``s = z_text . V_j`` and ``v`` its variance (so the mean stays near
  ``rate_j``), ``V`` random N(0, 1), ``rate_j`` Zipf over the vocabulary summing to
  ``tags_per_item`` (10 of 1,000: ~1% density); an item that draws no tag gets its likeliest.

Determinism and memory. Every random draw comes from ``numpy.random.SeedSequence(random_state,
spawn_key=(stream, ...))``: the model (``C``, ``A``, ``bias``, ``gain``, ``V``) and the split each
from one stream, the per-item draws (labels, latents, pixel noise, tag draws) from one stream per
purpose and per block of :data:`SEED_BLOCK` rows. Rows are computed one block at a time, always
in blocks of the same rows (a matrix product's last bits can depend on how many rows it is given),
and written straight into preallocated float32 arrays (the dtype of the released feature
files, so a bench on these sets holds what one on the real files holds): the arrays depend on
the seed and the sizes only, and the peak memory is the final arrays plus one block's float64
temporaries (~50 MB).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mmhash.data.checksum import sha256
from mmhash.data.dataset import Dataset, Split
from mmhash.data.formats.dcmh import QUERY_ROWS, TRAIN_ROWS, family_parts, read_role
from mmhash.data.splits import split_from_parts, validation_subset
from mmhash.errors import DataError, InvalidInputError

#: Rows per random stream and per computation: the unit of the per-item draws (see the
#: module docstring). Part of the sets' definition, like the seed.
SEED_BLOCK = 1024
# Stream ids of the spawn keys. Fixed forever: changing one changes every generated array.
_MODEL, _SPLIT, _LABELS, _LATENT, _NUISANCE, _PIXELS, _TAGS = range(7)
# The model's fixed constants (not parameters: the cards pin sizes and the seed only).
_NUISANCE_DIM = 32
_ZERO_FRACTION_BIAS = -1.1  # mean pre-activation bias; about 70% of image values are zero
_LABEL_RATE = 0.4  # nuswide: 1 + Poisson(0.4) labels -> 67% one label, 27% two


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def _blocks(n: int):
    """The seed blocks of ``n`` rows: (block id, first row, end row)."""
    for b in range(-(-n // SEED_BLOCK)):
        yield b, b * SEED_BLOCK, min(n, (b + 1) * SEED_BLOCK)


def _check_sizes(n: int, dims: Mapping[str, int], n_query: int, n_train: int) -> None:
    if min(dims.values()) < 1:
        raise InvalidInputError(f"view dimensions must be positive, got {dict(dims)}")
    if not (1 <= n_query and 1 <= n_train and n_query + n_train <= n):
        raise InvalidInputError(
            f"n_query={n_query} and n_train={n_train} must be >= 1 and fit in n={n} rows")


class _LatentModel:
    """The fixed random parts shared by the views: concept directions and the latent noise.

    ``latent(view, block, labels)`` is one view's noisy label mean for the rows of one seed
    block (float64 (rows, latent_dim)).
    """

    def __init__(self, rng: np.random.Generator, n_labels: int, latent_dim: int,
                 latent_noise: float, seed: int):
        concepts = rng.standard_normal((n_labels, latent_dim))
        self.concepts = concepts / np.linalg.norm(concepts, axis=1, keepdims=True)
        self.latent_dim, self.latent_noise, self.seed = latent_dim, latent_noise, seed

    def latent(self, view: int, block: int, labels: np.ndarray) -> np.ndarray:
        count = np.maximum(labels.sum(axis=1, keepdims=True), 1).astype(np.float64)
        z = labels @ self.concepts / np.sqrt(count)
        g = _rng(self.seed, _LATENT, view, block).standard_normal(z.shape)
        z += self.latent_noise / np.sqrt(self.latent_dim) * g
        return z


class _ImageModel:
    """ReLU-like image features from a latent: ``gain * max(0, [z, u] A + bias + noise * e)``,
    ``e`` uniform with unit variance."""

    def __init__(self, rng: np.random.Generator, latent_dim: int, dim: int,
                 pixel_noise: float, seed: int):
        # Label latent and nuisance enter with unit and 1.5x weight per dimension: the nuisance
        # dominates the image's own variance, as unlabelled content does in real photos.
        self.mixing = np.vstack([
            rng.standard_normal((latent_dim, dim)),
            1.5 * rng.standard_normal((_NUISANCE_DIM, dim)) / np.sqrt(_NUISANCE_DIM),
        ])
        self.bias = _ZERO_FRACTION_BIAS + 0.3 * rng.standard_normal(dim)
        self.gain = np.exp(0.5 * rng.standard_normal(dim))  # fc7 units differ in scale
        self.pixel_noise, self.seed = pixel_noise, seed
        # One noise buffer for every block: a fresh 16 MB array per block costs page faults.
        self._noise = np.empty((SEED_BLOCK, dim), dtype=np.float32)

    def fill(self, block: int, z: np.ndarray, out: np.ndarray) -> None:
        """Write the image rows of one seed block, from its latent ``z``, into ``out`` (a
        C-contiguous float32 (rows, dim) slice of the final array: no temporary of that size
        but the reused float32 noise buffer)."""
        u = _rng(self.seed, _NUISANCE, block).standard_normal((len(z), _NUISANCE_DIM))
        np.matmul(np.hstack([z, u]), self.mixing, out=out)
        out += self.bias
        # Pixel noise uniform on +-sqrt(3) (unit variance) in float32: five times faster to
        # draw than normal noise, half the memory traffic, and the features need no more.
        noise = self._noise[: len(out)]
        _rng(self.seed, _PIXELS, block).random(out=noise, dtype=np.float32)
        noise -= 0.5
        noise *= 2.0 * np.sqrt(3.0) * self.pixel_noise
        out += noise
        np.maximum(out, 0.0, out=out)
        out *= self.gain


def _draw_labels(seed: int, block: int, rows: int, n_labels: int) -> np.ndarray:
    """Multi-hot uint8 labels (rows, n_labels) of one seed block: 1 + Poisson(0.4) distinct
    classes per item, Zipf-weighted (class k ~ 1 / k ** 0.8), drawn by Gumbel top-k."""
    rng = _rng(seed, _LABELS, block)
    count = np.minimum(1 + rng.poisson(_LABEL_RATE, size=rows), n_labels)
    keys = -0.8 * np.log(np.arange(1, n_labels + 1)) + rng.gumbel(size=(rows, n_labels))
    out = np.zeros((rows, n_labels), dtype=np.uint8)
    chosen = (np.arange(n_labels) < count[:, None]).astype(np.uint8)  # the top `count` keys
    np.put_along_axis(out, np.argsort(-keys, axis=1), chosen, axis=1)
    return out


def make_synthetic_nuswide(
    n: int = 186_577,
    dims: tuple[int, int] = (4096, 1000),
    *,
    n_labels: int = 10,
    n_query: int = 2100,
    n_train: int = 10_500,
    latent_dim: int = 32,
    latent_noise: float = 0.8,
    pixel_noise: float = 0.5,
    tags_per_item: float = 10.0,
    tag_gain: float = 1.5,
    random_state: int = 0,
    name: str = "synthetic-nuswide",
) -> Dataset:
    """SYNTHETIC NUS-WIDE-shaped data: fc7-like images, sparse binary tags, 10 multi-hot labels.

    Parameters
    ----------
    n : number of pairs (186,577 in the NUS-WIDE 10-class protocol).
    dims : (image_dim, text_dim); the protocol's 4,096-d fc7 and 1,000-d tag vectors.
    n_labels : number of classes (10).
    n_query, n_train : queries (drawn from all rows) and training rows (drawn from the others;
        the retrieval set is every non-query row). Validation is a fixed 10% of train
        (:func:`mmhash.data.splits.validation_subset`).
    latent_dim, latent_noise, pixel_noise, tags_per_item, tag_gain : the generative model (see
        the module docstring); larger noise = harder, larger ``tag_gain`` = tags tied closer to
        the labels.
    random_state : seed; the same arguments always give the same arrays.

    Returns
    -------
    Dataset ``synthetic=True`` with float32 views ``image`` (n, image_dim), non-negative, about
    70% zeros, and ``text`` (n, text_dim) in {0, 1}, at least one tag per row; uint8 labels
    (n, n_labels), every row with 1 or more labels. The full size takes 3.8 GB.
    """
    image_dim, text_dim = (int(d) for d in dims)
    n, n_query, n_train = int(n), int(n_query), int(n_train)
    _check_sizes(n, {"image": image_dim, "text": text_dim}, n_query, n_train)
    if n_labels < 1 or tags_per_item <= 0:
        raise InvalidInputError(f"n_labels must be >= 1 and tags_per_item > 0, got {n_labels}, "
                                f"{tags_per_item}")
    rng = _rng(random_state, _MODEL)
    latent = _LatentModel(rng, n_labels, latent_dim, latent_noise, random_state)
    image_model = _ImageModel(rng, latent_dim, image_dim, pixel_noise, random_state)
    tag_map = rng.standard_normal((latent_dim, text_dim))
    popularity = 1.0 / np.arange(1, text_dim + 1) ** 0.6
    tag_rate = tags_per_item * popularity / popularity.sum()
    rng.shuffle(tag_rate)  # popular tags are not the first columns
    # Var(z . V_j) = |z|^2 with V ~ N(0, 1): about 1 (the unit label mean) + latent_noise^2.
    log_rate = np.log(tag_rate) - 0.5 * tag_gain**2 * (1.0 + latent_noise**2)

    labels = np.empty((n, n_labels), dtype=np.uint8)
    image = np.empty((n, image_dim), dtype=np.float32)  # as the released feature files hold
    text = np.empty((n, text_dim), dtype=np.float32)
    for b, s, e in _blocks(n):
        y = labels[s:e] = _draw_labels(random_state, b, e - s, n_labels)
        image_model.fill(b, latent.latent(0, b, y), image[s:e])
        log_p = latent.latent(1, b, y) @ tag_map
        log_p *= tag_gain
        log_p += log_rate
        # u < p in logs: no exp, and p > 1 (clipped to 1) needs no special case
        tags = np.log(_rng(random_state, _TAGS, b).random(log_p.shape)) < log_p
        empty = ~tags.any(axis=1)  # no all-zero text rows: give those items their likeliest tag
        tags[np.flatnonzero(empty), np.argmax(log_p[empty], axis=1)] = True
        text[s:e] = tags

    split_rng = _rng(random_state, _SPLIT)
    order = split_rng.permutation(n)
    query, retrieval = np.sort(order[:n_query]), np.sort(order[n_query:])
    train = np.sort(split_rng.choice(retrieval, size=n_train, replace=False))
    split = Split(query=query, retrieval=retrieval, train=train,
                  validation=validation_subset(train))
    info = {
        "description": "SYNTHETIC NUS-WIDE-shaped data (mmhash.data.standard_shaped."
                       "make_synthetic_nuswide); every array generated",
        "params": {"generator": "make_synthetic_nuswide", "n": n, "dims": [image_dim, text_dim],
                   "n_labels": n_labels, "n_query": n_query, "n_train": n_train,
                   "latent_dim": latent_dim, "latent_noise": latent_noise,
                   "pixel_noise": pixel_noise, "tags_per_item": tags_per_item,
                   "tag_gain": tag_gain, "random_state": random_state, "dtype": "float32"},
    }
    return Dataset(name, {"image": image, "text": text}, labels, split, synthetic=True,
                   info=info)


def make_synthetic_mirflickr(
    files: Mapping[str, str | Path],
    *,
    n: int | None = None,
    image_dim: int = 4096,
    n_query: int = QUERY_ROWS,
    n_train: int = TRAIN_ROWS,
    latent_dim: int = 32,
    latent_noise: float = 0.8,
    pixel_noise: float = 0.5,
    random_state: int = 0,
    name: str = "synthetic-mirflickr",
) -> Dataset:
    """SYNTHETIC MIRFlickr-25K: the REAL tags and labels with a generated fc7-like image view.

    Parameters
    ----------
    files : ``{"text": .../mirflickr25k-yall.mat, "labels": .../mirflickr25k-lall.mat}``, the
        DCMH family's files (read with :func:`mmhash.data.formats.dcmh.read_role`).
    n : use only the first ``n`` rows (tests); default all 20,015.
    image_dim : dimension of the generated image view (4,096 like VGG fc7).
    n_query, n_train : the family's split: rows ``0..n_query-1`` are the queries, the rest the
        retrieval set, and ``n_train`` retrieval rows the training set -- the stored draw
        (``mirflickr25k.npz``) at the standard sizes, else
        :func:`~mmhash.data.formats.dcmh.training_draw`; validation a fixed 10% of train.
    latent_dim, latent_noise, pixel_noise : the image model (see the module docstring).
    random_state : seed of the image view; the text and labels are the files' rows.

    Returns
    -------
    Dataset ``synthetic=True`` with float32 views ``image`` (n, image_dim) (generated,
    non-negative) and ``text`` (n, 1386) (real ``YAll`` rows, {0, 1}, as the file stores them);
    uint8 labels (n, 24) (real ``LAll`` rows). Full size: 0.44 GB.
    """
    for role in ("text", "labels"):
        if role not in files:
            raise InvalidInputError(f"files needs a {role!r} path (the -yall.mat and -lall.mat "
                                    f"files); got {', '.join(files) or 'none'}")
    text, _ = read_role(files["text"], "text")
    labels, _ = read_role(files["labels"], "labels")
    if len(text) != len(labels):
        raise DataError(f"{files['text']} has {len(text)} rows, {files['labels']} "
                        f"{len(labels)}: not the same items")
    if n is not None:
        if not 0 < int(n) <= len(labels):
            raise InvalidInputError(f"n must be in 1..{len(labels)}, got {n}")
        text, labels = text[: int(n)], labels[: int(n)]
    n = len(labels)
    n_query, n_train = int(n_query), int(n_train)
    _check_sizes(n, {"image": int(image_dim)}, n_query, n_train)

    rng = _rng(random_state, _MODEL)
    latent = _LatentModel(rng, labels.shape[1], latent_dim, latent_noise, random_state)
    image_model = _ImageModel(rng, latent_dim, int(image_dim), pixel_noise, random_state)
    image = np.empty((n, int(image_dim)), dtype=np.float32)  # as the released VGG files hold
    for b, s, e in _blocks(n):
        image_model.fill(b, latent.latent(0, b, labels[s:e]), image[s:e])

    parts, training_note = family_parts(n, n_query, n_train)
    split, definition = split_from_parts(parts)
    info = {
        "description": "SYNTHETIC MIRFlickr-25K (mmhash.data.standard_shaped."
                       "make_synthetic_mirflickr): real YAll tags and LAll labels, generated "
                       "image view",
        "params": {"generator": "make_synthetic_mirflickr", "n": n, "image_dim": int(image_dim),
                   "n_query": n_query, "n_train": n_train, "latent_dim": latent_dim,
                   "latent_noise": latent_noise, "pixel_noise": pixel_noise,
                   "random_state": random_state, "dtype": "float32",
                   # the real rows are part of the data: other files are other data
                   "sha256": {role: sha256(files[role]) for role in ("text", "labels")}},
        "real": {"text": str(files["text"]), "labels": str(files["labels"])},
        "split_rule": f"{definition}; training draw {training_note}",
    }
    return Dataset(name, {"image": image, "text": text}, labels, split, synthetic=True,
                   info=info)
