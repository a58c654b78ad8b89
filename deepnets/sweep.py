"""Run a planned sweep on Ray Tune: every trial is a function trainable driving a TorchTrainer.

Ray 2.60 composition (Train V2): Tune runs `run_trial`, which builds a TorchTrainer and calls
`fit()`; `TuneReportCallback` forwards each epoch's report to Tune, so ASHA can stop a trial
between epochs. The trial's own process only waits on `fit()`, so it reserves a sliver of a
CPU; the Train workers hold the real resources, and the number of concurrent trials is sized
from the cluster's resources and the space's per-trial needs.
"""

from __future__ import annotations

import math
import re
import signal
import threading
from typing import Any

import ray
from ray import tune

from deepnets.config import MODELS_CHECKED, TrainConfig
from deepnets.errors import ConfigError, SweepInterrupted
from deepnets.launch import TRIAL_PLACES_RESOURCE, ensure_ray, fit_and_record
from deepnets.pg_janitor import start_janitor, stop_janitor
from deepnets.results.collect import decide_status
from deepnets.runlog import (
    RESULTS_FILE,
    RUN_FILE,
    TEST_REPORT_FILE,
    read_history,
    read_json,
    val_accuracies,
    write_json_atomically,
)
from deepnets.storage import Location
from deepnets.sweep_plan import SweepPlan, trial_config, write_plan
from deepnets.trial_order import longest_first
from deepnets.trial_watch import TrialWatch, forget_trials, unfinished_trials

# The trial's own process only waits on fit(): it holds no CPU (a placement-group bundle cannot
# be empty, so it asks for 1 MiB of memory instead). With even 0.01 CPU, two 1-CPU trials on a
# 2-CPU machine could not both place their workers.
TRIAL_DRIVER_RESOURCES = {"cpu": 0, "memory": 2**20}


def run_trial(
    config: dict[str, Any], *, configs: dict, runs_dir: str, meta: dict, janitor=None
) -> None:
    """One Tune trial: the variant's TrainConfig with this trial's seed and sampled values."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from deepnets.lean_trainer import WatchedByJanitor

    trial_id = tune.get_context().get_trial_id()
    variant, seed, search = config["variant"], config["seed"], config.get("search", {})
    tree = trial_config(configs, variant, seed, search, runs_dir)
    tree["name"] = run_name(variant, seed, trial_id)
    # The driver validated every variant (and its search's corners) in full: here the model
    # registry's check is skipped, as it would import torch into this process.
    cfg = TrainConfig.model_validate(tree, context={MODELS_CHECKED: True})
    if report_finished_run(cfg):
        return
    trial = meta | {"variant": variant, "seed": seed, "trial_id": trial_id, "search": search}
    callbacks = [TuneReportCallback()]
    if janitor is not None:
        callbacks.append(WatchedByJanitor(janitor))
    fit_and_record(cfg, extra={"trial": trial}, callbacks=callbacks)


def report_finished_run(cfg: TrainConfig) -> bool:
    """A trial whose run already finished is not trained again: Tune saves its own state every
    few seconds, so a driver killed just after a trial ended resumes it as unfinished."""
    last = final_epoch(read_json(cfg.run_dir / RUN_FILE), read_history(cfg.run_dir), cfg.epochs)
    if last is None:
        return False
    tune.report(last)  # the final epoch's numbers, so Tune ranks the trial as before
    return True


def final_epoch(record: dict, history: list[dict], epochs: int) -> dict | None:
    """The last epoch's row of a run that is done: its fit() returned, and it trained all its
    epochs or stopped because its weights were no longer finite. None for any other run."""
    if not fit_returned(record) or not history:
        return None
    last = history[-1]
    return last if last["epoch"] == epochs or last.get("weights_finite") is False else None


def fit_returned(record: dict) -> bool:
    """Whether a run.json says its fit() returned without error: "finished" as the trial wrote
    it, or the sweep driver's verdict on it ("ok", "diverged at epoch k", ...)."""
    status = record.get("status") or "running"
    return status != "running" and not status.startswith("failed")


def concurrency(plan: SweepPlan, requested: int | None) -> int:
    """How many trials run at once: as many as fit, capped by --max-concurrent."""
    fits = places(plan)
    return min(fits, requested) if requested else fits


def places(plan: SweepPlan) -> int:
    """How many of the plan's trials fit on the cluster at once."""
    res, cluster = plan.resources, ray.cluster_resources()
    per_trial_cpu = res.workers_per_trial * res.cpus_per_worker
    fits = math.floor(cluster.get("CPU", 0.0) / per_trial_cpu)
    if res.gpus_per_worker > 0:
        have = cluster.get("GPU", 0.0)
        if have < res.gpus_per_worker:
            raise ConfigError(
                f"resources.gpus_per_worker: {res.gpus_per_worker:g} GPUs per worker asked for, "
                f"the cluster has {have:g}"
            )
        fits = min(fits, math.floor(have / (res.workers_per_trial * res.gpus_per_worker)))
    if fits < 1:
        raise ConfigError(
            f"resources: a trial needs {per_trial_cpu:g} CPUs "
            f"({res.workers_per_trial} workers x {res.cpus_per_worker:g}), the cluster has "
            f"{cluster.get('CPU', 0.0):g}"
        )
    return fits


def trial_driver_resources(plan: SweepPlan) -> dict[str, float]:
    """What a trial's own process asks for: next to nothing, plus the trial's share of the
    cluster's trial places where the cluster declares them (launch.TRIAL_PLACES_RESOURCE)."""
    declared = ray.cluster_resources().get(TRIAL_PLACES_RESOURCE, 0.0)
    if declared != 1.0:  # none; or not one budget (e.g. declared on every node): not used
        if declared:
            print(f"deepnets: {TRIAL_PLACES_RESOURCE} totals {declared:g}, not 1: not used")
        return TRIAL_DRIVER_RESOURCES
    share = math.floor(10_000 / places(plan)) / 10_000  # Ray counts them in steps of 1e-4
    return TRIAL_DRIVER_RESOURCES | {TRIAL_PLACES_RESOURCE: share}


def _scheduler(plan: SweepPlan):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    spec = plan.scheduler
    if spec.type == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="epoch",
        max_t=plan.max_epochs,
        grace_period=min(spec.grace_period, plan.max_epochs),
        reduction_factor=spec.reduction_factor,
    )


def run_name(variant: str, seed: int, trial_id: str) -> str:
    """A trial's run folder under runs/ (and Tune's own trial folder)."""
    return f"{variant}-s{seed}-{trial_id}"


def _trial_dirname(trial) -> str:
    return run_name(trial.config["variant"], trial.config["seed"], trial.trial_id)


def _trial_id(result) -> str:
    """Tune's id of the trial behind `result`. From its metrics when it reported any; else
    from its folder, which a restored trial may have renamed (Tune appends a suffix)."""
    if (result.metrics or {}).get("trial_id"):
        return result.metrics["trial_id"]
    folder = str(result.path).rstrip("/").rsplit("/", 1)[-1]
    found = re.search(r"[0-9a-f]{5}_\d{5}", folder)
    return found.group(0) if found else folder


def build_tuner(
    plan: SweepPlan, *, resume: bool, max_concurrent: int | None, janitor=None
) -> tune.Tuner:
    space = plan.space
    meta = {"sweep": plan.name, "space": space.name, "fidelity": plan.fidelity}
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            configs=plan.configs,
            runs_dir=str(plan.runs_dir),
            meta=meta,
            janitor=janitor,
        ),
        trial_driver_resources(plan),
    )
    if resume:
        # Finished trials keep their results; unfinished and errored ones run again (their
        # TorchTrainer finds its own checkpoint and continues from it).
        return tune.Tuner.restore(
            str(plan.experiment_dir), trainable, resume_unfinished=True, resume_errored=True
        )
    param_space: dict[str, Any] = {
        "variant": tune.grid_search(longest_first(plan.configs, plan.scheduler.type)),
        "seed": tune.grid_search(space.seeds),
    }
    if space.search:
        param_space["search"] = {key: d.to_tune() for key, d in space.search.items()}
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=space.metric,
            mode=space.mode,
            scheduler=_scheduler(plan),
            num_samples=plan.num_samples,
            max_concurrent_trials=concurrency(plan, max_concurrent),
            trial_dirname_creator=_trial_dirname,
            # A reused actor may still be inside the previous trial's fit() when Tune hands it
            # the next trial; Tune then kills it and blames a trial that had finished fine.
            reuse_actors=False,
        ),
        run_config=tune.RunConfig(
            name=plan.name,
            storage_path=str(plan.experiment_dir.parent),
            failure_config=tune.FailureConfig(max_failures=space.max_trial_failures),
            callbacks=[TrialWatch(str(plan.experiment_dir))],
        ),
    )


def check_resume_state(plan: SweepPlan, resume: bool) -> None:
    exists = tune.Tuner.can_restore(str(plan.experiment_dir))
    if resume and not exists:
        raise ConfigError(f"--resume: no sweep to resume at {plan.experiment_dir}")
    if not resume and exists:
        raise ConfigError(
            f"--name: a sweep already exists at {plan.experiment_dir}; "
            "continue it with --resume or choose another --name"
        )


def trial_row(plan: SweepPlan, result) -> dict[str, Any]:
    """One line of the final table, from Tune's result and the trial's own run files."""
    variant, seed = result.config["variant"], result.config["seed"]
    run_dir = plan.runs_dir / run_name(variant, seed, _trial_id(result))
    history = read_history(run_dir)
    vals = val_accuracies(history)
    epochs, target = (history[-1]["epoch"] if history else 0), plan.configs[variant]["epochs"]
    if result.error:
        verdict = "failed: " + str(result.error).strip().splitlines()[-1][:120]
    else:
        verdict = "stopped early" if epochs < target else "ok"
    classes = len(read_json(run_dir / TEST_REPORT_FILE).get("per_class", {}).get("class_names", []))
    status = decide_status(verdict, read_json(run_dir / RUN_FILE), history, target, classes or 10)
    wall = (result.metrics or {}).get("time_total_s")
    finish_run_record(run_dir, status, wall)
    return {
        "variant": variant,
        "seed": seed,
        "status": status,
        # The star says "ASHA stopped it"; a run that diverged says so in its status instead.
        "epochs": f"{epochs}/{target}" + ("*" if status == "stopped early" else ""),
        "best_val_accuracy": max(vals) if vals else None,
        "final_val_accuracy": vals[-1] if vals else None,
        "test_accuracy": history[-1].get("test_accuracy") if history else None,
        "test_miou": history[-1].get("test_miou") if history else None,  # segmentation
        "wall_seconds": wall,
        "run_dir": str(run_dir),
    }


def finish_run_record(run_dir: Location, status: str, wall: float | None) -> None:
    """Tune stops a trial at ASHA's decision or at max_t without letting fit() return, so the
    trial's run.json still says "running": the driver records the outcome instead."""
    record = read_json(run_dir / RUN_FILE)
    if record:
        write_json_atomically(run_dir / RUN_FILE, record | {"status": status, "wall_seconds": wall})


def check_finished(plan: SweepPlan, grid) -> None:
    """Tune returns normally after Ctrl-C with trials still running: writing the final table
    then would record them as "stopped early" and mark the sweep finished."""
    watched = unfinished_trials(str(plan.experiment_dir))
    if watched is None:  # an experiment saved before the watch existed: Tune's own count
        unfinished = len(grid) - grid.num_terminated - grid.num_errors
    else:
        unfinished = len(watched)
        if watched:
            mark_cut_runs(plan.runs_dir, watched)
    if unfinished:
        raise SweepInterrupted(
            f"sweep interrupted with {unfinished} of {len(grid)} trials unfinished; its state "
            f"is saved in {plan.experiment_dir}: continue it with --resume"
        )


CUT_BY = ("ActorDiedError", "KeyboardInterrupt")  # what an interrupt leaves in run.json


def mark_cut_runs(runs_dir: Location, trial_ids: list[str]) -> None:
    """Ctrl-C reaches the Train workers too (the whole process group), and a worker that dies
    before its trial is stopped makes the trial record "failed: ActorDiedError". Such a run was
    cut, not broken: it says "running" again, as the other cut runs do (the report shows it as
    cut), keeping what it had recorded. Other failures (one waiting for its retry) stay as
    they are. --resume retries both."""
    cut = set(trial_ids)
    for run_dir in runs_dir.children():
        if run_dir.name.rsplit("-", 1)[-1] not in cut:  # <variant>-s<seed>-<trial id>
            continue
        record = read_json(run_dir / RUN_FILE)
        if record.get("status") == "failed" and str(record.get("error")).startswith(CUT_BY):
            note = {"status": "running", "error": None, "cut_with": record.get("error")}
            write_json_atomically(run_dir / RUN_FILE, record | note)


def run_sweep(plan: SweepPlan, *, resume: bool = False, max_concurrent: int | None = None):
    """Run (or resume) the sweep; returns the final table's rows, also saved as JSON."""
    check_resume_state(plan, resume)  # before Ray starts: a wrong --name costs nothing
    res = plan.resources
    ensure_ray(need_gpus=res.workers_per_trial * res.gpus_per_worker)
    concurrency(plan, max_concurrent)  # fail now, not inside Tune, if a trial cannot fit
    write_plan(plan)
    forget_trials(str(plan.experiment_dir))
    janitor = start_janitor()
    tuner = build_tuner(plan, resume=resume, max_concurrent=max_concurrent, janitor=janitor)
    ctrl_c = signal.getsignal(signal.SIGINT)
    try:
        grid = tuner.fit()
    except BaseException:
        stop_janitor(janitor, drain_s=0)  # the driver is going: its job's groups go with it
        raise
    finally:  # Tune leaves its own handler behind, which would ignore a later Ctrl-C or SIGTERM
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, ctrl_c)
    stop_janitor(janitor)
    check_finished(plan, grid)
    rows = sorted((trial_row(plan, r) for r in grid), key=lambda r: (r["variant"], r["seed"]))
    write_json_atomically(plan.experiment_dir / RESULTS_FILE, rows)
    return rows
