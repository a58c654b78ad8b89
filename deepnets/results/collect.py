"""Experiment directories -> tidy run records, one per trial, whatever state the sweep is in.

A record joins what each layer left on storage: the sweep's plan (`sweep.json`), the driver's
final table (`sweep_results.json`, absent while a sweep runs or after it was killed), and each
run's own files (`run.json`, `metrics.jsonl`, `test_report.json`). Status is decided here, once:
`ok`, `stopped early`, `diverged at epoch k`, `failed: <reason>` or `running`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from deepnets.errors import InputError
from deepnets.runlog import (
    PLAN_FILE,
    RESULTS_FILE,
    RUN_FILE,
    TEST_REPORT_FILE,
    read_history,
    read_json,
    val_accuracies,
)
from deepnets.storage import Location

# Accuracy below this multiple of chance (1 / classes) after training counts as "did not learn".
CHANCE_MARGIN = 1.5


@dataclass
class RunRecord:
    experiment: str
    space: str
    table: str | None  # "mnist-vgg" for a report space, None for free search
    fidelity: str | None
    variant: str
    seed: int
    run_dir: str
    status: str
    epochs_run: int
    epochs_target: int
    val_accuracy: float | None  # final epoch
    best_val_accuracy: float | None
    test_accuracy: float | None
    wall_seconds: float | None
    search: dict[str, Any] = field(default_factory=dict)
    task: str = "classification"
    test_miou: float | None = None  # segmentation only, as test_mean_dice
    test_mean_dice: float | None = None
    history: list[dict] = field(default_factory=list, repr=False)
    test_report: dict = field(default_factory=dict, repr=False)
    config: dict = field(default_factory=dict, repr=False)
    provenance: dict = field(default_factory=dict, repr=False)

    @property
    def usable(self) -> bool:
        """Whether its accuracy may be shown as a result (not diverged, failed or running)."""
        return self.status in ("ok", "stopped early") and self.test_accuracy is not None

    @property
    def score(self) -> float:
        """What picks a table's best run: test mean IoU for segmentation, else test accuracy."""
        value = self.test_miou if self.task == "segmentation" else self.test_accuracy
        return value if value is not None else float("-inf")


def finite(value) -> bool:
    """A real, finite number (JSON's null for a diverged loss is not)."""
    return isinstance(value, int | float) and math.isfinite(value)


def diverged_at(history: list[dict], num_classes: int, *, finished: bool = True) -> int | None:
    """First epoch of a run that never recovered: a non-finite loss or weights (such a run stops
    there), or (for a run that trained all its epochs) validation accuracy stuck at chance level
    through the final epoch. A run cut short by ASHA at chance level had not finished learning:
    it is "stopped early"."""
    for row in history:
        if (
            not finite(row.get("train_loss"))
            or row.get("nonfinite_steps")
            or row.get("weights_finite") is False
        ):
            return row["epoch"]
    if not finished:
        return None
    chance = CHANCE_MARGIN / max(num_classes, 2)
    accs = [(r["epoch"], r.get("val_accuracy", r.get("test_accuracy"))) for r in history]
    accs = [(e, a) for e, a in accs if a is not None]
    if not accs or accs[-1][1] >= chance:
        return None
    first = accs[-1][0]
    for epoch, acc in reversed(accs):
        if acc >= chance:
            break
        first = epoch
    return first


def decide_status(driver_status: str | None, run: dict, history, target: int, classes: int) -> str:
    """One status per run, from the sweep driver's verdict and the run's own files.

    Tune's verdict wins where there is one: when Tune stops a trial (ASHA, or its last epoch) the
    trial's `fit()` is cut off and its run.json may say "failed" although nothing went wrong."""
    if driver_status and driver_status.startswith("failed"):
        return driver_status
    if driver_status is None and run.get("status") == "failed":
        return f"failed: {run.get('error') or 'unknown error'}"
    done = history[-1]["epoch"] if history else 0
    epoch = diverged_at(history, classes, finished=done >= target)
    if epoch is not None:
        return f"diverged at epoch {epoch}"
    if done >= target:
        return "ok"
    if driver_status == "stopped early":
        return "stopped early"
    return "running" if driver_status is None else driver_status


def _record(experiment: Location, plan: dict, run_dir: Location, verdicts: dict) -> RunRecord:
    run = read_json(run_dir / RUN_FILE)
    trial = run.get("trial", {})
    config = run.get("config", {})
    history = read_history(run_dir)
    report = read_json(run_dir / TEST_REPORT_FILE)
    space = plan.get("space", {})
    table = space.get("report_table")
    target = int(config.get("epochs", 0))
    classes = len(report.get("per_class", {}).get("class_names", [])) or 10
    status = decide_status(verdicts.get(run_dir.name), run, history, target, classes)
    vals = val_accuracies(history)
    return RunRecord(
        experiment=experiment.name,
        space=space.get("name", experiment.name),
        table=f"{table['dataset']}-{table['family']}" if table else None,
        fidelity=plan.get("fidelity"),
        variant=trial.get("variant", run_dir.name),
        seed=int(trial.get("seed", config.get("seed", 0))),
        run_dir=str(run_dir),
        status=status,
        epochs_run=history[-1]["epoch"] if history else 0,
        epochs_target=target,
        val_accuracy=vals[-1] if vals else None,
        best_val_accuracy=max(vals) if vals else None,
        test_accuracy=report.get("test_accuracy"),
        wall_seconds=run.get("wall_seconds"),
        search=trial.get("search", {}),
        task=config.get("task", "classification"),
        test_miou=report.get("test_miou"),
        test_mean_dice=report.get("test_mean_dice"),
        history=history,
        test_report=report,
        config=config,
        provenance=run.get("provenance", {}),
    )


def collect(experiment_dirs: list[str]) -> tuple[list[RunRecord], list[dict]]:
    """(run records, sweep plans) of one or more experiment directories, in a stable order."""
    records, plans = [], []
    for text in sorted({Location(text).text for text in experiment_dirs}):
        experiment = Location(text)
        plan = read_json(experiment / PLAN_FILE)
        if not plan:
            raise FileNotFoundError(f"{experiment}: no {PLAN_FILE} (not a deepnets sweep)")
        plans.append(plan)
        verdicts = {
            Location(row["run_dir"]).name: row["status"]
            for row in _read_rows(experiment / RESULTS_FILE)
        }
        for run_dir in (experiment / "runs").children():
            if (run_dir / RUN_FILE).exists():
                records.append(_record(experiment, plan, run_dir, verdicts))
    _refuse_repeated_seeds(records)
    records.sort(key=lambda r: (r.table or "", r.space, r.variant, r.seed, r.run_dir))
    return records, plans


def _refuse_repeated_seeds(records: list[RunRecord]) -> None:
    """Pooling two runs of one seed would fake a standard deviation: say which, and stop."""
    seen: dict[tuple, str] = {}
    for r in records:
        key = (r.table or r.space, r.fidelity, r.variant, r.seed, tuple(sorted(r.search.items())))
        pooled = r.table is not None or r.task == "segmentation"  # tables that pool seeds
        if key in seen and pooled:
            raise InputError(
                f"variant {r.variant} seed {r.seed} was run twice ({seen[key]} and {r.run_dir}); "
                "report one of the experiments, or rerun one with other seeds"
            )
        seen[key] = r.run_dir


def _read_rows(location: Location) -> list[dict]:
    import json

    return json.loads(location.read_text()) if location.exists() else []
