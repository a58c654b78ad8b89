"""A strict model registry: every public name maps to a builder and a pydantic options model.

Names starting with "timm/" bypass the registry and go to `timm.create_model` (randomly
initialised only: these machines have no internet, so pretrained weights are refused).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from torch import nn

TIMM_PREFIX = "timm/"

Builder = Callable[..., nn.Module]


class ModelConfigError(ValueError):
    """A bad model name or option; the message is one line that says what is allowed."""


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: its builder `fn(*, num_classes, in_chans, opts)` and options."""

    name: str
    family: str
    options: type[BaseModel]
    builder: Builder


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, family: str, options: type[BaseModel]
) -> Callable[[Builder], Builder]:
    """Decorator registering `fn(*, num_classes, in_chans, opts) -> nn.Module` under `name`."""
    if name in _REGISTRY or name.startswith(TIMM_PREFIX):
        raise ValueError(f"model {name!r} is already registered (or uses the timm/ prefix)")

    def decorate(fn: Builder) -> Builder:
        _REGISTRY[name] = ModelSpec(name, family, options, fn)
        return fn

    return decorate


def list_models() -> list[str]:
    """Sorted names of the registered models (timm's models are not listed)."""
    return sorted(_REGISTRY)


def model_family(name: str) -> str:
    """The family of `name`: "vgg", "resnet", "googlenet" or "timm"."""
    if name.startswith(TIMM_PREFIX):
        return "timm"
    return _spec(name).family


def validate_model_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Check `name` and `options` without building anything; return options with defaults."""
    options, _ = _declared_in_chans(name, options)
    if name.startswith(TIMM_PREFIX):
        return _validate_timm(name, options)
    spec = _spec(name)
    return _parse_options(spec, options).model_dump()


def _declared_in_chans(name: str, options: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """Every model may state the input channels it expects (`in_chans`); the data decides them,
    so a stated value is only checked against the data's (see check_in_chans)."""
    if "in_chans" not in options:
        return options, None
    declared = options["in_chans"]
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 1:
        raise ModelConfigError(
            f"model {name!r} option 'in_chans': must be a positive integer (got {declared!r})"
        )
    return {k: v for k, v in options.items() if k != "in_chans"}, declared


def check_in_chans(
    name: str, options: dict[str, Any], data_channels: int, dataset: str | None = None
) -> None:
    """Refuse a stated `in_chans` that the data does not have."""
    _, declared = _declared_in_chans(name, options)
    if declared is not None and declared != data_channels:
        images = f"{dataset} images" if dataset else "the images"
        raise ModelConfigError(
            f"model.options.in_chans: {declared} does not match the data ({images} "
            f"have {data_channels} channel{'s' if data_channels > 1 else ''})"
        )


def create_configured_model(
    name: str, options: dict[str, Any], *, num_classes: int, in_chans: int
) -> nn.Module:
    """Build from a config's `model.options`, which may state `in_chans`: checked against the
    data's channels, then left out (create_model takes the data's as its own argument)."""
    check_in_chans(name, options, in_chans)
    rest, _ = _declared_in_chans(name, options)
    return create_model(name, num_classes=num_classes, in_chans=in_chans, **rest)


def create_model(name: str, *, num_classes: int, in_chans: int, **options: Any) -> nn.Module:
    """Build model `name` with a fresh (random) initialisation."""
    if num_classes < 1 or in_chans < 1:
        raise ModelConfigError(
            f"model {name!r}: num_classes and in_chans must be >= 1 "
            f"(got num_classes={num_classes}, in_chans={in_chans})"
        )
    if name.startswith(TIMM_PREFIX):
        return _create_timm(name, num_classes=num_classes, in_chans=in_chans, **options)
    spec = _spec(name)
    opts = _parse_options(spec, options)
    return spec.builder(num_classes=num_classes, in_chans=in_chans, opts=opts)


def _spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        known = ", ".join(list_models())
        raise ModelConfigError(f"unknown model {name!r}; known: {known}, or {TIMM_PREFIX}<name>")
    return _REGISTRY[name]


def _parse_options(spec: ModelSpec, options: dict[str, Any]) -> BaseModel:
    try:
        return spec.options.model_validate(options)
    except ValidationError as err:
        # One line per problem, joined: config files and Tune logs show it in full.
        problems = [_describe(spec, e) for e in err.errors()]
        raise ModelConfigError("; ".join(problems)) from None


def _describe(spec: ModelSpec, error: Any) -> str:
    """Turn one pydantic error dict (type, loc, msg, input) into a one-line sentence."""
    option = ".".join(str(part) for part in error["loc"]) or "<options>"
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(spec.options.model_fields))
        return f"model {spec.name!r} has no option {option!r}; its options are: {allowed}"
    field = spec.options.model_fields.get(option)
    choices = typing.get_args(field.annotation) if field is not None else ()
    if error["type"] == "literal_error" and choices:
        allowed = ", ".join(repr(c) for c in choices)
        requirement = f"must be one of {allowed}"
    else:
        # pydantic says "Input should be greater than 0"; read as "option 'width': must be ..."
        requirement = " ".join(error["msg"].split()).replace("Input should be", "must be", 1)
    return f"model {spec.name!r} option {option!r}: {requirement} (got {error['input']!r})"


def _validate_timm(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """timm options pass through unchecked, except that pretrained weights are refused."""
    arch = name.removeprefix(TIMM_PREFIX)
    if options.get("pretrained"):
        raise ModelConfigError(
            f"model {name!r}: pretrained=True is not supported; these machines have no internet "
            "access, so timm models are always built with random weights"
        )
    import timm  # here, not at the top: it costs every Ray worker 1.7 s (it imports torchvision)

    if not timm.is_model(arch):
        raise ModelConfigError(
            f"unknown timm model {arch!r} (from {name!r}); see timm.list_models() for names"
        )
    return {k: v for k, v in options.items() if k != "pretrained"}


def _create_timm(name: str, *, num_classes: int, in_chans: int, **options: Any) -> nn.Module:
    opts = _validate_timm(name, options)
    arch = name.removeprefix(TIMM_PREFIX)
    import timm

    try:
        return timm.create_model(
            arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **opts
        )
    except TypeError as err:  # an option the timm architecture does not accept
        raise ModelConfigError(f"model {name!r} rejected options {sorted(opts)}: {err}") from err
