"""Published numbers beside mmhash's: the values the papers report, with their source, metric,
protocol and features, rendered next to a run's table.

A suite ``NAME.toml`` may have ``NAME.published.json`` beside it::

    {"sources": {"ucch-tpami2023:Table 1": {"citation": ..., "table": ..., "location": ...,
                 "metric": "map" | "map@50" | "" (unstated), "metric_note": ...,
                 "protocol": "ucch" | "djsrh" | "" (unstated), "features": ..., "note": ...}},
     "values": [{"method": "ucch", "collection": "mirflickr25k", "task": "image->text",
                 "bits": 16, "value": 0.739, "source": "ucch-tpami2023:Table 1"}, ...],
     "unreachable": ["tables that could not be read, listed, never estimated"]}

:func:`comparison_tables` turns one table of a run and the published values for its collection
into one table per source: each method that source reports gets its row of ours, the published
row and the difference, and the caption says where the numbers come from and where the paper's
metric, protocol or features differ from the run's (then the difference is not a like-for-like
comparison, and the caption says so).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmhash.bench.report import Table
from mmhash.errors import DataError

PUBLISHED_SUFFIX = ".published.json"
#: How comparison rows are marked (they are shown, never marked best).
PUBLISHED_MARK = "[published]"
DIFFERENCE_MARK = "[ours - published]"


@dataclass(frozen=True)
class Published:
    """A suite's published values: ``sources`` id -> description, ``values`` rows."""

    sources: dict[str, dict[str, str]]
    values: list[dict[str, Any]]
    unreachable: list[str]


def published_path(suite_path: str | Path) -> Path:
    """Where a suite's published values live: ``NAME.published.json`` beside ``NAME.toml``."""
    suite_path = Path(suite_path)
    return suite_path.with_name(suite_path.stem + PUBLISHED_SUFFIX)


def load_published(suite: str) -> Published | None:
    """The published values of a suite (by name or ``.toml`` path), or None if it has none;
    :class:`DataError` for an unreadable or malformed file."""
    from mmhash.bench.suite import load_suite

    path = published_path(load_suite(suite).path)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        sources, values = dict(raw["sources"]), list(raw["values"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a published-values file ({type(exc).__name__}: {exc})"
                        ) from None
    for row in values:
        if row.get("source") not in sources:
            raise DataError(f"{path}: a value names source {row.get('source')!r}, which the "
                            f"file does not describe")
    return Published(sources, values, list(raw.get("unreachable", [])))


def _base_and_protocol(dataset: str) -> tuple[str, str]:
    base, _, protocol = dataset.partition("@")
    return base, protocol or "file"


def comparison_tables(table: Table, published: Published, only: str | None = None
                      ) -> list[Table]:
    """One table per published source that reports ``dataset``'s collection: rows ``METHOD``
    (ours, from ``table``, whose cells are mAP means), ``METHOD [published]`` and
    ``METHOD [ours - published]`` for every method of ours the source reports, then the
    source's other methods (published only).

    The run's dataset name (``mirflickr25k-vgg@ucch``) and metric are the table's;
    ``only`` restricts to one source id. The caption names the source,
    its metric, protocol and features, and says when they differ from the run's.
    """
    from mmhash.data.formats._common import collection_of

    dataset, metric = table.dataset, table.metric
    base, protocol = _base_and_protocol(dataset)
    collection = collection_of(base)
    out = []
    by_source: dict[str, list[dict[str, Any]]] = {}
    for row in published.values:
        if only is not None and row["source"] != only:
            continue
        if row["collection"] == collection and row["task"] in table.tasks and int(
                row["bits"]) in table.bits:
            by_source.setdefault(row["source"], []).append(row)
    ours = {_method_of(label): label for label in table.methods
            if label not in table.references}
    for source_id, rows in by_source.items():
        source = published.sources[source_id]
        cells: dict[tuple[str, str, int], tuple[float, float, int]] = {}
        methods: list[str] = []
        marks: set[str] = set()
        reported = list(dict.fromkeys(r["method"] for r in rows))
        for method in [m for m in reported if m in ours] + [m for m in reported if m not in ours]:
            label_ours = ours.get(method)
            pub_label = f"{method} {PUBLISHED_MARK}"
            diff_label = f"{method} {DIFFERENCE_MARK}"
            if label_ours is not None:
                methods.append(label_ours)
            methods.append(pub_label)
            marks.add(pub_label)
            for r in (r for r in rows if r["method"] == method):
                key = (r["task"], int(r["bits"]))
                cells[(pub_label, *key)] = (float(r["value"]), 0.0, 1)
                if label_ours is not None and (label_ours, *key) in table.cells:
                    mine = table.cells[(label_ours, *key)]
                    cells[(label_ours, *key)] = mine
                    cells[(diff_label, *key)] = (mine[0] - float(r["value"]), 0.0, 1)
            if label_ours is not None:
                methods.append(diff_label)
                marks.add(diff_label)
        caption = _caption(source, dataset, base, protocol, metric)
        # ours keep their marks here too: a degenerate value is flagged wherever it is shown
        out.append(Table(caption, list(table.tasks), list(table.bits), methods, cells,
                         frozenset(marks),
                         flags={k: v for k, v in table.flags.items() if k[0] in methods},
                         warned={k: v for k, v in table.warned.items() if k[0] in methods}))
    return out


def _method_of(label: str) -> str:
    """The registry name a table row label starts with (``cvh (reg=1)`` -> ``cvh``)."""
    return label.split(" ", 1)[0]


def _caption(source: dict[str, str], dataset: str, base: str, protocol: str,
             metric: str) -> str:
    from mmhash.evaluation.measures import metric_title

    said = [f"Published values beside ours on {dataset}: {source['citation']}, "
            f"{source['table']} ({source['location']}); {source.get('note', '')}".rstrip("; ")]
    said.append(f"Published metric: {source['metric_note']}; ours: {metric_title(metric)}")
    said.append(f"Published features: {source['features']}")
    differs = []
    if source["metric"] and source["metric"] != metric:
        differs.append(f"metric ({source['metric']} published, {metric} here)")
    if not source["metric"]:
        differs.append("metric (not stated by the source)")
    if source["protocol"] and source["protocol"] != protocol:
        differs.append(f"split protocol ({source['protocol']} published, {protocol} here)")
    if not source["protocol"]:
        differs.append("split protocol (not stated by the source)")
    if base.startswith("synthetic"):
        differs.append("data (ours is a SYNTHETIC stand-in of the collection's shape)")
    said.append("NOT like for like, differs in: " + "; ".join(differs) if differs else
                "Same metric and split protocol; check the features above")
    return ". ".join(said) + "."


def published_for(run_tables: Sequence[Table], published: Published) -> list[Table]:
    """:func:`comparison_tables` for a run's tables (from :func:`mmhash.bench.report.tables`):
    for each dataset, pair of tasks and source, the run's table in the source's own metric when
    the run computed it, else its first table (and the caption says the metric differs)."""
    groups: dict[tuple[str, tuple[str, ...]], list[Table]] = {}
    for table in run_tables:
        groups.setdefault((table.dataset, tuple(table.tasks)), []).append(table)
    out: list[Table] = []
    for candidates in groups.values():
        for source_id, source in published.sources.items():
            table = next((t for t in candidates if t.metric == source["metric"]), candidates[0])
            out.extend(comparison_tables(table, published, source_id))
    return out
