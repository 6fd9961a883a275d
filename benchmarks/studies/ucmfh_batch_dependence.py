"""UCMFH: how its official evaluation's codes depend on the batch, and what that does to mAP.

The official evaluation (XinyuXia97/UCMFH@116f015, ICMR.py:107-151) encodes each item from both
of its views and feeds a batch of 128 items to the fusion transformer as ONE sequence, so an
item's code depends on which items share its batch. mmhash encodes per item and per view
(:class:`mmhash_baselines.deep.ucmfh.UCMFH`). This script fits UCMFH once and encodes the same
query and retrieval items

* per view, as mmhash does (the missing view's half filled with its training mean);
* fused, one item at a time (the official network, no batch dependence);
* fused, in batches of 128 in file order (the official evaluation), and in a shuffled order;

and prints mAP (whole ranking, expected ties) for each, and for the retrieval items encoded in
two batch orders: the share of items whose code changes and the bits that change.

Usage: ``MMHASH_DATA=... python benchmarks/studies/ucmfh_batch_dependence.py cub10 16
[NAME=VALUE ...]`` (extra UCMFH parameters, e.g. ``n_heads=2`` on wiki).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from mmhash_baselines.deep.ucmfh import UCMFH, official_batched_codes

from mmhash.data import load_dataset
from mmhash.evaluation import mean_average_precision

BATCH = 128  # the official evaluation's batch (ICMR.py:17)


def _reordered(hasher, image, text, order):
    """Official batched codes of the rows taken in ``order``, put back in the rows' order."""
    codes = official_batched_codes(hasher, image[order], text[order], BATCH)
    back = np.argsort(order)
    return [c[back] for c in codes]


def main(argv: list[str]) -> None:
    name, bits = argv[0], int(argv[1])
    extra = {k: json.loads(v) for k, v in (item.split("=", 1) for item in argv[2:])}
    data = load_dataset(name)
    train, _ = data.part("train")
    (query, lq), (retrieval, lr) = data.part("query"), data.part("retrieval")
    a, b = list(train)
    hasher = UCMFH(n_bits=bits, device="cpu", random_state=0, **extra).fit(train)

    def maps(qa, qb, ra, rb):
        return (mean_average_precision(qa, rb, lq, lr), mean_average_precision(qb, ra, lq, lr))

    rows = {"per view (mmhash)": maps(hasher.encode(query[a], a), hasher.encode(query[b], b),
                                      hasher.encode(retrieval[a], a),
                                      hasher.encode(retrieval[b], b))}
    one = [official_batched_codes(hasher, P[a], P[b], 1) for P in (query, retrieval)]
    rows["fused, one item at a time"] = maps(*one[0], *one[1])
    batched = [official_batched_codes(hasher, P[a], P[b], BATCH) for P in (query, retrieval)]
    rows[f"fused, batches of {BATCH}, file order (official)"] = maps(*batched[0], *batched[1])
    rng = np.random.default_rng(0)
    shuffled = [_reordered(hasher, P[a], P[b], rng.permutation(len(P[a])))
                for P in (query, retrieval)]
    rows[f"fused, batches of {BATCH}, shuffled"] = maps(*shuffled[0], *shuffled[1])

    print(f"UCMFH on {name}, {bits} bits, seed 0 ({len(lq)} queries, {len(lr)} retrieval items)")
    print(f"| encoding | {a}->{b} | {b}->{a} |\n|---|---|---|")
    for label, (ab, ba) in rows.items():
        print(f"| {label} | {ab:.3f} | {ba:.3f} |")
    print(f"\nretrieval items encoded in two batch orders (batches of {BATCH}):")
    for view, first, second in zip((a, b), batched[1], shuffled[1]):
        differing = (first != second).sum(axis=1)
        changed = differing > 0
        mean_bits = differing[changed].mean() if changed.any() else 0.0
        print(f"  {view}: {changed.mean():.1%} of items change code, {mean_bits:.2f} of {bits} "
              f"bits on average among them")


if __name__ == "__main__":
    main(sys.argv[1:])
