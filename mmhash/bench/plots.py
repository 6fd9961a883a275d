"""PNG figures of stored curves: PR (by Hamming radius) and P@K, one line per method.

One figure per (dataset, task, bits, kind); each line is the mean over seeds (every seed's curve
has the same x grid: radii 0..n_bits, or the same K cut-offs). Needs the ``plot`` extra.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
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


def plot_curves(curves: Sequence[dict[str, Any]], out_dir: str | os.PathLike, *,
                tie: str = "expected") -> list[Path]:
    """Write one PNG per (dataset, task, bits, kind) into ``out_dir``; returns the paths.

    ``curves`` are rows from :meth:`ResultStore.curves`. P@K lines use tie policy ``tie``.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in curves:
        if row["kind"] == "p@k" and row["tie"] != tie:
            continue
        groups[(row["dataset"], row["task"], row["bits"], row["kind"])][row["method"]].append(row)
    written = []
    for (dataset, task, bits, kind), by_method in sorted(groups.items()):
        fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=120)
        for method, rows in by_method.items():
            precision = np.nanmean(np.array([r["precision"] for r in rows], dtype=float), axis=0)
            if kind == "pr":
                recall = np.nanmean(np.array([r["recall"] for r in rows], dtype=float), axis=0)
                ax.plot(recall, precision, marker="o", markersize=3, label=method)
            else:
                ax.plot(rows[0]["x"], precision, marker="o", markersize=3, label=method)
        if kind == "pr":
            ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02),
                   title=f"PR by Hamming radius: {dataset}, {task}, {bits} bits")
        else:
            ax.set_xscale("log")
            ax.set(xlabel="K (retrieved items, log scale)", ylabel="precision@K",
                   title=f"P@K ({tie} ties): {dataset}, {task}, {bits} bits")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(title="method", fontsize=8)
        fig.tight_layout()
        suffix = "pr" if kind == "pr" else "pk"
        path = out_dir / f"{_safe(dataset)}_{_safe(task)}_{bits}bits_{suffix}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
