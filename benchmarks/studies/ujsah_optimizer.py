"""Why UJSAH trains with Adam 1e-4: variants scored on the validation split, never on queries.

Usage (needs the ``deep`` extra and the real data; ``--device cuda`` on a GPU machine)::

    MMHASH_DATA=../shared/datasets python benchmarks/studies/ujsah_optimizer.py \\
        --dataset cub10 --bits 16 --seeds 0,1 --variants authors-sgd,sgd1e-4,adam1e-4

Protocol: fit on the training rows outside the dataset's validation split; the validation rows
query those fit rows (mAP@all, expected ties, labels of training data only). One JSON line per
fit: validation mAP both ways, the number of distinct image codes over the retrieval set (1 =
every item hashed to the same code), the share of saturated tanh outputs (|z| > 0.99), the
training loss at a few epochs, and the fit seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time

import numpy as np

#: name -> UJSAH parameters; each varies one thing from the library defaults.
VARIANTS: dict[str, dict] = {
    "default": {},
    "authors-sgd": {"optimizer": "sgd", "learning_rate": 1e-3},
    "sgd1e-4": {"optimizer": "sgd", "learning_rate": 1e-4},
    "adam1e-4": {"optimizer": "adam", "learning_rate": 1e-4},
    # the next ones vary the authors' SGD setting (the earlier default) one thing at a time
    "gamma2": {"optimizer": "sgd", "learning_rate": 1e-3, "gamma": 2.0},
    "gamma20": {"optimizer": "sgd", "learning_rate": 1e-3, "gamma": 20.0},
    "no-consistency": {"optimizer": "sgd", "learning_rate": 1e-3, "gamma": 0.0},
    "beta1.8": {"optimizer": "sgd", "learning_rate": 1e-3, "beta": 1.8},
    "no-weight-decay": {"optimizer": "sgd", "learning_rate": 1e-3, "weight_decay": 0.0},
    "raw-inputs": {"optimizer": "sgd", "learning_rate": 1e-3, "normalize_inputs": False},
    "literal-cosine": {"optimizer": "sgd", "learning_rate": 1e-3, "rescale_similarity": False},
    "dropout.3": {"optimizer": "sgd", "learning_rate": 1e-3, "dropout": 0.3},
    "batch128": {"optimizer": "sgd", "learning_rate": 1e-3, "batch_size": 128},
}


def score(args: tuple[str, int, str, int, str]) -> dict:
    """Fit one variant and score it on the validation split (runs in a worker process)."""
    import torch

    from mmhash.data import load_dataset
    from mmhash.evaluation import evaluate
    from mmhash.registry import get_hasher

    dataset, bits, variant, seed, device = args
    ds = load_dataset(dataset)
    fit_rows = np.setdiff1d(ds.split.train, ds.split.validation)
    val_rows = ds.split.validation
    views = {m: X[fit_rows] for m, X in ds.views.items()}
    hasher = get_hasher("ujsah", n_bits=bits, random_state=seed, device=device, n_threads=2,
                        **VARIANTS[variant])
    start = time.perf_counter()
    hasher.fit(views)
    out = {"dataset": dataset, "bits": bits, "variant": variant, "seed": seed,
           "fit_seconds": round(time.perf_counter() - start, 1)}
    image, text = ds.view_names[:2]
    for q, r in ((image, text), (text, image)):
        codes_q = hasher.encode(ds.views[q][val_rows], q)
        codes_r = hasher.encode(views[r], r)
        value = evaluate(codes_q, codes_r, ds.labels[val_rows], ds.labels[fit_rows])["map"]
        out[f"val_map_{q}->{r}"] = round(float(value), 3)
    items, _ = ds.part("retrieval")
    out["distinct_image_codes"] = int(len(np.unique(hasher.encode(items[image], image), axis=0)))
    with torch.no_grad():
        z = hasher._scorers[0](torch.from_numpy(np.asarray(items[image], dtype=np.float64)))
    out["saturated"] = round(float((z.abs() > 0.99).double().mean()), 2)
    epochs = sorted({0, 4, 19, len(hasher.history_) - 1} & set(range(len(hasher.history_))))
    out["loss_at_epochs"] = {e + 1: round(hasher.history_[e]["loss"], 2) for e in epochs}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cub10")
    parser.add_argument("--bits", type=int, default=16)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    work = [(args.dataset, args.bits, v, int(s), args.device)
            for v in args.variants.split(",") for s in args.seeds.split(",")]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for out in pool.imap(score, work):
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
