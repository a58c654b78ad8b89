"""What each dataset is: classes, channels, native size, whether a mirror image stays valid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepnets.errors import ConfigError

IMAGEFOLDER_PREFIX = "imagefolder:"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int | None  # None: read from the folder
    in_chans: int
    native_size: int | None  # None: read from the files
    # Horizontal flips make sense for natural images, not for digits (a mirrored 2 is no 2).
    hflip: bool
    description: str


SPECS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("digits", 10, 1, 28, False, "scikit-learn 8x8 digits, upsampled to 28x28"),
        DatasetSpec("mnist", 10, 1, 28, False, "MNIST handwritten digits"),
        DatasetSpec("fashion_mnist", 10, 1, 28, True, "Fashion-MNIST clothing"),
        DatasetSpec("cifar10", 10, 3, 32, True, "CIFAR-10 natural images"),
    )
}


def check_dataset_name(name: str) -> str:
    """Return `name` if it names a known dataset or an `imagefolder:<path>`, else raise."""
    if name in SPECS:
        return name
    if name.startswith(IMAGEFOLDER_PREFIX) and len(name) > len(IMAGEFOLDER_PREFIX):
        return name
    known = ", ".join(sorted(SPECS))
    raise ConfigError(f"unknown dataset '{name}'; known: {known}, or imagefolder:<path>")


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of a known dataset; an image folder gets a generic RGB spec."""
    check_dataset_name(name)
    if name in SPECS:
        return SPECS[name]
    path = Path(name[len(IMAGEFOLDER_PREFIX) :]).expanduser()
    return DatasetSpec(name, None, 3, None, True, f"image folder {path}")


def imagefolder_path(name: str) -> Path:
    return Path(name[len(IMAGEFOLDER_PREFIX) :]).expanduser().resolve()
