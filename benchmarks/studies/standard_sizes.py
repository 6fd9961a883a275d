"""Every registered method at the field's standard sizes: fit, encode, evaluate, peak memory.

Runs each method once (64 bits, seed 0, default parameters) on a standard-shaped set
(``synthetic-mirflickr``: 5,000 training pairs, 2,000 queries x 18,015 items; ``synthetic-nuswide``:
10,500 training pairs, 2,100 queries x 184,477 items) through the bench's own cell
(:func:`mmhash.bench.cell.run_cell`), and prints one Markdown row per method:

* ``fit s`` the fit on the training split; for a deep method (one that reports epochs) it is
  trained for ``--epochs`` epochs only and the row gives the first epoch (with the set-up: data,
  similarity graphs, networks) and the time of each later epoch, so a full run takes about
  ``first + (n_epochs - 1) x per epoch``;
* ``encode s`` every query and retrieval item of every view; ``evaluate s`` mAP@all, every tie
  policy, both directions, with the PR and P@K curves (the bench's evaluation);
* ``peak MiB`` the method's peak resident memory above the loaded dataset (``VmHWM`` of a
  forked worker, reset when it starts; numba's and torch's allocations included);
* ``mAP`` I->T / T->I at expected ties (deep methods after ``--epochs`` only: not their result);
* a refusal (``InvalidInputError``: the size limit and the parameter that raises it) or a run
  over ``--budget`` seconds is reported as such.

The dataset is loaded once; each method runs in a forked worker (copy-on-write: the features
are not copied), so a method that dies or runs over budget cannot take the others with it.

Run: ``MMHASH_DATA=../shared/datasets python benchmarks/studies/standard_sizes.py
synthetic-mirflickr [--methods cvh,cmfh] [--epochs 2] [--budget 900]
[--param ucmfh.n_heads=2]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import traceback

os.environ.setdefault("OMP_NUM_THREADS", "2")


def _status_mib(field: str) -> float:
    """A memory line of ``/proc/self/status`` (``VmHWM``: peak resident, ``VmRSS``: now) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    # "5" resets VmHWM to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(dataset, method: str, *, bits: int = 64, seed: int = 0, epochs: int = 2,
            threads: int = 2, extra: dict | None = None) -> dict:
    """One method on ``dataset`` (a loaded :class:`~mmhash.data.Dataset`): a result row."""
    from threadpoolctl import threadpool_limits

    from mmhash.base import EPOCH_PROGRESS, declares
    from mmhash.bench.cell import CellKey, Evaluation, canonical_params, evaluate_codes, run_cell
    from mmhash.errors import InvalidInputError, UnknownNameError
    from mmhash.registry import get_hasher_class

    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    try:
        deep = declares(get_hasher_class(method), EPOCH_PROGRESS)
    except UnknownNameError as exc:
        return {"method": method, "status": "unknown", "note": str(exc)}
    params = {**({"n_epochs": epochs} if deep else {}), **(extra or {})}
    key = CellKey(dataset.name, "study", method, canonical_params(params), bits, seed,
                  tuple(dataset.view_names))
    row = {"method": method, "deep": deep}
    _reset_peak()
    base = _status_mib("VmRSS")
    marks: list[float] = []
    start = time.perf_counter()
    try:
        # The bench's cell, timed; evaluate_codes is timed again on the codes it returned.
        record = run_cell(dataset, key, Evaluation(),
                          on_epoch=lambda *_: marks.append(time.perf_counter()))
    except InvalidInputError as exc:
        row.update(status="refused", note=str(exc).splitlines()[0])
        return row
    except Exception as exc:  # a crash is a finding, reported in the table
        row.update(status="failed", note=f"{type(exc).__name__}: {exc}".splitlines()[0])
        traceback.print_exc()
        return row
    if deep and len(marks) >= 2:
        per_epoch = (marks[-1] - marks[0]) / (len(marks) - 1)
        row.update(first_epoch_s=marks[0] - start, epoch_s=per_epoch)
    row.update(status="done", fit_s=record.train_seconds, encode_s=record.encode_seconds)
    q_labels, r_labels = (dataset.labels[dataset.split.query],
                          dataset.labels[dataset.split.retrieval])
    tick = time.perf_counter()
    evaluate_codes(record.codes, q_labels, r_labels, Evaluation())
    row["evaluate_s"] = time.perf_counter() - tick
    row["peak_mib"] = _status_mib("VmHWM") - base
    row["map"] = {task: value for task, metric, tie, value in record.results
                  if metric == "map" and tie == "expected"}
    return row


def _worker(dataset, method, options, conn) -> None:
    try:
        conn.send(measure(dataset, method, **options))
    finally:
        conn.close()


def _format(row: dict, budget: float) -> str:
    if row["status"] != "done":
        return f"| {row['method']} | {row['status']} | | | | | {row.get('note', '')} |"
    fit = (f"{row['first_epoch_s']:.1f} first, {row['epoch_s']:.1f}/epoch" if "epoch_s" in row
           else f"{row['fit_s']:.1f}")
    maps = " / ".join(f"{v:.3f}" for v in row["map"].values())
    return (f"| {row['method']} | {fit} | {row['encode_s']:.1f} | {row['evaluate_s']:.1f} | "
            f"{row['peak_mib']:.0f} | {maps} | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--methods", default=None, help="comma-separated (default: all)")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--budget", type=float, default=900.0, help="seconds per method")
    parser.add_argument("--param", action="append", default=[], metavar="METHOD.NAME=VALUE",
                        help="a method's parameter (JSON value), e.g. ucmfh.n_heads=2")
    args = parser.parse_args(argv)
    extras: dict[str, dict] = {}
    for item in args.param:
        target, value = item.split("=", 1)
        method, name = target.split(".", 1)
        extras.setdefault(method, {})[name] = json.loads(value)

    from mmhash.data import load_dataset
    from mmhash.registry import list_hashers

    tick = time.perf_counter()
    dataset = load_dataset(args.dataset)
    print(f"# {args.dataset}: loaded in {time.perf_counter() - tick:.1f} s, "
          f"{_status_mib('VmRSS'):.0f} MiB resident; {args.bits} bits, seed 0, deep methods "
          f"{args.epochs} epochs, budget {args.budget:.0f} s per method", flush=True)
    methods = (args.methods.split(",") if args.methods
               else [h.name for h in list_hashers() if h.available])
    print("| method | fit s | encode s | evaluate s | peak MiB | mAP I->T / T->I | note |")
    print("|---|---|---|---|---|---|---|", flush=True)
    context = multiprocessing.get_context("fork")
    for method in methods:
        options = {"bits": args.bits, "epochs": args.epochs, "extra": extras.get(method)}
        receive, send = context.Pipe(duplex=False)
        worker = context.Process(target=_worker, args=(dataset, method, options, send))
        worker.start()
        send.close()
        if receive.poll(args.budget):
            try:
                row = receive.recv()
            except EOFError:
                row = {"method": method, "status": "failed", "note": "worker died"}
        else:
            row = {"method": method, "status": "over budget",
                   "note": f"killed after {args.budget:.0f} s"}
        worker.kill()
        worker.join()
        if worker.exitcode not in (0, None) and row.get("status") == "failed":
            row["note"] += f" (exit {worker.exitcode})"
        print(_format(row, args.budget), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
