"""Small building blocks shared by the VGG, ResNet and GoogLeNet definitions."""

from __future__ import annotations

from typing import Literal

from torch import nn

# Where a conv's BatchNorm sits: "before_relu" is conv -> BN -> ReLU (the usual order),
# "after_relu" is conv -> ReLU -> BN (an ablation in the report's VGG tables).
BNPlacement = Literal["none", "before_relu", "after_relu"]

# Below this many channels a layer is too thin to learn much; width multipliers never go lower.
MIN_CHANNELS = 8


def scaled(channels: int, width: float) -> int:
    """Channel count `channels` times the width multiplier, rounded, at least MIN_CHANNELS.

    Width 1.0 returns `channels` unchanged, so the reference parameter counts hold.
    """
    return max(MIN_CHANNELS, round(channels * width))


def conv_unit(
    in_ch: int,
    out_ch: int,
    kernel_size: int,
    *,
    stride: int = 1,
    bn: BNPlacement = "none",
    relu: bool = True,
    bias: bool | None = None,
) -> nn.Sequential:
    """A 'same'-padded conv followed by optional BN and ReLU in the requested order.

    `bias` defaults to True only without BN (a bias right before BN is redundant); VGG passes
    True explicitly to match torchvision's vgg*_bn parameter counts.
    """
    if bias is None:
        bias = bn == "none"
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)
    ]
    if bn == "before_relu":
        layers.append(nn.BatchNorm2d(out_ch))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    if bn == "after_relu":
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers)


def init_weights(model: nn.Module) -> None:
    """torchvision's VGG init: He-normal convs (fan_out), unit BN, N(0, 0.01) linears, zero biases.

    He init keeps activations from vanishing in the deep BN-free variants (plain VGG, GoogLeNet).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
