"""The conformance checks every hasher must pass (in the spirit of sklearn's check_estimator).

Each check is a function ``check_x(cls, params)`` that builds ``cls(**params)`` itself, runs one
behaviour of the contract and raises :class:`AssertionError` with a message that says what broke.
:func:`iter_checks` yields them by name, so pytest can parametrise over (hasher, check) with
readable ids, and :func:`check_hasher` runs them all for ``mmhash check NAME``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mmhash.errors import InvalidInputError, MMHashError, NotFittedError, UnknownNameError

N_BITS = 16
Check = Callable[[type, dict[str, Any]], None]


@lru_cache(maxsize=8)
def _data(n_views: int = 2, shared_space: bool = False):
    """A small synthetic set with planted cross-view structure (cached: checks share it); with
    ``shared_space`` every view has the same dimension."""
    from mmhash.data.synthetic import make_synthetic

    if shared_space:  # one embedding space seen with independent noise per view
        import dataclasses

        base = make_synthetic(n=500, dims=(24,), n_labels=6, latent_dim=10, noise=0.3,
                              n_query=100, random_state=7)
        rng = np.random.default_rng(8)
        X = base.views["view0"]
        views = {name: X + 0.3 * X.std() * rng.standard_normal(X.shape)
                 for name in (["image", "text"] if n_views == 2
                              else [f"view{i}" for i in range(n_views)])}
        return dataclasses.replace(base, views=views)
    dims = (40, 24, 16, 12, 20, 8)[:n_views]
    return make_synthetic(n=500, dims=dims, n_labels=6, latent_dim=10, noise=0.3,
                          n_query=100, random_state=7)


def _readonly_train(n_views: int = 2, shared_space: bool = False) -> dict[str, np.ndarray]:
    views, _ = _data(n_views, shared_space).part("train")
    for X in views.values():
        X.setflags(write=False)
    return views


def _data_for(cls: type, n_views: int | None = None):
    """The checks' data set for ``cls``: its smallest view count, a shared space if it needs one."""
    return _data(n_views or _min_views(cls), bool(getattr(cls, "shared_space", False)))


def _train_for(cls: type, n_views: int | None = None) -> dict[str, np.ndarray]:
    return _readonly_train(n_views or _min_views(cls), bool(getattr(cls, "shared_space", False)))


def _outputs(hasher, X: np.ndarray, modality: str) -> np.ndarray:
    """What a check compares: the codes, or for a reference (no codes) its query
    representations."""
    if getattr(hasher, "reference", False):
        return hasher.represent(X, modality, "query")
    return hasher.encode(X, modality)


def _task_map(hasher, query: np.ndarray, a: str, items: np.ndarray, b: str, q_labels,
              r_labels) -> float:
    """mAP (expected ties) of task ``a -> b``: by Hamming distance of the codes, or by the
    method's real-valued distances when it declares that ranking."""
    from mmhash.base import REAL_VALUED_RANKING, declares
    from mmhash.evaluation import evaluate_ranking, mean_average_precision

    if declares(hasher, REAL_VALUED_RANKING):
        D = hasher.distances(hasher.represent(query, a, "query"),
                             hasher.represent(items, b, "database"))
        return evaluate_ranking(D, q_labels, r_labels).values[("map", "expected")]
    return mean_average_precision(hasher.encode(query, a), hasher.encode(items, b), q_labels,
                                  r_labels, tie="expected")


def _make(cls: type, params: dict[str, Any], **override: Any):
    return cls(**{**params, **override})


def _min_views(cls: type) -> int:
    return max(2, cls.supported_views[0])


def _fitted(cls: type, params: dict[str, Any], **override: Any):
    return _make(cls, params, **override).fit(_train_for(cls))


_SHARED: dict[tuple, Any] = {}


def _shared_fit(cls: type, params: dict[str, Any], **override: Any):
    """A fitted hasher reused by the checks that only read it (encode, save), so a slow method
    is fitted once per parameter set instead of once per check. Checks about fitting itself
    (fit returns self, read-only inputs, determinism's second fit) always fit afresh."""
    key = (cls, repr(sorted({**params, **override}.items())))
    if key not in _SHARED:
        if len(_SHARED) > 8:
            _SHARED.clear()
        _SHARED[key] = _fitted(cls, params, **override)
    return _SHARED[key]


def _queries(cls: type) -> dict[str, np.ndarray]:
    return _data_for(cls).part("query")[0]


# ---- the checks ------------------------------------------------------------------------------
def check_params_stored_unchanged(cls: type, params: dict[str, Any]) -> None:
    """Constructor arguments come back from get_params unchanged, before and after fit."""
    hasher = _make(cls, params)
    got = hasher.get_params()
    for key, value in params.items():
        assert key in got, f"parameter {key!r} missing from get_params()"
        assert got[key] is value or got[key] == value, (
            f"parameter {key!r} stored as {got[key]!r}, given {value!r}"
        )
    before = repr(hasher.get_params())
    hasher.fit(_train_for(cls))
    assert repr(hasher.get_params()) == before, "fit changed the hyperparameters"
    clone = hasher.clone()
    assert repr(clone.get_params()) == before, "clone() does not copy the hyperparameters"
    assert not hasattr(clone, "modalities_"), "clone() must return an unfitted hasher"


def check_fit_returns_self(cls: type, params: dict[str, Any]) -> None:
    """fit(views) returns the hasher itself."""
    hasher = _make(cls, params)
    out = hasher.fit(_train_for(cls))
    assert out is hasher, f"fit returned {type(out).__name__}, not self"


def check_encode_before_fit_raises(cls: type, params: dict[str, Any]) -> None:
    """encode on an unfitted hasher raises NotFittedError."""
    hasher = _make(cls, params)
    X = next(iter(_queries(cls).values()))
    try:
        _outputs(hasher, X, "image")
    except NotFittedError:
        return
    except Exception as exc:  # a wrong error type is a failure too
        raise AssertionError(f"encode before fit raised {type(exc).__name__}: {exc}") from None
    raise AssertionError("encode before fit did not raise")


def check_code_format(cls: type, params: dict[str, Any]) -> None:
    """Codes of every view are int8, shape (n, n_bits), values in {-1, +1}. A reference has no
    codes: encode refuses with InvalidInputError, and its representations are finite floats."""
    if cls.reference:
        hasher = _shared_fit(cls, params)
        for modality, X in _queries(cls).items():
            try:
                hasher.encode(X, modality)
            except InvalidInputError:
                pass
            else:
                raise AssertionError("a reference returned codes from encode")
            out = hasher.represent(X, modality, "query")
            assert out.ndim == 2 and len(out) == len(X) and np.isfinite(out).all(), (
                f"{modality}: representations of shape {out.shape}, or not finite")
        return
    for n_bits in (8, 24):
        hasher = _shared_fit(cls, params, n_bits=n_bits)
        for modality, X in _queries(cls).items():
            codes = hasher.encode(X, modality)
            assert isinstance(codes, np.ndarray), f"{modality}: codes are {type(codes).__name__}"
            assert codes.dtype == np.int8, f"{modality}: dtype {codes.dtype}, expected int8"
            assert codes.shape == (len(X), n_bits), (
                f"{modality}: shape {codes.shape}, expected {(len(X), n_bits)}"
            )
            values = set(np.unique(codes).tolist())
            assert values <= {-1, 1}, f"{modality}: code values {sorted(values)}, expected ±1"


def check_inputs_not_mutated(cls: type, params: dict[str, Any]) -> None:
    """fit and encode work on read-only arrays and leave their values untouched."""
    views = _train_for(cls)
    copies = {m: X.copy() for m, X in views.items()}
    try:
        hasher = _make(cls, params).fit(views)
    except ValueError as exc:
        if "read-only" in str(exc):
            raise AssertionError(f"fit writes into its input arrays: {exc}") from None
        raise
    for modality, X in _queries(cls).items():
        X = X.copy()
        X.setflags(write=False)
        kept = X.copy()
        try:
            _outputs(hasher, X, modality)
        except ValueError as exc:
            if "read-only" in str(exc):
                raise AssertionError(f"encode writes into its input ({modality}): {exc}") from None
            raise
        assert np.array_equal(X, kept), f"encode modified its input ({modality})"
    for m, X in views.items():
        assert np.array_equal(X, copies[m]), f"fit modified view {m!r}"


def check_deterministic(cls: type, params: dict[str, Any]) -> None:
    """The same random_state gives identical codes; the fit does not touch global RNG state."""
    state = np.random.get_state()[1].copy()  # noqa: NPY002 (checking the legacy global RNG)
    a = _fitted(cls, params)
    b = _fitted(cls, params)
    after = np.random.get_state()[1]  # noqa: NPY002
    assert np.array_equal(after, state), "fit changed numpy's global RNG"
    for modality, X in _queries(cls).items():
        assert np.array_equal(_outputs(a, X, modality), _outputs(b, X, modality)), (
            f"two fits with random_state={params.get('random_state')!r} differ on {modality}"
        )


def check_no_batch_dependence(cls: type, params: dict[str, Any]) -> None:
    """encode(X)[i] equals encode(X[i:i+1]): a code depends only on its own item."""
    hasher = _shared_fit(cls, params)
    for modality, X in _queries(cls).items():
        full = _outputs(hasher, X, modality)
        for i in (0, 1, len(X) // 2, len(X) - 1):
            single = _outputs(hasher, X[i : i + 1], modality)
            # codes exactly; a reference's real vectors up to the BLAS's rounding
            same = (np.array_equal(full[i], single[0]) if full.dtype == np.int8
                    else np.allclose(full[i], single[0], rtol=1e-9, atol=1e-12))
            assert same, (
                f"{modality}: code of row {i} differs when encoded alone"
            )


def check_save_load_roundtrip(cls: type, params: dict[str, Any]) -> None:
    """save then mmhash.load_hasher gives the same params and identical codes."""
    from mmhash.registry import get_hasher_class, load_hasher

    hasher = _shared_fit(cls, params)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hasher.npz"
        hasher.save(path)
        try:
            registered = get_hasher_class(cls.name) is cls
        except MMHashError:
            registered = False
        loaded = load_hasher(path) if registered else cls.load(path)
    assert type(loaded) is cls, f"loaded a {type(loaded).__name__}"
    assert repr(loaded.get_params()) == repr(hasher.get_params()), "params changed on load"
    for modality, X in _queries(cls).items():
        assert np.array_equal(_outputs(loaded, X, modality), _outputs(hasher, X, modality)), (
            f"codes differ after save/load ({modality})"
        )


def check_bad_input_errors(cls: type, params: dict[str, Any]) -> None:
    """NaN, unpaired rows, wrong view count, unknown modality and wrong dims raise clear errors."""
    views = _train_for(cls)
    names = list(views)
    cases = {
        "NaN in a view": {**views, names[0]: np.where(
            np.arange(views[names[0]].size).reshape(views[names[0]].shape) == 3,
            np.nan, views[names[0]])},
        "unpaired rows": {**views, names[1]: views[names[1]][:-1]},
        "1-D view": {**views, names[0]: views[names[0]][:, 0]},
    }
    if cls.supported_views[0] > 1:
        cases["too few views"] = {names[0]: views[names[0]]}
    for what, bad in cases.items():
        try:
            _make(cls, params).fit(bad)
        except InvalidInputError:
            continue
        except Exception as exc:
            raise AssertionError(f"{what}: raised {type(exc).__name__}: {exc}") from None
        raise AssertionError(f"{what}: fit accepted it")
    hasher = _make(cls, params).fit(views)
    X = views[names[0]]
    for what, call, error in [
        ("unknown modality", lambda: _outputs(hasher, X, "no-such-view"), UnknownNameError),
        ("wrong dimension", lambda: _outputs(hasher, X[:, :-1], names[0]), InvalidInputError),
        ("NaN at encode", lambda: _outputs(hasher, X * np.nan, names[0]), InvalidInputError),
    ]:
        try:
            call()
        except error:
            continue
        except Exception as exc:
            raise AssertionError(f"{what}: raised {type(exc).__name__}: {exc}") from None
        raise AssertionError(f"{what}: encode accepted it")
    try:
        _make(cls, params, n_bits=12).fit(views)
    except InvalidInputError:
        pass
    else:
        raise AssertionError("n_bits=12 (not a multiple of 8) was accepted")


def check_supported_view_counts(cls: type, params: dict[str, Any]) -> None:
    """Fits and encodes every view for each declared view count (2 and 3 where supported)."""
    lo, hi = cls.supported_views
    counts = [c for c in (2, 3) if c >= lo and (hi is None or c <= hi)]
    assert counts, f"supported_views={cls.supported_views} admits neither 2 nor 3 views"
    for count in counts:
        hasher = _make(cls, params).fit(_train_for(cls, count))
        for modality, X in _data_for(cls, count).part("query")[0].items():
            out = _outputs(hasher, X, modality)
            assert len(out) == len(X), f"{modality}: {len(out)} rows for {len(X)} items"
            if not cls.reference:
                assert out.shape == (len(X), params.get("n_bits", N_BITS))


def _cross_modal_map(hasher, data) -> float:
    (q_views, q_labels), (r_views, r_labels) = data.part("query"), data.part("retrieval")
    names = list(q_views)
    return float(np.mean([_task_map(hasher, q_views[a], a, r_views[b], b, q_labels, r_labels)
                          for a in names for b in names if a != b]))


def check_beats_random_floor(cls: type, params: dict[str, Any]) -> None:
    """Cross-modal mAP on planted structure beats the rp random-projection floor by a margin
    (a method with real-valued ranking, or a reference, is ranked by its own distances)."""
    from mmhash.hashers.rp import RandomProjectionHasher

    n_bits = params.get("n_bits", N_BITS)
    floor = RandomProjectionHasher(n_bits=n_bits, random_state=0).fit(_train_for(cls))
    floor_map = _cross_modal_map(floor, _data_for(cls))
    got = _cross_modal_map(_shared_fit(cls, params), _data_for(cls))
    assert got > floor_map + 0.05, (
        f"cross-modal mAP {got:.3f} does not beat the rp floor {floor_map:.3f} by 0.05"
    )


def _hostile_cases(cls: type) -> dict[str, tuple[dict, dict, dict, Any, Any]]:
    """Valid but hostile training sets, as real features make them: case -> (train views,
    query views, retrieval views, query labels, retrieval labels). Queries and items go through
    the same transformation as the training rows where it is a property of the features
    (scales, constant columns, extra dimensions)."""
    data = _data_for(cls)
    (train, _), (query, q_labels), (items, r_labels) = (data.part(p) for p in
                                                        ("train", "query", "retrieval"))
    names = list(train)
    rng = np.random.default_rng(11)
    n = len(train[names[0]])
    cases = {}

    zero = {m: X.copy() for m, X in train.items()}
    for m in names:  # 13 all-zero text rows broke LSSH on real TF-IDF data
        zero[m][rng.choice(n, size=max(2, n // 20), replace=False)] = 0.0
    cases["all-zero rows"] = (zero, query, items, q_labels, r_labels)

    repeat = np.concatenate([np.arange(n), np.arange(min(n, 60))])
    cases["duplicate rows"] = ({m: X[repeat] for m, X in train.items()}, query, items,
                               q_labels, r_labels)

    def constant_columns(X):
        X = X.copy()
        X[:, ::4] = 3.0
        return X

    cases["constant columns"] = tuple(
        {m: constant_columns(X) for m, X in part.items()} for part in (train, query, items)
    ) + (q_labels, r_labels)

    def rescaled(X, m):  # columns on scales from 1e-4 to 1e4, and the views apart too
        scales = 10.0 ** (np.arange(X.shape[1]) % 9 - 4 + 2 * names.index(m))
        return X * scales

    cases["features on very different scales"] = tuple(
        {m: rescaled(X, m) for m, X in part.items()} for part in (train, query, items)
    ) + (q_labels, r_labels)

    few = np.sort(rng.choice(n, size=40, replace=False))
    extra = {m: rng.standard_normal((X.shape[1], 100)) / np.sqrt(X.shape[1])
             for m, X in train.items()}

    def widened(X, m):  # 100 more columns, mixtures of the real ones: d > n training pairs
        return np.hstack([X, X @ extra[m]])

    cases["more dimensions than training pairs"] = (
        {m: widened(X[few], m) for m, X in train.items()},
        {m: widened(X, m) for m, X in query.items()},
        {m: widened(X, m) for m, X in items.items()}, q_labels, r_labels)
    tiny = np.sort(rng.choice(n, size=12, replace=False))
    cases["very few training pairs"] = ({m: X[tiny] for m, X in train.items()}, query, items,
                                        q_labels, r_labels)
    return cases


#: How far below the random-projection floor (mean of three seeds) hostile data may leave a
#: method: the floor itself moves by about this much between seeds on these small sets.
HOSTILE_SLACK = 0.03


def check_hostile_data(cls: type, params: dict[str, Any]) -> None:
    """Valid but hostile data -- all-zero rows, duplicate rows, constant columns, features on
    very different scales, more dimensions than training pairs, very few training pairs -- is
    fitted, with codes at least as good as the rp floor, or refused with one clear
    :class:`InvalidInputError` (which should name the limit and the parameter that moves it);
    never a crash from inside a numerical routine."""
    from mmhash.hashers.rp import RandomProjectionHasher

    n_bits = params.get("n_bits", N_BITS)
    failures = []
    for case, (train, query, items, q_labels, r_labels) in _hostile_cases(cls).items():
        try:
            hasher = _make(cls, params).fit(train)
        except InvalidInputError:
            continue  # a clear refusal is a valid answer
        except Exception as exc:
            failures.append(f"{case}: fit raised {type(exc).__name__}: {exc}")
            continue
        # the floor: mean of three random projections (one alone moves by ~.04 here)
        floors = [RandomProjectionHasher(n_bits=n_bits, random_state=s).fit(train)
                  for s in range(3)]
        names = list(train)
        got, base = [], []
        for a in names:
            for b in names:
                if a != b:
                    for h, out in ((hasher, got), *((f, base) for f in floors)):
                        out.append(_task_map(h, query[a], a, items[b], b, q_labels, r_labels))
        if np.mean(got) < np.mean(base) - HOSTILE_SLACK:
            failures.append(f"{case}: cross-modal mAP {np.mean(got):.3f} below the rp floor "
                            f"{np.mean(base):.3f}")
    assert not failures, "; ".join(failures)


def check_declared_capabilities(cls: type, params: dict[str, Any]) -> None:
    """Declared capabilities are known and honoured: ``epoch_progress`` reports every epoch
    in order; ``unified_database`` gives ±1 codes of each item from all its views,
    independent of the batch; undeclared, ``encode_database`` refuses and ``progress`` is
    accepted (and unused); ``real_valued_ranking`` gives finite representations of each item
    alone (both roles) and finite ``(b, N)`` distances."""
    from mmhash.base import CAPABILITIES, EPOCH_PROGRESS, REAL_VALUED_RANKING, UNIFIED_DATABASE

    declared = set(getattr(cls, "capabilities", ()))
    unknown = declared - set(CAPABILITIES)
    assert not unknown, f"unknown capabilities {sorted(unknown)}; known: {list(CAPABILITIES)}"
    calls: list[tuple] = []
    hasher = _make(cls, params).fit(_train_for(cls),
                                    progress=lambda *args: calls.append(args))
    if EPOCH_PROGRESS in declared:
        assert calls, "declares epoch_progress but never called progress"
        epochs = [c[0] for c in calls]
        assert epochs == list(range(1, len(calls) + 1)), f"epochs reported as {epochs}"
        assert all(c[1] == calls[0][1] and isinstance(c[2], dict) for c in calls), (
            "progress(epoch, n_epochs, metrics) needs a fixed n_epochs and a dict of metrics")
    else:
        assert not calls, "called progress without declaring epoch_progress"
    items = _data_for(cls).part("retrieval")[0]
    if REAL_VALUED_RANKING in declared:
        _check_real_valued_ranking(hasher, _queries(cls), items)
    else:
        try:
            hasher.represent(next(iter(items.values())), next(iter(items)))
        except InvalidInputError:
            pass
        else:
            raise AssertionError("represent worked without declaring real_valued_ranking")
    if UNIFIED_DATABASE not in declared:
        try:
            hasher.encode_database(items)
        except InvalidInputError:
            return
        raise AssertionError("encode_database worked without declaring unified_database")
    codes = hasher.encode_database(items)
    n_bits = params.get("n_bits", N_BITS)
    n = len(next(iter(items.values())))
    assert isinstance(codes, np.ndarray) and codes.dtype == np.int8, "database codes not int8"
    assert codes.shape == (n, n_bits), f"database codes {codes.shape}, expected {(n, n_bits)}"
    assert set(np.unique(codes).tolist()) <= {-1, 1}, "database code values are not ±1"
    for i in (0, n // 2, n - 1):
        single = hasher.encode_database({m: X[i : i + 1] for m, X in items.items()})
        assert np.array_equal(single[0], codes[i]), (
            f"database code of row {i} differs when encoded alone")


def _check_real_valued_ranking(hasher, queries: dict, items: dict) -> None:
    """Representations per item (no batch dependence), both roles; distances finite, (b, N)."""
    for modality in queries:
        reps = {}
        for role, X in (("query", queries[modality]), ("database", items[modality])):
            rep = hasher.represent(X, modality, role)
            assert rep.ndim == 2 and len(rep) == len(X), f"{role} {modality}: shape {rep.shape}"
            assert np.isfinite(rep).all(), f"{role} {modality}: representations not finite"
            for i in (0, len(X) - 1):
                alone = hasher.represent(X[i:i + 1], modality, role)[0]
                assert np.allclose(alone, rep[i], rtol=1e-9, atol=1e-12), (
                    f"{role} {modality}: row {i} differs when represented alone")
            reps[role] = rep
        D = hasher.distances(reps["query"], reps["database"])
        assert D.shape == (len(reps["query"]), len(reps["database"])), f"distances {D.shape}"
        assert np.isfinite(D).all(), f"{modality}: distances not finite"


def check_declared_rules_refuse_invalid_values(cls: type, params: dict[str, Any]) -> None:
    """Every declared rule (:meth:`~mmhash.base.BaseHasher.declared_constraints`) refuses the
    values its constraint names as invalid, before any fit, with one
    :class:`InvalidInputError` that names the parameter; the checks' own settings pass."""
    _make(cls, params).check_params()
    for name, constraint in cls.declared_constraints().items():
        for bad in constraint.invalid_values():
            try:
                _make(cls, {**params, name: bad}).check_params()
            except InvalidInputError as exc:
                assert name in str(exc), f"{name}={bad!r}: the message does not name it: {exc}"
                continue
            except Exception as exc:
                raise AssertionError(f"{name}={bad!r}: raised {type(exc).__name__}: {exc}"
                                     ) from None
            raise AssertionError(f"{name}={bad!r} was accepted ({constraint.describe()})")


CHECKS: dict[str, Check] = {
    "params_stored_unchanged": check_params_stored_unchanged,
    "declared_rules_refuse_invalid_values": check_declared_rules_refuse_invalid_values,
    "fit_returns_self": check_fit_returns_self,
    "encode_before_fit_raises": check_encode_before_fit_raises,
    "code_format": check_code_format,
    "inputs_not_mutated": check_inputs_not_mutated,
    "deterministic": check_deterministic,
    "no_batch_dependence": check_no_batch_dependence,
    "save_load_roundtrip": check_save_load_roundtrip,
    "bad_input_errors": check_bad_input_errors,
    "supported_view_counts": check_supported_view_counts,
    "beats_random_floor": check_beats_random_floor,
    "declared_capabilities": check_declared_capabilities,
    "hostile_data": check_hostile_data,
}


def check_params(cls: type, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters the checks use: conformance_params, then ``params``, with n_bits=16."""
    return {"n_bits": N_BITS, "random_state": 0, **cls.conformance_params, **(params or {})}


def iter_checks(cls: type, params: dict[str, Any] | None = None,
                skip: tuple[str, ...] = ()) -> Iterator[tuple[str, Callable[[], None]]]:
    """Yield (check name, zero-argument callable) for every check that applies to ``cls``."""
    full = check_params(cls, params)
    for name, check in CHECKS.items():
        if name in skip or (name in ("beats_random_floor", "hostile_data")
                            and cls.name == "rp"):
            continue  # the floor cannot beat itself
        yield name, (lambda check=check: check(cls, full))


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    message: str = ""


def check_hasher(name_or_cls: str | type, params: dict[str, Any] | None = None, *,
                 raise_on_failure: bool = True,
                 on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run every conformance check on a hasher (a registered name or a class).

    Returns the list of results; with ``raise_on_failure`` an :class:`AssertionError` lists every
    failed check. ``on_result`` is called after each check (the CLI shows progress with it).
    """
    from mmhash.registry import get_hasher_class

    cls = get_hasher_class(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
    results = []
    for name, run in iter_checks(cls, params):
        try:
            run()
            result = CheckResult(name, True)
        except Exception as exc:  # report every failing check, not only the first
            result = CheckResult(name, False, f"{type(exc).__name__}: {exc}")
        results.append(result)
        if on_result is not None:
            on_result(result)
    failed = [r for r in results if not r.passed]
    if failed and raise_on_failure:
        lines = "\n".join(f"  {r.check}: {r.message}" for r in failed)
        raise AssertionError(f"{cls.__name__} failed {len(failed)} check(s):\n{lines}")
    return results
