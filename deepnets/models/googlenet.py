"""GoogLeNet / Inception v1 (Szegedy et al. 2015), as in the paper's table.

Unlike torchvision, the "5x5" branch really is a 5x5 conv, there is no LRN, and BN is optional
(`batch_norm="before_relu"`; the paper has none). In train mode with `aux_logits=True` the
model returns `(logits, aux1, aux2)` (heads after inception 4a and 4d); the training loss is
meant to be `main + aux_loss_weight * (aux1 + aux2)` (the paper and the report use 0.3). In eval
mode, or with `aux_logits=False`, it returns logits only.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .layers import conv_unit, init_weights, scaled
from .registry import register_model

# The paper's table: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); None = max pool.
INCEPTION: list[tuple[str, tuple[int, int, int, int, int, int] | None]] = [
    ("3a", (64, 96, 128, 16, 32, 32)),
    ("3b", (128, 128, 192, 32, 96, 64)),
    ("pool3", None),
    ("4a", (192, 96, 208, 16, 48, 64)),
    ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)),
    ("pool4", None),
    ("5a", (256, 160, 320, 32, 128, 128)),
    ("5b", (384, 192, 384, 48, 128, 128)),
]
AUX_AFTER = ("4a", "4d")  # where the paper attaches its two auxiliary classifiers


class GoogLeNetOptions(BaseModel):
    """Options of GoogLeNet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # imagenet: 7x7/2 conv, pool, 1x1, 3x3, pool (224 px -> 28 px at inception 3).
    # small: 3x3/1 conv, 1x1, 3x3, one pool (32 px -> 16 px at inception 3).
    stem: Literal["imagenet", "small"] = "imagenet"
    aux_logits: bool = True
    batch_norm: Literal["none", "before_relu"] = "none"
    dropout: float = Field(0.4, ge=0, lt=1)  # before the final linear layer
    # Multiplies every conv channel count and the aux heads' 1024 hidden units.
    width: float = Field(1.0, gt=0, le=8)


class Inception(nn.Module):
    """Four parallel branches (1x1 | 1x1->3x3 | 1x1->5x5 | 3x3 pool->1x1), concatenated."""

    def __init__(self, in_ch: int, spec: tuple[int, ...], bn: str):
        super().__init__()
        c1, c3r, c3, c5r, c5, pp = spec
        self.branches = nn.ModuleList(
            [
                conv_unit(in_ch, c1, 1, bn=bn),
                nn.Sequential(conv_unit(in_ch, c3r, 1, bn=bn), conv_unit(c3r, c3, 3, bn=bn)),
                nn.Sequential(conv_unit(in_ch, c5r, 1, bn=bn), conv_unit(c5r, c5, 5, bn=bn)),
                nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_unit(in_ch, pp, 1, bn=bn)),
            ]
        )
        self.out_channels = c1 + c3 + c5 + pp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channel-wise concatenation of the four branches (spatial size unchanged)."""
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class AuxHead(nn.Module):
    """The paper's auxiliary classifier (pool, 1x1 conv 128, FC 1024, dropout 0.7, FC).

    AdaptiveAvgPool2d(4) gives the same 4x4 output as the paper's 5x5/3 average pool on 14x14
    (with 4-wide windows instead of 5, as torchvision) and also works on small-stem inputs.
    """

    def __init__(self, in_ch: int, num_classes: int, width: float, bn: str):
        super().__init__()
        conv_ch, hidden = scaled(128, width), scaled(1024, width)
        self.layers = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            conv_unit(in_ch, conv_ch, 1, bn=bn),
            nn.Flatten(),
            nn.Linear(conv_ch * 16, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.7),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Auxiliary logits [N, num_classes]."""
        return self.layers(x)


class GoogLeNet(nn.Module):
    """Stem, nine inception modules (two max pools between), average pool, dropout, linear."""

    def __init__(self, *, num_classes: int, in_chans: int, opts: GoogLeNetOptions):
        super().__init__()
        bn, w = opts.batch_norm, opts.width
        self.stem = _stem(opts.stem, in_chans, w, bn)
        self.blocks = nn.ModuleDict()
        self.aux = nn.ModuleDict()  # keyed by the block it taps; empty without aux_logits
        ch = scaled(192, w)
        for name, spec in INCEPTION:
            if spec is None:
                self.blocks[name] = _pool()
                continue
            block = Inception(ch, tuple(scaled(c, w) for c in spec), bn)
            self.blocks[name] = block
            ch = block.out_channels
            if opts.aux_logits and name in AUX_AFTER:
                self.aux[name] = AuxHead(ch, num_classes, w, bn)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(opts.dropout),
            nn.Linear(ch, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Logits, or `(logits, aux1, aux2)` in train mode when aux heads exist."""
        x = self.stem(x)
        aux_logits = []
        for name, block in self.blocks.items():
            x = block(x)
            if self.training and name in self.aux:
                aux_logits.append(self.aux[name](x))
        logits = self.head(x)
        return (logits, *aux_logits) if aux_logits else logits


def _pool() -> nn.MaxPool2d:
    # 3x3/2 with ceil_mode, as torchvision: 112 -> 56, 56 -> 28, 28 -> 14, 14 -> 7.
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


def _stem(kind: str, in_chans: int, width: float, bn: str) -> nn.Sequential:
    c64, c192 = scaled(64, width), scaled(192, width)
    tail = [conv_unit(c64, c64, 1, bn=bn), conv_unit(c64, c192, 3, bn=bn), _pool()]
    if kind == "imagenet":
        return nn.Sequential(conv_unit(in_chans, c64, 7, stride=2, bn=bn), _pool(), *tail)
    return nn.Sequential(conv_unit(in_chans, c64, 3, bn=bn), *tail)


@register_model("googlenet", family="googlenet", options=GoogLeNetOptions)
def googlenet(*, num_classes: int, in_chans: int, opts: GoogLeNetOptions) -> GoogLeNet:
    """GoogLeNet (Inception v1), the report's third architecture."""
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, opts=opts)
