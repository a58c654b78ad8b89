"""Batches straight from uint8 tensors: no DataLoader worker processes, no per-image Python.

The loader shards across ranks itself (the job `DistributedSampler` does), with two different
rules for the two uses:
- training: every rank gets the same number of batches (the shuffled order is padded by
  wrapping around), because DDP's gradient all-reduce needs every rank to take the same steps;
- evaluation: every image exactly once over all ranks and no padding, so summed counts give
  the exact accuracy of the whole split.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from deepnets.data.augment import Augment
from deepnets.data.seg_augment import JointAugment


class TensorLoader:
    """Iterate `(images, labels)` batches, float-normalised, for one rank of `world_size`."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        train: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        augment: Augment | None = None,
        resolution: int | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
    ):
        self.device = torch.device(device)
        # On a GPU the whole uint8 dataset lives in device memory: batches never cross PCIe.
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.mean = mean.to(self.device).view(1, -1, 1, 1)
        self.std = std.to(self.device).view(1, -1, 1, 1)
        self.train, self.seed, self.rank, self.world_size = train, seed, rank, world_size
        self.augment = augment if train else None
        self.resolution = resolution
        self.channels_last = channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle (and re-augment) differently every epoch, identically on every rank."""
        self.epoch = epoch

    def _generator(self, salt: int) -> torch.Generator:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed * 1_000_003 + self.epoch * 7919 + salt)
        return gen

    def shard_indices(self) -> torch.Tensor:
        """This rank's indices into the dataset for the current epoch."""
        n = len(self.labels)
        if not self.train:
            return torch.arange(self.rank, n, self.world_size, device=self.device)
        order = torch.randperm(n, generator=self._generator(salt=0), device=self.device)
        padded = -(-n // self.world_size) * self.world_size
        order = torch.cat([order, order[: padded - n]])
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        n = len(self.labels)
        if self.train:
            per_rank = -(-n // self.world_size)
            # Drop the last partial batch in training (a batch of one breaks BatchNorm).
            return max(1, per_rank // self.batch_size)
        per_rank = len(range(self.rank, n, self.world_size))
        return -(-per_rank // self.batch_size)

    def _prepare(self, index: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        x = self.images[index].float().div_(255.0)
        if self.resolution and x.shape[-1] != self.resolution:
            x = F.interpolate(x, size=self.resolution, mode="bilinear", align_corners=False)
        if self.augment is not None:
            x = self.augment(x, gen)
        return self._normalised(x)

    def _normalised(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] floats -> the model's input: standardised, in the requested memory format."""
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _batch(self, index: torch.Tensor, gen: torch.Generator | None):
        return self._prepare(index, gen), self.labels[index]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        indices = self.shard_indices()
        gen = self._generator(salt=1 + self.rank) if self.augment else None
        for b in range(len(self)):
            index = indices[b * self.batch_size : (b + 1) * self.batch_size]
            yield self._batch(index, gen)


class SegmentationLoader(TensorLoader):
    """(images, masks) batches: masks int64 [N, H, W] with 255 = ignore. Training crops
    `crop`-pixel squares (with random zoom and flips when asked); evaluation sees whole
    canvases, so its metrics are at the images' native resolution."""

    def __init__(self, images, masks, *, crop: int | None, scale: bool, hflip: bool, **common):
        super().__init__(images, masks, **common)
        joint = JointAugment(crop, scale=scale, hflip=hflip)
        self.augment = joint if self.train and joint.active else None

    def _batch(self, index: torch.Tensor, gen: torch.Generator | None):
        x = self.images[index].float().div_(255.0)
        masks = self.labels[index]
        if self.augment is not None:
            x, masks = self.augment(x, masks, gen)
        return self._normalised(x), masks.long()
