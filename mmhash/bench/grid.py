"""The benchmark grid: which cells (:class:`~mmhash.bench.cell.CellKey`) to run, validated up front.

Everything a user types is checked here before any work starts or any result is written, so a
typo ends with one clear message and leaves the store untouched.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from mmhash.base import UNIFIED_DATABASE, check_n_bits, declares
from mmhash.bench.cell import (
    DATABASE_PROTOCOLS,
    DEFAULT_DATABASE,
    CellKey,
    canonical_params,
    dataset_fingerprint,
)
from mmhash.data.dataset import Dataset
from mmhash.errors import InvalidInputError, UnknownNameError

DEFAULT_BITS = (16, 32, 64, 128)


def parse_list(text: str | Iterable, what: str) -> list[str]:
    """Split a comma-separated CLI value (or pass a list through), dropping blanks."""
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [str(i).strip() for i in items if str(i).strip()]
    if not items:
        raise InvalidInputError(f"{what}: empty list")
    return items


def parse_names(text: str | Iterable, what: str) -> list[str]:
    """Names (methods, datasets) in the order given, each once: ``cvh,cvh`` is one cvh, as
    ``--bits 16,16`` is one bit length."""
    return list(dict.fromkeys(parse_list(text, what)))


def parse_bits(text: str | Iterable) -> list[int]:
    """Bit lengths: positive multiples of 8 up to 1024, e.g. ``"16,32,64,128"``."""
    out = []
    for item in parse_list(text, "--bits"):
        try:
            value = int(item)
        except ValueError:
            raise InvalidInputError(
                f"--bits: {item!r} is not an integer (use multiples of 8 up to 1024, "
                "e.g. 16,32,64,128)"
            ) from None
        try:
            out.append(check_n_bits(value))
        except InvalidInputError as exc:
            raise InvalidInputError(f"--bits: {exc}") from None
    return sorted(set(out))


def parse_seeds(text: str | Iterable, flag: str = "--seeds") -> list[int]:
    """Seeds: non-negative integers, e.g. ``"0,1,2"``; ``flag`` names the option in errors."""
    out = []
    for item in parse_list(text, flag):
        try:
            value = int(item)
        except ValueError:
            raise InvalidInputError(f"{flag}: {item!r} is not an integer (e.g. 0,1,2)") from None
        if str(value) != item.lstrip("+"):
            raise InvalidInputError(f"{flag}: {item!r} must be a non-negative integer")
        out.append(parse_seed(value, flag))
    return sorted(set(out))


def parse_seed(value: int | str, what: str = "--seed") -> int:
    """One seed (``random_state``): a non-negative integer, as numpy's generators require.

    Every command checks its seeds with this (or :func:`parse_seeds`) before any work, so
    ``--seed -1`` is refused alike everywhere instead of passing a deterministic method and
    failing inside the others.
    """
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InvalidInputError(f"{what}: {value!r} is not an integer (e.g. 0)") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{what}: {str(value)!r} must be a non-negative integer")
    return value


def view_groups(method_views: tuple[int, int | None], dataset_views: Sequence[str],
                method: str) -> list[tuple[str, ...]]:
    """The view sets a method is fitted on for a dataset.

    All views when the method supports that many; otherwise every pair of views (two-view methods
    on an M-view set), each fitted separately; an error when the method needs more views.
    """
    lo, hi = method_views
    m = len(dataset_views)
    if m >= lo and (hi is None or m <= hi):
        return [tuple(dataset_views)]
    if m > (hi or m) and lo <= 2 <= (hi or 2):
        return list(itertools.combinations(dataset_views, 2))
    raise InvalidInputError(
        f"method {method!r} needs {lo}..{hi or 'any'} views, the dataset has {m}: "
        f"{list(dataset_views)}"
    )


def parse_database(text: str | None) -> str:
    """The database protocol: ``per-view`` (default) or ``unified``."""
    if text is None:
        return DEFAULT_DATABASE
    if text not in DATABASE_PROTOCOLS:
        raise UnknownNameError("--database protocol", str(text), DATABASE_PROTOCOLS)
    return text


def expand(dataset: Dataset, methods: Sequence[str], bits: Sequence[int], seeds: Sequence[int],
           params: dict[str, dict[str, Any]] | None = None, *,
           database: str = DEFAULT_DATABASE) -> list[CellKey]:
    """All cells of the grid for one dataset, in a stable order (method, bits, seed, views).

    With ``database="unified"``, methods that declare the ``unified_database`` capability rank
    against their unified database codes; the others run (and are keyed) ``per-view``.
    """
    from mmhash.registry import check_method_params, get_hasher_class

    params = params or {}
    unknown = set(params) - set(methods)
    if unknown:
        raise UnknownNameError("method in params", sorted(unknown)[0], methods)
    database = parse_database(database)
    fingerprint = dataset_fingerprint(dataset)
    cells = []
    for method in methods:
        cls = get_hasher_class(method)
        extra = params.get(method, {})
        valid = set(cls._param_names())
        for key in extra:
            if key not in valid:
                raise UnknownNameError(f"parameter of {method}", key, valid - {"n_bits",
                                                                                   "random_state"})
            if key in ("n_bits", "random_state"):
                raise InvalidInputError(f"{method}.{key} is set by --bits/--seeds, not params")
        check_method_params(method, extra)  # every value, before any cell runs
        protocol = (database if database == "per-view" or declares(cls, UNIFIED_DATABASE)
                    else "per-view")
        groups = view_groups(cls.supported_views, dataset.view_names, method)
        for b, s, group in itertools.product(bits, seeds, groups):
            cells.append(CellKey(dataset.name, fingerprint, method, canonical_params(extra),
                                 int(b), int(s), tuple(group), protocol))
    return cells
