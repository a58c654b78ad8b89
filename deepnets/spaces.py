"""Search-space files (`tune_spaces/*.yaml`): schema, loading, and expansion into trial configs.

A space is a `base` training-config fragment plus `variants` (the report's one-factor-at-a-time
rows: an id and dotted overrides) and/or `search` (per-parameter domains), repeated over `seeds`.
A `fidelity` profile (e.g. `proxy` for a 2-core CPU, `full` for the report's settings) adds its
own overrides, resources and epoch scaling. Everything is validated here, before Ray starts:
every variant becomes a full TrainConfig, and every combination of the search domains' extreme
values is tried (two searched keys may be valid alone and not together).
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from deepnets.config import (
    Strict,
    TrainConfig,
    read_yaml_mapping,
    set_dotted,
    validate_train_config,
)
from deepnets.errors import ConfigError, format_validation_error

ID_PATTERN = r"^[A-Za-z0-9._-]+$"
# val_miou / val_mean_dice: segmentation only (val_accuracy is its pixel accuracy).
METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss", "val_miou", "val_mean_dice")


class Domain(Strict):
    """Exactly one of: grid / choice (lists), uniform / loguniform / randint ([low, high])."""

    grid: list[Any] | None = Field(default=None, min_length=1)
    choice: list[Any] | None = Field(default=None, min_length=1)
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Domain:
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(type(self).model_fields)}")
        bounds = self.uniform or self.loguniform or self.randint
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"[low, high] needs low < high (got {list(bounds)})")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform needs low > 0")
        return self

    def extremes(self) -> list[Any]:
        """Values that together exercise the domain's validity (all listed values, or bounds)."""
        if self.grid is not None or self.choice is not None:
            return list(self.grid or self.choice)
        if self.randint is not None:
            return [self.randint[0], self.randint[1] - 1]
        return list(self.uniform or self.loguniform)

    def to_tune(self):
        from ray import tune

        if self.grid is not None:
            return tune.grid_search(self.grid)
        if self.choice is not None:
            return tune.choice(self.choice)
        if self.uniform is not None:
            return tune.uniform(*self.uniform)
        if self.loguniform is not None:
            return tune.loguniform(*self.loguniform)
        return tune.randint(*self.randint)


class Variant(Strict):
    id: str = Field(pattern=ID_PATTERN)
    overrides: dict[str, Any] = Field(default_factory=dict)  # dotted keys: {optim.lr: 0.01}


class AshaScheduler(Strict):
    """Asynchronous successive halving over epochs: trials reaching rung epochs
    grace_period * reduction_factor^k continue only if in the top 1/reduction_factor."""

    type: Literal["asha"]
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2)


class FifoScheduler(Strict):
    type: Literal["fifo"]


Scheduler = Annotated[AshaScheduler | FifoScheduler, Field(discriminator="type")]


class Resources(Strict):
    """What each trial needs: `workers_per_trial` Ray Train workers of this size."""

    workers_per_trial: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    # 0: CPU training; a fraction (0.25) lets several trials share one GPU.
    gpus_per_worker: float = Field(default=0.0, ge=0)


class Fidelity(Strict):
    description: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)
    # Multiplies every trial's epochs (rounded, at least 1): 10 and 20 epochs at 0.2 -> 2 and 4.
    epochs_scale: float = Field(default=1.0, gt=0, le=1)
    resources: Resources | None = None
    scheduler: Scheduler | None = None
    num_samples: int | None = Field(default=None, ge=1)  # replaces the space's num_samples


class ReportTable(Strict):
    dataset: str
    family: str


class SpaceFile(Strict):
    name: str = Field(pattern=ID_PATTERN)
    description: str = ""
    report_table: ReportTable | None = None  # the seed report's table these variants reproduce
    base: dict[str, Any] = Field(default_factory=dict)
    variants: list[Variant] = Field(default_factory=list)
    search: dict[str, Domain] = Field(default_factory=dict)
    num_samples: int = Field(default=1, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    scheduler: Scheduler = Field(default_factory=lambda: AshaScheduler(type="asha"))
    metric: Literal[METRICS] = "val_accuracy"  # type: ignore[valid-type]
    mode: Literal["max", "min"] = "max"
    resources: Resources = Field(default_factory=Resources)
    max_trial_failures: int = Field(default=1, ge=0)  # Tune-level retries of a whole trial
    fidelity: dict[str, Fidelity] = Field(default_factory=dict)
    default_fidelity: str | None = None

    @field_validator("variants")
    @classmethod
    def _ids_unique(cls, variants: list[Variant]) -> list[Variant]:
        seen: set[str] = set()
        for variant in variants:
            if variant.id in seen:
                raise ValueError(f"variant id '{variant.id}' appears more than once")
            seen.add(variant.id)
        return variants

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        return seeds

    @model_validator(mode="after")
    def _default_fidelity_exists(self) -> SpaceFile:
        if self.default_fidelity is not None and self.default_fidelity not in self.fidelity:
            raise ValueError(
                f"default_fidelity '{self.default_fidelity}' is not one of the profiles: "
                f"{', '.join(self.fidelity) or '(none defined)'}"
            )
        return self


def load_space(path: Path) -> SpaceFile:
    """Read and validate a space file; any problem is a one-line ConfigError naming the file."""
    raw = read_yaml_mapping(path)
    try:
        return SpaceFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path), SpaceFile)) from None


def _apply(tree: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        set_dotted(tree, key, copy.deepcopy(value))
    return tree


def pick_fidelity(space: SpaceFile, name: str | None, source: str) -> tuple[str | None, Fidelity]:
    """The named profile, else the space's default, else none (the space's own settings)."""
    name = name or space.default_fidelity
    if name is None:
        return None, Fidelity()
    if name not in space.fidelity:
        known = ", ".join(space.fidelity) or "(none defined)"
        raise ConfigError(f"{source}: fidelity '{name}' is not defined; known: {known}")
    return name, space.fidelity[name]


def variant_config(space: SpaceFile, fidelity: Fidelity, overrides: dict[str, Any]) -> dict:
    """base <- fidelity overrides <- variant overrides <- resources, epochs scaled; a plain dict."""
    tree = _apply(_apply(copy.deepcopy(space.base), fidelity.overrides), overrides)
    res = fidelity.resources or space.resources
    tree |= {
        "num_workers": res.workers_per_trial,
        "cpus_per_worker": res.cpus_per_worker,
        "use_gpu": res.gpus_per_worker > 0,
    }
    if res.gpus_per_worker > 0:
        tree["gpus_per_worker"] = res.gpus_per_worker
    epochs = tree.get("epochs", TrainConfig.model_fields["epochs"].default)
    if isinstance(epochs, int):
        tree["epochs"] = max(1, round(epochs * fidelity.epochs_scale))
    return tree


def validate_variants(space: SpaceFile, fidelity: Fidelity, source: str) -> dict[str, dict]:
    """{variant id: validated config dict}; a space with no variants has one, `base`."""
    variants = space.variants or [Variant(id="base")]
    configs = {}
    for variant in variants:
        tree = variant_config(space, fidelity, variant.overrides)
        cfg = validate_train_config(tree, f"{source} variant {variant.id}")
        if space.metric.startswith("val_") and cfg.data.val_fraction == 0:
            raise ConfigError(
                f"{source} variant {variant.id}: metric {space.metric} needs a validation "
                "split, but data.val_fraction is 0"
            )
        if space.metric in ("val_miou", "val_mean_dice") and cfg.task != "segmentation":
            raise ConfigError(
                f"{source} variant {variant.id}: metric {space.metric} is a segmentation "
                "metric, but the variant's task is classification"
            )
        for combination in search_corners(space.search):
            trial = _apply(copy.deepcopy(tree), combination)
            where = ", ".join(f"search.{key}={value!r}" for key, value in combination.items())
            validate_train_config(trial, f"{source} {where}")
        configs[variant.id] = tree
    return configs


MAX_CORNERS = 4096  # combinations validated per variant (~0.1 ms each)


def search_corners(search: dict[str, Domain]) -> list[dict[str, Any]]:
    """Every combination of the domains' extreme values; where there are more than MAX_CORNERS,
    each domain's extremes on their own (the other keys as the variant has them)."""
    extremes = {key: domain.extremes() for key, domain in search.items()}
    if math.prod(len(values) for values in extremes.values()) > MAX_CORNERS:
        return [{key: value} for key, values in extremes.items() for value in values]
    corners = itertools.product(*extremes.values())
    return [dict(zip(extremes, values, strict=True)) for values in corners]
