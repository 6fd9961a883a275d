"""Bit packing of codes and labels into 64-bit words, the input format of the fast engine.

Codes: a ``(n, n_bits)`` array in {-1, +1} becomes ``(n, W)`` uint64, ``W = ceil(n_bits / 64)``;
bit ``j`` of the code is bit ``j % 64`` (least significant first) of word ``j // 64``, set for
+1. The unused high bits of the last word are 0, so XOR + popcount counts differing bits only.

Labels: a 2-D multi-hot ``(n, C)`` matrix becomes ``(n, ceil(C / 64))`` uint64 bitmasks (class
``c`` is bit ``c % 64`` of word ``c // 64``), and an item is relevant to a query iff the ANDs of
their words are not all 0. Two 1-D class-id vectors become dense ids over the union of their
values (one uint64 word each), and relevance is equality -- the same relation as the one-hot
form, without ``C`` columns when there are many classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmhash.errors import InvalidInputError
from mmhash.evaluation._validate import _labels, check_codes

WORD_BITS = 64

# Rows packed per step: the bool/uint8 temporaries of one step stay at a few MB.
_PACK_ROWS = 1 << 16


def n_words(n_bits: int) -> int:
    """Number of uint64 words holding ``n_bits`` bits."""
    return -(-int(n_bits) // WORD_BITS)


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """bool (n, B) -> uint64 (n, ceil(B/64)), little-endian bit order inside each word."""
    n, width = bits.shape
    words = n_words(width)
    out = np.zeros((n, words * 8), dtype=np.uint8)
    for start in range(0, n, _PACK_ROWS):
        rows = slice(start, start + _PACK_ROWS)
        packed = np.packbits(bits[rows], axis=1, bitorder="little")
        out[rows, : packed.shape[1]] = packed
    # uint8 -> uint64 views are little-endian on every platform numpy supports for this; make the
    # byte order explicit so a big-endian machine still numbers bits as documented.
    return out.view("<u8").astype(np.uint64, copy=False).reshape(n, words)


def pack_codes(codes: Any, name: str = "codes") -> np.ndarray:
    """Pack ``(n, n_bits)`` codes in {-1, +1} into uint64 words.

    Parameters
    ----------
    codes : (n, n_bits) integer (or float) array holding only -1 and +1.
    name : how error messages call the argument.

    Returns
    -------
    uint64 (n, ceil(n_bits / 64)), C-contiguous; +1 is a set bit, padding bits are 0.
    """
    arr = check_codes(codes, name)
    out = np.empty((arr.shape[0], n_words(arr.shape[1])), dtype=np.uint64)
    for start in range(0, arr.shape[0], _PACK_ROWS):
        rows = slice(start, start + _PACK_ROWS)
        out[rows] = _pack_bits(arr[rows] > 0)
    return out


def unpack_codes(words: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: uint64 (n, W) -> int8 (n, n_bits) in {-1, +1}."""
    words = check_packed(words, n_bits, "words")
    as_bytes = np.ascontiguousarray(words).astype("<u8").view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=1, count=n_bits, bitorder="little")
    return (bits.astype(np.int8) * 2 - 1).astype(np.int8)


def check_packed(words: Any, n_bits: int, name: str) -> np.ndarray:
    """Return ``words`` as C-contiguous uint64 ``(n, ceil(n_bits/64))`` if packed as declared.

    Refused: another dtype (no silent reinterpretation of int64 or uint8 data), a width that does
    not match ``n_bits``, and set bits above ``n_bits`` in the last word (which would be counted
    as differing bits).
    """
    if not isinstance(words, np.ndarray) or words.dtype != np.uint64:
        got = words.dtype if isinstance(words, np.ndarray) else type(words).__name__
        raise InvalidInputError(
            f"{name} must be packed codes: a uint64 numpy array (see pack_codes), got {got}"
        )
    want = n_words(n_bits)
    if words.ndim != 2 or words.shape[1] != want:
        raise InvalidInputError(
            f"{name} must have shape (n, {want}) for {n_bits}-bit codes packed in 64-bit words, "
            f"got {words.shape}"
        )
    spare = want * WORD_BITS - n_bits
    if spare and len(words):
        high = np.uint64(((1 << spare) - 1) << (WORD_BITS - spare))
        if np.any(words[:, -1] & high):
            raise InvalidInputError(
                f"{name} has bits set above bit {n_bits} in its last word, so it is not a "
                f"{n_bits}-bit code packed as declared (padding bits must be 0)"
            )
    return np.ascontiguousarray(words)


@dataclass(frozen=True)
class PackedLabels:
    """Labels of both sides in the form the kernels read.

    ``query``: uint64 (Q, L); ``retrieval_t``: uint64 (L, N), word-major so the kernels stream
    one word of many items at a time. ``ids``: True when each side holds one class id per row
    (L = 1, relevance is equality), False for bitmasks (relevance is a non-zero AND).
    """

    query: np.ndarray
    retrieval_t: np.ndarray
    ids: bool


def pack_label_pair(query_labels: Any, retrieval_labels: Any) -> PackedLabels:
    """Validate both label sets (see :mod:`mmhash.evaluation`) and pack them for the kernels."""
    q = _labels(query_labels, "query_labels")
    r = _labels(retrieval_labels, "retrieval_labels")
    if q.ndim != r.ndim:
        forms = {1: "1-D class ids", 2: "2-D multi-hot"}
        raise InvalidInputError(
            f"query_labels is {forms[q.ndim]} but retrieval_labels is {forms[r.ndim]}; "
            "give both in the same form"
        )
    if q.ndim == 1:
        _, inverse = np.unique(np.concatenate([q, r]), return_inverse=True)
        ids = inverse.astype(np.uint64).reshape(-1, 1)
        return PackedLabels(ids[: len(q)], np.ascontiguousarray(ids[len(q) :].T), True)
    if q.shape[1] != r.shape[1]:
        raise InvalidInputError(
            "query_labels and retrieval_labels must have the same number of classes, "
            f"got {q.shape[1]} and {r.shape[1]}"
        )
    return PackedLabels(
        _pack_bits(q != 0), np.ascontiguousarray(_pack_bits(r != 0).T), False
    )
