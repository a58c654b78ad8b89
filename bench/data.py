"""The data pipeline alone vs what the fastest report model consumes in training.

For each augmentation preset, times a full pass of the tensor-resident loader (index, convert,
resize where asked, augment, normalise) over CIFAR-10-shaped batches, and compares it with the
training throughput of the fastest registered model at the same batch size. The pipeline must
feed at least 10x what training eats (issue 5), so data never limits training.

    python bench/data.py [--images 4096] [--batch 64]

Uses random uint8 images of CIFAR-10's shape (3x32x32) so it needs no dataset on disk.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from deepnets.data.augment import build_augment  # noqa: E402
from deepnets.data.loader import TensorLoader  # noqa: E402
from deepnets.engine import train_one_epoch  # noqa: E402
from deepnets.models import create_model, list_models  # noqa: E402

SHAPE = (3, 32, 32)
FAST_CANDIDATES = {"width": 0.25, "stem": "small"}


def loader(images, labels, batch: int, preset: str) -> TensorLoader:
    augment = build_augment(preset, hflip=True, size=SHAPE[-1])
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    return TensorLoader(
        images, labels, batch_size=batch, mean=mean, std=std, train=True, augment=augment
    )


def pipeline_rate(images, labels, batch: int, preset: str) -> float:
    batches = loader(images, labels, batch, preset)
    list(batches)  # warm-up
    start = time.perf_counter()
    count = sum(len(y) for _, y in batches)
    return count / (time.perf_counter() - start)


def training_rate(name: str, images, labels, batch: int) -> float:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=3, **FAST_CANDIDATES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batches = list(loader(images[: batch * 8], labels[: batch * 8], batch, "none"))
    train_one_epoch(model, batches[:2], optimizer, criterion=nn.CrossEntropyLoss())  # warm-up
    counts, seconds = train_one_epoch(model, batches, optimizer, criterion=nn.CrossEntropyLoss())
    return counts.count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, *SHAPE), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (args.images,), generator=gen)
    rates = {name: training_rate(name, images, labels, args.batch) for name in list_models()}
    fastest = max(rates, key=rates.get)
    print(f"training images/s at width 0.25, small stem, batch {args.batch}, {SHAPE}:")
    for name, rate in sorted(rates.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<10}{rate:>9.0f}")
    print(f"\n{'augment':<10}{'pipeline images/s':>19}{f'x {fastest}':>16}   target >= 10x")
    for preset in ("none", "standard", "report"):
        rate = pipeline_rate(images, labels, args.batch, preset)
        print(f"{preset:<10}{rate:>19.0f}{rate / rates[fastest]:>16.1f}")


if __name__ == "__main__":
    main()
