"""Discovery of hashers through the ``mmhash.hashers`` entry-point group.

mmhash's own methods and third-party plugins (``mmhash-baselines`` included) are registered the
same way, in their distribution's metadata::

    [project.entry-points."mmhash.hashers"]
    cvh = "mmhash_baselines.cvh:CVH"

Entry points are loaded lazily, so ``import mmhash`` never imports torch. A plugin whose import
fails is still listed, as unavailable with the reason; so is one that breaks the contract at
the class level (``__init__`` taking ``**kwargs``), and a name two distributions claim with
different classes (neither silently wins).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from mmhash.errors import InvalidInputError, PluginError, UnknownNameError

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


def _entry_points() -> dict[str, list[metadata.EntryPoint]]:
    """Name -> the entry points claiming it (one per distinct target; usually exactly one)."""
    found: dict[str, list[metadata.EntryPoint]] = {}
    for ep in metadata.entry_points(group=GROUP):
        claims = found.setdefault(ep.name, [])
        if all(ep.value != other.value for other in claims):
            claims.append(ep)
    return found


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _unnamed_parameters(cls: type) -> list[str]:
    """The parameters of ``cls.__init__`` that are not plain named ones (``*args``,
    ``**kwargs``, positional-only), spelled as in the source."""
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return ["a signature that cannot be read"]
    spelled = {inspect.Parameter.VAR_POSITIONAL: "*{}", inspect.Parameter.VAR_KEYWORD: "**{}",
               inspect.Parameter.POSITIONAL_ONLY: "{} (positional-only)"}
    return [spelled[p.kind].format(p.name) for p in signature.parameters.values()
            if p.name != "self" and p.kind in spelled]


def _validate(name: str, obj: Any) -> type:
    from mmhash.base import BaseHasher

    if not (isinstance(obj, type) and issubclass(obj, BaseHasher)):
        raise PluginError(f"entry point {name!r} does not point to a BaseHasher subclass: {obj!r}")
    if obj.name != name:
        raise PluginError(f"entry point {name!r} points to a class named {obj.name!r}")
    unnamed = _unnamed_parameters(obj)
    if unnamed:
        raise PluginError(
            f"hasher {name!r} ({_qualified(obj)}) cannot be registered: its __init__ takes "
            f"{', '.join(unnamed)}; a hasher's hyperparameters must be explicit keyword "
            "parameters, so that they can be validated, stored and reported")
    return obj


def _load_one(name: str, ep: metadata.EntryPoint) -> type:
    try:
        obj = ep.load()
    except Exception as exc:  # any import failure makes the plugin unavailable, not mmhash
        raise PluginError(
            f"hasher {name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    return _validate(name, obj)


def _load(name: str, eps: list[metadata.EntryPoint]) -> type:
    """The class registered as ``name``; an error when entry points give it different classes
    (two distributions claiming one name: which one a run used must never depend on the order
    of sys.path)."""
    classes = {}
    for ep in eps:
        classes.setdefault(_load_one(name, ep), ep)
    if len(classes) > 1:
        claims = [f"{_qualified(cls)} ({_dist_name(ep)})" for cls, ep in classes.items()]
        raise PluginError(f"hasher name {name!r} is registered by two different classes, "
                          f"{' and '.join(claims[:2])}: uninstall one or rename it")
    return next(iter(classes))


def _dist_name(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def list_hashers() -> list[HasherInfo]:
    """Every registered hasher, sorted by name, each marked available or not (with the reason)."""
    infos: dict[str, HasherInfo] = {}
    for name, eps in _entry_points().items():
        dist = ", ".join(dict.fromkeys(_dist_name(ep) for ep in eps))
        target = ", ".join(ep.value for ep in eps)
        try:
            cls = _load(name, eps)
        except PluginError as exc:
            infos[name] = HasherInfo(name, target, dist, False, str(exc.__cause__ or exc))
            continue
        infos[name] = HasherInfo(name, eps[0].value, dist, True, "", cls.supported_views,
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


def check_method_params(name: str, params: Mapping[str, Any]) -> None:
    """Validate ``params`` of the method registered as ``name`` before any fit: an unknown
    parameter is an :class:`UnknownNameError` listing the valid ones, a bad value one
    :class:`InvalidInputError` in one form, ``cvh: reg must be a finite number > 0, got -1``
    (the rules of :meth:`mmhash.base.BaseHasher.check_params`)."""
    cls = get_hasher_class(name)
    try:
        cls.check_param_values(dict(params))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{name}: {exc}") from None


def load_hasher(path: str | os.PathLike):
    """Read any hasher written by ``save``; its class is looked up in the registry by name."""
    from mmhash.base import read_saved

    meta, _ = read_saved(path)
    return get_hasher_class(meta["name"]).load(path)


def register(cls: type) -> type:
    """Register a hasher class for this process under ``cls.name`` (usable as a decorator).

    Distributions should use the entry-point group instead; this is for notebooks and tests.
    Registering the same class again does nothing; another class under a name already taken
    (``cvh``, or an earlier :func:`register`) is a :class:`PluginError` naming both.
    """
    name = getattr(cls, "name", None)
    _validate(name, cls)
    current = _runtime.get(name)
    eps = _entry_points().get(name) if current is None else None
    if eps:
        try:
            current = _load(name, eps)
        except PluginError:  # a broken plugin still holds its name
            taken = ", ".join(ep.value for ep in eps)
            raise PluginError(f"cannot register {_qualified(cls)} as {name!r}: the name "
                              f"belongs to {taken}; choose another name") from None
    if current is not None and current is not cls:
        raise PluginError(f"cannot register {_qualified(cls)} as {name!r}: the name belongs "
                          f"to {_qualified(current)}; choose another name")
    _runtime[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a hasher added by :func:`register`."""
    _runtime.pop(name, None)
