"""Run one training: check the input, start (or join) Ray, fit a TorchTrainer, summarise.

Everything that can be wrong with the input is checked here, in the driver, before Ray starts:
the config (already typed), the dataset (read and cached now, so workers load it in a second),
and the hardware asked for.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from deepnets import provenance
from deepnets.config import TrainConfig
from deepnets.errors import ConfigError, DataError
from deepnets.interrupts import sigterm_as_ctrl_c
from deepnets.runlog import (
    RUN_FILE,
    process_start_time,
    read_history,
    val_accuracies,
    write_json_atomically,
)
from deepnets.storage import Location

# A budget of 1.0 that sweeps running at once on one cluster share. Each trial's process takes
# its sweep's share of it (1 / the trials that fit the cluster when the sweep starts), so
# together they start no more trial processes than the cluster has places for their workers;
# the rest wait in Tune as PENDING, holding no process. The Ray that deepnets starts declares
# it; the head of a fixed-size cluster can too (`ray start --head --resources=
# '{"deepnets_trial_places": 1}'`, the head only). Not on a cluster that autoscales: trials kept
# waiting would never ask for the nodes that would make room for them.
TRIAL_PLACES_RESOURCE = "deepnets_trial_places"


@dataclass
class RunSummary:
    run_dir: Location
    epochs_done: int
    test_accuracy: float | None
    best_val_accuracy: float | None
    wall_seconds: float
    error: str | None = None
    test_miou: float | None = None  # segmentation only


def resolved(cfg: TrainConfig) -> TrainConfig:
    """Absolute paths: Ray workers do not share the driver's working directory."""
    from deepnets.data.prepare import absolute_dataset, data_root

    data = cfg.data.model_copy(
        update={"root": data_root(cfg.data), "dataset": absolute_dataset(cfg.data.dataset)}
    )
    return cfg.model_copy(update={"output_dir": str(Location(cfg.output_dir)), "data": data})


def preflight(cfg: TrainConfig) -> None:
    """Fail in seconds, with one line, on input that would otherwise fail on the cluster."""
    from deepnets.data.prepare import load_datasets

    data = load_datasets(cfg.data, cfg.seed)  # raises DataError; fills the tensor cache
    check_model_fits_data(cfg, data.in_chans, data.num_classes)
    if len(data.train) < cfg.num_workers:
        raise DataError(
            f"data.train_subset: {len(data.train)} training images cannot feed "
            f"{cfg.num_workers} workers"
        )
    check_local_gpus(cfg.num_workers * cfg.gpus_per_worker if cfg.use_gpu else 0.0, "use_gpu")
    cfg.run_dir.check_writable("output_dir")  # last: it creates the folder


def check_local_gpus(need: float, field: str, fix: str = "drop --gpu / use_gpu") -> None:
    """Without RAY_ADDRESS the cluster is this machine: count its GPUs before starting Ray.
    (On a cluster, GPUs may live on other nodes; ensure_ray checks them once connected.)"""
    if need <= 0 or os.environ.get("RAY_ADDRESS"):
        return
    import torch

    have = torch.cuda.device_count()
    if have < need:
        raise ConfigError(
            f"{field}: the run needs {need:g} GPUs and this machine has {have}; "
            f"{fix}, or submit to a cluster with GPUs (RAY_ADDRESS)"
        )


def check_model_fits_data(cfg: TrainConfig, data_channels: int, num_classes: int) -> None:
    from deepnets.models import ModelConfigError, check_in_chans

    try:
        check_in_chans(cfg.model.name, cfg.model.options, data_channels, cfg.data.dataset)
    except ModelConfigError as err:
        raise ConfigError(str(err)) from None
    if cfg.model.options.get("weights"):
        check_weights(cfg, num_classes, data_channels)


def check_weights(cfg: TrainConfig, num_classes: int, data_channels: int) -> None:
    """Pretrained weights are read by every worker: check the file fits the model now."""
    from deepnets.models import ModelConfigError
    from deepnets.models.fcn import check_weights_file

    weights = Path(cfg.model.options["weights"]).expanduser()
    if not weights.is_file():
        raise ConfigError(
            f"model.options.weights: no file {weights} (a local ImageNet VGG16 state dict in "
            "torchvision's layout, e.g. vgg16-397923af.pth; nothing is downloaded)"
        )
    try:
        check_weights_file(
            cfg.model.name, cfg.model.options, num_classes=num_classes, in_chans=data_channels
        )
    except ModelConfigError as err:
        detail = str(err).replace("model option 'weights': ", "")
        raise ConfigError(f"model.options.weights: {detail}") from None


def ensure_ray(*, need_gpus: float = 0.0) -> None:
    """Join the cluster in RAY_ADDRESS (how `ray job submit` runs us) or start a local one."""
    import ray

    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"])
        else:
            # Nothing preempts a cluster that lives in this process's machine: skip Train's
            # per-run preemption watcher (one more Ray process per trial, ~1 s of CPU each).
            os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
            # The dashboard also serves the state API that Ray Train's placement-group cleaner
            # polls; it costs ~2 s here. Bound to loopback: nothing outside this host sees it.
            ray.init(
                include_dashboard=dashboard_installed(),
                dashboard_host="127.0.0.1",
                resources={TRIAL_PLACES_RESOURCE: 1.0},
            )
        # Ray's driver answers SIGTERM with a stack dump and exit, and SIGTERM is what `ray job
        # stop`, Kubernetes and Slurm send: make it stop us as Ctrl-C does (a sweep saves).
        sigterm_as_ctrl_c()
    have = ray.cluster_resources().get("GPU", 0.0)
    if need_gpus and have < need_gpus:
        raise ConfigError(f"use_gpu: the run needs {need_gpus:g} GPUs, the cluster has {have:g}")


def dashboard_installed() -> bool:
    """Whether ray[default]'s dashboard packages import; a bare `pip install ray` lacks them,
    and asking Ray for a dashboard then fails the whole start instead of running without."""
    try:
        import ray.dashboard.optional_deps  # noqa: F401
    except ImportError as err:
        print(f"Ray dashboard off: {err} (install ray[default] to have it)", flush=True)
        return False
    return True


def largest_node_cpus() -> float:
    import ray

    return max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["Alive"]), default=1.0)


def with_cpu_share(cfg: TrainConfig) -> TrainConfig:
    """Fill an unset cpus_per_worker with an equal share of the largest machine."""
    if cfg.cpus_per_worker is not None:
        return cfg
    share = max(1.0, float(int(largest_node_cpus() // cfg.num_workers)))
    return cfg.model_copy(update={"cpus_per_worker": share})


def build_trainer(cfg: TrainConfig, callbacks=()):
    from ray.train import (
        CheckpointConfig,
        FailureConfig,
        LoggingConfig,
        RunConfig,
        ScalingConfig,
    )

    from deepnets.lean_trainer import trainer_class

    # A worker group may wait for CPUs a finishing run still holds; Train's 60 s default then
    # fails (and retries) good runs on a busy small machine. Propagated to Train's controller.
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "600")
    # The controller polls its workers every 2 s by default, so a finished run waited ~1 s on
    # average before its trial could end; a poll is one cheap actor call (bench/startup.py).
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    resources = {"CPU": cfg.cpus_per_worker}
    if cfg.use_gpu:
        resources["GPU"] = cfg.gpus_per_worker
    return trainer_class()(
        train_in_worker,
        train_loop_config=cfg.model_dump(mode="json"),
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=cfg.run_name,
            storage_path=cfg.output_dir,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoint.keep),
            callbacks=list(callbacks),
            # Ray Train's INFO lines repeat every report's metrics; our progress line says it once.
            logging_config=LoggingConfig(
                log_level=os.environ.get("DEEPNETS_RAY_LOG_LEVEL", "WARNING")
            ),
        ),
    )


def train_in_worker(config: dict) -> None:
    """The Train workers' entry point. deepnets.worker imports torch, so it is imported there:
    Tune's trial process, which builds the trainer, does without (deepnets/torch_backend.py)."""
    from deepnets.worker import train_loop_per_worker

    train_loop_per_worker(config)


def summarise(cfg: TrainConfig, wall: float, error: str | None) -> RunSummary:
    history = read_history(cfg.run_dir)
    vals = val_accuracies(history)
    test = history[-1].get("test_accuracy") if history else None
    epochs = history[-1]["epoch"] if history else 0
    miou = history[-1].get("test_miou") if history else None
    return RunSummary(cfg.run_dir, epochs, test, max(vals) if vals else None, wall, error, miou)


def run_training(cfg: TrainConfig) -> RunSummary:
    """Train `cfg` on Ray Train; re-running the same run directory resumes it."""
    cfg = resolved(cfg)
    preflight(cfg)
    ensure_ray(need_gpus=cfg.num_workers * cfg.gpus_per_worker if cfg.use_gpu else 0.0)
    return fit_and_record(with_cpu_share(cfg))


def fit_and_record(cfg: TrainConfig, *, extra: dict | None = None, callbacks=()) -> RunSummary:
    """Fit a TorchTrainer for `cfg`, keeping run.json (config, provenance, status) up to date."""
    record = {"config": cfg.model_dump(mode="json"), "provenance": provenance.collect()}
    # Unix times, for bench/startup.py: where a run's fixed cost goes.
    record |= (extra or {}) | {
        "process_started_at": process_start_time(),
        "started_at": time.time(),
    }
    write_json_atomically(cfg.run_dir / RUN_FILE, record | {"status": "running"})
    start, error = time.perf_counter(), None
    try:
        build_trainer(cfg, callbacks).fit()  # raises when training fails
    except BaseException as err:  # a TrainingFailedError, or Ctrl-C: record it, then re-raise
        error = (f"{type(err).__name__}: {err}".splitlines() or ["interrupted"])[0]
        raise
    finally:
        wall = time.perf_counter() - start
        status = "failed" if error else "finished"
        write_json_atomically(
            cfg.run_dir / RUN_FILE,
            record
            | {"status": status, "error": error, "wall_seconds": wall, "ended_at": time.time()},
        )
    return summarise(cfg, wall, error)
