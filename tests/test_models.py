"""Tests for deepnets.models, parametrized over the registry: a new model is tested for free."""

from __future__ import annotations

import pytest
import torch
import torchvision
from pydantic import BaseModel, ConfigDict
from torch import nn

from deepnets.models import (
    ModelConfigError,
    create_model,
    list_models,
    model_family,
    register_model,
    validate_model_options,
)

QUICK = {"stem": "small", "width": 0.25}  # every classifier family has both options
# The FCNs (segmentation) have tests of their own in test_segmentation.py.
CLASSIFIERS = [name for name in list_models() if not name.startswith("fcn")]

# GoogLeNet's table counts weights only, in units of K = 1024 (3a: 163,328 weights = "159K";
# the 3x3 stem row: 114,688 = "112K"; the linear layer: 1,024,000 = "1000K"). Its sum is 6797.7K.
GOOGLENET_TABLE_SUM = 6797.7 * 1024
GOOGLENET_PARAMS = 6_998_552  # ours: 6,990,272 weights + 8,280 biases


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_on_meta(name: str, **options) -> nn.Module:
    """Build without allocating memory: parameter counts need shapes only."""
    with torch.device("meta"):
        return create_model(name, num_classes=1000, in_chans=3, **options)


def check_forward_backward(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Train-mode logits (plus aux logits) are finite and every parameter gets a finite grad."""
    model.train()
    out = model(x)
    outputs = out if isinstance(out, tuple) else (out,)
    for logits in outputs:
        assert logits.shape == (x.shape[0], num_classes)
        assert torch.isfinite(logits).all()
    sum(o.square().mean() for o in outputs).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (x.shape[0], num_classes)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["mnist", "cifar"])
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_small_inputs_train_and_eval(name: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=shape[0], **QUICK)
    check_forward_backward(model, torch.randn(2, *shape), num_classes=10)


def test_googlenet_returns_aux_logits_only_in_train_mode() -> None:
    model = create_model("googlenet", num_classes=10, in_chans=3, **QUICK)
    x = torch.randn(2, 3, 32, 32)
    assert len(model.train()(x)) == 3
    assert isinstance(model.eval()(x), torch.Tensor)
    no_aux = create_model("googlenet", num_classes=10, in_chans=3, aux_logits=False, **QUICK)
    assert isinstance(no_aux.train()(x), torch.Tensor)


@pytest.mark.parametrize(
    ("name", "stem", "size"),
    [
        ("resnet18", "imagenet", 64),
        ("resnet18", "deep", 64),
        ("vgg11", "imagenet", 64),
        ("googlenet", "imagenet", 64),
    ],
)
def test_imagenet_style_stems(name: str, stem: str, size: int) -> None:
    model = create_model(name, num_classes=10, in_chans=3, stem=stem, width=0.25)
    check_forward_backward(model, torch.randn(2, 3, size, size), num_classes=10)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("vgg16", 138_357_544), ("resnet18", 11_689_512), ("resnet50", 25_557_032)],
)
def test_reference_parameter_counts(name: str, expected: int) -> None:
    assert n_params(build_on_meta(name)) == expected


def test_resnet50_matches_torchvision() -> None:
    with torch.device("meta"):
        reference = torchvision.models.resnet50(weights=None)
    assert n_params(build_on_meta("resnet50")) == n_params(reference)


def test_googlenet_parameter_count_matches_paper_table() -> None:
    count = n_params(build_on_meta("googlenet", aux_logits=False))
    assert count == GOOGLENET_PARAMS
    assert abs(count / GOOGLENET_TABLE_SUM - 1) < 0.015


def test_zero_init_residual_keeps_parameter_count() -> None:
    zeroed = n_params(build_on_meta("resnet18", zero_init_residual=True))
    assert zeroed == n_params(build_on_meta("resnet18", zero_init_residual=False))


@pytest.mark.parametrize(
    ("placement", "first", "second"),
    [("before_relu", nn.BatchNorm2d, nn.ReLU), ("after_relu", nn.ReLU, nn.BatchNorm2d)],
)
def test_vgg_batch_norm_placement(placement: str, first: type, second: type) -> None:
    model = create_model("vgg11", num_classes=10, in_chans=3, batch_norm=placement, **QUICK)
    kinds = [type(m) for m in model.features]
    assert kinds[:3] == [nn.Conv2d, first, second]
    assert kinds.count(nn.BatchNorm2d) == kinds.count(nn.Conv2d) == 8


def test_vgg_without_batch_norm_has_none() -> None:
    model = create_model("vgg11", num_classes=10, in_chans=3, **QUICK)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_duplicate_registration_raises() -> None:
    class NoOptions(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18", family="resnet", options=NoOptions)


def assert_one_line_error(name: str, options: dict, *fragments: str) -> None:
    with pytest.raises(ModelConfigError) as info:
        validate_model_options(name, options)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_unknown_model() -> None:
    assert_one_line_error("vgg17", {}, "unknown model 'vgg17'", "resnet18", "timm/<name>")
    with pytest.raises(ModelConfigError):
        create_model("vgg17", num_classes=10, in_chans=3)


def test_unknown_option() -> None:
    assert_one_line_error(
        "resnet18", {"depth": 3}, "has no option 'depth'", "stem, width, zero_init_residual"
    )


def test_bad_option_value() -> None:
    assert_one_line_error(
        "vgg16",
        {"batch_norm": "sometimes"},
        "option 'batch_norm': must be one of 'none', 'before_relu', 'after_relu'",
        "(got 'sometimes')",
    )
    assert_one_line_error("resnet18", {"width": 0}, "option 'width': must be greater than 0")


def test_several_bad_options_give_one_line() -> None:
    assert_one_line_error("googlenet", {"stem": "huge", "dropout": 1.0}, "'stem'", "'dropout'")


def test_validate_fills_defaults_without_building() -> None:
    opts = validate_model_options("googlenet", {"stem": "small"})
    assert opts == {
        "stem": "small",
        "aux_logits": True,
        "batch_norm": "none",
        "dropout": 0.4,
        "width": 1.0,
    }


def test_timm_passthrough() -> None:
    model = create_model("timm/resnet18", num_classes=10, in_chans=1)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_timm_unknown_and_pretrained_are_refused() -> None:
    with pytest.raises(ModelConfigError, match="unknown timm model"):
        create_model("timm/not_a_model", num_classes=10, in_chans=3)
    with pytest.raises(ModelConfigError, match="no internet"):
        create_model("timm/resnet18", num_classes=10, in_chans=3, pretrained=True)
    assert validate_model_options("timm/resnet18", {"drop_rate": 0.1}) == {"drop_rate": 0.1}


@pytest.mark.parametrize("name", [*list_models(), "timm/resnet18"])
def test_model_family(name: str) -> None:
    expected = "timm" if name.startswith("timm/") else name.rstrip("0123456789s")
    assert model_family(name) == expected


def test_a_config_may_state_in_chans_when_it_matches_the_data():
    from deepnets.models import create_configured_model

    options = {"in_chans": 1, "stem": "small", "width": 0.25}
    model = create_configured_model("resnet18", options, num_classes=10, in_chans=1)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ModelConfigError, match="in_chans: 1 does not match the data"):
        create_configured_model("resnet18", options, num_classes=10, in_chans=3)
