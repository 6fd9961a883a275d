"""The table of ``benchmarks/gpu/run.sh``: GPU cells beside CPU cells of the same seeds.

    python benchmarks/gpu/compare.py STORE [--require-gpu]

Reads the result store the script filled and prints Markdown:

1. the mission command's cells (``ujsah`` and ``cmfh`` on the embedded set): the device each
   cell recorded, fit seconds and mAP per task;
2. per deep method on wiki: the GPU cell (``device="auto"``) beside its CPU twin
   (``device="cpu"``, same bits and seed): the devices recorded, fit seconds and their ratio,
   mAP per task and the difference, and the share of code bits that differ (query and retrieval
   codes of every view).

With ``--require-gpu`` it exits 1 when a cell that should have run on the GPU recorded another
device (or none), naming them.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from mmhash.bench.store import ResultStore


def _cells(store: ResultStore) -> list[dict]:
    """One dict per finished cell: its key fields, device, seconds, mAP per task, cell id."""
    cells: dict[int, dict] = {}
    for r in store.results():
        if r["metric"] != "map" or r["tie"] != "expected":
            continue
        cell = cells.setdefault(r["cell_id"], {
            k: r[k] for k in ("dataset", "method", "params", "bits", "seed", "device",
                              "train_seconds", "encode_seconds", "cell_id")})
        cell.setdefault("map", {})[r["task"]] = r["value"]
    return list(cells.values())


def _bits_differing(store: ResultStore, a: int, b: int) -> float | None:
    """Share of code bits that differ between two cells' stored codes (None without codes)."""
    ca, cb = store.codes(a), store.codes(b)
    if ca is None or cb is None:
        return None
    pairs = [(ca.query[v], cb.query[v]) for v in ca.views]
    pairs += [(ca.retrieval[v], cb.retrieval[v]) for v in ca.retrieval if v in cb.retrieval]
    if ca.database is not None and cb.database is not None:
        pairs.append((ca.database, cb.database))
    differ = sum(int((x != y).sum()) for x, y in pairs)
    return differ / sum(x.size for x, _ in pairs)


def _without_device(params: str) -> str:
    found = json.loads(params)
    found.pop("device", None)
    return json.dumps(found, sort_keys=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("--require-gpu", action="store_true")
    args = parser.parse_args()
    problems = []
    with ResultStore(args.store, read_only=True) as store:
        cells = _cells(store)
        mission = [c for c in cells if c["dataset"] != "wiki"]
        print("## Mission command (embedded set)\n")
        print("| method | bits | device | fit s | encode s | mAP image->text | mAP text->image |")
        print("|---|---|---|---|---|---|---|")
        for c in sorted(mission, key=lambda c: (c["method"], c["bits"])):
            print(f"| {c['method']} | {c['bits']} | {c['device']} | {c['train_seconds']:.1f} | "
                  f"{c['encode_seconds']:.2f} | {c['map'].get('image->text', float('nan')):.4f} "
                  f"| {c['map'].get('text->image', float('nan')):.4f} |")
            if args.require_gpu and c["method"] == "ujsah" and "cuda" not in str(c["device"]):
                problems.append(f"mission ujsah {c['bits']} bits ran on {c['device']}")
        wiki = [c for c in cells if c["dataset"] == "wiki"]
        cpu = {(c["method"], _without_device(c["params"]), c["bits"], c["seed"]): c
               for c in wiki if json.loads(c["params"]).get("device") == "cpu"}
        print("\n## One deep cell per method on wiki: GPU beside CPU, same seed\n")
        print("| method | bits | GPU device | fit s GPU | fit s CPU | CPU / GPU | "
              "mAP i->t GPU | CPU | mAP t->i GPU | CPU | max abs diff | bits differing |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for c in sorted(wiki, key=lambda c: c["method"]):
            if json.loads(c["params"]).get("device") == "cpu":
                continue
            twin = cpu.get((c["method"], _without_device(c["params"]), c["bits"], c["seed"]))
            if args.require_gpu and "cuda" not in str(c["device"]):
                problems.append(f"wiki {c['method']} ran on {c['device']}")
            gi, gt = c["map"].get("image->text", np.nan), c["map"].get("text->image", np.nan)
            if twin is None:
                print(f"| {c['method']} | {c['bits']} | {c['device']} | "
                      f"{c['train_seconds']:.1f} | - | - | {gi:.4f} | - | {gt:.4f} | - | - | - |")
                continue
            ci, ct = twin["map"].get("image->text", np.nan), twin["map"].get("text->image", np.nan)
            share = _bits_differing(store, c["cell_id"], twin["cell_id"])
            print(f"| {c['method']} | {c['bits']} | {c['device']} | {c['train_seconds']:.1f} | "
                  f"{twin['train_seconds']:.1f} | "
                  f"{twin['train_seconds'] / c['train_seconds']:.1f}x | {gi:.4f} | {ci:.4f} | "
                  f"{gt:.4f} | {ct:.4f} | {max(abs(gi - ci), abs(gt - ct)):.4f} | "
                  + ("-" if share is None else f"{100 * share:.1f}%") + " |")
    for line in problems:
        print(f"NOT ON THE GPU: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
