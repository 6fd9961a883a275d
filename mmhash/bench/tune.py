"""Hyperparameter search on the validation split (``mmhash tune``), never on the test queries.

A method's defaults come from its paper's datasets; on new data they can fail. :func:`tune`
searches its hyperparameters with Optuna's TPE sampler, or walks the exhaustive grid when every
axis is a list of values, and scores each setting by the mAP of its codes on the dataset's
*validation protocol* (:meth:`mmhash.data.Dataset.validation_protocol`): fitted on the rows outside
the validation part, the validation rows as queries against those rows. The test queries are not
in that dataset at all.

Every trial is a cell of the result store (dataset ``<name>:validation``, its params in the key),
so a killed search resumes: TPE with a fixed seed proposes the same settings again when told the
same values, and settings already stored are read back instead of refitted. The best setting is
written as a small TOML file of ``[params.METHOD]`` tables, which ``mmhash bench --params-file``
(and suites) read.

A search space maps a parameter to a list of values (a grid axis) or a range
``(low, high)`` / ``(low, high, "log")`` (integers when both bounds are). A hasher may declare
its own default space in the class attribute ``search_space``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmhash.bench.cell import CellKey, Evaluation, canonical_params, dataset_fingerprint
from mmhash.errors import InvalidInputError, UnknownNameError

#: An axis: a list of values, or (low, high) / (low, high, "log").
Axis = list | tuple
SearchSpace = dict[str, Axis]

DEFAULT_TRIALS = 20


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_space(items: Sequence[str]) -> SearchSpace:
    """``["reg=1e-4,1e-2,1", "mu=1:1000:log", "k=5:50"]`` -> a search space.

    ``NAME=v1,v2,...`` is a list of values (parsed as JSON when they can be); ``NAME=lo:hi`` a
    uniform range and ``NAME=lo:hi:log`` a log-uniform one (integers when both bounds are).
    """
    space: SearchSpace = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not (sep and name and raw):
            raise InvalidInputError(
                f"--space {item!r}: expected NAME=v1,v2,... or NAME=lo:hi[:log]")
        if ":" in raw and "," not in raw:
            parts = raw.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
                raise InvalidInputError(f"--space {item!r}: a range is lo:hi or lo:hi:log")
            bounds = [_value(p) for p in parts[:2]]
            space[name] = (*bounds, "log") if len(parts) == 3 else tuple(bounds)
        else:
            space[name] = [_value(v) for v in raw.split(",") if v != ""]
    return space


def check_space(space: Mapping[str, Axis], cls: type) -> SearchSpace:
    """The space as lists and tuples, every name a parameter of ``cls`` (not ``n_bits`` or
    ``random_state``), every range well-formed; one clear error otherwise."""
    valid = set(cls._param_names()) - {"n_bits", "random_state"}
    out: SearchSpace = {}
    if not space:
        raise InvalidInputError(
            f"{cls.name}: no search space: pass --space NAME=v1,v2 or NAME=lo:hi[:log] "
            f"(parameters: {', '.join(sorted(valid))})")
    for name, axis in space.items():
        if name not in valid:
            raise UnknownNameError(f"parameter of {cls.name} to tune", name, sorted(valid))
        if isinstance(axis, list):
            if not axis:
                raise InvalidInputError(f"search space {name}: empty list of values")
            out[name] = list(axis)
            continue
        axis = tuple(axis)
        lo, hi = axis[:2]
        log = len(axis) == 3 and axis[2] == "log"
        numbers = all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in (lo, hi))
        if len(axis) not in (2, 3) or (len(axis) == 3 and not log) or not numbers or lo >= hi \
                or not all(math.isfinite(b) for b in (lo, hi)) or (log and lo <= 0):
            raise InvalidInputError(
                f"search space {name}: {axis!r} is not a range (low, high) or (low, high, 'log') "
                "with finite numbers low < high (low > 0 for log)")
        out[name] = axis
    return out


def checked_space(method: str, space: Mapping[str, Axis] | None,
                  fixed: Mapping[str, Any]) -> SearchSpace:
    """The space ``mmhash tune`` searches for ``method`` (its declared ``search_space`` when
    ``space`` is None), checked with the fixed values before any trial: every name, every fixed
    value, every listed value and both ends of every range (the others at their fixed or
    default values), so a bad value is refused up front, not found trial by trial."""
    from mmhash.registry import check_method_params, get_hasher_class

    cls = get_hasher_class(method)
    space = check_space(space if space is not None else getattr(cls, "search_space", {}), cls)
    clash = set(fixed) & set(space)
    if clash:
        raise InvalidInputError(f"{sorted(clash)[0]} is both searched and fixed")
    check_method_params(method, fixed)
    for name, axis in space.items():
        for value in axis if isinstance(axis, list) else axis[:2]:
            check_method_params(method, {**fixed, name: value})
    return space


def is_grid(space: SearchSpace) -> bool:
    return all(isinstance(axis, list) for axis in space.values())


def grid_size(space: SearchSpace) -> int:
    return math.prod(len(axis) for axis in space.values())


@dataclass
class Trial:
    """One evaluated setting: its params, the validation score (None if the fit failed) and
    whether it was read back from the store."""

    params: dict[str, Any]
    value: float | None
    stored: bool = False
    error: str | None = None


@dataclass
class TuneResult:
    method: str
    dataset: str
    bits: int
    metric: str
    tie: str
    space: SearchSpace
    trials: list[Trial] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        scored = [t for t in self.trials if t.value is not None]
        if not scored:
            raise InvalidInputError(f"every one of the {len(self.trials)} trials failed: "
                                    f"{self.trials[0].error if self.trials else ''}")
        from mmhash.evaluation.measures import parse_metric

        sign = 1.0 if parse_metric(self.metric).higher_is_better else -1.0
        return max(scored, key=lambda t: sign * t.value)


def _suggest(trial, name: str, axis: Axis) -> Any:
    if isinstance(axis, list):
        return trial.suggest_categorical(name, axis)
    lo, hi = axis[:2]
    log = len(axis) == 3
    if isinstance(lo, int) and isinstance(hi, int):
        return trial.suggest_int(name, lo, hi, log=log)
    return trial.suggest_float(name, float(lo), float(hi), log=log)


def score(rows: Sequence[tuple[str, str, str, float]], metric: str, tie: str) -> float:
    """The validation score of a cell: the mean of ``metric`` under ``tie`` over its tasks
    (every ordered pair of views: image->text and text->image for two views)."""
    values = [v for _, m, t, v in rows if m == metric and t == tie]
    return sum(values) / len(values)


def tune(method: str, dataset, *, bits: int, space: Mapping[str, Axis] | None = None,
         trials: int | None = None, metric: str = "map", tie: str = "expected",
         fixed: Mapping[str, Any] | None = None, store=None, seed: int = 0,
         progress: Callable[[int, int, Trial], None] | None = None) -> TuneResult:
    """Search ``method``'s hyperparameters on ``dataset``'s validation protocol.

    Parameters
    ----------
    method : registry name.
    dataset : a :class:`~mmhash.data.Dataset` (its validation protocol is used, nothing else).
    bits : code length of every trial.
    space : parameter -> list of values or range (see the module docstring); default the
        hasher's ``search_space``.
    trials : number of settings to evaluate (default: the grid's size for a grid, else 20).
    metric, tie : the score (mean over the tasks of the validation protocol).
    fixed : parameters held fixed in every trial (e.g. ``n_threads``).
    store : a :class:`~mmhash.bench.store.ResultStore` keeping every trial (and read back on a
        rerun); None keeps nothing.
    seed : seeds the sampler and every fit (``random_state``).
    progress : ``progress(done, total, trial)`` after each trial.
    """
    from mmhash.bench.cell import run_cell_safely
    try:
        import optuna
    except ImportError:
        raise InvalidInputError("mmhash tune needs Optuna: pip install 'mmhash[tune]'") from None
    fixed = dict(fixed or {})
    space = checked_space(method, space, fixed)
    from mmhash.evaluation.measures import parse_metric

    evaluation = Evaluation.parse([metric], [tie])
    metric, tie = evaluation.metrics[0], evaluation.ties[0]
    validation = dataset.validation_protocol()
    fingerprint = dataset_fingerprint(dataset)
    views = tuple(validation.view_names)
    grid = is_grid(space)
    total = trials if trials is not None else (grid_size(space) if grid else DEFAULT_TRIALS)
    if total < 1:
        raise InvalidInputError(f"--trials must be a positive integer, got {total}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A grid is walked in its own (product) order; Optuna's GridSampler stops the study from
    # inside tell(), which the ask-and-tell loop below cannot take.
    settings = iter(itertools.product(*space.values())) if grid else None
    study = None if grid else optuna.create_study(
        direction="maximize" if parse_metric(metric).higher_is_better else "minimize",
        sampler=optuna.samplers.TPESampler(seed=seed))
    run_id = None
    if store is not None:
        run_id = store.start_run({"tune": method, "dataset": validation.name, "bits": bits,
                                  "space": {k: list(v) for k, v in space.items()},
                                  "metric": metric, "tie": tie, "seed": seed, "fixed": fixed},
                                 command=" ".join(sys.argv))
        q_labels, r_labels = validation.part_labels("query"), validation.part_labels("retrieval")
        store.add_labels(validation.name, fingerprint, q_labels, r_labels)
    stored = _stored_rows(store, validation.name) if store is not None else {}
    result = TuneResult(method, dataset.name, bits, metric, tie, space)
    for i in range(min(total, grid_size(space)) if grid else total):
        if grid:
            params = dict(zip(space, next(settings)))
        else:
            trial = study.ask()
            params = {name: _suggest(trial, name, axis) for name, axis in space.items()}
        key = CellKey(validation.name, fingerprint, method,
                      canonical_params({**fixed, **params}), int(bits), int(seed), views)
        rows = stored.get(key, [])
        if any(m == metric and t == tie for _, m, t, _ in rows):  # asked before: read it back
            found = Trial(params, score(rows, metric, tie), stored=True)
        else:
            record = run_cell_safely(validation, key, evaluation)
            if store is not None:
                store.add_cell(run_id, record)
            found = (Trial(params, score(record.results, metric, tie)) if record.status == "done"
                     else Trial(params, None, error=record.error))
        if study is not None and found.value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif study is not None:
            study.tell(trial, found.value)
        result.trials.append(found)
        if progress is not None:
            progress(i + 1, total, found)
    if store is not None:
        store.finish_run(run_id)
    return result


def _stored_rows(store, dataset_name: str) -> dict[CellKey, list[tuple[str, str, str, float]]]:
    """The ``(task, metric, tie, value)`` rows of every finished trial stored for the
    validation protocol ``dataset_name``, by cell key."""
    rows: dict[CellKey, list[tuple[str, str, str, float]]] = {}
    for row in store.results(dataset=dataset_name):
        rows.setdefault(CellKey.from_row(row), []).append(
            (row["task"], row["metric"], row["tie"], row["value"]))
    return rows


def write_params(path: str | os.PathLike, result: TuneResult) -> Path:
    """Write the best setting as ``[params.METHOD]`` TOML (what suites and ``--params-file``
    read), with a comment saying how it was found."""
    best = result.best
    lines = [
        f"# mmhash tune {result.method} on {result.dataset} at {result.bits} bits: "
        f"{result.metric} ({result.tie} ties) on the validation split, "
        f"{len(result.trials)} trials, best {best.value:.4f}",
        f"# space: {json.dumps({k: list(v) for k, v in result.space.items()})}",
        f"[params.{result.method}]",
    ]
    lines += [f"{name} = {_toml_value(value)}" for name, value in sorted(best.params.items())]
    from mmhash.codefiles import atomic_output

    path = Path(path)
    with atomic_output(path) as temporary:  # never a half-written file
        temporary.write_text("\n".join(lines) + "\n")
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "inf" if value == math.inf else "-inf" if value == -math.inf else \
            "nan" if math.isnan(value) else repr(value)
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise InvalidInputError(f"cannot write {value!r} as a TOML parameter value")


def read_params_file(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The ``[params.METHOD]`` tables of a TOML file (as written by :func:`write_params`, or a
    suite's); a clear error for anything else."""
    from mmhash.bench.suite import tomllib
    from mmhash.errors import DataError

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"--params-file {path}: cannot be read ({exc})") from None
    params = raw.get("params")
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise InvalidInputError(f"--params-file {path}: expected [params.METHOD] tables")
    return params
