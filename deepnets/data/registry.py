"""What each dataset is: its task, classes, channels, native size, whether a mirror image stays
valid. Classification datasets give one label per image, segmentation datasets one per pixel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepnets.errors import ConfigError

IMAGEFOLDER_PREFIX = "imagefolder:"
VOC_FOLDER_PREFIX = "voc:"
PREFIXES = (IMAGEFOLDER_PREFIX, VOC_FOLDER_PREFIX)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int | None  # None: read from the folder
    in_chans: int
    native_size: int | None  # None: read from the files
    # Horizontal flips make sense for natural images, not for digits (a mirrored 2 is no 2).
    hflip: bool
    description: str
    task: str = "classification"


SPECS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("digits", 10, 1, 28, False, "scikit-learn 8x8 digits, upsampled to 28x28"),
        DatasetSpec("mnist", 10, 1, 28, False, "MNIST handwritten digits"),
        DatasetSpec("fashion_mnist", 10, 1, 28, True, "Fashion-MNIST clothing"),
        DatasetSpec("cifar10", 10, 3, 32, True, "CIFAR-10 natural images"),
        DatasetSpec(
            "voc2012", 21, 3, None, True, "PASCAL VOC2012 segmentation", task="segmentation"
        ),
        DatasetSpec(
            "shapes",
            4,
            3,
            64,
            True,
            "generated coloured shapes (segmentation, no download)",
            task="segmentation",
        ),  # fmt: skip
    )
}


def check_dataset_name(name: str) -> str:
    """Return `name` if it names a known dataset, an `imagefolder:<path>` or a `voc:<path>`."""
    if name in SPECS:
        return name
    if any(name.startswith(prefix) and len(name) > len(prefix) for prefix in PREFIXES):
        return name
    known = ", ".join(sorted(SPECS))
    raise ConfigError(
        f"unknown dataset '{name}'; known: {known}, imagefolder:<path> (classification) "
        "or voc:<path> (segmentation, a VOC-layout folder)"
    )


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of a known dataset; a folder gets a generic RGB spec of its task."""
    check_dataset_name(name)
    if name in SPECS:
        return SPECS[name]
    path = folder_path(name)
    if name.startswith(VOC_FOLDER_PREFIX):
        return DatasetSpec(name, None, 3, None, True, f"VOC-layout folder {path}", "segmentation")
    return DatasetSpec(name, None, 3, None, True, f"image folder {path}")


def folder_path(name: str) -> Path:
    """The folder of an `imagefolder:<path>` or `voc:<path>` dataset name, absolute."""
    prefix = next(p for p in PREFIXES if name.startswith(p))
    return Path(name[len(prefix) :]).expanduser().resolve()
