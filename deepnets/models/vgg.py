"""VGG-11/13/16/19 (Simonyan & Zisserman, configurations A, B, D, E) with ablation options.

Defaults reproduce torchvision's VGG exactly (vgg16: 138,357,544 parameters at 3 in / 1000 out).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .layers import BNPlacement, conv_unit, init_weights, scaled
from .registry import register_model

# Conv output channels, "M" = 2x2/2 max pool. Same tables as torchvision and timm.
CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M"]
    + [512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M"]
    + [512, 512, 512, 512, "M"],
}

HIDDEN = 4096  # width of the two hidden layers of the classic head (scaled by `width`)


class VGGOptions(BaseModel):
    """Options of every VGG variant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_norm: BNPlacement = "none"
    head: Literal["classic", "compact"] = "classic"
    # "imagenet": plain 2x2 max pools, for 224 px inputs. "small": ceil-mode pools so that
    # 28 px inputs survive the five poolings (28 -> 14 -> 7 -> 4 -> 2 -> 1).
    stem: Literal["imagenet", "small"] = "imagenet"
    # Multiplies every conv width and the 4096 hidden width: c -> max(8, round(c * width)).
    width: float = Field(1.0, gt=0, le=8)


class VGG(nn.Module):
    """Conv feature stack from a CFGS table, then the classic (3 FC) or compact (1 FC) head."""

    def __init__(self, cfg: list[int | str], *, num_classes: int, in_chans: int, opts: VGGOptions):
        super().__init__()
        self.features = _features(cfg, in_chans, opts)
        out_ch = scaled(512, opts.width)
        if opts.head == "classic":
            # 7x7 matches torchvision at 224 px; the small stem ends at 1x1, so pool to 1x1.
            side = 7 if opts.stem == "imagenet" else 1
            self.pool = nn.AdaptiveAvgPool2d(side)
            hidden = scaled(HIDDEN, opts.width)
            self.classifier = _classic_head(out_ch * side * side, hidden, num_classes)
        else:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Linear(out_ch, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, num_classes]."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _features(cfg: list[int | str], in_chans: int, opts: VGGOptions) -> nn.Sequential:
    layers: list[nn.Module] = []
    ch = in_chans
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=opts.stem == "small"))
        else:
            out = scaled(int(v), opts.width)
            # Conv bias kept even with BN, as torchvision's vgg*_bn (exact parameter counts).
            layers.extend(conv_unit(ch, out, 3, bn=opts.batch_norm, bias=True))
            ch = out
    return nn.Sequential(*layers)


def _classic_head(in_features: int, hidden: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )


def _build(name: str, num_classes: int, in_chans: int, opts: VGGOptions) -> VGG:
    return VGG(CFGS[name], num_classes=num_classes, in_chans=in_chans, opts=opts)


@register_model("vgg11", family="vgg", options=VGGOptions)
def vgg11(*, num_classes: int, in_chans: int, opts: VGGOptions) -> VGG:
    """VGG configuration A (8 conv + 3 FC layers)."""
    return _build("vgg11", num_classes, in_chans, opts)


@register_model("vgg13", family="vgg", options=VGGOptions)
def vgg13(*, num_classes: int, in_chans: int, opts: VGGOptions) -> VGG:
    """VGG configuration B (10 conv + 3 FC layers)."""
    return _build("vgg13", num_classes, in_chans, opts)


@register_model("vgg16", family="vgg", options=VGGOptions)
def vgg16(*, num_classes: int, in_chans: int, opts: VGGOptions) -> VGG:
    """VGG configuration D (13 conv + 3 FC layers), the report's VGG."""
    return _build("vgg16", num_classes, in_chans, opts)


@register_model("vgg19", family="vgg", options=VGGOptions)
def vgg19(*, num_classes: int, in_chans: int, opts: VGGOptions) -> VGG:
    """VGG configuration E (16 conv + 3 FC layers)."""
    return _build("vgg19", num_classes, in_chans, opts)
