"""A sweep before Ray: the validated space, every variant's config, and where results go.

Experiment layout: `<storage>/<name>/` holds Tune's state (what `--resume` restores),
`sweep.json` (the plan: space, fidelity, every variant's config) and `runs/<variant>-s<seed>-
<trial id>/` (each trial's checkpoints, metrics.jsonl, test_report.json, run.json).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepnets.config import TrainConfig, set_dotted, validate_train_config
from deepnets.errors import ConfigError
from deepnets.runlog import PLAN_FILE, write_json_atomically
from deepnets.spaces import SpaceFile, load_space, pick_fidelity, validate_variants
from deepnets.storage import Location, check_location
from deepnets.trial_order import longest_first


@dataclass
class SweepPlan:
    space: SpaceFile
    space_path: Path
    fidelity: str | None
    configs: dict[str, dict[str, Any]]  # variant id -> TrainConfig dict (seed not yet set)
    experiment_dir: Location

    @property
    def name(self) -> str:
        return self.experiment_dir.name

    @property
    def runs_dir(self) -> Location:
        return self.experiment_dir / "runs"

    @property
    def resources(self):
        profile = self.space.fidelity.get(self.fidelity) if self.fidelity else None
        return (profile and profile.resources) or self.space.resources

    @property
    def scheduler(self):
        profile = self.space.fidelity.get(self.fidelity) if self.fidelity else None
        return (profile and profile.scheduler) or self.space.scheduler

    @property
    def num_samples(self) -> int:
        profile = self.space.fidelity.get(self.fidelity) if self.fidelity else None
        return (profile and profile.num_samples) or self.space.num_samples

    @property
    def max_epochs(self) -> int:
        return max(int(cfg["epochs"]) for cfg in self.configs.values())

    def trial_count(self) -> int:
        grid = math.prod(len(d.grid) for d in self.space.search.values() if d.grid is not None)
        return len(self.configs) * len(self.space.seeds) * grid * self.num_samples


def check_storage(storage: str) -> Location:
    """A local / shared-filesystem path, or a URI with a scheme pyarrow (and Ray) can open."""
    return Location(check_location(storage, "--storage"))


def plan_sweep(space_path: Path, *, fidelity: str | None, storage: str, name: str | None):
    """Validate the space and every trial's config; no Ray, nothing written."""
    space = load_space(space_path)
    fidelity_name, profile = pick_fidelity(space, fidelity, str(space_path))
    source = f"{space_path}" + (f" [{fidelity_name}]" if fidelity_name else "")
    configs = validate_variants(space, profile, source)
    default_name = space.name + (f"-{fidelity_name}" if fidelity_name else "")
    experiment_dir = check_storage(storage) / (name or default_name)
    return SweepPlan(space, space_path, fidelity_name, configs, experiment_dir)


def trial_config(plan_configs: dict, variant: str, seed: int, search: dict, runs_dir: str) -> dict:
    """The TrainConfig dict of one trial: its variant's config, seed and sampled values."""
    tree = copy.deepcopy(plan_configs[variant])
    for key, value in search.items():
        set_dotted(tree, key, value)
    tree |= {"seed": seed, "output_dir": str(runs_dir)}
    return tree


def trial_rows(plan: SweepPlan) -> list[dict[str, Any]]:
    """What --dry-run prints: one row per (variant, seed) with the settings that matter, in the
    order Tune starts them (under FIFO the longest first)."""
    rows = []
    for variant in longest_first(plan.configs, plan.scheduler.type):
        cfg = validate_train_config(plan.configs[variant], variant)
        for seed in plan.space.seeds:
            rows.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "model": cfg.model.name,
                    "options": ",".join(f"{k}={v}" for k, v in sorted(cfg.model.options.items())),
                    "dataset": cfg.data.dataset,
                    "train": cfg.data.train_subset or "all",
                    "optim": f"{cfg.optim.name} lr={cfg.optim.lr:g}"
                    + (f" m={cfg.optim.momentum:g}" if cfg.optim.momentum else ""),
                    "epochs": cfg.epochs,
                    "batch": cfg.global_batch_size,
                    "augment": cfg.data.augment,
                    "workers": cfg.num_workers,
                }
            )
    return rows


def write_plan(plan: SweepPlan) -> None:
    write_json_atomically(
        plan.experiment_dir / PLAN_FILE,
        {
            "name": plan.name,
            "space": plan.space.model_dump(mode="json"),
            "space_path": str(plan.space_path),
            "fidelity": plan.fidelity,
            "configs": plan.configs,
            "seeds": plan.space.seeds,
        },
    )


def resolve_paths(plan: SweepPlan) -> None:
    """Absolute data roots in every config: trial workers do not run in this directory."""
    from deepnets.config import DataConfig
    from deepnets.data.prepare import absolute_dataset, data_root

    for tree in plan.configs.values():
        data = tree.setdefault("data", {})
        data["root"] = str(data_root(DataConfig.model_validate(data)))
        data["dataset"] = absolute_dataset(data.get("dataset", DataConfig().dataset))


def preflight(plan: SweepPlan) -> None:
    """Read every distinct dataset once (fills the tensor cache) and check the storage."""
    from deepnets.config import DataConfig
    from deepnets.data import load_datasets
    from deepnets.launch import check_local_gpus, check_model_fits_data

    shapes: dict[str, tuple[int, int]] = {}  # data config -> (channels, classes)
    for variant, tree in plan.configs.items():
        data = DataConfig.model_validate(tree.get("data", {}))
        key = data.model_dump_json()
        if key not in shapes:
            loaded = load_datasets(data, seed=0)
            shapes[key] = loaded.in_chans, loaded.num_classes
        try:
            check_model_fits_data(TrainConfig.model_validate(tree), *shapes[key])
        except ConfigError as err:
            raise ConfigError(f"{plan.space_path}: variant {variant}: {err}") from None
    res = plan.resources
    need = res.workers_per_trial * res.gpus_per_worker
    check_local_gpus(
        need, "resources.gpus_per_worker", "use a CPU fidelity (e.g. --fidelity proxy)"
    )
    plan.experiment_dir.check_writable("--storage")  # last: it creates the folder
