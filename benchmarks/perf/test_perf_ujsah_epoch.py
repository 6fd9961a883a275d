"""UJSAH's seconds per epoch beside the floor of one epoch on this machine, and their ratio.

The set and the settings are the mission's: the embedded ``synthetic`` set's training rows
(1,800; views of 128 and 64 dimensions), UJSAH's defaults (the paper's widths: encoders
``d -> 4096 / 2048 -> k``, predictors ``k -> 1024 -> k``, decoders ``k -> 4096 -> 4096 -> 128``
and ``k -> 2048 x 3 -> 64``; batch 32, so 56 batches of 32 rows and one of 8; Adam), at 16 and
128 bits, ``MMHASH_PERF_THREADS`` torch threads.

The floor is the arithmetic of one epoch at this machine's measured rates:

* matrix products: every linear layer's forward product, its weight gradient and (except the
  encoders' first layers, whose input is the data) its input gradient -- ``2 m n k`` FLOPs
  each, about 6 x rows x weights in all -- plus the loss's batch similarities (the views' cosines,
  the joint term ``S^v S^t^T``, the codes' cosines forward and backward: O(batch^2), under
  0.1 % of the FLOPs). The rate is measured on those very products (``torch.mm`` at each
  layer's shapes and layouts, batch 32, into preallocated outputs, best of several): their
  FLOPs over the sum of their best times.
* the optimiser: fused Adam reads parameter, gradient and both moments and writes parameter and
  moments, 7 x 4 bytes per float32 parameter per step, at the measured memory bandwidth (the
  best of copy, add and a triad over 256 MiB arrays, in the STREAM convention: bytes named by
  the kernel, no write-allocate).

Elementwise work (ReLU, tanh, normalisations, the losses' means) is left out of the floor.
The epoch is timed from the end of each fit's first epoch (whose first steps find no memory to
reuse yet) on; the median over epochs is taken. Rounds interleave the floor's measurement with
the fits. Both sides are timed on two clocks: the process's CPU time per thread (the row's
ratio) and wall time (in its note). They agree on an idle machine; on one whose cores other work
shares, an epoch's wall time also counts the time the process waited for a core, which the
floor's short products, timed best-of, mostly escape. There, run it with
``MMHASH_PERF_THREADS=1``: two torch threads wait on each other at every parallel region
whenever either is descheduled, and the ratio measures that.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
from conftest import THREADS, record

torch = pytest.importorskip("torch")

from mmhash.data import load_dataset  # noqa: E402
from mmhash.deep.training import iter_batches  # noqa: E402
from mmhash.hashers.ujsah import UJSAH  # noqa: E402

BATCH = 32
N_EPOCHS = 2  # per fit: the first is left out (see the module docstring)
ROUNDS = 2
#: Bytes fused Adam moves per float32 parameter and step: reads 4 tensors, writes 3.
ADAM_BYTES = 7 * 4


#: The two clocks everything is timed on: wall time, and the process's CPU time per thread
#: (the time its threads ran: on a machine whose cores other work shares, the wall time of a
#: long run includes waiting for a core, while a short product timed best-of rarely does).
CLOCKS = {"wall": time.perf_counter, "cpu": lambda: time.process_time() / THREADS}


def _best(fn, *args, reps: int = 5, **kwargs) -> dict[str, float]:
    """The shortest of ``reps`` timed calls ``fn(*args, **kwargs)`` (after one untimed), on
    each clock."""
    fn(*args, **kwargs)
    best = dict.fromkeys(CLOCKS, float("inf"))
    for _ in range(reps):
        start = {name: clock() for name, clock in CLOCKS.items()}
        fn(*args, **kwargs)
        for name, clock in CLOCKS.items():
            best[name] = min(best[name], clock() - start[name])
    return best


def layer_products(model: torch.nn.Module) -> list[tuple[int, int, bool]]:
    """``(in, out, input_gradient)`` of every linear layer of a UJSAH network; the encoders'
    first layers take the data (normalised), which needs no gradient."""
    first = {id(next(m for m in encoder if isinstance(m, torch.nn.Linear)))
             for encoder in model.encoders}
    return [(m.in_features, m.out_features, id(m) not in first)
            for m in model.modules() if isinstance(m, torch.nn.Linear)]


def layer_flops(layers, rows: int) -> int:
    """FLOPs of the layers' matrix products for a batch of ``rows``: forward, weight gradient
    and the input gradients that are needed."""
    return sum(2 * rows * d_in * d_out * (3 if grad else 2) for d_in, d_out, grad in layers)


def similarity_flops(rows: int, dims: list[int], n_bits: int) -> int:
    """FLOPs of the loss's batch products: each view's cosines ``(rows, rows, d_m)``, the joint
    term ``S^v S^t^T``, and the three code-cosine matrices (one cross-view, two within-view)
    with their two backward products each."""
    features = sum(2 * rows * rows * d for d in dims) + 2 * rows ** 3
    codes = 3 * 3 * 2 * rows * rows * n_bits
    return features + codes


def gemm_seconds(layers, rows: int) -> dict[str, float]:
    """Per clock, the sum of the best times of the layers' products at ``rows`` (torch's
    layouts: ``x W^T``, ``g^T x``, ``g W``), into preallocated outputs."""
    total = dict.fromkeys(CLOCKS, 0.0)
    for d_in, d_out, grad in layers:
        x, W, g = torch.randn(rows, d_in), torch.randn(d_out, d_in), torch.randn(rows, d_out)
        y, gW, gx = torch.empty(rows, d_out), torch.empty(d_out, d_in), torch.empty(rows, d_in)
        times = [_best(torch.mm, x, W.t(), out=y), _best(torch.mm, g.t(), x, out=gW)]
        if grad:
            times.append(_best(torch.mm, g, W, out=gx))
        for name in CLOCKS:
            total[name] += sum(t[name] for t in times)
    return total


def bandwidth() -> dict[str, float]:
    """Bytes per second per clock: the best of copy (8 bytes per float), add_ (12) and a triad
    (12) over 64 Mi floats."""
    n = 1 << 26
    a, b, c = torch.ones(n), torch.ones(n), torch.ones(n)
    kernels = [(8, _best(a.copy_, b, reps=3)), (12, _best(a.add_, b, reps=3)),
               (12, _best(torch.add, b, c, alpha=0.5, out=a, reps=3))]
    return {name: max(size * n / t[name] for size, t in kernels) for name in CLOCKS}


def epoch_floor(model, dims: list[int], n_bits: int, n_rows: int) -> dict[str, float]:
    """The floor of one epoch over ``n_rows`` rows, measured now, per clock (keys
    ``<quantity>_<clock>``; see the module docstring)."""
    layers = layer_products(model)
    batches = [len(idx) for idx in iter_batches(n_rows, BATCH, None)]
    flops = sum(layer_flops(layers, b) + similarity_flops(b, dims, n_bits) for b in batches)
    parameters = sum(p.numel() for p in model.parameters())
    traffic = ADAM_BYTES * parameters * len(batches)
    gemm, bytes_per_s = gemm_seconds(layers, BATCH), bandwidth()
    out = {"gflop": flops / 1e9, "adam_gb": traffic / 1e9, "parameters": parameters}
    for name in CLOCKS:
        rate = layer_flops(layers, BATCH) / gemm[name]
        out |= {f"gflop_per_s_{name}": rate / 1e9, f"gb_per_s_{name}": bytes_per_s[name] / 1e9,
                f"gemm_s_{name}": flops / rate, f"adam_s_{name}": traffic / bytes_per_s[name],
                f"floor_s_{name}": flops / rate + traffic / bytes_per_s[name]}
    return out


@pytest.fixture(scope="module")
def training_views():
    data = load_dataset("synthetic")
    rows = data.split.train
    return {view: X[rows].astype(np.float64) for view, X in data.views.items()}


@pytest.mark.parametrize("n_bits", [16, 128])
def test_ujsah_epoch_vs_floor(benchmark, training_views, n_bits):
    dims = [X.shape[1] for X in training_views.values()]
    n_rows = len(next(iter(training_views.values())))
    params = {"n_bits": n_bits, "n_epochs": N_EPOCHS, "n_threads": THREADS, "device": "cpu"}
    with torch.device("meta"):  # the floor needs the layers' shapes only
        model = UJSAH(**params)._build_model(dims)
    floors: list[dict[str, float]] = []
    epochs: dict[str, list[float]] = {name: [] for name in CLOCKS}

    def measure_floor():
        previous = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            floors.append(epoch_floor(model, dims, n_bits, n_rows))
        finally:
            torch.set_num_threads(previous)

    def fit():
        ends: list[float] = []  # the CPU clock at the end of each epoch
        hasher = UJSAH(**params).fit(
            training_views, progress=lambda *_: ends.append(CLOCKS["cpu"]()))
        epochs["wall"].extend(entry["seconds"] for entry in hasher.history_[1:])
        epochs["cpu"].extend(b - a for a, b in zip(ends, ends[1:]))

    benchmark.pedantic(fit, setup=measure_floor, rounds=ROUNDS, iterations=1)
    floor = {key: statistics.median(f[key] for f in floors) for key in floors[0]}
    epoch = {name: statistics.median(times) for name, times in epochs.items()}
    ratio = {name: epoch[name] / floor[f"floor_s_{name}"] for name in CLOCKS}
    benchmark.extra_info.update({**floor, **{f"epoch_s_{k}": v for k, v in epoch.items()},
                                 **{f"ratio_{k}": v for k, v in ratio.items()},
                                 "threads": THREADS})
    f = floor
    record(
        f"UJSAH epoch vs its floor, synthetic, {n_bits} bits (CPU time per thread)",
        f"epoch {epoch['cpu']:.2f} s | floor {f['floor_s_cpu']:.2f} s = {f['gflop']:.0f} GFLOP "
        f"at {f['gflop_per_s_cpu']:.1f} GFLOP/s ({f['gemm_s_cpu']:.2f} s) + Adam "
        f"{f['adam_gb']:.1f} GB at {f['gb_per_s_cpu']:.1f} GB/s ({f['adam_s_cpu']:.2f} s) | "
        f"ratio {ratio['cpu']:.2f}x",
        "epoch <= 1.5 x floor",
        ratio["cpu"] <= 1.5,
        note=f"wall time: epoch {epoch['wall']:.2f} s, floor {f['floor_s_wall']:.2f} s "
             f"({f['gflop_per_s_wall']:.1f} GFLOP/s, {f['gb_per_s_wall']:.1f} GB/s), ratio "
             f"{ratio['wall']:.2f}x; {f['parameters'] / 1e6:.1f} M parameters; medians of "
             f"{len(epochs['wall'])} epochs and {len(floors)} floors, interleaved",
    )
