"""The Hasher contract and :class:`BaseHasher`, which every method builds on.

A hasher learns binary codes for paired multimodal data without labels:

* constructed with explicit keyword hyperparameters only, stored unchanged as attributes
  (``n_bits``, ``random_state``, ...); learned state lives in attributes ending in ``_``;
* ``fit(views)``: ``views`` maps a modality name to a float array of shape ``(n, d_m)``; row ``i``
  of every view describes the same item. Returns ``self``;
* ``encode(X, modality)``: codes of shape ``(n, n_bits)``, dtype ``int8``, values in {-1, +1},
  for new items seen through one modality (out of sample);
* ``supported_views``: which numbers of views the method can be fitted on;
* ``capabilities``: the optional parts of the contract the method implements, declared (never
  sniffed from signatures): :data:`EPOCH_PROGRESS` (``fit(views, progress=...)`` reports every
  epoch) and :data:`UNIFIED_DATABASE` (``encode_database(views)``: one code per database item
  learned from all of its views, the protocol of CMFH, LSSH and IMH) and
  :data:`REAL_VALUED_RANKING` (the method ranks by a real-valued distance between
  ``represent(X, modality, role)`` outputs -- a quantiser's asymmetric distance, a reference's
  cosine -- and the bench evaluates that ranking instead of Hamming distances);
* ``reference``: True for the reference rows of the tables (``cca-real``, ``feature-cosine``):
  real-valued rankings that show what binarisation costs; they are not hashers and have no
  codes;
* ``get_params()`` / ``clone()`` from ``__init__``'s signature; ``save(path)`` / ``load(path)``
  into one ``.npz`` file without pickle.

Validation lives here, once: subclasses implement :meth:`BaseHasher._fit` and
:meth:`BaseHasher._encode` and receive clean float64 arrays.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from mmhash.errors import (
    DataError,
    DegenerateCodesWarning,
    InvalidInputError,
    NotFittedError,
    UnknownNameError,
)
from mmhash.params import Constraint, Integer

#: Bit lengths accepted everywhere: positive multiples of 8 up to 1024 (codes pack into bytes).
MAX_BITS = 1024
#: Training rows per view (evenly spaced) that :meth:`BaseHasher.fit` encodes after fitting to
#: look for constant bits: enough to find a bit that never changes, cheap next to any fit.
CHECK_ROWS = 4096

_FORMAT = "mmhash-hasher/1"
#: The format of a model whose learned state holds dicts, lists or tuples of arrays (see
#: :meth:`BaseHasher._get_state`); a file without such state is still written as ``/1``, so that
#: older mmhash versions read it.
_FORMAT_NESTED = "mmhash-hasher/2"
_READ_FORMATS = (_FORMAT, _FORMAT_NESTED)
#: Marks a JSON state value that describes a container of arrays rather than being the value.
_TREE = "__mmhash_tree__"

#: Capability: the method trains in epochs and ``fit(views, progress=callback)`` calls
#: ``callback(epoch, n_epochs, metrics)`` after each one (epoch counts from 1; ``metrics`` maps a
#: name such as ``"loss"`` to a float). Its ``_fit`` then takes ``progress`` as a keyword.
EPOCH_PROGRESS = "epoch_progress"
#: Capability: the method learns one code per item from *all* its views (CMFH's and LSSH's
#: unified code, IMH's jointly learned codes) and implements ``_encode_database(views)``; the
#: bench's ``--database unified`` ranks queries against those codes.
UNIFIED_DATABASE = "unified_database"
#: Capability: the method ranks by a real-valued distance, not by the Hamming distance of its
#: codes. It implements ``_represent(X, modality, role)`` -- float ``(n, m)`` representations of
#: query items (``role="query"``) or database items (``role="database"``; may differ, e.g. a
#: quantiser's reconstructed database vectors against raw query projections) -- and
#: ``_distances(Q, D)``, float64 ``(b, N)`` distances, smaller is closer, equal values are ties.
#: The bench evaluates such a method with :func:`mmhash.evaluation.evaluate_ranking`.
REAL_VALUED_RANKING = "real_valued_ranking"
#: Every capability a hasher may declare in ``capabilities``.
CAPABILITIES = (EPOCH_PROGRESS, UNIFIED_DATABASE, REAL_VALUED_RANKING)
#: The roles of :meth:`BaseHasher.represent`.
ROLES = ("query", "database")

#: A progress callback: ``progress(epoch, n_epochs, metrics)`` (see :data:`EPOCH_PROGRESS`).
ProgressCallback = Callable[[int, int, dict], None]


def declares(hasher: Any, capability: str) -> bool:
    """Whether a hasher (class or instance) declares ``capability`` in its ``capabilities``."""
    if capability not in CAPABILITIES:
        raise UnknownNameError("capability", capability, CAPABILITIES)
    return capability in getattr(hasher, "capabilities", ())


@runtime_checkable
class Hasher(Protocol):
    """The structural type of a hasher; :class:`BaseHasher` implements it."""

    n_bits: int
    supported_views: ClassVar[tuple[int, int | None]]

    def fit(self, views: Mapping[str, np.ndarray], *,
            progress: ProgressCallback | None = None) -> Hasher: ...

    def encode(self, X: np.ndarray, modality: str) -> np.ndarray: ...

    def get_params(self) -> dict[str, Any]: ...

    def save(self, path: str | os.PathLike) -> None: ...


def check_n_bits(n_bits: Any) -> int:
    """Return ``n_bits`` as int if it is a positive multiple of 8 up to 1024, else raise."""
    if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)):
        raise InvalidInputError(
            f"n_bits must be an integer multiple of 8 in 8..{MAX_BITS}, got {n_bits!r}"
        )
    if not (0 < n_bits <= MAX_BITS and n_bits % 8 == 0):
        raise InvalidInputError(
            f"n_bits must be a positive multiple of 8 up to {MAX_BITS}, got {n_bits}"
        )
    return int(n_bits)


def _init_order(cls: type) -> list[str]:
    """``cls.__init__``'s parameter names in the order it takes them."""
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


_ENTRY = re.compile(r"^(\s*)([A-Za-z_][\w, ]*?)\s*:\s*(.*)$")
#: A numpydoc entry whose first line is its type only (``int``, ``float or None``,
#: ``{"a", "b"}``): its meaning is on the next line.
_TYPE_ONLY = re.compile(r"^(?:int|float|bool|str|None|tuple|list|dict|array|optional|or|of|"
                        r"[{}\[\](),|'\" ]|\w+ array)*$")


def _documented_parameters(cls: type) -> dict[str, str]:
    """Parameter name -> the first line of its entry in the "Parameters" section of the
    numpydoc docstrings of ``cls`` and its bases (the nearest class wins); ``a, b : text``
    documents both."""
    found: dict[str, str] = {}
    for klass in cls.__mro__:
        doc = inspect.cleandoc(vars(klass).get("__doc__") or "")
        lines = doc.splitlines()
        try:
            start = next(i for i, line in enumerate(lines[:-1]) if line.strip() == "Parameters"
                         and set(lines[i + 1].strip()) == {"-"}) + 2
        except StopIteration:
            continue
        entries = lines[start:]
        for i, line in enumerate(entries):
            if line.strip() and set(line.strip()) == {"-"}:
                break  # the next section's underline: the entries ended a line earlier
            match = _ENTRY.match(line)
            if match and not match.group(1):
                text = match.group(3).strip()
                following = entries[i + 1] if i + 1 < len(entries) else ""
                if _TYPE_ONLY.match(text) and following.startswith(" "):
                    text = following.strip()  # "reg : float" then the meaning below it
                for name in match.group(2).split(","):
                    found.setdefault(name.strip(), text)
    return found


def check_array(X: Any, what: str) -> np.ndarray:
    """Return ``X`` as a 2-D finite float64 array, or raise an error naming ``what``.

    The result may share memory with ``X``; callers must not write to it.
    """
    if hasattr(X, "toarray"):  # scipy.sparse: the shallow methods work on dense features
        X = X.toarray()
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be a numeric array ({exc})") from None
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{what} must be 2-D (n_samples, n_features), got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{what} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise InvalidInputError(f"{what} contains NaN or infinite values in {bad} row(s)")
    return arr


def check_views(views: Any, supported: tuple[int, int | None]) -> dict[str, np.ndarray]:
    """Validate a mapping modality -> (n, d) array of paired rows; return clean float64 views."""
    if not isinstance(views, Mapping):
        raise InvalidInputError(
            f"views must be a mapping modality -> (n, d) array, got {type(views).__name__}"
        )
    lo, hi = supported
    count = len(views)
    if count < lo or (hi is not None and count > hi):
        want = f"exactly {lo}" if hi == lo else (f"{lo} or more" if hi is None else f"{lo}..{hi}")
        raise InvalidInputError(f"this method needs {want} views, got {count}: {list(views)}")
    clean: dict[str, np.ndarray] = {}
    for name, X in views.items():
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"view names must be non-empty strings, got {name!r}")
        clean[name] = check_array(X, f"view {name!r}")
    rows = {name: X.shape[0] for name, X in clean.items()}
    if len(set(rows.values())) > 1:
        raise InvalidInputError(f"views must have paired rows (same row count), got {rows}")
    if next(iter(rows.values())) < 2:
        raise InvalidInputError("fit needs at least 2 paired samples")
    return clean


def _to_json_value(value: Any) -> Any:
    """Make a hyperparameter JSON-safe (numpy scalars and tuples are common in user code)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_to_json_value(v) for v in value]
    if isinstance(value, list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json_value(v) for k, v in value.items()}
    return value


#: What learned state may hold, for the message that refuses anything else.
_SAVABLE = ("numpy arrays (not of object dtype), numbers, strings, booleans, None, and dicts "
            "(str or int keys), lists and tuples of these")


def _holds_array(value: Any) -> bool:
    """Whether a dict/list/tuple holds a numpy array at any depth."""
    if isinstance(value, np.ndarray):
        return True
    if isinstance(value, dict):
        return any(_holds_array(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_array(v) for v in value)
    return False


def _unsavable(owner: str, key: str, where: str, value: Any) -> InvalidInputError:
    return InvalidInputError(f"{owner} state {key!r}{where} is a {type(value).__name__}, which a "
                             f"model file cannot keep; supported: {_SAVABLE}")


def _check_json_state(owner: str, key: str, value: Any, where: str = "") -> None:
    """Raise one clear error for the first value in ``value`` that JSON cannot hold."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_state(owner, key, item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not (k is None or isinstance(k, (str, int, float))):  # what json.dumps takes
                raise _unsavable(owner, key, f"{where} key {k!r}", k)
            _check_json_state(owner, key, item, f"{where}[{k!r}]")
        return
    raise _unsavable(owner, key, where, value)


def _tree_node(owner: str, key: str, value: Any, arrays: dict[str, np.ndarray],
               where: str = "") -> dict[str, Any]:
    """A JSON description of ``value`` (a container holding arrays) whose arrays are moved into
    ``arrays`` under ``KEY.N`` (N counts up): exact on load -- tuples stay tuples, int keys stay
    ints, numpy scalars keep their dtype."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise _unsavable(owner, key, where, value)
        name = f"{key}.{len(arrays)}"
        arrays[name] = value
        return {"array": name}
    if isinstance(value, np.generic):
        name = f"{key}.{len(arrays)}"
        arrays[name] = np.asarray(value)
        return {"scalar": name}
    if isinstance(value, dict):
        items = []
        for k, item in value.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise _unsavable(owner, key, f"{where} key {k!r}", k)
            items.append([k, _tree_node(owner, key, item, arrays, f"{where}[{k!r}]")])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_tree_node(owner, key, item, arrays, f"{where}[{i}]")
                       for i, item in enumerate(value)]}
    _check_json_state(owner, key, value, where)
    return {"value": value}


def _from_tree(node: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """The value :func:`_tree_node` described; its arrays are taken out of ``arrays``."""
    (kind, body), = node.items()
    if kind == "array":
        return arrays.pop(body)
    if kind == "scalar":
        return arrays.pop(body)[()]
    if kind == "dict":
        return {k: _from_tree(item, arrays) for k, item in body}
    if kind in ("list", "tuple"):
        items = [_from_tree(item, arrays) for item in body]
        return items if kind == "list" else tuple(items)
    if kind == "value":
        return body
    raise DataError(f"unknown kind {kind!r} of saved state")


class BaseHasher:
    """Base class that turns ``_fit`` / ``_encode`` into the full Hasher contract.

    Subclasses:

    * define ``__init__`` with keyword parameters only, each stored unchanged under its own name
      (``n_bits`` and ``random_state`` at least);
    * set ``name`` (the registry key) and ``supported_views`` = ``(min, max)`` (``max`` may be
      ``None`` for "any number");
    * declare optional parts of the contract in ``capabilities`` (a subset of
      :data:`CAPABILITIES`): with :data:`EPOCH_PROGRESS`, ``_fit(views, progress=...)`` receives
      the callback; with :data:`UNIFIED_DATABASE`, implement ``_encode_database(views)``;
    * implement ``_fit(views)`` on a ``dict[str, float64 (n, d)]`` and ``_encode(X, modality)``
      returning real-valued ``(n, n_bits)`` scores whose sign is the code (0 maps to +1);
    * store learned state in public attributes ending in ``_`` that are numpy arrays,
      JSON-serialisable values, or dicts, lists and tuples holding arrays (one per view, say),
      which load back exactly (or override :meth:`_get_state` / :meth:`_set_state`).
    """

    name: ClassVar[str] = ""
    supported_views: ClassVar[tuple[int, int | None]] = (2, 2)
    #: Hyperparameters that make the conformance checks fast (e.g. few epochs for deep methods);
    #: merged over the defaults by :mod:`mmhash.testing` only, never by the bench.
    conformance_params: ClassVar[dict[str, Any]] = {}
    #: Optional parts of the contract this method implements (see :data:`CAPABILITIES`).
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: The default space ``mmhash tune`` searches: parameter -> list of values, or a range
    #: ``(low, high)`` / ``(low, high, "log")`` (see :mod:`mmhash.bench.tune`).
    search_space: ClassVar[dict[str, Any]] = {}
    #: True for a reference ranking (tables name it as a reference, on top, never best): it
    #: declares :data:`REAL_VALUED_RANKING` and has no binary codes (``encode`` refuses).
    reference: ClassVar[bool] = False
    #: What a :data:`REAL_VALUED_RANKING` method ranks by, for table captions (e.g. "cosine of
    #: CCA projections"); empty: the Hamming distance of the codes.
    ranking: ClassVar[str] = ""
    #: True when every view must have the same dimension (one shared feature space).
    shared_space: ClassVar[bool] = False
    #: The rule of each hyperparameter (:mod:`mmhash.params`: ``Number``, ``Integer``,
    #: ``Choice``, ``Flag``), declared once; a subclass declares its own and inherits the rest
    #: (:meth:`declared_constraints`). Rules no constraint expresses go in ``_check_params``.
    parameter_constraints: ClassVar[dict[str, Constraint]] = {"random_state": Integer(minimum=0)}

    # ---- parameters -------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        names = []
        for p in sig.parameters.values():
            if p.name == "self":
                continue
            if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                raise TypeError(f"{cls.__name__}.__init__ must take named parameters only")
            names.append(p.name)
        return sorted(names)

    @classmethod
    def declared_constraints(cls) -> dict[str, Constraint]:
        """Every declared rule of this class's hyperparameters: the ``parameter_constraints``
        of the class and its bases merged, the nearest declaration of a name winning, in the
        order of ``__init__``'s parameters (names ``__init__`` does not take are left out)."""
        merged: dict[str, Constraint] = {}
        for klass in reversed(cls.__mro__):
            merged.update(vars(klass).get("parameter_constraints", {}))
        names = cls._param_names()
        return {name: merged[name] for name in _init_order(cls) if name in merged
                and name in names}

    def check_params(self) -> None:
        """Validate every hyperparameter: ``n_bits``, the declared rules, then the method's
        own ``_check_params``. Raises one :class:`InvalidInputError` naming the parameter, the
        rule and the value. ``fit`` calls it first; commands call it before any fit."""
        check_n_bits(self.n_bits)
        for name, constraint in self.declared_constraints().items():
            constraint.check(name, getattr(self, name))
        self._check_params()

    @classmethod
    def parameter_table(cls) -> list[dict[str, str]]:
        """One row per hyperparameter, in ``__init__``'s order: ``name``, ``default`` (repr),
        ``rule`` (the declared constraint, or ``not declared``) and ``meaning`` (the first line
        of its entry under "Parameters" in the class's docstring, or a base's)."""
        signature = inspect.signature(cls.__init__).parameters
        declared = cls.declared_constraints()
        meanings = _documented_parameters(cls)
        return [{"name": name,
                 "default": "" if signature[name].default is inspect.Parameter.empty
                 else repr(signature[name].default),
                 "rule": declared[name].describe() if name in declared else (
                     "integer multiple of 8 in 8..1024" if name == "n_bits" else "not declared"),
                 "meaning": meanings.get(name, "")}
                for name in _init_order(cls)]

    @classmethod
    def check_param_values(cls, params: Mapping[str, Any]) -> None:
        """Validate hyperparameter values without fitting: unknown names
        (:class:`UnknownNameError`, with the valid ones) and every rule of
        :meth:`check_params` on a hasher built with ``params`` over the defaults."""
        valid = cls._param_names()
        for key in params:
            if key not in valid:
                raise UnknownNameError(f"parameter of {cls.name or cls.__name__}", key, valid)
        cls(**params).check_params()

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__`` (a fresh dict)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> BaseHasher:
        """Set hyperparameters by name; unknown names raise :class:`UnknownNameError`."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise UnknownNameError(f"parameter of {type(self).__name__}", key, valid)
            setattr(self, key, value)
        return self

    def clone(self) -> BaseHasher:
        """An unfitted copy with the same hyperparameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---- fit / encode -----------------------------------------------------------------------
    def fit(self, views: Mapping[str, np.ndarray], *,
            progress: ProgressCallback | None = None) -> BaseHasher:
        """Learn hash functions from unlabelled paired views.

        Parameters
        ----------
        views : mapping str -> array of shape (n, d_m)
            One float matrix per modality; row ``i`` of every view is the same item. The number of
            views must lie in ``supported_views``. Inputs are never modified.
        progress : optional ``progress(epoch, n_epochs, metrics)``; called after every epoch by
            methods that declare :data:`EPOCH_PROGRESS`, ignored by the others (they have no
            epochs to report).

        Returns
        -------
        self
        """
        self.check_params()  # validated, not rewritten: params stay as given
        clean = check_views(views, self.supported_views)
        self.modalities_ = list(clean)
        self.n_features_ = {m: int(X.shape[1]) for m, X in clean.items()}
        if EPOCH_PROGRESS in self.capabilities:
            self._fit(clean, progress=progress)
        else:
            self._fit(clean)
        self._check_training_codes(clean)
        return self

    def _check_training_codes(self, views: dict[str, np.ndarray]) -> None:
        """Warn (:class:`~mmhash.errors.DegenerateCodesWarning`) when a bit is constant for a
        view on the training items: a method that cannot fill its bits says so at fit, not only
        through a low mAP. ``views``: the clean float64 ``(n, d_m)`` training views.

        Checks up to :data:`CHECK_ROWS` evenly spaced training rows per view. Methods ranked by
        real-valued distances are skipped: the bench does not compare their codes.
        """
        if self.reference or REAL_VALUED_RANKING in self.capabilities:
            return
        n = len(next(iter(views.values())))
        rows = np.unique(np.linspace(0, n - 1, min(n, CHECK_ROWS)).round().astype(np.int64))
        found = []
        for modality, X in views.items():
            codes = self._sign(self._encode(X[rows], modality), len(rows), "_encode")
            ones = (codes > 0).sum(axis=0)
            constant = int(((ones == 0) | (ones == len(rows))).sum())
            if constant:
                dim = self.n_features_[modality]
                why = (f" (more bits than the view's {dim} dimensions)" if self.n_bits > dim
                       else "")
                found.append(f"{constant} for view {modality!r}{why}")
        if found:
            warnings.warn(DegenerateCodesWarning(
                f"{self.name or type(self).__name__} with n_bits={self.n_bits}: constant bits "
                f"on the {len(rows)} training items checked: {'; '.join(found)}. Those bits "
                "carry nothing; fewer bits or another method fill the code"), stacklevel=3)

    def encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        """Binary codes of new items seen through one modality.

        Parameters
        ----------
        X : array of shape (n, d_modality)
        modality : one of the view names given to :meth:`fit`

        Returns
        -------
        codes : int8 array of shape (n, n_bits), values in {-1, +1}
        """
        X = self._check_encode_input(X, modality)
        return self._sign(self._encode(X, modality), X.shape[0], "_encode")

    def encode_database(self, views: Mapping[str, np.ndarray]) -> np.ndarray:
        """One code per database item, learned from all of its views (the unified database code of
        CMFH and LSSH, IMH's joint codes); only for methods declaring :data:`UNIFIED_DATABASE`.

        Parameters
        ----------
        views : mapping str -> array of shape (n, d_m), every modality given to :meth:`fit`,
            rows paired.

        Returns
        -------
        codes : int8 array of shape (n, n_bits), values in {-1, +1}
        """
        if UNIFIED_DATABASE not in self.capabilities:
            raise InvalidInputError(
                f"{self.name or type(self).__name__} learns no unified database code; "
                "encode each view with encode(X, modality) instead"
            )
        self._check_fitted()
        if not isinstance(views, Mapping) or set(views) != set(self.modalities_):
            given = list(views) if isinstance(views, Mapping) else type(views).__name__
            raise InvalidInputError(
                f"encode_database needs every fitted view {self.modalities_}, got {given}")
        clean = {m: self._check_encode_input(views[m], m) for m in self.modalities_}
        rows = {m: X.shape[0] for m, X in clean.items()}
        if len(set(rows.values())) > 1:
            raise InvalidInputError(f"views must have paired rows (same row count), got {rows}")
        n = next(iter(rows.values()))
        return self._sign(self._encode_database(clean), n, "_encode_database")

    def represent(self, X: np.ndarray, modality: str, role: str = "query") -> np.ndarray:
        """Real-valued representations that :meth:`distances` ranks (only for methods declaring
        :data:`REAL_VALUED_RANKING`).

        Parameters
        ----------
        X : array of shape (n, d_modality)
        modality : one of the view names given to :meth:`fit`
        role : ``"query"`` or ``"database"`` (a method may represent the two sides differently)

        Returns
        -------
        float array of shape (n, m); row ``i`` depends on item ``i`` only
        """
        self._require_ranking("represent")
        if role not in ROLES:
            raise UnknownNameError("role", role, ROLES)
        X = self._check_encode_input(X, modality)
        out = np.asarray(self._represent(X, modality, role))
        if out.ndim != 2 or out.shape[0] != X.shape[0]:
            raise RuntimeError(f"{type(self).__name__}._represent returned shape {out.shape}, "
                               f"expected ({X.shape[0]}, m)")
        return out

    def distances(self, queries: np.ndarray, database: np.ndarray) -> np.ndarray:
        """float64 ``(b, N)`` distances (smaller is closer) between ``represent(..., "query")``
        rows ``(b, m)`` and ``represent(..., "database")`` rows ``(N, m')``."""
        self._require_ranking("distances")
        self._check_fitted()
        out = np.asarray(self._distances(queries, database), dtype=np.float64)
        if out.shape != (len(queries), len(database)):
            raise RuntimeError(f"{type(self).__name__}._distances returned shape {out.shape}, "
                               f"expected {(len(queries), len(database))}")
        return out

    def _require_ranking(self, what: str) -> None:
        if REAL_VALUED_RANKING not in self.capabilities:
            raise InvalidInputError(
                f"{self.name or type(self).__name__} ranks by the Hamming distance of its codes; "
                f"{what} is for methods that declare real-valued ranking")

    def _represent(self, X: np.ndarray, modality: str, role: str) -> np.ndarray:
        raise NotImplementedError

    def _distances(self, queries: np.ndarray, database: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "modalities_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(views) first")

    def _check_encode_input(self, X: Any, modality: str) -> np.ndarray:
        """``X`` as a clean float64 array for a fitted ``modality``, or a clear error."""
        self._check_fitted()
        if modality not in self.modalities_:
            raise UnknownNameError("modality", modality, self.modalities_)
        X = check_array(X, f"X for modality {modality!r}")
        want = self.n_features_[modality]
        if X.shape[1] != want:
            raise InvalidInputError(
                f"X for modality {modality!r} has {X.shape[1]} features, "
                f"but the hasher was fitted with {want}"
            )
        return X

    def _sign(self, scores: Any, n_rows: int, source: str) -> np.ndarray:
        """int8 ±1 codes from real scores (0 maps to +1), checking the subclass's shape."""
        scores = np.asarray(scores)
        if scores.shape != (n_rows, self.n_bits):
            raise RuntimeError(
                f"{type(self).__name__}.{source} returned shape {scores.shape}, "
                f"expected {(n_rows, self.n_bits)}"
            )
        return np.where(scores >= 0, 1, -1).astype(np.int8)

    def _check_params(self) -> None:
        """Validate hyperparameters at fit time; override to add method-specific checks."""

    def _fit(self, views: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _encode(self, X: np.ndarray, modality: str) -> np.ndarray:
        raise NotImplementedError

    def _encode_database(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """Real ``(n, n_bits)`` scores of items seen through all views (:data:`UNIFIED_DATABASE`);
        ``views`` holds every fitted modality as clean float64 ``(n, d_m)`` arrays."""
        raise NotImplementedError

    # ---- persistence ------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Learned state as (arrays, JSON values): every public attribute ending in ``_``.

        An array is stored under its attribute's name. A dict, list or tuple holding arrays
        (one per view, say) is stored as a JSON description under ``{"__mmhash_tree__": ...}``
        with its arrays under ``NAME.0``, ``NAME.1``, ...; it loads back exactly. Anything a
        model file cannot keep is one :class:`InvalidInputError` naming the attribute.
        """
        owner = type(self).__name__
        arrays: dict[str, np.ndarray] = {}
        values: dict[str, Any] = {}
        for key, value in vars(self).items():
            if not key.endswith("_") or key.startswith("_"):
                continue
            if isinstance(value, np.ndarray):
                if value.dtype == object:
                    raise _unsavable(owner, key, "", value)
                arrays[key] = value
            elif _holds_array(value):
                nested: dict[str, np.ndarray] = {}
                values[key] = {_TREE: _tree_node(owner, key, value, nested)}
                arrays.update(nested)
            else:
                values[key] = _to_json_value(value)
                _check_json_state(owner, key, values[key])
        return arrays, values

    def _set_state(self, arrays: dict[str, np.ndarray], values: dict[str, Any]) -> None:
        arrays = dict(arrays)
        for key, value in values.items():
            if isinstance(value, dict) and set(value) == {_TREE}:
                value = _from_tree(value[_TREE], arrays)
            setattr(self, key, value)
        for key, value in arrays.items():
            setattr(self, key, value)

    def save(self, path: str | os.PathLike) -> None:
        """Write hyperparameters and learned state to one ``.npz`` file (no pickle)."""
        if not hasattr(self, "modalities_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; nothing to save")
        arrays, values = self._get_state()
        nested = any(isinstance(v, dict) and set(v) == {_TREE} for v in values.values())
        meta = {
            "format": _FORMAT_NESTED if nested else _FORMAT,
            "name": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": {k: _to_json_value(v) for k, v in self.get_params().items()},
            "state": values,
            "arrays": sorted(arrays),
        }
        payload = {f"state__{k}": v for k, v in arrays.items()}
        payload["__meta__"] = np.array(json.dumps(meta))
        with open(path, "wb") as fh:  # a file handle keeps numpy from appending ".npz"
            np.savez(fh, **payload)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BaseHasher:
        """Read a hasher written by :meth:`save`; the file's class must match ``cls``."""
        meta, arrays = read_saved(path)
        if cls is not BaseHasher and meta["name"] != cls.name:
            raise DataError(f"{path} holds a {meta['name']!r} hasher, not {cls.name!r}")
        try:
            hasher = cls(**meta["params"])
        except TypeError as exc:  # a parameter this version of the method does not take
            raise DataError(f"{path} holds parameters this mmhash's {cls.name} does not take "
                            f"({exc})") from None
        try:
            hasher._set_state(arrays, meta["state"])
        except (KeyError, ValueError) as exc:
            raise DataError(f"{path} is not an mmhash model file (its state is damaged: "
                            f"{exc})") from None
        return hasher


def read_saved(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read the metadata and state arrays of a saved hasher, validating the format.

    A missing, truncated, corrupt or foreign file, or one of a newer format, is one
    :class:`DataError` naming the file and what it is not.
    """
    from mmhash.codefiles import open_npz

    if not os.path.isfile(path):
        raise DataError(f"no saved hasher at {path}")
    what = "model file"
    with open_npz(path, what) as npz:
        if "__meta__" not in npz.files:
            raise DataError(f"{path} is not an mmhash {what}: it has no __meta__ record")
        meta = json.loads(str(npz["__meta__"]))
        arrays = {k.removeprefix("state__"): npz[k] for k in npz.files if k != "__meta__"}
    found = meta.get("format") if isinstance(meta, dict) else None
    if found not in _READ_FORMATS:
        family = _FORMAT.rpartition("/")[0]
        if isinstance(found, str) and found.startswith(family + "/"):
            raise DataError(f"{path} is a saved hasher of format {found}, written by a newer "
                            f"mmhash; this one reads up to {_READ_FORMATS[-1]}: upgrade mmhash")
        raise DataError(f"{path} is not an mmhash {what}: format {found!r}, expected "
                        f"{_FORMAT!r}")
    if not (isinstance(meta.get("name"), str) and isinstance(meta.get("params"), dict)
            and isinstance(meta.get("state"), dict)):
        raise DataError(f"{path} is not an mmhash {what}: its __meta__ record lacks the "
                        "name, params or state")
    return meta, arrays
