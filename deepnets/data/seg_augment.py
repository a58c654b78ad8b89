"""Joint image/mask augmentation for segmentation, batched: one affine warp per batch.

Random scale, crop and horizontal flip are one affine map per image, so a batch is warped by a
single `grid_sample` call for the images (bilinear) and one for the masks (nearest, so class ids
stay class ids). Pixels the crop takes from outside the canvas become 0 in the image and 255
(ignored) in the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepnets.data.augment import random_uniform
from deepnets.data.voc import IGNORE_INDEX

SCALE_RANGE = (0.5, 2.0)  # zoom factors, as in the common FCN / DeepLab training recipes


def crop_transforms(
    n: int, canvas: tuple[int, int], crop: int, gen: torch.Generator, *, scale: bool, hflip: bool,
    device: torch.device,
) -> torch.Tensor:  # fmt: skip
    """[n, 2, 3] affine maps from a crop's normalised coordinates to the canvas's.

    At zoom s the crop covers crop / s canvas pixels, i.e. a half-extent of crop / (s * side) in
    normalised units; the centre is uniform over the positions that keep the crop inside the
    canvas (or the canvas inside the crop, when zoomed out past it)."""
    zoom = random_uniform(n, *SCALE_RANGE, gen, device) if scale else torch.ones(n, device=device)
    height, width = canvas
    half_x, half_y = crop / (zoom * width), crop / (zoom * height)
    centre_x = random_uniform(n, -1.0, 1.0, gen, device) * (1.0 - half_x).abs()
    centre_y = random_uniform(n, -1.0, 1.0, gen, device) * (1.0 - half_y).abs()
    mirror = torch.ones(n, device=device)
    if hflip:
        mirror = torch.where(torch.rand(n, generator=gen, device=device) < 0.5, -mirror, mirror)
    zero = torch.zeros(n, device=device)
    rows = [mirror * half_x, zero, centre_x, zero, half_y, centre_y]
    return torch.stack(rows, dim=1).view(n, 2, 3)


def warp_pair(
    images: torch.Tensor, masks: torch.Tensor, theta: torch.Tensor, crop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, C, H, W] float and masks [N, H, W] (uint8, 255 = ignore) warped by `theta`
    into crop x crop; the masks come back as int64."""
    n, c = images.shape[:2]
    grid = F.affine_grid(theta.to(images.dtype), [n, c, crop, crop], align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Shift ids by one so that the zero padding of grid_sample marks "outside" unambiguously.
    shifted = (masks.to(images.dtype) + 1).unsqueeze(1)
    labels = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    labels = labels.squeeze(1).round().long() - 1
    return warped, labels.masked_fill_(labels < 0, IGNORE_INDEX)


class JointAugment:
    """Crop (to `crop` pixels square, None: the canvas), optionally with random zoom and flip."""

    def __init__(self, crop: int | None, *, scale: bool, hflip: bool):
        self.crop, self.scale, self.hflip = crop, scale, hflip

    @property
    def active(self) -> bool:
        return self.crop is not None or self.scale or self.hflip

    def __call__(self, images, masks, gen: torch.Generator):
        crop = self.crop or images.shape[-1]
        theta = crop_transforms(
            images.shape[0], tuple(images.shape[-2:]), crop, gen, scale=self.scale,
            hflip=self.hflip, device=images.device,
        )  # fmt: skip
        return warp_pair(images, masks, theta, crop)
