"""A cell's codes, kept with its results: bit-packed, compressed, enough to recompute any metric.

ann-benchmarks keeps raw results so that a new metric never needs a rerun; mmhash keeps each
cell's codes for the same reason. :class:`CodeSet` holds the query codes of every view and either
the retrieval codes of every view (``per-view`` database) or one database code per item
(``unified``). :meth:`CodeSet.to_bytes` packs them 8 bits a byte and compresses them with
zlib (``numpy.savez_compressed``): wiki at 128 bits (693 queries, 2,173 items, 2 views) is
about 90 KB before compression. Labels are stored once per dataset fingerprint, with
:func:`labels_to_bytes`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mmhash.errors import DataError

_FORMAT = "mmhash-codes/1"


@dataclass(frozen=True)
class CodeSet:
    """The codes of one cell, int8 in {-1, +1}.

    Attributes
    ----------
    views : the views the cell was fitted on, in order.
    query : view -> (Q, n_bits) codes of the query items seen through that view.
    retrieval : view -> (N, n_bits) codes of the retrieval items (empty with a unified database).
    database : (N, n_bits) unified database codes, or None.
    """

    views: tuple[str, ...]
    query: Mapping[str, np.ndarray]
    retrieval: Mapping[str, np.ndarray]
    database: np.ndarray | None = None

    def retrieval_for(self, view: str) -> np.ndarray:
        """The codes a task with retrieval view ``view`` ranks: the unified database codes when
        there are any, else that view's codes."""
        return self.database if self.database is not None else self.retrieval[view]

    def to_bytes(self) -> bytes:
        """Bit-packed (``numpy.packbits``, +1 -> 1) and zlib-compressed ``.npz`` bytes."""
        arrays = {f"query/{v}": self.query[v] for v in self.views}
        arrays.update({f"retrieval/{v}": c for v, c in self.retrieval.items()})
        if self.database is not None:
            arrays["database"] = self.database
        n_bits = {name: int(c.shape[1]) for name, c in arrays.items()}
        packed = {name: np.packbits(c > 0, axis=1) for name, c in arrays.items()}
        meta = {"format": _FORMAT, "views": list(self.views), "n_bits": n_bits}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, __meta__=np.array(json.dumps(meta)), **packed)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> CodeSet:
        """The codes written by :meth:`to_bytes`; a clear error for anything else."""
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                meta = json.loads(str(npz["__meta__"]))
                if meta.get("format") != _FORMAT:
                    raise ValueError(f"format {meta.get('format')!r}, expected {_FORMAT!r}")
                arrays = {name: _unpack(npz[name], bits) for name, bits in meta["n_bits"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"stored codes cannot be read ({exc})") from None
        views = tuple(meta["views"])
        return cls(views, {v: arrays[f"query/{v}"] for v in views},
                   {v: arrays[f"retrieval/{v}"] for v in views if f"retrieval/{v}" in arrays},
                   arrays.get("database"))


def _unpack(packed: np.ndarray, n_bits: int) -> np.ndarray:
    bits = np.unpackbits(packed, axis=1, count=n_bits)
    return (bits.astype(np.int8) * 2 - 1).astype(np.int8)


def labels_to_bytes(query_labels: np.ndarray, retrieval_labels: np.ndarray) -> bytes:
    """A dataset's query and retrieval labels (as given: class ids or multi-hot), compressed."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, query=np.asarray(query_labels),
                        retrieval=np.asarray(retrieval_labels))
    return buffer.getvalue()


def labels_from_bytes(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``(query_labels, retrieval_labels)`` written by :func:`labels_to_bytes`."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            return npz["query"], npz["retrieval"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"stored labels cannot be read ({exc})") from None

