"""The in-memory dataset every reader returns: paired views, multi-hot labels, a fixed split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmhash.errors import DataError, UnknownNameError

PARTS = ("query", "retrieval", "train", "validation")
#: How the name of a dataset's validation protocol (:meth:`Dataset.validation_protocol`, what
#: ``mmhash tune`` scores on) ends: ``wiki:validation``.
VALIDATION_SUFFIX = ":validation"


def is_validation_name(name: str) -> bool:
    """Whether ``name`` names a validation protocol (model selection), not a benchmark set."""
    return str(name).endswith(VALIDATION_SUFFIX)


@dataclass(frozen=True)
class Split:
    """Fixed index arrays (int64, into the dataset's rows) for each part of the protocol.

    ``query`` and ``retrieval`` are the evaluation sets; methods are fitted on ``train`` and may
    select hyperparameters or epochs only on ``validation`` (a part of the training data, used as
    validation queries against the rest of ``train``). ``retrieval`` may equal ``train`` (the
    Wikipedia protocol). ``query`` never overlaps ``train`` or ``validation``.
    """

    query: np.ndarray
    retrieval: np.ndarray
    train: np.ndarray
    validation: np.ndarray

    def __post_init__(self) -> None:
        for part in PARTS:
            idx = np.asarray(getattr(self, part), dtype=np.int64)
            idx.setflags(write=False)
            object.__setattr__(self, part, idx)

    def check(self, n: int, name: str) -> None:
        """Raise :class:`DataError` if an index is out of range or the query leaks into training."""
        for part in PARTS:
            idx = getattr(self, part)
            if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
                raise DataError(
                    f"dataset {name!r}: split part {part!r} has indices outside 0..{n - 1}"
                )
            if len(np.unique(idx)) != len(idx):
                raise DataError(f"dataset {name!r}: split part {part!r} repeats indices")
        if len(self.query) == 0 or len(self.train) == 0 or len(self.retrieval) == 0:
            raise DataError(f"dataset {name!r}: query, retrieval and train must be non-empty")
        if np.intersect1d(self.query, self.train).size:
            raise DataError(f"dataset {name!r}: query indices overlap the training set")


def _all_finite(X: np.ndarray, rows: int = 8192) -> bool:
    """``np.isfinite(X).all()`` a block of rows at a time: no boolean copy of a whole view
    (764 MB for synthetic-nuswide's 186,577 x 4,096 image view)."""
    return all(np.isfinite(X[i:i + rows]).all() for i in range(0, len(X), rows))


@dataclass
class Dataset:
    """Paired multimodal data with labels and a fixed split.

    Attributes
    ----------
    name : str
        Registry name (``wiki``), or the file name for a user's file.
    views : dict str -> float64 array (n, d_m)
        One matrix per modality, rows paired across views, in the dataset's view order
        (the first view is the "image" side of image-text sets).
    labels : uint8 array (n, n_classes)
        Multi-hot labels; used only for evaluation (relevance = sharing a label).
    split : Split
    synthetic : bool
        True for generated data; reports name it as synthetic.
    info : dict
        Provenance: source files and their sha256, reader, description.
    """

    name: str
    views: dict[str, np.ndarray]
    labels: np.ndarray
    split: Split
    synthetic: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.views:
            raise DataError(f"dataset {self.name!r} has no views")
        n = self.n_samples
        for view, X in self.views.items():
            if X.ndim != 2 or X.shape[0] != n:
                raise DataError(
                    f"dataset {self.name!r}: view {view!r} has shape {X.shape}, expected ({n}, d)"
                )
            if not _all_finite(X):
                raise DataError(f"dataset {self.name!r}: view {view!r} has NaN or infinite values")
        labels = np.asarray(self.labels)
        if labels.ndim != 2 or labels.shape[0] != n:
            raise DataError(
                f"dataset {self.name!r}: labels have shape {labels.shape}, expected ({n}, c)"
            )
        self.labels = (labels > 0).astype(np.uint8)
        self.split.check(n, self.name)

    @property
    def n_samples(self) -> int:
        return int(next(iter(self.views.values())).shape[0])

    @property
    def view_names(self) -> list[str]:
        return list(self.views)

    def part(self, part: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Views and labels of one split part: (dict view -> (n_part, d), uint8 (n_part, c))."""
        labels = self.part_labels(part)  # checks the part's name
        idx = getattr(self.split, part)
        return {v: X[idx] for v, X in self.views.items()}, labels

    def part_labels(self, part: str) -> np.ndarray:
        """Labels of one split part, uint8 (n_part, c), without copying its views (which
        :meth:`part` does: 3.8 GB for the retrieval set of a NUS-WIDE-sized set)."""
        if part not in PARTS:
            raise UnknownNameError("split part", part, PARTS)
        return self.labels[getattr(self.split, part)]

    def select_views(self, names: list[str]) -> Dataset:
        """The same dataset restricted to some views (in the given order)."""
        for v in names:
            if v not in self.views:
                raise UnknownNameError("modality", v, self.views)
        return Dataset(
            self.name, {v: self.views[v] for v in names}, self.labels, self.split,
            self.synthetic, dict(self.info),
        )

    def validation_protocol(self) -> Dataset:
        """The dataset model selection sees: the *training rows only*, with the validation rows
        as queries and the rest of the training rows as training and retrieval set.

        Named ``<name>:validation``; the test queries (and any retrieval row outside training)
        are not in it at all, so nothing fitted or scored on it can read them.
        """
        train, held_out = self.split.train, self.split.validation
        if len(held_out) == 0:
            raise DataError(f"dataset {self.name!r} has no validation rows to select on")
        rows = np.asarray(train)
        position = {int(r): i for i, r in enumerate(rows)}
        queries = np.array(sorted(position[int(r)] for r in held_out), dtype=np.int64)
        fit = np.setdiff1d(np.arange(len(rows), dtype=np.int64), queries)
        split = Split(query=queries, retrieval=fit, train=fit,
                      validation=np.empty(0, dtype=np.int64))
        info = {**self.info, "protocol": (
            f"validation split of {self.name}: {len(queries)} validation rows as queries against "
            f"the other {len(fit)} training rows (fit on those); test queries not included")}
        return Dataset(f"{self.name}{VALIDATION_SUFFIX}",
                       {v: X[rows] for v, X in self.views.items()},
                       self.labels[rows], split, self.synthetic, info)

    def summary(self) -> dict[str, Any]:
        """Sizes and views, as ``mmhash datasets`` shows them."""
        return {
            "name": self.name,
            "n": self.n_samples,
            "views": {v: int(X.shape[1]) for v, X in self.views.items()},
            "classes": int(self.labels.shape[1]),
            "multi_label": bool((self.labels.sum(axis=1) > 1).any()),
            **{part: len(getattr(self.split, part)) for part in PARTS},
            "synthetic": self.synthetic,
        }
