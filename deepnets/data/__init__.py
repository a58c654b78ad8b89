"""Datasets as tensors: read once, cache, subset, split, and batch without worker processes."""

from deepnets.data.registry import SPECS, check_dataset_name, dataset_spec

# prepare imports torch: its names load on first use, so that validating a config (which checks
# dataset names against the registry here) stays torch-free (deepnets/torch_backend.py).
_FROM_PREPARE = ("Datasets", "Split", "load_datasets", "make_loader")

__all__ = ["SPECS", "check_dataset_name", "dataset_spec", *_FROM_PREPARE]


def __getattr__(name: str):
    if name in _FROM_PREPARE:
        from deepnets.data import prepare

        return getattr(prepare, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
