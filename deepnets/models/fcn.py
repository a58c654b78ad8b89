"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell) on the registry's VGG16.

The VGG16 conv stack is the classifier's own (`vgg._features`, torchvision's layer indices), so
ImageNet VGG16 weights in torchvision's layout load straight into it; its fully connected fc6 /
fc7 become 7x7 and 1x1 convolutions (the "classic" head) as in the paper. Class scores at
stride 32 are upsampled back to the input, after adding scores from pool4 (16s) and pool3 (8s).
The skip scorers start at zero, as in the paper's staged training, so an FCN-8s begins as an
FCN-32s and learns how much the finer layers should contribute.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .layers import BNPlacement, init_weights, scaled
from .registry import ModelConfigError, register_model
from .vgg import CFGS, HIDDEN, VGGOptions, _features

# Torchvision's VGG16 classifier layers that become fc6 and fc7 here (as convolutions).
CLASSIFIER_TO_HEAD = {"classifier.0": "head.0", "classifier.3": "head.3"}


class FCNOptions(BaseModel):
    """Options of FCN-32s/16s/8s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_norm: BNPlacement = "none"
    # Multiplies every VGG conv width and the 4096 fc6/fc7 width (as the VGG option does).
    width: float = Field(1.0, gt=0, le=8)
    # "classic": fc6 (7x7 conv) and fc7 (1x1 conv), 4096 wide, with dropout, as in the paper;
    # "compact": class scores straight from pool5 (a fraction of the parameters and time).
    head: Literal["classic", "compact"] = "classic"
    # "learned": transposed convolutions initialised to bilinear interpolation and trained;
    # "bilinear": fixed bilinear interpolation.
    upsample: Literal["learned", "bilinear"] = "learned"
    # A local file of ImageNet VGG16 weights in torchvision's layout (vgg16-397923af.pth, or
    # vgg16_bn-6c64b313.pth with batch_norm: before_relu); None trains from scratch.
    weights: str | None = None


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """[channels, channels, size, size] weights that make a transposed conv upsample each channel
    bilinearly on its own (the FCN paper's initialisation)."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = ramp[:, None] * ramp[None, :]
    return weight


class Upsample(nn.Module):
    """Upsample by an integer factor, then match a target size exactly (odd input sizes)."""

    def __init__(self, channels: int, factor: int, learned: bool):
        super().__init__()
        self.factor = factor
        self.deconv = None
        if learned:
            size = 2 * factor
            self.deconv = nn.ConvTranspose2d(
                channels, channels, size, stride=factor, padding=factor // 2, bias=False
            )
            with torch.no_grad():
                self.deconv.weight.copy_(bilinear_kernel(channels, size))

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if self.deconv is None:
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = self.deconv(x)
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x


class FCN(nn.Module):
    """Per-pixel class logits [N, num_classes, H, W] for an input [N, in_chans, H, W]."""

    def __init__(self, stride: int, *, num_classes: int, in_chans: int, opts: FCNOptions):
        super().__init__()
        self.stride = stride
        vgg_opts = VGGOptions(batch_norm=opts.batch_norm, width=opts.width, stem="imagenet")
        self.features = _features(CFGS["vgg16"], in_chans, vgg_opts)
        pools = [i for i, layer in enumerate(self.features) if isinstance(layer, nn.MaxPool2d)]
        self.pool3_index, self.pool4_index = pools[2], pools[3]
        channels = scaled(512, opts.width)
        self.head = _head(opts.head, channels, scaled(HIDDEN, opts.width), num_classes)
        learned = opts.upsample == "learned"
        self.up_final = Upsample(num_classes, stride, learned)
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(channels, num_classes, 1)
            self.up_pool4 = Upsample(num_classes, 2, learned)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(scaled(256, opts.width), num_classes, 1)
            self.up_pool3 = Upsample(num_classes, 2, learned)
        init_weights(self)
        self._zero_skip_scores()
        if opts.weights:
            load_vgg16_weights(self, Path(opts.weights).expanduser())

    def _zero_skip_scores(self) -> None:
        for name in ("score_pool4", "score_pool3"):
            if hasattr(self, name):
                nn.init.zeros_(getattr(self, name).weight)
                nn.init.zeros_(getattr(self, name).bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        taps = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in (self.pool3_index, self.pool4_index):
                taps[index] = x
        score = self.head(x)
        if self.stride <= 16:
            pool4 = taps[self.pool4_index]
            score = self.up_pool4(score, pool4.shape[-2:]) + self.score_pool4(pool4)
        if self.stride == 8:
            pool3 = taps[self.pool3_index]
            score = self.up_pool3(score, pool3.shape[-2:]) + self.score_pool3(pool3)
        return self.up_final(score, size)


def _head(kind: str, channels: int, hidden: int, num_classes: int) -> nn.Sequential:
    if kind == "compact":
        return nn.Sequential(nn.Conv2d(channels, num_classes, 1))
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 7, padding=3),
        nn.ReLU(inplace=True),
        nn.Dropout2d(0.5),
        nn.Conv2d(hidden, hidden, 1),
        nn.ReLU(inplace=True),
        nn.Dropout2d(0.5),
        nn.Conv2d(hidden, num_classes, 1),
    )


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelConfigError(f"model option 'weights': no file {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-PyTorch file: say which, in one line
        detail = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:120]}"
        raise ModelConfigError(
            f"model option 'weights': cannot read {path} as a PyTorch file ({detail})"
        ) from None
    return state if isinstance(state, dict) else {}


def vgg16_targets(file_shapes: dict, own_shapes: dict, filename: str) -> dict[str, str]:
    """{FCN key: file key} for the tensors of a torchvision-layout VGG16 file that an FCN with
    `own_shapes` takes (conv stack; fc6 / fc7 into a classic head, as convolutions); raises
    ModelConfigError, naming the first misfit, unless the whole conv stack is covered."""
    classic = "head.3.weight" in own_shapes  # a compact head has no fc6 / fc7 to take
    targets = {}
    for key, shape in file_shapes.items():
        prefix, _, leaf = key.rpartition(".")
        target = key
        if prefix in CLASSIFIER_TO_HEAD:
            target = f"{CLASSIFIER_TO_HEAD[prefix]}.{leaf}" if classic else ""
        if not (target.startswith(("features.", "head.")) and target in own_shapes):
            continue
        if math.prod(shape) != math.prod(own_shapes[target]):
            raise ModelConfigError(
                f"model option 'weights': {filename} {key} has shape {tuple(shape)}, the "
                f"model's {target} needs {tuple(own_shapes[target])} (check width, batch_norm, "
                "head)"
            )
        targets[target] = key
    missing = [k for k in own_shapes if k.startswith("features.") and k not in targets]
    if missing:
        raise ModelConfigError(
            f"model option 'weights': {filename} lacks {missing[0]} (not VGG16 weights in "
            "torchvision's layout, or batch_norm does not match)"
        )
    return targets


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, torch.Size]:
    return {key: value.shape for key, value in state.items()}


def load_vgg16_weights(model: FCN, path: Path) -> None:
    """Copy ImageNet VGG16 weights into `model`; the score layers keep their initialisation."""
    state, own = _load_state(path), model.state_dict()
    targets = vgg16_targets(_shapes(state), _shapes(own), path.name)
    mapped = {target: state[key].reshape(own[target].shape) for target, key in targets.items()}
    model.load_state_dict(mapped, strict=False)


@functools.lru_cache(maxsize=4)
def _file_shapes(path: Path, stamp: tuple[int, int]) -> dict[str, torch.Size]:
    """The tensor shapes of a weights file, read once per version of it (`stamp`: mtime and
    size): a sweep's preflight checks every variant against the same 528 MB file."""
    return _shapes(_load_state(path))


def check_weights_file(name: str, options: dict, *, num_classes: int, in_chans: int) -> None:
    """Raise ModelConfigError unless `options["weights"]` fits FCN `name` (in seconds: the model
    is built on the meta device, the file's shapes read once)."""
    path = Path(options["weights"]).expanduser()
    if not path.is_file():
        raise ModelConfigError(f"model option 'weights': no file {path}")
    opts = FCNOptions.model_validate({**options, "weights": None})
    with torch.device("meta"):
        model = FCN(STRIDES[name], num_classes=num_classes, in_chans=in_chans, opts=opts)
    stat = path.stat()
    shapes = _file_shapes(path.resolve(), (stat.st_mtime_ns, stat.st_size))
    vgg16_targets(shapes, _shapes(model.state_dict()), path.name)


STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}


@register_model("fcn32s", family="fcn", options=FCNOptions)
def fcn32s(*, num_classes: int, in_chans: int, opts: FCNOptions) -> FCN:
    """FCN-32s: VGG16 scores at stride 32, upsampled 32x in one step."""
    return FCN(32, num_classes=num_classes, in_chans=in_chans, opts=opts)


@register_model("fcn16s", family="fcn", options=FCNOptions)
def fcn16s(*, num_classes: int, in_chans: int, opts: FCNOptions) -> FCN:
    """FCN-16s: FCN-32s plus a skip from pool4."""
    return FCN(16, num_classes=num_classes, in_chans=in_chans, opts=opts)


@register_model("fcn8s", family="fcn", options=FCNOptions)
def fcn8s(*, num_classes: int, in_chans: int, opts: FCNOptions) -> FCN:
    """FCN-8s: FCN-16s plus a skip from pool3."""
    return FCN(8, num_classes=num_classes, in_chans=in_chans, opts=opts)
