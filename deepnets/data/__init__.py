"""Datasets as tensors: read once, cache, subset, split, and batch without worker processes."""

from deepnets.data.prepare import Datasets, Split, load_datasets, make_loader
from deepnets.data.registry import SPECS, check_dataset_name, dataset_spec

__all__ = [
    "SPECS",
    "Datasets",
    "Split",
    "check_dataset_name",
    "dataset_spec",
    "load_datasets",
    "make_loader",
]
