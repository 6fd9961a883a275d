"""Fixed splits: the stored index files of registered datasets, and the rules for a user's file.

Registered datasets use the index arrays in ``mmhash/data/splits/<file>.npz`` (keys ``query``,
``retrieval``, ``train``, ``validation``; int64 row indices), written once by
``datasets/make_splits.py`` (in the source tree) and never re-drawn at run time. A user's file
gets the split it carries (train/test, train/query/database, ``*_idx``), or a generated one that is
recorded as generated.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from mmhash.data.dataset import PARTS, Split
from mmhash.errors import DataError

VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 0
QUERY_FRACTION = 0.2
GENERATED_SEED = 0


def validation_subset(
    train: np.ndarray, fraction: float = VALIDATION_FRACTION, seed: int = VALIDATION_SEED
) -> np.ndarray:
    """A fixed subset of ``train`` (sorted int64): ``round(fraction * len(train))`` rows, >= 1.

    Drawn with ``numpy.random.default_rng(seed)``, so the same training rows always give the
    same validation rows.
    """
    train = np.asarray(train, dtype=np.int64)
    size = max(1, int(round(fraction * len(train))))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=size, replace=False)).astype(np.int64)


def generated_split(
    n: int, *, query_fraction: float = QUERY_FRACTION, seed: int = GENERATED_SEED
) -> Split:
    """The split of a file that carries none: a random ``query_fraction`` of the rows are queries
    (``default_rng(seed)``), the rest are train = retrieval, and 10% of train is validation."""
    if n < 3:
        raise DataError(f"cannot split {n} items into query, train and validation")
    order = np.random.default_rng(seed).permutation(n)
    n_query = min(n - 2, max(1, int(round(query_fraction * n))))
    query, train = np.sort(order[:n_query]), np.sort(order[n_query:])
    return Split(query=query, retrieval=train, train=train, validation=validation_subset(train))


def split_from_parts(parts: Mapping[str, np.ndarray]) -> tuple[Split, str] | None:
    """The split a file carries, from its parts (see :attr:`RawData.parts`); None if it has none.

    ``test`` or ``query`` rows are the queries; ``train`` rows the training set; ``database`` or
    ``retrieval`` rows the retrieval set (default: the training set, the Wikipedia protocol);
    ``validation`` rows as given, else a fixed 10% of train (:func:`validation_subset`).
    Returns the split and a one-line description of where each part came from.
    """
    query = parts.get("query", parts.get("test"))
    if query is None:
        return None
    retrieval = parts.get("retrieval", parts.get("database"))
    train = parts.get("train", retrieval)
    if train is None:
        return None
    said = ["query = the file's " + ("query" if "query" in parts else "test") + " rows"]
    said.append("train = the file's " + ("train" if "train" in parts else "retrieval") + " rows")
    if retrieval is None:
        retrieval = train
        said.append("retrieval = train")
    else:
        said.append("retrieval = the file's " + ("retrieval" if "retrieval" in parts else
                                                 "database") + " rows")
    if "validation" in parts:
        validation = parts["validation"]
        said.append("validation = the file's validation rows")
    else:
        validation = validation_subset(train)
        said.append(f"validation = {VALIDATION_FRACTION:.0%} of train (seed {VALIDATION_SEED})")
    split = Split(query=query, retrieval=retrieval, train=train, validation=validation)
    return split, "; ".join(said)


def save_split(path: str | Path, split: Split) -> None:
    """Write a split as ``.npz`` with int64 arrays ``query``, ``retrieval``, ``train``,
    ``validation``."""
    np.savez(Path(path), **{p: np.asarray(getattr(split, p), dtype=np.int64) for p in PARTS})


def read_split(source: str | Path | io.BytesIO, label: str = "split file") -> Split:
    """Read a split written by :func:`save_split`; :class:`DataError` if a part is missing."""
    try:
        with np.load(source, allow_pickle=False) as z:
            missing = [p for p in PARTS if p not in z.files]
            if missing:
                raise DataError(f"{label}: missing part(s) {', '.join(missing)}; found "
                                f"{', '.join(z.files)}")
            return Split(**{p: z[p] for p in PARTS})
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{label}: not a readable split file ({type(e).__name__})") from e


@cache
def stored_split(filename: str) -> Split:
    """The split shipped in the package as ``mmhash/data/splits/<filename>`` (cached; the
    arrays are read-only)."""
    resource = resources.files("mmhash.data").joinpath("splits").joinpath(filename)
    if not resource.is_file():
        raise DataError(f"the package has no stored split {filename!r} (mmhash/data/splits/)")
    return read_split(io.BytesIO(resource.read_bytes()), f"mmhash/data/splits/{filename}")
