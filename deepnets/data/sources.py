"""Read each dataset from wherever it lives into uint8 tensors, once.

Every reader returns a `RawDataset`: train and test images as uint8 [N, C, H, W] tensors, int64
labels, class names and a `source` string that names exactly which copy was read (results carry it
as provenance: "cifar10 (jpeg copy)" is not the same pixels as the original batches).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepnets.errors import DataError

DOWNLOAD_HELP = "set data.root (or DEEPNETS_DATA_ROOT) to a folder that holds it"


@dataclass
class RawDataset:
    train_images: torch.Tensor  # uint8 [N, C, H, W]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    source: str


def default_data_root() -> Path:
    env = os.environ.get("DEEPNETS_DATA_ROOT")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deepnets" / "data"


def _as_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(images))
    if tensor.ndim == 3:  # [N, H, W] greyscale
        tensor = tensor.unsqueeze(1)
    elif tensor.shape[-1] in (1, 3):  # [N, H, W, C]
        tensor = tensor.permute(0, 3, 1, 2)
    return tensor.to(torch.uint8).contiguous()


def digits_source() -> Path:
    """scikit-learn's folder of embedded datasets, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("data.dataset: digits needs scikit-learn (pip install scikit-learn)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def read_digits(_root: Path, _download: bool) -> RawDataset:
    """scikit-learn's embedded 8x8 digits (no download), upsampled to 28x28 like MNIST."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # 0..16 intensities -> 0..255, then bilinear upsampling so MNIST-sized models fit.
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    images = torch.nn.functional.interpolate(images, size=28, mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    # The train/test split is part of the dataset's definition, so its seed is fixed.
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels.numpy(), random_state=0
    )
    return RawDataset(
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
        [str(d) for d in range(10)],
        "digits (scikit-learn load_digits, 8x8 upsampled to 28x28, fixed 80/20 split)",
    )


def _torchvision_split(dataset_cls, root: Path, download: bool, name: str, expected: str):
    try:
        return [dataset_cls(str(root), train=train, download=download) for train in (True, False)]
    except RuntimeError as err:  # torchvision: "Dataset not found. You can use download=True"
        raise DataError(
            f"{name}: not found under {root} (expected {expected}); {DOWNLOAD_HELP}"
        ) from err
    except OSError as err:  # a failed download: offline, or a mirror is down
        raise DataError(
            f"{name}: not under {root} (expected {expected}) and the download failed "
            f"({type(err).__name__}); {DOWNLOAD_HELP}"
        ) from err


def _read_torchvision_gray(dataset_cls, name: str, folder: str, root: Path, download: bool):
    train, test = _torchvision_split(dataset_cls, root, download, name, f"{root}/{folder}/raw/")
    return RawDataset(
        _as_nchw(train.data),
        train.targets.to(torch.int64),
        _as_nchw(test.data),
        test.targets.to(torch.int64),
        list(train.classes),
        f"{name} (torchvision IDX files in {root / folder})",
    )


def read_mnist(root: Path, download: bool) -> RawDataset:
    from torchvision.datasets import MNIST

    return _read_torchvision_gray(MNIST, "mnist", "MNIST", root, download)


def read_fashion_mnist(root: Path, download: bool) -> RawDataset:
    from torchvision.datasets import FashionMNIST

    return _read_torchvision_gray(FashionMNIST, "fashion_mnist", "FashionMNIST", root, download)


def read_cifar10(root: Path, download: bool) -> RawDataset:
    """The original python batches if present, else a `cifar10-jpeg` ImageFolder tree, else
    a download of the batches."""
    from torchvision.datasets import CIFAR10

    jpeg_root = root / "cifar10-jpeg"
    if not (root / "cifar-10-batches-py").is_dir() and (jpeg_root / "train").is_dir():
        raw = read_image_tree(jpeg_root)
        raw.source = f"cifar10 (jpeg copy, {jpeg_root})"
        return raw
    expected = f"{root}/cifar-10-batches-py or {jpeg_root}/{{train,test}}/<class>/"
    train, test = _torchvision_split(CIFAR10, root, download, "cifar10", expected)
    return RawDataset(
        _as_nchw(train.data),
        torch.as_tensor(train.targets, dtype=torch.int64),
        _as_nchw(test.data),
        torch.as_tensor(test.targets, dtype=torch.int64),
        list(train.classes),
        f"cifar10 (original batches, {root / 'cifar-10-batches-py'})",
    )


def _decode_folder(folder: Path, classes: list[str], size: tuple[int, int] | None):
    from PIL import Image, UnidentifiedImageError

    images, labels = [], []
    for label, name in enumerate(classes):
        if not (folder / name).is_dir():  # a class may be absent from the test split
            continue
        for path in sorted((folder / name).iterdir()):
            try:
                with Image.open(path) as img:
                    rgb = img.convert("RGB")
            except (UnidentifiedImageError, OSError) as err:
                raise DataError(f"{path}: not a readable image ({err})") from err
            size = size or rgb.size
            if rgb.size != size:
                rgb = rgb.resize(size)
            images.append(np.asarray(rgb))
            labels.append(label)
    if not images:
        raise DataError(f"{folder}: no images found")
    return _as_nchw(np.stack(images)), torch.as_tensor(labels, dtype=torch.int64), size


def read_image_tree(root: Path) -> RawDataset:
    """`root/{train,test}/<class>/*.jpg|png`; images of other sizes are resized to the first's."""
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise DataError(f"{root}: expected train/ and test/ (or val/) folders of class folders")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DataError(f"{root / 'train'}: needs at least 2 class folders, found {len(classes)}")
    train_x, train_y, size = _decode_folder(root / "train", classes, None)
    test_x, test_y, _ = _decode_folder(test_dir, classes, size)
    return RawDataset(train_x, train_y, test_x, test_y, classes, f"image folder {root}")


READERS: dict[str, Callable[[Path, bool], RawDataset]] = {
    "digits": read_digits,
    "mnist": read_mnist,
    "fashion_mnist": read_fashion_mnist,
    "cifar10": read_cifar10,
}
