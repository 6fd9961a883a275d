"""Figures of stored curves: PR (by Hamming radius) and P@K, one line per series of cells.

One figure per (dataset, data fingerprint, task, bits, kind); each line is one method setting
(named as in the tables, :func:`mmhash.bench.report.row_labels`), the mean over its seeds (every
seed's curve has the same x grid: radii 0..n_bits, or the same K cut-offs). Methods ranked by
real-valued distances store no PR curve, so they are lines of the P@K figures only.
:func:`curve_figures` draws them, :func:`figure_bytes` renders one in memory (PNG or SVG, for
:mod:`mmhash.bench.html`), :func:`plot_curves` writes them as PNG files. Needs the ``plot`` extra.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmhash.errors import InvalidInputError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InvalidInputError("--plot needs matplotlib: pip install 'mmhash[plot]'") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _safe(text: str) -> str:
    return text.replace("->", "-to-").replace("/", "_").replace(" ", "_")


@dataclass
class CurveFigure:
    """One drawn figure and what it shows; close it with :func:`figure_bytes` or
    ``matplotlib.pyplot.close(figure)``."""

    dataset: str
    fingerprint: str  # "" for cells stored without one
    task: str
    bits: int
    kind: str  # "pr" | "p@k"
    title: str
    lines: list[str]  # the legend: one row label per line
    stem: str  # file name without suffix, unique among the figures of one call
    figure: Any  # a matplotlib Figure


def curve_figures(curves: Sequence[dict[str, Any]], *, tie: str = "expected"
                  ) -> Iterator[CurveFigure]:
    """Draw one figure per (dataset, fingerprint, task, bits, kind), in that order, from rows of
    :meth:`ResultStore.curves`; P@K lines use tie policy ``tie``. Yields them one at a time (the
    caller closes each)."""
    from mmhash.bench.report import ROW_FIELDS, row_labels

    plt = _pyplot()
    groups: dict[tuple, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in curves:
        if row["kind"] == "p@k" and row["tie"] != tie:
            continue
        figure = (row["dataset"], row["fingerprint"] or "", row["task"], row["bits"], row["kind"])
        groups[figure][tuple(row[f] for f in ROW_FIELDS)].append(row)
    several = {d: len({f for (dd, f, *_) in groups if dd == d}) > 1 for (d, *_) in groups}
    for (dataset, fingerprint, task, bits, kind), by_series in sorted(groups.items()):
        labels = row_labels(list(by_series))
        fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=120)
        for series, rows in by_series.items():
            method = labels[series]
            with warnings.catch_warnings():  # a radius no seed retrieves at: no point, no noise
                warnings.simplefilter("ignore", RuntimeWarning)
                precision = np.nanmean(np.array([r["precision"] for r in rows], dtype=float),
                                       axis=0)
                recall = None if kind != "pr" else np.nanmean(
                    np.array([r["recall"] for r in rows], dtype=float), axis=0)
            if kind == "pr":
                ax.plot(recall, precision, marker="o", markersize=3, label=method)
            else:
                ax.plot(rows[0]["x"], precision, marker="o", markersize=3, label=method)
        if kind == "pr":
            title = f"PR by Hamming radius: {dataset}, {task}, {bits} bits"
            ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), title=title)
        else:
            title = f"P@K ({tie} ties): {dataset}, {task}, {bits} bits"
            ax.set_xscale("log")
            ax.set(xlabel="K (retrieved items, log scale)", ylabel="precision@K", title=title)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(title="method", fontsize=8)
        fig.tight_layout()
        suffix = "pr" if kind == "pr" else "pk"
        data = f"{_safe(dataset)}-{fingerprint[:8]}" if several[dataset] else _safe(dataset)
        yield CurveFigure(dataset, fingerprint, task, bits, kind, title,
                          [labels[s] for s in by_series],
                          f"{data}_{_safe(task)}_{bits}bits_{suffix}", fig)


def figure_bytes(figure: CurveFigure, fmt: str = "svg") -> bytes:
    """Render a figure in memory as ``svg`` or ``png`` and close it."""
    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        figure.figure.savefig(buffer, format=fmt)
    finally:
        plt.close(figure.figure)
    return buffer.getvalue()


def plot_curves(curves: Sequence[dict[str, Any]], out_dir: str | os.PathLike, *,
                tie: str = "expected") -> list[Path]:
    """Write one PNG per (dataset, task, bits, kind) into ``out_dir``; returns the paths.

    ``curves`` are rows from :meth:`ResultStore.curves`. P@K lines use tie policy ``tie``.
    """
    from mmhash.codefiles import atomic_output

    _pyplot()  # a clear error before anything is written
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for figure in curve_figures(curves, tie=tie):
        path = out_dir / f"{figure.stem}.png"
        with atomic_output(path) as temporary:  # no half-written figure
            temporary.write_bytes(figure_bytes(figure, "png"))
        written.append(path)
    return written
