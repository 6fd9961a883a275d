"""Statistics of a cell's codes, and what makes a result degenerate.

A table shows one number per cell; a method that collapsed to a handful of codes shows only a
low number there, indistinguishable from one that learned poorly. So every cell stores, per role
(``query`` / ``retrieval``, or the unified ``database``) and view, the statistics of its codes
(:func:`code_statistics`): how many distinct codes, the balance of every bit (fraction of +1)
and which bits are constant. :func:`problems` turns them into the sentences that flag a cell
wherever it is shown (a mark on the value and a footnote):

* **collapsed**: fewer distinct codes than classes (or than items, where there are fewer items
  than classes) in one role and view: such codes cannot tell the classes apart;
* **constant bits**: a bit that takes one value on every item of a role and view carries
  nothing and shortens the code without saying so.

The cost is one pass over the codes plus a sort of their packed rows as 64-bit integers,
``O(N n_bits)`` + ``O(N log N)`` per role and view, against the evaluation's ``O(Q N)`` Hamming
histograms: 3 ms for a wiki-sized cell at 128 bits (evaluation 88 ms), 23 ms for a
NUS-WIDE-sized one at 64 bits (184,477 items; evaluation 540 ms): 3-4% on 2 cores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Digits kept of each bit's balance in the stored statistics.
BALANCE_DIGITS = 4
#: The key of the unified database codes in a cell's statistics (role ``database``).
UNIFIED = "unified"


def code_statistics(codes: np.ndarray) -> dict[str, Any]:
    """The statistics of one block of codes.

    Parameters
    ----------
    codes : int8 (n, n_bits), values in {-1, +1}

    Returns
    -------
    dict with ``rows`` (n), ``bits`` (n_bits), ``distinct`` (number of distinct rows),
    ``balance`` (list of n_bits floats: the fraction of +1 of each bit, rounded to
    :data:`BALANCE_DIGITS` digits) and ``constant`` (indices of the bits that take one value on
    every row, ascending; every bit when ``n`` is 0 or 1).
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (n, n_bits), got shape {codes.shape}")
    n, bits = codes.shape
    positive = codes > 0
    ones = positive.sum(axis=0, dtype=np.int64)
    balance = ones / n if n else np.zeros(bits)
    constant = np.flatnonzero((ones == 0) | (ones == n))
    distinct = _distinct_rows(np.packbits(positive, axis=1)) if n else 0
    return {"rows": int(n), "bits": int(bits), "distinct": int(distinct),
            "balance": [round(float(b), BALANCE_DIGITS) for b in balance],
            "constant": [int(i) for i in constant]}


#: An odd 64-bit constant (2^64 / golden ratio) that mixes the words of a long code.
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _distinct_rows(packed: np.ndarray) -> int:
    """The number of distinct rows of bit-packed codes, uint8 ``(n, n_bits / 8)``, n >= 1.

    Each row is read as 64-bit words. One word (codes up to 64 bits): sort the words and count
    the changes. Longer codes: sort a 64-bit mix of each row's words and count the changes,
    after checking that neighbours with equal mixes are equal rows (on the astronomically rare
    collision, an exact ``np.unique`` of the rows as byte strings). Sorting 64-bit integers is
    several times faster than ``np.unique`` over rows or byte strings.
    """
    n, width = packed.shape
    words = -(-width // 8)
    padded = np.zeros((n, words * 8), dtype=np.uint8)
    padded[:, :width] = packed
    keys = padded.view(np.uint64)
    if words == 1:
        ordered = np.sort(keys[:, 0])
        return 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1]))
    mix = keys[:, 0].copy()
    with np.errstate(over="ignore"):  # wrapping multiplication is the point of the mix
        for j in range(1, words):
            mix = (mix ^ (mix >> np.uint64(29))) * _MIX + keys[:, j]
    order = np.argsort(mix)
    mix, keys = mix[order], keys[order]
    same = mix[1:] == mix[:-1]
    if (keys[1:][same] != keys[:-1][same]).any():  # two rows with one mix: count exactly
        return len(np.unique(np.ascontiguousarray(packed).view(np.dtype((np.void, width)))))
    return 1 + int(np.count_nonzero(~same))


def cell_statistics(codes, n_classes: int) -> dict[str, Any]:
    """The statistics of every block of a cell's codes.

    ``codes``: a :class:`~mmhash.bench.codes.CodeSet`; ``n_classes``: the number of classes
    (columns of multi-hot labels, or distinct class ids) the codes are evaluated against.

    Returns ``{"classes": n_classes, "query": {view: stats}, "retrieval": {view: stats}}``, with
    ``"database": {"unified": stats}`` in place of ``retrieval`` for unified database codes
    (each ``stats`` as :func:`code_statistics` gives it).
    """
    out: dict[str, Any] = {"classes": int(n_classes),
                           "query": {v: code_statistics(codes.query[v]) for v in codes.views}}
    if codes.database is not None:
        out["database"] = {UNIFIED: code_statistics(codes.database)}
    else:
        out["retrieval"] = {v: code_statistics(c) for v, c in codes.retrieval.items()}
    return out


def n_classes(labels: np.ndarray) -> int:
    """The number of classes of a label array: the columns of a 2-D multi-hot array, the
    distinct values of a 1-D array of class ids."""
    labels = np.asarray(labels)
    return int(labels.shape[1]) if labels.ndim == 2 else int(len(np.unique(labels)))


def _block_problems(role: str, view: str, stats: Mapping[str, Any], classes: int | None
                    ) -> list[str]:
    name = f"{view} {role} codes" if view != UNIFIED else "unified database codes"
    found = []
    need = min(classes, stats["rows"]) if classes else None
    if need and stats["distinct"] < need:
        found.append(f"{name}: {stats['distinct']} distinct codes for {stats['rows']} items "
                     f"({classes} classes)")
    if stats["constant"]:
        found.append(f"{name}: {len(stats['constant'])} of {stats['bits']} bits constant")
    return found


def problems(stats: Mapping[str, Any] | None, task: str | None = None) -> list[str]:
    """The sentences that flag a cell's codes as degenerate (empty: nothing to flag).

    ``stats``: what :func:`cell_statistics` returned (None: not recorded, nothing to say).
    ``task``: ``QUERY->RETRIEVAL`` limits the check to the blocks that task ranks (the query
    view's query codes and the retrieval view's, or the unified database, codes); None checks
    every block.
    """
    if not stats:
        return []
    classes = stats.get("classes")
    query, retrieval = task.split("->", 1) if task else (None, None)
    found = []
    for role in ("query", "retrieval", "database"):
        for view, block in (stats.get(role) or {}).items():
            wanted = (task is None or (role == "query" and view == query)
                      or (role == "retrieval" and view == retrieval) or role == "database")
            if wanted:
                found.extend(_block_problems(role, view, block, classes))
    return found


def summary(stats: Mapping[str, Any] | None) -> str:
    """One line on a cell's codes for logs and tooltips: distinct codes and constant bits of
    every block (``image query: 200 distinct, 0 constant of 16 bits; ...``)."""
    if not stats:
        return ""
    parts = []
    for role in ("query", "retrieval", "database"):
        for view, block in (stats.get(role) or {}).items():
            name = f"{view} {role}" if view != UNIFIED else "unified database"
            parts.append(f"{name}: {block['distinct']} distinct, {len(block['constant'])} "
                         f"constant of {block['bits']} bits")
    return "; ".join(parts)


def join_notes(notes: Sequence[str]) -> str:
    """Notes (problems or warnings) as one text for an exported column ("" for none)."""
    return "; ".join(dict.fromkeys(notes))


__all__ = ["cell_statistics", "code_statistics", "join_notes", "n_classes", "problems",
           "summary"]
