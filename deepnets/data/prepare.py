"""From a DataConfig to train / val / test tensors: read (cached), subset, split, normalise.

Classification subsets and validation splits are stratified by label; segmentation ones (a
label per pixel) are plain seeded random picks of images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepnets.config import DataConfig
from deepnets.data.augment import build_augment
from deepnets.data.cache import cached
from deepnets.data.loader import SegmentationLoader, TensorLoader
from deepnets.data.registry import PREFIXES, VOC_FOLDER_PREFIX, dataset_spec, folder_path
from deepnets.data.shapes import EMBEDDED_TRAIN, EMBEDDED_VAL, embedded_shapes
from deepnets.data.sources import (
    READERS,
    RawDataset,
    default_data_root,
    digits_source,
    read_image_tree,
)
from deepnets.data.split import StratifyError, stratified_pick
from deepnets.data.voc import fetch_voc2012, read_voc_folder
from deepnets.errors import DataError

# Where each dataset's files live under the data root (what the tensor cache watches).
SOURCE_FOLDERS = {
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
    "cifar10": "cifar-10-batches-py",
    "voc2012": "VOCdevkit/VOC2012",
}
# Segmentation inputs are normalised with ImageNet's statistics, which ImageNet-pretrained
# VGG16 weights expect (and which are a fine default from scratch too).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Datasets:
    train: Split
    val: Split | None
    test: Split
    classes: list[str]
    mean: torch.Tensor  # per channel, of the training images in [0, 1]
    std: torch.Tensor
    source: str
    hflip: bool
    task: str = "classification"

    @property
    def in_chans(self) -> int:
        return self.train.images.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def native_size(self) -> int:
        return self.train.images.shape[-1]


def data_root(cfg: DataConfig) -> Path:
    return (cfg.root or default_data_root()).expanduser().resolve()


def absolute_dataset(name: str) -> str:
    """`imagefolder:` / `voc:<absolute path>`: Ray workers run in another working directory."""
    prefix = next((p for p in PREFIXES if name.startswith(p)), None)
    return f"{prefix}{folder_path(name)}" if prefix else name


def read_raw(cfg: DataConfig) -> RawDataset:
    """Decoded uint8 tensors of the whole dataset, from the on-disk cache after the first time."""
    if cfg.dataset == "digits":  # cached too: importing scikit-learn costs every worker a second
        return cached("digits", digits_source(), lambda: READERS["digits"](Path("."), False))
    if cfg.dataset.startswith(PREFIXES):
        folder = folder_path(cfg.dataset)
        if not folder.is_dir():
            raise DataError(f"data.dataset: folder {folder} does not exist")
        voc = cfg.dataset.startswith(VOC_FOLDER_PREFIX)
        read = read_voc_folder if voc else read_image_tree
        return cached(cfg.dataset, folder, lambda: read(folder))
    if cfg.dataset == "shapes":
        folder = embedded_shapes()
        description = f"shapes (generated, {EMBEDDED_TRAIN} train / {EMBEDDED_VAL} val)"
        return cached("shapes", folder, lambda: read_voc_folder(folder, description))
    root = data_root(cfg)
    if cfg.dataset == "voc2012":
        # Fetched before `cached`: the cache key must not be taken of an absent folder.
        folder = fetch_voc2012(root, cfg.download)
        return cached("voc2012", folder, lambda: read_voc_folder(folder, f"voc2012 ({folder})"))
    source = root / SOURCE_FOLDERS[cfg.dataset]
    if cfg.dataset == "cifar10" and not source.is_dir():
        source = root / "cifar10-jpeg"
    # The cache key watches the dataset's own folder, not the whole root: adding another
    # dataset under the root must not force a minutes-long re-decode of this one.
    return cached(cfg.dataset, source, lambda: READERS[cfg.dataset](root, cfg.download))


def stratified_subset(
    labels: torch.Tensor, size: int | None, seed: int, stratify: bool = True
) -> np.ndarray:
    """Indices of a class-balanced random subset of `size` items (all items when None)."""
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    if not stratify:
        return np.sort(np.random.default_rng(seed).permutation(len(labels))[:size])
    try:
        return stratified_pick(labels.numpy(), size, seed)[0]
    except StratifyError as err:  # fewer images than classes
        raise DataError(f"data subset of {size}: cannot be stratified ({err})") from None


def split_off(
    labels: torch.Tensor, fraction: float, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (keep, held_out) index arrays with `fraction` of the items held out."""
    held_count = math.ceil(fraction * len(labels))  # as scikit-learn's test_size rounds
    if not stratify:
        order = np.random.default_rng(seed).permutation(len(labels))
        if held_count >= len(labels):
            raise DataError(f"data.val_fraction={fraction} leaves no training images")
        return np.sort(order[held_count:]), np.sort(order[:held_count])
    try:
        held, keep = stratified_pick(labels.numpy(), held_count, seed, both_sides=True)
    except StratifyError as err:  # the held-out part would have fewer images than classes
        raise DataError(
            f"data.val_fraction={fraction} of {len(labels)} training images cannot hold out "
            f"every class ({err}); use more images or a larger fraction"
        ) from None
    return keep, held


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images, as floats in [0, 1]."""
    x = images.float().div_(255.0)
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)


def load_datasets(cfg: DataConfig, seed: int) -> Datasets:
    """Read, subset (stratified, seeded) and split; the statistics come from the train part."""
    raw = read_raw(cfg)
    spec = dataset_spec(cfg.dataset)
    if len(raw.classes) < 2:
        raise DataError(f"data.dataset: {cfg.dataset} has {len(raw.classes)} class; need >= 2")
    stratify = spec.task == "classification"
    keep = stratified_subset(raw.train_labels, cfg.train_subset, seed, stratify)
    train = Split(raw.train_images[keep], raw.train_labels[keep])
    val = None
    if cfg.val_fraction > 0:
        fit, held = split_off(train.labels, cfg.val_fraction, seed, stratify)
        train, val = (
            Split(train.images[fit], train.labels[fit]),
            Split(train.images[held], train.labels[held]),
        )
    test_keep = stratified_subset(raw.test_labels, cfg.test_subset, seed, stratify)
    test = Split(raw.test_images[test_keep], raw.test_labels[test_keep])
    if stratify:
        mean, std = channel_stats(train.images)
    else:
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return Datasets(train, val, test, raw.classes, mean, std, raw.source, spec.hflip, spec.task)


def make_loader(
    data: Datasets,
    split: Split,
    cfg: DataConfig,
    *,
    batch_size: int,
    train: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> TensorLoader:
    """A sharded, tensor-resident loader for one split of `data`."""
    if data.task == "segmentation":
        return SegmentationLoader(
            split.images, split.labels, batch_size=batch_size, mean=data.mean, std=data.std,
            train=train, seed=seed, rank=rank, world_size=world_size, device=device,
            channels_last=channels_last, crop=cfg.resolution,
            scale=cfg.augment == "standard", hflip=data.hflip and cfg.augment == "standard",
        )  # fmt: skip
    size = cfg.resolution or data.native_size
    augment = build_augment(cfg.augment, hflip=data.hflip, size=size) if train else None
    return TensorLoader(
        split.images,
        split.labels,
        batch_size=batch_size,
        mean=data.mean,
        std=data.std,
        train=train,
        seed=seed,
        rank=rank,
        world_size=world_size,
        augment=augment,
        resolution=cfg.resolution,
        device=device,
        channels_last=channels_last,
    )
