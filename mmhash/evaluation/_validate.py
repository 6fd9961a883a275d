"""Input checks of the evaluation functions; every message names the offending argument."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmhash.errors import InvalidInputError, UnknownNameError
from mmhash.evaluation.ties import TIE_POLICIES

_SHOW = 10  # how many offending values a message lists


def _values(arr: np.ndarray) -> str:
    found = np.unique(arr)
    shown = ", ".join(repr(v.item()) for v in found[:_SHOW])
    return f"[{shown}{', ...' if len(found) > _SHOW else ''}]"


def _numeric(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a numeric array ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def check_codes(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a 2-D array of codes in {-1, +1} (its own dtype), or raise.

    Bits given as {0, 1} or booleans are refused rather than guessed: ``2 * bits - 1`` converts.
    """
    arr = _numeric(x, name)
    if arr.dtype.kind == "b":
        raise InvalidInputError(
            f"{name} must hold codes in {{-1, +1}}, got a boolean array (convert bits with 2*b - 1)"
        )
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must be 2-D (n_items, n_bits), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{name} is empty (shape {arr.shape})")
    bad = (arr != 1) & (arr != -1)
    if bad.any():
        raise InvalidInputError(
            f"{name} must hold only -1 and +1; found other values {_values(arr[bad])}"
        )
    return arr


def check_code_pair(query_codes: Any, retrieval_codes: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check both code matrices and that they have the same number of bits."""
    q = check_codes(query_codes, "query_codes")
    r = check_codes(retrieval_codes, "retrieval_codes")
    if q.shape[1] != r.shape[1]:
        raise InvalidInputError(
            "query_codes and retrieval_codes must have the same number of bits, "
            f"got {q.shape[1]} and {r.shape[1]}"
        )
    return q, r


def _labels(x: Any, name: str) -> np.ndarray:
    arr = _numeric(x, name)
    if arr.ndim == 1:
        if arr.shape[0] == 0:
            raise InvalidInputError(f"{name} is empty (shape {arr.shape})")
        if arr.dtype.kind == "b":
            raise InvalidInputError(
                f"{name} is 1-D, so it must hold integer class ids, got a boolean array"
            )
        if arr.dtype.kind == "f":
            bad = ~np.isfinite(arr) | (arr != np.round(arr))
            if bad.any():
                raise InvalidInputError(
                    f"{name} is 1-D, so it must hold integer class ids; "
                    f"found non-integer values {_values(arr[bad])}"
                )
        return arr
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must be 2-D multi-hot (n_items, n_classes) or 1-D class ids, "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{name} is empty (shape {arr.shape})")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        raise InvalidInputError(
            f"{name} is 2-D, so it must be multi-hot with values 0 and 1; found other values "
            f"{_values(arr[bad])} (pass class ids as a 1-D vector)"
        )
    return arr


def check_label_pair(query_labels: Any, retrieval_labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return both label sets as bool multi-hot matrices over the same classes.

    Two 1-D class-id vectors become one-hot over the union of their ids, so items are relevant
    exactly when their ids are equal. A 1-D and a 2-D set together are refused: the column order
    of the multi-hot matrix cannot be matched to ids safely.
    """
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
        n_classes = int(inverse.max()) + 1
        onehot = np.zeros((len(inverse), n_classes), dtype=bool)
        onehot[np.arange(len(inverse)), inverse] = True
        return onehot[: len(q)], onehot[len(q) :]
    if q.shape[1] != r.shape[1]:
        raise InvalidInputError(
            "query_labels and retrieval_labels must have the same number of classes, "
            f"got {q.shape[1]} and {r.shape[1]}"
        )
    return q.astype(bool), r.astype(bool)


def check_rows(codes: np.ndarray, labels: np.ndarray, side: str) -> None:
    """Codes and labels of one side (``"query"`` or ``"retrieval"``) must have equal rows."""
    if codes.shape[0] != labels.shape[0]:
        raise InvalidInputError(
            f"{side}_labels has {labels.shape[0]} rows but {side}_codes has {codes.shape[0]}; "
            "row i of both must describe the same item"
        )


def check_tie(tie: Any) -> str:
    """Return ``tie`` if it names a tie policy, else raise :class:`UnknownNameError`."""
    if not isinstance(tie, str) or tie not in TIE_POLICIES:
        raise UnknownNameError("tie policy", str(tie), TIE_POLICIES)
    return tie


def check_k(k: Any, name: str) -> int:
    """Return ``k`` as a Python int if it is a positive integer (not bool), else raise."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {k!r}")
    return int(k)
