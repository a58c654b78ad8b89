"""Segmentation data in the PASCAL VOC layout: decoded once into padded uint8 tensors.

A VOC-layout folder holds `JPEGImages/<id>.jpg`, `SegmentationClass/<id>.png` (palette PNGs
whose palette index is the class id; 255 marks "void" outlines) and the id lists
`ImageSets/Segmentation/{train,val}.txt`. VOC's own test masks are not public, so `val` is the
test split here, as in the FCN paper. Images differ in size (VOC: up to 500x500): each one is
centred on a canvas as large as the largest image (rounded up to a multiple of 32, the FCN's
stride) and the mask's padding is 255, so the padding is ignored by the loss and the metrics and
evaluation on the canvas is exact at the images' native resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepnets.data.sources import DOWNLOAD_HELP, RawDataset
from deepnets.errors import DataError

IGNORE_INDEX = 255
STRIDE = 32
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip
# A VOC-layout folder may name its own classes, one per line, background first.
CLASSES_FILE = "classes.txt"
VOC2012_SUBDIR = Path("VOCdevkit") / "VOC2012"


def split_ids(folder: Path, split: str) -> list[str]:
    path = folder / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        raise DataError(f"{folder}: no {path.relative_to(folder)} (not a VOC-layout folder)")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: lists no images")
    return ids


def folder_classes(folder: Path) -> list[str]:
    path = folder / CLASSES_FILE
    if not path.is_file():
        return list(VOC_CLASSES)
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        raise DataError(f"{path}: needs at least 2 distinct class names, one per line")
    return names


def _read_pair(folder: Path, image_id: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    image_path = folder / "JPEGImages" / f"{image_id}.jpg"
    mask_path = folder / "SegmentationClass" / f"{image_id}.png"
    try:
        with Image.open(image_path) as img:
            image = np.array(img.convert("RGB"))
        with Image.open(mask_path) as img:
            if img.mode not in ("P", "L"):
                raise DataError(f"{mask_path}: mode {img.mode}; masks are palette or L PNGs")
            mask = np.array(img)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{folder}: image {image_id} unreadable ({err})") from err
    if image.shape[:2] != mask.shape:
        raise DataError(f"{mask_path}: size {mask.shape} differs from its image's")
    bad = (mask >= classes) & (mask != IGNORE_INDEX)
    if bad.any():
        raise DataError(
            f"{mask_path}: class id {int(mask[bad][0])} but only {classes} classes "
            f"(0..{classes - 1}, {IGNORE_INDEX} = ignore)"
        )
    return image, mask


def canvas_side(pairs: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """The smallest multiple of STRIDE that holds every image."""
    largest = max(max(mask.shape) for _, mask in pairs)
    return -(-largest // STRIDE) * STRIDE


def on_canvas(pairs, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 3, side, side] (zero padding) and masks [N, side, side] (255 padding),
    each pair centred."""
    images = torch.zeros(len(pairs), 3, side, side, dtype=torch.uint8)
    masks = torch.full((len(pairs), side, side), IGNORE_INDEX, dtype=torch.uint8)
    for i, (image, mask) in enumerate(pairs):
        h, w = mask.shape
        top, left = (side - h) // 2, (side - w) // 2
        images[i, :, top : top + h, left : left + w] = torch.from_numpy(image).permute(2, 0, 1)
        masks[i, top : top + h, left : left + w] = torch.from_numpy(mask)
    return images, masks


def read_voc_folder(folder: Path, description: str | None = None) -> RawDataset:
    """`train` ids as the training split and `val` ids as the test split, on one canvas."""
    if not folder.is_dir():
        raise DataError(f"data.dataset: VOC-layout folder {folder} does not exist")
    classes = folder_classes(folder)
    train_ids, test_ids = split_ids(folder, "train"), split_ids(folder, "val")
    train = [_read_pair(folder, i, len(classes)) for i in train_ids]
    test = [_read_pair(folder, i, len(classes)) for i in test_ids]
    side = canvas_side(train + test)
    train_images, train_masks = on_canvas(train, side)
    test_images, test_masks = on_canvas(test, side)
    source = description or f"VOC-layout folder {folder}"
    return RawDataset(
        train_images, train_masks, test_images, test_masks, classes,
        f"{source} (train/val lists, {side}x{side} canvas)",
    )  # fmt: skip


def fetch_voc2012(root: Path, download: bool) -> Path:
    """`root/VOCdevkit/VOC2012`, downloaded through torchvision when absent and allowed. A
    FileLock keeps concurrent workers from downloading (2 GB) and extracting it twice."""
    folder = root / VOC2012_SUBDIR
    if (folder / "ImageSets" / "Segmentation").is_dir():
        return folder
    expected = f"{folder}/{{JPEGImages,SegmentationClass,ImageSets}}"
    if not download:
        raise DataError(f"voc2012: not found under {root} (expected {expected}); {DOWNLOAD_HELP}")
    from filelock import FileLock
    from torchvision.datasets import VOCSegmentation

    from deepnets.data.cache import cache_dir

    cache_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir() / "voc2012-download.lock")):
        if not (folder / "ImageSets" / "Segmentation").is_dir():
            try:
                VOCSegmentation(str(root), year="2012", image_set="train", download=True)
            except (OSError, RuntimeError) as err:  # offline, a mirror down, a full disk
                raise DataError(
                    f"voc2012: not under {root} (expected {expected}) and the download failed "
                    f"({type(err).__name__}); {DOWNLOAD_HELP}"
                ) from err
    return folder
