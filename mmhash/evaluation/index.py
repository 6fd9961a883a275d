"""``HammingIndex``: exact Hamming search over binary codes, ties broken by index.

Codes are kept packed in 64-bit words (:mod:`mmhash.evaluation.packing`); search runs on the
engine's numba kernels by default. Items are numbered 0, 1, ... in the order they were added, and
every result is ordered by distance, then by that number -- the same order as a stable sort of
the distances, so results are reproducible and independent of threads.

The optional ``backend="faiss"`` hands the stored codes to FAISS's ``IndexBinaryFlat`` (needs
``faiss-cpu``), for users who already run FAISS. Its distances are the same; inside a group of
equal distance FAISS chooses which items fill the last places of a top-k, so only the numba
backend guarantees "ties by index" there (radius search is exact with both: its groups are
whole, and mmhash sorts them).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mmhash.errors import DataError, InvalidInputError, UnknownNameError
from mmhash.evaluation import engine
from mmhash.evaluation._validate import check_k
from mmhash.evaluation.packing import check_packed, n_words, pack_codes

BACKENDS = ("numba", "faiss")

_FORMAT = "mmhash.HammingIndex"
_VERSION = 1


class HammingIndex:
    """Exact nearest-neighbour search by Hamming distance.

    Parameters
    ----------
    n_bits : code length (positive int); every added and queried code must have it.
    backend : ``"numba"`` (default, the engine's kernels) or ``"faiss"`` (FAISS
        ``IndexBinaryFlat``; optional dependency ``faiss-cpu``).

    Examples
    --------
    >>> index = HammingIndex(64)
    >>> index.add(database_codes)                 # (N, 64) int8 in {-1, +1}
    >>> distances, indices = index.search(query_codes, k=50)
    """

    def __init__(self, n_bits: int, *, backend: str = "numba"):
        if isinstance(n_bits, (bool, np.bool_)) or not isinstance(n_bits, (int, np.integer)):
            raise InvalidInputError(f"n_bits must be a positive integer, got {n_bits!r}")
        if n_bits < 1:
            raise InvalidInputError(f"n_bits must be a positive integer, got {n_bits!r}")
        if backend not in BACKENDS:
            raise UnknownNameError("search backend", str(backend), BACKENDS)
        self.n_bits = int(n_bits)
        self.backend = backend
        self._chunks: list[np.ndarray] = []  # packed (n, W) blocks in the order added
        self._words_t: np.ndarray | None = None  # (W, N) word-major copy the kernels read
        self._faiss = None
        if backend == "faiss":
            _faiss()  # fail now, not at the first search

    # ------------------------------------------------------------------ contents

    @property
    def ntotal(self) -> int:
        """Number of stored codes."""
        return sum(len(c) for c in self._chunks)

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        return f"HammingIndex(n_bits={self.n_bits}, ntotal={self.ntotal}, backend={self.backend!r})"

    @property
    def words(self) -> np.ndarray:
        """The stored codes, packed: uint64 (ntotal, ceil(n_bits / 64)) (a copy)."""
        if not self._chunks:
            return np.empty((0, n_words(self.n_bits)), dtype=np.uint64)
        return np.concatenate(self._chunks)

    def add(self, codes: Any, *, packed: bool = False) -> None:
        """Append codes; they get the next item numbers.

        Parameters
        ----------
        codes : (n, n_bits) int array in {-1, +1}; or, with ``packed=True``, uint64
            (n, ceil(n_bits / 64)) words as made by :func:`mmhash.evaluation.pack_codes`.
        """
        words = self._pack(codes, packed, "codes")
        self._chunks.append(words)
        self._words_t = None
        self._faiss = None

    # ------------------------------------------------------------------ search

    def search(self, queries: Any, k: int, *, packed: bool = False):
        """The ``k`` nearest stored codes of each query, exact.

        Parameters
        ----------
        queries : (Q, n_bits) int array in {-1, +1} (or packed words with ``packed=True``).
        k : positive int; ``k > ntotal`` returns all ``ntotal`` items.

        Returns
        -------
        ``(distances, indices)``: int32 (Q, min(k, ntotal)) and int64 (Q, min(k, ntotal)), each
        row ascending in distance, then in item number.
        """
        k = check_k(k, "k")
        q = self._pack(queries, packed, "queries")
        self._check_not_empty()
        if self.backend == "faiss":
            return self._faiss_search(q, min(k, self.ntotal))
        return engine.search(q, self._database(), self.n_bits, k)

    def radius_search(self, queries: Any, radius: int, *, packed: bool = False):
        """Every stored code within Hamming distance ``radius`` (inclusive) of each query.

        Parameters
        ----------
        queries : (Q, n_bits) int array in {-1, +1} (or packed words with ``packed=True``).
        radius : int >= 0.

        Returns
        -------
        ``(offsets, distances, indices)``: int64 (Q + 1,), int32 (M,), int64 (M,). The results
        of query ``q`` are ``distances[offsets[q]:offsets[q + 1]]`` (and the same slice of
        ``indices``), ascending in distance, then in item number.
        """
        if (
            isinstance(radius, (bool, np.bool_))
            or not isinstance(radius, (int, np.integer))
            or radius < 0
        ):
            raise InvalidInputError(f"radius must be a non-negative integer, got {radius!r}")
        q = self._pack(queries, packed, "queries")
        self._check_not_empty()
        if self.backend == "faiss":
            return self._faiss_radius(q, int(radius))
        return engine.radius_search(q, self._database(), self.n_bits, int(radius))

    # ------------------------------------------------------------------ persistence

    def save(self, path, *, extra: dict[str, np.ndarray] | None = None) -> None:
        """Write the index to ``path`` (an ``.npz`` file, or an open binary file; no pickle).
        ``extra`` arrays are stored beside the index's own (e.g. row ids); :meth:`load` ignores
        them."""
        np.savez(
            path,
            **(extra or {}),
            format=np.array(_FORMAT),
            version=np.array(_VERSION),
            n_bits=np.array(self.n_bits),
            backend=np.array(self.backend),
            words=self.words,
        )

    @classmethod
    def load(cls, path: str | os.PathLike, *, backend: str | None = None) -> HammingIndex:
        """Read an index written by :meth:`save`; ``backend`` overrides the saved one."""
        from mmhash.codefiles import NPZ_ERRORS, npz_problem

        try:
            with np.load(path, allow_pickle=False) as f:
                fields = {name: f[name] for name in f.files}
        except (*NPZ_ERRORS, TypeError) as exc:  # TypeError: a .npy, not an .npz
            raise DataError(f"cannot read a HammingIndex from {os.fspath(path)!r}: "
                            f"{npz_problem(exc)}") from None
        if fields.get("format", np.array("")).item() != _FORMAT:
            raise DataError(f"{os.fspath(path)!r} is not a saved HammingIndex")
        if int(fields["version"]) != _VERSION:
            raise DataError(
                f"{os.fspath(path)!r} is a HammingIndex of format version {int(fields['version'])}"
                f"; this mmhash reads version {_VERSION}"
            )
        index = cls(int(fields["n_bits"]), backend=backend or str(fields["backend"]))
        try:
            words = check_packed(fields["words"], index.n_bits, "the saved words")
        except InvalidInputError as exc:
            raise DataError(f"{os.fspath(path)!r} is corrupt: {exc}") from None
        if len(words):
            index._chunks.append(words)
        return index

    # ------------------------------------------------------------------ internals

    def _pack(self, codes: Any, packed: bool, name: str) -> np.ndarray:
        if packed:
            return check_packed(codes, self.n_bits, name)
        words = pack_codes(codes, name)
        got = np.shape(codes)[1]
        if got != self.n_bits:
            raise InvalidInputError(
                f"{name} have {got} bits but the index holds {self.n_bits}-bit codes"
            )
        return words

    def _check_not_empty(self) -> None:
        if not self._chunks or self.ntotal == 0:
            raise InvalidInputError("the index is empty: add codes before searching")

    def _database(self) -> np.ndarray:
        if self._words_t is None:
            self._words_t = np.ascontiguousarray(self.words.T)
        return self._words_t

    def _faiss_index(self):
        if self._faiss is None:
            faiss = _faiss()
            words = self.words
            # the zero padding bits of the last word add nothing to any distance, so FAISS can
            # index the whole words: d = 64 W bits, always a multiple of 8
            index = faiss.IndexBinaryFlat(words.shape[1] * 64)
            index.add(_as_bytes(words))
            self._faiss = index
        return self._faiss

    def _faiss_search(self, q: np.ndarray, k: int):
        distances, indices = self._faiss_index().search(_as_bytes(q), k)
        # FAISS's order inside a tie group is its own; sort each row by (distance, item) so at
        # least the returned items come in the documented order
        order = np.lexsort((indices, distances), axis=1)
        return (
            np.take_along_axis(distances, order, axis=1).astype(np.int32),
            np.take_along_axis(indices, order, axis=1).astype(np.int64),
        )

    def _faiss_radius(self, q: np.ndarray, radius: int):
        # FAISS's binary range search returns distances < radius (strict)
        lims, distances, indices = self._faiss_index().range_search(_as_bytes(q), radius + 1)
        lims = lims.astype(np.int64)
        rows = np.repeat(np.arange(len(q)), np.diff(lims))
        order = np.lexsort((indices, distances, rows))
        return lims, distances[order].astype(np.int32), indices[order].astype(np.int64)


def _as_bytes(words: np.ndarray) -> np.ndarray:
    """uint64 (n, W) -> uint8 (n, 8 W), little-endian: FAISS's binary code layout."""
    return np.ascontiguousarray(words.astype("<u8", copy=False)).view(np.uint8)


def _faiss():
    try:
        import faiss
    except ImportError:
        raise InvalidInputError(
            "backend 'faiss' needs the optional package faiss-cpu (pip install faiss-cpu); "
            "the default backend 'numba' needs nothing more"
        ) from None
    return faiss
