"""One definition of a benchmark cell: its identity, how it runs, and what it produces.

A cell is one fit of one method on one dataset, evaluated on every retrieval task of its views.
Its identity, :class:`CellKey`, is defined here and nowhere else: the grid creates keys, executors
move them, the store files and groups results by :data:`KEY_FIELDS`, and reports, regression and
exports group by the same fields (minus the seed, which they average over). Writing a key out by
hand anywhere else is how results of different parameters or different data got mixed before.

:func:`run_cell` fits, encodes and evaluates one cell and returns its :class:`CellRecord`, which
carries the codes too (:class:`~mmhash.bench.codes.CodeSet`): every metric can later be
recomputed from them without refitting (:func:`evaluate_codes` is the one evaluation both use).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmhash.bench.codes import CodeSet
from mmhash.data.dataset import Dataset
from mmhash.errors import InvalidInputError

#: How the retrieval set is encoded: ``per-view`` -- each task ranks against the codes of the
#: retrieval view from that view's hash function (mmhash's default); ``unified`` -- against one
#: code per database item learned from all of its views, for methods that declare the
#: ``unified_database`` capability (the CMFH, LSSH and IMH papers' protocol). A method without it
#: always runs ``per-view``, and its cells say so.
DATABASE_PROTOCOLS = ("per-view", "unified")
DEFAULT_DATABASE = "per-view"

#: The default metric tokens and tie policies of a cell's evaluation.
DEFAULT_METRICS = ("map",)
DEFAULT_TIES = ("expected",)


def canonical_params(params: Mapping[str, Any]) -> str:
    """The canonical JSON of a method's extra hyperparameters (sorted keys, numpy scalars as
    Python numbers): equal settings give equal strings, so they name the same cell."""

    def plain(value):
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return json.dumps({k: plain(v) for k, v in params.items()}, sort_keys=True)


def dataset_fingerprint(dataset: Dataset) -> str:
    """One sha256 naming the data a cell saw: the source files' hashes, or synthetic params."""
    source = dataset.info.get("sha256") or dataset.info.get("params") or dataset.name
    return hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, order=True)
class CellKey:
    """The identity of a cell. Two cells with equal keys are the same experiment.

    Attributes
    ----------
    dataset : the dataset's name.
    fingerprint : sha256 of the data (:func:`dataset_fingerprint`): the same name with other
        files is other data.
    method : registry key of the hasher.
    params : canonical JSON of the hyperparameters set beyond the defaults
        (:func:`canonical_params`); ``n_bits`` and ``random_state`` are ``bits`` and ``seed``.
    bits, seed : code length and random state.
    views : the views the method is fitted on, in the dataset's order.
    database : the database protocol the cell ran under (one of :data:`DATABASE_PROTOCOLS`).
    """

    dataset: str
    fingerprint: str
    method: str
    params: str
    bits: int
    seed: int
    views: tuple[str, ...]
    database: str = DEFAULT_DATABASE

    @property
    def params_dict(self) -> dict[str, Any]:
        return json.loads(self.params)

    def as_row(self) -> dict[str, Any]:
        """The key as stored and exported (views comma-joined)."""
        row = dataclasses.asdict(self)
        row["views"] = ",".join(self.views)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CellKey:
        """The key of a stored or exported row (a mapping holding every :data:`KEY_FIELDS`)."""
        values = {name: row[name] for name in KEY_FIELDS}
        values["views"] = tuple(str(values["views"]).split(","))
        values["bits"], values["seed"] = int(values["bits"]), int(values["seed"])
        return cls(**values)

    def label(self) -> str:
        """How progress lines and failure lists name the cell."""
        extra = "" if self.params == "{}" else f" ({describe_params(self.params_dict)})"
        db = " unified db" if self.database == "unified" else ""
        return (f"{self.method}{extra} {self.bits} bits seed {self.seed} on {self.dataset} "
                f"[{'+'.join(self.views)}]{db}")


#: The fields that make up a cell's identity, in store/export column order.
KEY_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CellKey))
#: The identity of a series of cells that differ only in their seed (a report row, a
#: regression entry): every key field but the seed.
SERIES_FIELDS: tuple[str, ...] = tuple(f for f in KEY_FIELDS if f != "seed")
#: The fields of one stored value beyond the cell key.
VALUE_FIELDS = ("task", "metric", "tie", "value")


def describe_params(params: Mapping[str, Any], digits: int | None = 4) -> str:
    """``{"reg": 1000, "mu": 0.5}`` -> ``mu=0.5, reg=1000`` (sorted, compact).

    Floats show ``digits`` significant digits (a tuned ``reg=0.07257005721594278`` reads
    ``reg=0.07257``); ``digits=None`` shows every value exactly, as JSON.
    """
    def show(value):
        if digits is not None and isinstance(value, float) and math.isfinite(value):
            if value.is_integer() and abs(value) < 1e7:
                return repr(value)  # 12345.0, not 1.234e+04
            text = f"{value:.{digits}g}"
            return text if any(c in text for c in ".e") else text + ".0"  # a float: 2.0
        if digits is not None and isinstance(value, (list, tuple)):
            return "[" + ", ".join(show(v) for v in value) + "]"
        return json.dumps(value)

    return ", ".join(f"{k}={show(v)}" for k, v in sorted(params.items()))


@dataclass(frozen=True)
class CellRecord:
    """What running a cell produced, as the store keeps it.

    ``results`` rows are ``(task, metric, tie, value)``; ``curves`` rows are
    ``(task, kind "pr" | "p@k", tie, x, precision, recall or None)`` with x the radius or K;
    ``codes`` the cell's codes (None for a failed cell); ``device`` where a deep method
    trained (its ``device_``: ``cpu``, ``cuda:0``, ...; None for the others);
    ``code_stats`` the statistics of the codes per role and view
    (:func:`mmhash.bench.codestats.cell_statistics`; None without codes); ``warnings`` the
    distinct warnings raised while the cell ran (``"Category: message"``); ``threads`` the
    thread pools it ran with (:func:`mmhash.bench.provenance.thread_provenance`).
    """

    key: CellKey
    status: str  # "done" | "failed"
    error: str | None = None
    train_seconds: float | None = None
    encode_seconds: float | None = None
    results: Sequence[tuple[str, str, str, float]] = ()
    curves: Sequence[tuple[str, str, str, list, list, list | None]] = ()
    codes: CodeSet | None = None
    device: str | None = None
    code_stats: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    threads: dict[str, Any] | None = None


@dataclass(frozen=True)
class Evaluation:
    """What to compute for every task: metric tokens and tie policies (see :meth:`parse`)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    ties: tuple[str, ...] = DEFAULT_TIES

    @property
    def needs_pairs(self) -> bool:
        """True when an instance-level metric (``recall@K``, ``medr``) is asked for."""
        from mmhash.evaluation import parse_metrics

        return any(m.relevance == "pair" for m in parse_metrics(self.metrics))

    @classmethod
    def parse(cls, metrics: str | Sequence[str], ties: str | Sequence[str]) -> Evaluation:
        """Metric tokens and tie policies checked by the evaluation's own parsers (canonical
        tokens, duplicates dropped); a clear error naming the valid forms otherwise."""
        from mmhash.evaluation import parse_metrics
        from mmhash.evaluation._validate import check_tie

        tie_list = [ties] if isinstance(ties, str) else list(ties)
        if not tie_list:
            raise InvalidInputError("name at least one tie policy (e.g. expected)")
        return cls(tuple(metric.token for metric in parse_metrics(metrics)),
                   tuple(dict.fromkeys(check_tie(t) for t in tie_list)))


def tasks(views: Sequence[str]) -> list[tuple[str, str]]:
    """Every ordered pair of distinct views: (query view, retrieval view)."""
    return [(a, b) for a in views for b in views if a != b]


def task_name(query_view: str, retrieval_view: str) -> str:
    """The task token stored and exported: ``QUERY->RETRIEVAL`` in the dataset's view names."""
    return f"{query_view}->{retrieval_view}"


def pk_grid(n_items: int) -> list[int]:
    """Cut-offs of the stored P@K curve: 1, 2, 5, 10, 20, 50, ... below ``n_items``, then it."""
    ks, scale = [], 1
    while scale < n_items:
        ks.extend(k for k in (scale, 2 * scale, 5 * scale) if k < n_items)
        scale *= 10
    return [*ks, n_items]


def evaluate_codes(codes: CodeSet, query_labels: np.ndarray, retrieval_labels: np.ndarray,
                   evaluation: Evaluation, per_query: dict | None = None) -> tuple[list, list]:
    """Every task's metric values and curves from a cell's codes: ``(results, curves)`` rows as
    in :class:`CellRecord`. One engine pass per task (:func:`mmhash.evaluation.evaluate_task`).

    A fresh run and a recomputation from stored codes both come here, so they agree exactly.
    ``per_query``: a dict to fill with ``(task, metric, tie)`` -> float64 (Q,) the value of
    every query (None: not kept).
    """
    from mmhash.evaluation import evaluate_task

    results, curves = [], []
    keep = per_query is not None
    ks = pk_grid(len(retrieval_labels))
    for query_view, retrieval_view in tasks(codes.views):
        # instance-level metrics rank each query against the queries' own items seen through
        # the retrieval view: the query codes of that view (whatever the database protocol)
        found = evaluate_task(codes.query[query_view], codes.retrieval_for(retrieval_view),
                              query_labels, retrieval_labels, metrics=evaluation.metrics,
                              ties=evaluation.ties, pk_cutoffs=ks,
                              pair_codes=codes.query[retrieval_view], per_query=keep)
        task = task_name(query_view, retrieval_view)
        _add_task(task, found, evaluation, results, curves)
        if keep:
            per_query.update({(task, *key): values for key, values in found.per_query.items()})
    return results, curves


def evaluate_representations(hasher, query: Mapping[str, np.ndarray],
                             database: Mapping[str, np.ndarray], query_labels: np.ndarray,
                             retrieval_labels: np.ndarray, evaluation: Evaluation,
                             pairs: Mapping[str, np.ndarray] | None = None
                             ) -> tuple[list, list]:
    """:func:`evaluate_codes` for a method that ranks by real-valued distances
    (:data:`mmhash.base.REAL_VALUED_RANKING`): ``query`` / ``database`` map each view to its
    ``represent`` output; each task is evaluated by :func:`mmhash.evaluation.evaluate_ranking`
    from ``hasher.distances`` in blocks of queries. No PR curve (it is by Hamming radius).
    ``pairs``: view -> the query items represented as database items, for the instance-level
    metrics (needed only when they are asked for)."""
    from mmhash.evaluation import evaluate_ranking

    results, curves = [], []
    ks = pk_grid(len(retrieval_labels))
    for query_view, retrieval_view in tasks(list(query)):
        Q, D = query[query_view], database[retrieval_view]
        P = None if pairs is None else pairs[retrieval_view]
        found = evaluate_ranking(lambda rows, Q=Q, D=D: hasher.distances(Q[rows], D),
                                 query_labels, retrieval_labels, metrics=evaluation.metrics,
                                 ties=evaluation.ties, pk_cutoffs=ks,
                                 pair_distances=None if P is None else
                                 (lambda rows, Q=Q, P=P: hasher.distances(Q[rows], P)))
        _add_task(task_name(query_view, retrieval_view), found, evaluation, results, curves)
    return results, curves


def _add_task(task: str, found, evaluation: Evaluation, results: list, curves: list) -> None:
    """Append one task's metric values and curves (a :class:`TaskEvaluation`) as record rows."""
    if found.pr is not None:
        pr = found.pr
        curves.append((task, "pr", "none", pr.radius.tolist(), pr.precision.tolist(),
                       pr.recall.tolist()))
    for tie in evaluation.ties:
        results.extend((task, metric, tie, found.values[(metric, tie)])
                       for metric in evaluation.metrics)
        curves.append((task, "p@k", tie, found.cutoffs.tolist(),
                       found.precision_at_k[tie].tolist(), None))


#: Rows encoded per call: a code depends only on its own item (the contract), so a retrieval
#: set of 190,000 rows is encoded in slices whose float64 copies stay small (a method's
#: encoder holds two or three float64 copies of its slice: 0.8 GB at 8,192 x 4,096).
ENCODE_ROWS = 8192


def encode_in_chunks(encode: Callable, X, *args, rows: np.ndarray | None = None) -> np.ndarray:
    """``encode(X[rows], *args)`` in slices of :data:`ENCODE_ROWS` rows, stacked: int8
    ``(len(rows), n_bits)``.

    ``X`` is one ``(n, d)`` array or a mapping of views with paired rows (``encode_database``);
    ``rows`` the int64 positions to encode, in order (default: every row). The rows are gathered
    one slice at a time, so a split part is never copied whole (the retrieval set of the
    NUS-WIDE-shaped set is 7.5 GB of float64 features).
    """
    def take(selection):
        return ({v: A[selection] for v, A in X.items()} if isinstance(X, Mapping)
                else X[selection])

    if rows is None:
        n = len(next(iter(X.values()))) if isinstance(X, Mapping) else len(X)
        if n <= ENCODE_ROWS:
            return encode(X, *args)
        chunks = [slice(start, start + ENCODE_ROWS) for start in range(0, n, ENCODE_ROWS)]
    else:
        chunks = [rows[start:start + ENCODE_ROWS]
                  for start in range(0, max(len(rows), 1), ENCODE_ROWS)]
    return np.concatenate([encode(take(chunk), *args) for chunk in chunks])


#: ``on_epoch(key, epoch, n_epochs, metrics)``: the training progress of a hasher that declares
#: the ``epoch_progress`` capability (deep methods), for a progress bar.
EpochCallback = Callable[[CellKey, int, int, dict], None]


def run_cell(dataset: Dataset, key: CellKey, evaluation: Evaluation | None = None, *,
             on_epoch: EpochCallback | None = None) -> CellRecord:
    """Fit on the training split, encode queries and retrieval set, evaluate every task.

    The record also carries the statistics of the codes, the warnings raised meanwhile (they
    are recorded, not printed) and the thread pools the cell ran with.
    Exceptions propagate (:func:`run_cell_safely` turns them into a failed record).
    """
    from mmhash.bench.codestats import cell_statistics, n_classes
    from mmhash.bench.provenance import WarningRecorder, thread_provenance

    with WarningRecorder() as recorder:
        record = _fit_encode_evaluate(dataset, key, evaluation, on_epoch)
    stats = (None if record.codes is None
             else cell_statistics(record.codes, n_classes(dataset.labels)))
    return dataclasses.replace(record, code_stats=stats, warnings=tuple(recorder.messages),
                               threads=thread_provenance())


def _fit_encode_evaluate(dataset: Dataset, key: CellKey, evaluation: Evaluation | None,
                         on_epoch: EpochCallback | None) -> CellRecord:
    """The work of :func:`run_cell`: its record without statistics, warnings and threads."""
    from mmhash.base import EPOCH_PROGRESS, REAL_VALUED_RANKING, declares
    from mmhash.registry import get_hasher

    hasher = get_hasher(key.method, n_bits=key.bits, random_state=key.seed, **key.params_dict)
    # The training rows as the float64 arrays the contract hands to ``_fit`` (check_array then
    # makes no copy): a float32 copy beside them would be held through the whole fit.
    rows = dataset.split.train
    fit_views = {v: dataset.views[v][rows].astype(np.float64, copy=False) for v in key.views}
    start = time.perf_counter()
    if on_epoch is not None and declares(hasher, EPOCH_PROGRESS):
        hasher.fit(fit_views, progress=lambda epoch, total, metrics:
                   on_epoch(key, epoch, total, metrics))
    else:
        hasher.fit(fit_views)
    train_seconds = time.perf_counter() - start

    # Encoded straight from the dataset's arrays by row positions: no copy of a whole part.
    views, queries, items = dataset.views, dataset.split.query, dataset.split.retrieval
    q_labels, r_labels = dataset.labels[queries], dataset.labels[items]
    if declares(hasher, REAL_VALUED_RANKING):
        # Ranked by real-valued distances: there are no codes to keep, so such a cell cannot
        # be recomputed from the store (it is listed as without codes there).
        start = time.perf_counter()
        query_reps, database_reps = ({v: encode_in_chunks(
            lambda X, view, role=role: hasher.represent(X, view, role), views[v], v, rows=rows)
            for v in key.views} for role, rows in (("query", queries), ("database", items)))
        encode_seconds = time.perf_counter() - start
        evaluation = evaluation or Evaluation()
        pairs = ({v: hasher.represent(views[v][queries], v, "database") for v in key.views}
                 if evaluation.needs_pairs else None)
        results, curves = evaluate_representations(hasher, query_reps, database_reps, q_labels,
                                                    r_labels, evaluation, pairs)
        return CellRecord(key, "done", None, train_seconds, encode_seconds, results, curves,
                          None, getattr(hasher, "device_", None))
    start = time.perf_counter()
    query_codes = {v: encode_in_chunks(hasher.encode, views[v], v, rows=queries)
                   for v in key.views}
    if key.database == "unified":
        codes = CodeSet(key.views, query_codes, {}, encode_in_chunks(
            hasher.encode_database, {v: views[v] for v in key.views}, rows=items))
    else:
        codes = CodeSet(key.views, query_codes,
                        {v: encode_in_chunks(hasher.encode, views[v], v, rows=items)
                         for v in key.views})
    encode_seconds = time.perf_counter() - start

    results, curves = evaluate_codes(codes, q_labels, r_labels, evaluation or Evaluation())
    return CellRecord(key, "done", None, train_seconds, encode_seconds, results, curves, codes,
                      getattr(hasher, "device_", None))


def run_cell_safely(dataset: Dataset, key: CellKey, evaluation: Evaluation,
                    threads: int | None = None, on_epoch: EpochCallback | None = None
                    ) -> CellRecord:
    """:func:`run_cell`, with any exception turned into a failed record (the grid goes on).

    ``threads`` caps BLAS/OpenMP and torch threads first (a worker of a process pool).
    """
    if threads:
        _limit_threads(threads)
    try:
        return run_cell(dataset, key, evaluation, on_epoch=on_epoch)
    except Exception as exc:  # one broken cell must not lose the rest of the grid
        from mmhash.bench.provenance import thread_provenance

        return CellRecord(key, "failed", f"{type(exc).__name__}: {exc}",
                          threads=thread_provenance())


def _limit_threads(threads: int) -> None:
    """Cap BLAS/OpenMP, torch and numba threads in a worker, and set its thread budget (which a
    deep method's own thread count obeys), so N workers use N x threads cores."""
    import sys

    from threadpoolctl import threadpool_limits

    from mmhash.threads import set_thread_budget

    set_thread_budget(threads)
    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


__all__ = [
    "DATABASE_PROTOCOLS",
    "DEFAULT_DATABASE",
    "KEY_FIELDS",
    "SERIES_FIELDS",
    "VALUE_FIELDS",
    "CellKey",
    "CellRecord",
    "Evaluation",
    "canonical_params",
    "dataset_fingerprint",
    "evaluate_codes",
    "evaluate_representations",
    "run_cell",
    "run_cell_safely",
    "task_name",
    "tasks",
]
