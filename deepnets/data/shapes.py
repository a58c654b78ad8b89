"""A tiny VOC-layout segmentation dataset of coloured shapes, generated in a second.

For trying the segmentation path without VOC2012 (2 GB, a download) and for the tests: every
image has a noisy background and one to three shapes (square, circle, triangle), each class in
its own hue; masks carry the class ids and, as VOC's do, a 255 ("void") outline around every
object. Sizes vary between images, so the canvas padding is exercised too.

    python -m deepnets.data.shapes ~/data/shapes --train 64 --val 24
    python jobs/train.py task=segmentation data.dataset=voc:~/data/shapes model.name=fcn8s ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CLASSES = ["background", "square", "circle", "triangle"]
HUES = {1: (220, 40, 40), 2: (40, 200, 40), 3: (40, 70, 230)}  # square red, circle green, ...
SIZES = [(48, 64), (64, 64), (64, 56)]  # (height, width)


def _shape_box(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
    side = int(rng.integers(14, 26))
    top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
    return left, top, left + side, top + side


def _draw(draw, kind: int, box, fill, outline=None) -> None:
    left, top, right, bottom = box
    if kind == 1:
        draw.rectangle(box, fill=fill, outline=outline)
    elif kind == 2:
        draw.ellipse(box, fill=fill, outline=outline)
    else:
        draw.polygon([((left + right) // 2, top), (left, bottom), (right, bottom)], fill, outline)


def make_pair(rng: np.random.Generator):
    """(RGB image, palette mask) as PIL images."""
    from PIL import Image, ImageDraw

    height, width = SIZES[int(rng.integers(len(SIZES)))]
    noise = rng.integers(60, 140, size=(height, width, 3), dtype=np.uint8)
    image = Image.fromarray(noise, "RGB")
    mask = Image.new("P", (width, height), 0)
    mask.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [224, 224, 192] * 252)
    paint, label = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, 4))):
        kind, box = int(rng.integers(1, 4)), _shape_box(rng, height, width)
        shade = rng.integers(-25, 26, size=3)
        colour = tuple(int(np.clip(c + s, 0, 255)) for c, s in zip(HUES[kind], shade, strict=True))
        _draw(paint, kind, box, colour)
        _draw(label, kind, box, kind, outline=255)
    return image, mask


def write_shapes_dataset(folder: Path, *, train: int = 48, val: int = 16, seed: int = 0) -> Path:
    """Write `train` + `val` image/mask pairs in the VOC layout under `folder`; returns it."""
    folder = Path(folder).expanduser()
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"shape_{i:05d}" for i in range(train + val)]
    for image_id in ids:
        image, mask = make_pair(rng)
        image.save(folder / "JPEGImages" / f"{image_id}.jpg", quality=95)
        mask.save(folder / "SegmentationClass" / f"{image_id}.png")
    lists = folder / "ImageSets" / "Segmentation"
    (lists / "train.txt").write_text("\n".join(ids[:train]) + "\n")
    (lists / "val.txt").write_text("\n".join(ids[train:]) + "\n")
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return folder


# The `shapes` dataset: generated once into the cache, like digits needs no download.
EMBEDDED_TRAIN, EMBEDDED_VAL = 96, 32
EMBEDDED_VERSION = 1


def embedded_shapes() -> Path:
    """The folder of the `shapes` dataset, generated on first use (a FileLock keeps concurrent
    workers from writing it twice; a finished marker from reading a half-written one)."""
    from filelock import FileLock

    from deepnets.data.cache import cache_dir

    folder = cache_dir() / f"shapes-v{EMBEDDED_VERSION}"
    done = folder / ".complete"
    if not done.exists():
        cache_dir().mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache_dir() / "shapes.lock")):
            if not done.exists():
                write_shapes_dataset(folder, train=EMBEDDED_TRAIN, val=EMBEDDED_VAL, seed=0)
                done.touch()
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--train", type=int, default=48)
    parser.add_argument("--val", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = write_shapes_dataset(args.folder, train=args.train, val=args.val, seed=args.seed)
    print(f"wrote {args.train} training and {args.val} validation images to {folder}")


if __name__ == "__main__":
    main()
