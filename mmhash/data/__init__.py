"""Datasets: registered sets (cards + fixed splits), readers of upstream formats, synthetic data.

>>> from mmhash.data import load_dataset, list_datasets, make_synthetic
>>> ds = load_dataset("synthetic")            # embedded, no files needed
>>> ds = load_dataset("wiki")                 # files under $MMHASH_DATA/wikipedia/
>>> ds = load_dataset("my_features.mat")      # a user's file, format detected
"""

from mmhash.data.dataset import PARTS, Dataset, Split
from mmhash.data.loading import dataset_card, list_datasets, load_dataset
from mmhash.data.standard_shaped import make_synthetic_mirflickr, make_synthetic_nuswide
from mmhash.data.synthetic import make_synthetic

__all__ = [
    "PARTS",
    "Dataset",
    "Split",
    "dataset_card",
    "list_datasets",
    "load_dataset",
    "make_synthetic",
    "make_synthetic_mirflickr",
    "make_synthetic_nuswide",
]
