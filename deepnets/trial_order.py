"""Which trials start first when every trial runs to its end (FIFO): the longest.

Under FIFO the order cannot change any result, only when the last trial ends. Started last,
a long trial (ResNet101: ~5 ResNet18s) trains on alone at the end while the GPU places it does
not use stand idle; started first, it overlaps with everything else. Under ASHA the space's
own order stays: which trials report first shapes ASHA's decisions.

No torch here: the sweep driver orders its trials without importing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepnets.data.registry import SPECS
from deepnets.spaces import load_space, pick_fidelity, variant_config

# Training time per image relative to resnet18 at the same input size, only for ordering.
# Measured on an H100 (one process, bf16, the step as one CUDA graph, batch 64, 32 px;
# BENCHMARKS.md "Fourth run"): vgg16 0.7, resnet101 4.9 (fp32: 0.7 and 5.1); on an H200
# (eager, channels_last, 32 px): googlenet 2.5. The rest are placed between those by depth,
# unmeasured.
STEP_COST = {
    "vgg11": 0.5,
    "vgg13": 0.6,
    "vgg16": 0.7,
    "vgg19": 0.85,
    "resnet18": 1.0,
    "resnet34": 1.9,
    "resnet50": 2.6,
    "resnet101": 4.9,
    "resnet152": 7.0,
    "googlenet": 2.5,
}


def estimated_cost(config: dict[str, Any]) -> float:
    """A trial's training time in resnet18-epochs of one pixel (unknown models count as
    resnet18; a dataset of unknown image size as one pixel). Read from a space's unvalidated
    tree, where a setting left to its default is absent: it counts the same for every trial."""
    data, model = config.get("data") or {}, config.get("model") or {}
    spec = SPECS.get(data.get("dataset"))
    side = data.get("resolution") or (spec and spec.native_size) or 1
    return (config.get("epochs") or 1) * STEP_COST.get(model.get("name"), 1.0) * side * side


def longest_first(configs: dict[str, dict[str, Any]], scheduler: str) -> list[str]:
    """The variant ids in the order Tune should start them (ties keep the space's order)."""
    if scheduler != "fifo":
        return list(configs)
    return sorted(configs, key=lambda variant: -estimated_cost(configs[variant]))


def space_cost(path: Path, fidelity: str | None) -> float:
    """The total cost of a space file's variants at `fidelity`, read without validating them
    (which would import torch for the model registry's checks)."""
    space = load_space(path)
    _, profile = pick_fidelity(space, fidelity, str(path))
    variants = [variant.overrides for variant in space.variants] or [{}]
    return sum(estimated_cost(variant_config(space, profile, over)) for over in variants)
