"""ResNet-18/34/50/101/152 (He et al.) with stem and width options.

Defaults reproduce torchvision's ResNet v1.5 (stride on the 3x3 conv of a bottleneck):
resnet18 has 11,689,512 parameters and resnet50 25,557,032 at 3 in / 1000 out.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .layers import conv_unit, init_weights, scaled
from .registry import register_model

BASE_WIDTHS = (64, 128, 256, 512)  # channels entering each stage's blocks (before expansion)

# name -> (block kind, blocks per stage)
DEPTHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}


class ResNetOptions(BaseModel):
    """Options of every ResNet variant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # imagenet: 7x7/2 conv + 3x3/2 max pool. deep: three 3x3 convs (ResNet-C, "Bag of Tricks")
    # + max pool. small: one 3x3/1 conv, no pool (CIFAR style, for 28/32 px inputs).
    stem: Literal["imagenet", "deep", "small"] = "imagenet"
    # Multiplies the stage widths 64/128/256/512: 0.25 -> 16/32/64/128, 2 -> Wide-ResNet-like.
    width: float = Field(1.0, gt=0, le=8)
    # Zero the last BN gamma of each block so every block starts as the identity (Goyal et al.);
    # changes only the init, not the parameter count. Off by default (as torchvision): it helps
    # large-batch ImageNet runs but slows short ones (1 epoch of MNIST: 90.3% vs 98.2%, measured).
    zero_init_residual: bool = False


class Block(nn.Module):
    """A residual block: relu(residual(x) + shortcut(x)); basic (2 convs) or bottleneck (3)."""

    def __init__(self, kind: str, in_ch: int, planes: int, stride: int):
        super().__init__()
        out_ch = planes * expansion(kind)
        if kind == "basic":
            units = [
                conv_unit(in_ch, planes, 3, stride=stride, bn="before_relu"),
                conv_unit(planes, out_ch, 3, bn="before_relu", relu=False),
            ]
        else:  # bottleneck: 1x1 reduce, 3x3 (strided, as v1.5), 1x1 expand
            units = [
                conv_unit(in_ch, planes, 1, bn="before_relu"),
                conv_unit(planes, planes, 3, stride=stride, bn="before_relu"),
                conv_unit(planes, out_ch, 1, bn="before_relu", relu=False),
            ]
        self.residual = nn.Sequential(*units)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = conv_unit(in_ch, out_ch, 1, stride=stride, bn="before_relu", relu=False)
        self.relu = nn.ReLU(inplace=True)

    def last_bn(self) -> nn.BatchNorm2d:
        """The BN closing the residual branch (zeroed by zero_init_residual)."""
        return self.residual[-1][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(F(x) + shortcut(x))."""
        return self.relu(self.residual(x) + self.shortcut(x))


def expansion(kind: str) -> int:
    """Output channels of a block per `planes`: 1 for basic, 4 for bottleneck."""
    return 1 if kind == "basic" else 4


class ResNet(nn.Module):
    """Stem, four stages of residual blocks, global average pool, linear classifier."""

    def __init__(
        self,
        kind: str,
        depths: tuple[int, ...],
        *,
        num_classes: int,
        in_chans: int,
        opts: ResNetOptions,
    ):
        super().__init__()
        widths = [scaled(w, opts.width) for w in BASE_WIDTHS]
        self.stem = _stem(opts.stem, in_chans, widths[0])
        stages, ch = [], widths[0]
        for i, (planes, n_blocks) in enumerate(zip(widths, depths, strict=True)):
            # Stage 1 keeps the stem's resolution; later stages halve it in their first block.
            stages.append(_stage(kind, ch, planes, n_blocks, stride=1 if i == 0 else 2))
            ch = planes * expansion(kind)
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)
        init_weights(self)
        if opts.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Block):
                    nn.init.zeros_(m.last_bn().weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, num_classes]."""
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def _stage(kind: str, in_ch: int, planes: int, n_blocks: int, stride: int) -> nn.Sequential:
    out_ch = planes * expansion(kind)
    blocks = [Block(kind, in_ch, planes, stride)]
    blocks += [Block(kind, out_ch, planes, 1) for _ in range(n_blocks - 1)]
    return nn.Sequential(*blocks)


def _stem(kind: str, in_chans: int, ch: int) -> nn.Sequential:
    pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # torchvision's stem pool
    if kind == "imagenet":
        return nn.Sequential(conv_unit(in_chans, ch, 7, stride=2, bn="before_relu"), pool)
    if kind == "deep":
        half = max(1, ch // 2)
        return nn.Sequential(
            conv_unit(in_chans, half, 3, stride=2, bn="before_relu"),
            conv_unit(half, half, 3, bn="before_relu"),
            conv_unit(half, ch, 3, bn="before_relu"),
            pool,
        )
    return nn.Sequential(conv_unit(in_chans, ch, 3, bn="before_relu"))  # small: no downsampling


def _build(name: str, num_classes: int, in_chans: int, opts: ResNetOptions) -> ResNet:
    kind, depths = DEPTHS[name]
    return ResNet(kind, depths, num_classes=num_classes, in_chans=in_chans, opts=opts)


@register_model("resnet18", family="resnet", options=ResNetOptions)
def resnet18(*, num_classes: int, in_chans: int, opts: ResNetOptions) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2], the report's ResNet."""
    return _build("resnet18", num_classes, in_chans, opts)


@register_model("resnet34", family="resnet", options=ResNetOptions)
def resnet34(*, num_classes: int, in_chans: int, opts: ResNetOptions) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3]."""
    return _build("resnet34", num_classes, in_chans, opts)


@register_model("resnet50", family="resnet", options=ResNetOptions)
def resnet50(*, num_classes: int, in_chans: int, opts: ResNetOptions) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3]."""
    return _build("resnet50", num_classes, in_chans, opts)


@register_model("resnet101", family="resnet", options=ResNetOptions)
def resnet101(*, num_classes: int, in_chans: int, opts: ResNetOptions) -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3]."""
    return _build("resnet101", num_classes, in_chans, opts)


@register_model("resnet152", family="resnet", options=ResNetOptions)
def resnet152(*, num_classes: int, in_chans: int, opts: ResNetOptions) -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3]."""
    return _build("resnet152", num_classes, in_chans, opts)
