"""Discovery of hashers through the ``mmhash.hashers`` entry-point group.

mmhash's own methods and third-party plugins (``mmhash-baselines`` included) are registered the
same way, in their distribution's metadata::

    [project.entry-points."mmhash.hashers"]
    cvh = "mmhash_baselines.cvh:CVH"

Entry points are loaded lazily, so ``import mmhash`` never imports torch. A plugin whose import
fails is still listed, as unavailable with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from mmhash.errors import PluginError, UnknownNameError

GROUP = "mmhash.hashers"


@dataclass(frozen=True)
class HasherInfo:
    """One registered hasher as :func:`list_hashers` reports it."""

    name: str
    target: str  # "module:attr" of the entry point
    distribution: str
    available: bool
    reason: str = ""  # why it is unavailable
    supported_views: tuple[int, int | None] | None = None
    summary: str = ""  # first line of the class docstring
    reference: bool = False  # a reference row (real-valued ranking), not a hasher


# Hashers registered at run time (tests, notebooks) by :func:`register`; name -> class.
_runtime: dict[str, type] = {}


def _entry_points() -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=GROUP):
        found.setdefault(ep.name, ep)  # first wins if two distributions claim a name
    return found


def _validate(name: str, obj: Any) -> type:
    from mmhash.base import BaseHasher

    if not (isinstance(obj, type) and issubclass(obj, BaseHasher)):
        raise PluginError(f"entry point {name!r} does not point to a BaseHasher subclass: {obj!r}")
    if obj.name != name:
        raise PluginError(f"entry point {name!r} points to a class named {obj.name!r}")
    return obj


def _load(name: str, ep: metadata.EntryPoint) -> type:
    try:
        obj = ep.load()
    except Exception as exc:  # any import failure makes the plugin unavailable, not mmhash
        raise PluginError(
            f"hasher {name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    return _validate(name, obj)


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def list_hashers() -> list[HasherInfo]:
    """Every registered hasher, sorted by name, each marked available or not (with the reason)."""
    infos: dict[str, HasherInfo] = {}
    for name, ep in _entry_points().items():
        dist = ep.dist.name if ep.dist is not None else "?"
        try:
            cls = _load(name, ep)
        except PluginError as exc:
            infos[name] = HasherInfo(name, ep.value, dist, False, str(exc.__cause__ or exc))
            continue
        infos[name] = HasherInfo(name, ep.value, dist, True, "", cls.supported_views,
                                 _summary(cls), bool(cls.reference))
    for name, cls in _runtime.items():
        target = f"{cls.__module__}:{cls.__qualname__}"
        infos[name] = HasherInfo(name, target, "(runtime)", True, "", cls.supported_views,
                                 _summary(cls), bool(cls.reference))
    return [infos[k] for k in sorted(infos)]


def hasher_names(available_only: bool = False) -> list[str]:
    """Registered names (without importing plugins unless ``available_only``)."""
    if available_only:
        return [h.name for h in list_hashers() if h.available]
    return sorted(set(_entry_points()) | set(_runtime))


def get_hasher_class(name: str) -> type:
    """The hasher class registered as ``name``.

    Raises :class:`UnknownNameError` (with the registered names and a "did you mean") for an
    unknown name and :class:`PluginError` for a plugin that cannot be imported.
    """
    if name in _runtime:
        return _runtime[name]
    eps = _entry_points()
    if name not in eps:
        raise UnknownNameError("method", name, hasher_names())
    return _load(name, eps[name])


def get_hasher(name: str, **params: Any):
    """A new, unfitted hasher registered as ``name``, built with ``params``."""
    cls = get_hasher_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        valid = cls._param_names()
        raise UnknownNameError(
            f"parameter for {name!r} ({exc})", next(iter(set(params) - set(valid)), "?"), valid
        ) from None


def load_hasher(path: str | os.PathLike):
    """Read any hasher written by ``save``; its class is looked up in the registry by name."""
    from mmhash.base import read_saved

    meta, _ = read_saved(path)
    return get_hasher_class(meta["name"]).load(path)


def register(cls: type) -> type:
    """Register a hasher class for this process under ``cls.name`` (usable as a decorator).

    Distributions should use the entry-point group instead; this is for notebooks and tests.
    """
    _runtime[cls.name] = _validate(cls.name, cls)
    return cls


def unregister(name: str) -> None:
    """Remove a hasher added by :func:`register`."""
    _runtime.pop(name, None)
