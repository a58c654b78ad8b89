"""Batched augmentation on float tensors in [0, 1]: one call per batch, no per-image Python.

Presets:
- `none`: identity.
- `standard`: random crop with zero padding (size/8 pixels, 4 at 32 px) + horizontal flip.
- `report`: the seed report's section 3.2: random rotation (+-15 degrees), colour jitter
  (brightness, contrast and, for RGB, saturation +-20%) + horizontal flip.
Flips are applied only where the dataset allows them (a mirrored digit is a different glyph).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

ROTATION_DEGREES = 15.0
JITTER = 0.2


def random_uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def random_hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, gen: torch.Generator, padding: int) -> torch.Tensor:
    """Per-image random crop of the zero-padded batch back to its size, by index arithmetic."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [N, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [N, 1, W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_rotation(x: torch.Tensor, gen: torch.Generator, degrees: float) -> torch.Tensor:
    angle = random_uniform(x.shape[0], -degrees, degrees, gen, x.device) * (math.pi / 180.0)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([cos, -sin, zero, sin, cos, zero], dim=1).view(-1, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def color_jitter(x: torch.Tensor, gen: torch.Generator, strength: float) -> torch.Tensor:
    n = x.shape[0]

    def factor():
        return random_uniform(n, 1 - strength, 1 + strength, gen, x.device)[:, None, None, None]

    x = x * factor()  # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor() + mean  # contrast
    if x.shape[1] == 3:  # saturation: blend with the greyscale image
        grey = (x * x.new_tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
        x = (x - grey) * factor() + grey
    return x.clamp(0.0, 1.0)


def build_augment(preset: str, *, hflip: bool, size: int) -> Augment | None:
    """The batched augmentation for a preset, or None when there is nothing to do."""
    steps: list[Augment] = []
    if preset == "standard":
        padding = max(1, size // 8)
        steps.append(lambda x, g: random_crop(x, g, padding))
    elif preset == "report":
        steps.append(lambda x, g: random_rotation(x, g, ROTATION_DEGREES))
        steps.append(lambda x, g: color_jitter(x, g, JITTER))
    elif preset != "none":
        raise ValueError(f"unknown augmentation preset '{preset}'")
    if hflip and preset != "none":
        steps.append(random_hflip)
    if not steps:
        return None

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for step in steps:
            x = step(x, gen)
        return x

    return augment
