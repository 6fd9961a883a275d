"""Write the stored splits of the registered datasets (run once; the outputs are committed).

    python datasets/make_splits.py --data-dir ../shared/datasets

A maintainer's tool, kept beside the dataset cards' index and outside the installed package.

Splits are never re-drawn at run time: ``load_dataset`` reads ``mmhash/data/splits/*.npz``.
This script documents how each file was made and regenerates identical index arrays from the
same inputs (``tests/data`` checks that). The rules:

- ``wiki.npz`` (for ``wiki`` and ``wiki3``): the original release split. Rows are the 2,173
  training rows then the 693 test rows of ``raw_features.mat``; query = the test rows,
  train = retrieval = the training rows.
- ``cub10.npz``, ``mfeat.npz``: the suggested split staged with the data (``query_idx`` and
  ``train_idx`` = ``database_idx`` of ``cub10.npz`` / ``uci_mfeat.npz``: 20% stratified queries
  drawn with ``default_rng(0)``); the script checks that those files' arrays are row-for-row the
  source files the cards pin, so the indices refer to the same rows.
- validation, everywhere: a fixed 10% of the training rows,
  :func:`mmhash.data.splits.validation_subset` (``default_rng(0)``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mmhash.data.dataset import Split
from mmhash.data.formats import read_cell, read_mfeat, read_svcl
from mmhash.data.splits import save_split, validation_subset
from mmhash.errors import DataError

SPLITS_DIR = Path(__file__).resolve().parents[1] / "mmhash" / "data" / "splits"


def _from_indices(query: np.ndarray, train: np.ndarray, retrieval: np.ndarray) -> Split:
    return Split(query=np.sort(query), retrieval=np.sort(retrieval), train=np.sort(train),
                 validation=validation_subset(np.sort(train)))


def wiki_split(data_dir: Path) -> Split:
    raw = read_svcl(data_dir / "wikipedia" / "raw_features.mat", views=["image"])
    train, test = raw.parts["train"], raw.parts["test"]
    return _from_indices(test, train, train)


def _staged_split(npz_path: Path, views: dict[str, np.ndarray]) -> Split:
    with np.load(npz_path, allow_pickle=False) as z:
        for v, X in views.items():
            if not np.array_equal(z[v], X):
                raise DataError(f"{npz_path}: {v!r} differs from the source file's rows")
        query, train, database = z["query_idx"], z["train_idx"], z["database_idx"]
    return _from_indices(query, train, database)


def cub10_split(data_dir: Path) -> Split:
    raw = read_cell(data_dir / "cub10" / "cub_googlenet_doc2vec_c10.mat")
    return _staged_split(data_dir / "cub10" / "cub10.npz", raw.views)


def mfeat_split(data_dir: Path) -> Split:
    raw = read_mfeat(data_dir / "uci_mfeat" / "csv")
    return _staged_split(data_dir / "uci_mfeat" / "uci_mfeat.npz", raw.views)


def mirflickr25k_split(data_dir: Path) -> Split:
    """The DCMH family's protocol on the 20,015-row release: rows 0..1,999 query, the rest
    retrieval, and a fixed draw of 5,000 training rows from the retrieval set
    (:func:`mmhash.data.formats.dcmh.training_draw`). Only the row count is read."""
    from mmhash.data.formats.dcmh import QUERY_ROWS, STANDARD_ROWS, training_draw
    from mmhash.data.formats.matfile import open_keyed

    with open_keyed(data_dir / "mirflickr25k" / "mirflickr25k-lall.mat") as f:
        n = len(f.read(["LAll"])["LAll"])
    if n != STANDARD_ROWS:
        raise DataError(f"mirflickr25k-lall.mat has {n} rows, the release has {STANDARD_ROWS}")
    retrieval = np.arange(QUERY_ROWS, n, dtype=np.int64)
    return _from_indices(np.arange(QUERY_ROWS, dtype=np.int64), training_draw(retrieval),
                         retrieval)


MAKERS = {"wiki.npz": wiki_split, "cub10.npz": cub10_split, "mfeat.npz": mfeat_split,
          "mirflickr25k.npz": mirflickr25k_split}


def make_all(data_dir: Path, out_dir: Path = SPLITS_DIR) -> dict[str, Split]:
    """Compute every stored split from the files under ``data_dir`` and write them to
    ``out_dir``; returns them by file name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    made = {}
    for filename, maker in MAKERS.items():
        made[filename] = maker(Path(data_dir))
        save_split(out_dir / filename, made[filename])
    return made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="folder holding wikipedia/, cub10/, uci_mfeat/, mirflickr25k/")
    parser.add_argument("--out", type=Path, default=SPLITS_DIR)
    args = parser.parse_args(argv)
    make_all(args.data_dir, args.out)


if __name__ == "__main__":
    main()
