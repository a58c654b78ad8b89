"""How busy a sweep (or several at once) kept the machine: each trial's timeline and images/s,
and the training images per second of all trials together, read from the files runs leave.

    python bench/run_rate.py runs/repro-full-mnist_resnet runs/repro-full-cifar10_vgg ...
                             [--total-images 20.7e6]

Per trial: when its Train worker process started, its first training step and its last epoch
report (seconds after the earliest worker start), the epochs it reported and its median
images/s. In all: the images every reported epoch trained (images/s x the epoch's training
seconds) over the span from the first trial's first step to the last trial's last report, so
evaluation, start-up gaps and idle places count against it. Works on interrupted sweeps too.

    python bench/run_rate.py --phases runs/repro-full-mnist_vgg

--phases prints where each trial's time went instead, in seconds, from the marks its files
hold: Tune's trial process start to `run_trial` (that process's imports), to the Train worker
process (controller, placement group, worker start), to deepnets' first import in the worker,
to the training loop (imports), to the model and optimizer being ready (of which building the
model and moving it to its device, and making the optimizer), from the last report
to `fit()` returning; then the first epoch's training seconds (on a GPU: CUDA's first kernels,
and compiling when the run compiles) beside the median of the others', and all epochs'
training; then the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deepnets.runlog import RUN_FILE, TIMELINE_FILE, read_history, read_json  # noqa: E402

TUNE_RESULTS = "result.json"  # one line per report, in Tune's trial folder (named as the run)


def trial_rows(experiment: Path) -> list[dict]:
    """One row per run of `experiment` that reached its first step."""
    rows = []
    for timeline_file in sorted(experiment.glob(f"runs/*/{TIMELINE_FILE}")):
        run_dir = timeline_file.parent
        timeline, history = read_json(timeline_file), read_history(run_dir)
        stamps = report_stamps(experiment, run_dir)
        if not history or not stamps or "first_epoch_started" not in timeline:
            continue
        rows.append({
            "trial": f"{experiment.name}/{run_dir.name}",
            "process": timeline["process_started"],
            "first_step": timeline["first_epoch_started"],
            "last_report": stamps[-1],
            "epochs": len(history),
            "rate": statistics.median(e["images_per_second"] for e in history),
            "images": sum(e["images_per_second"] * e["epoch_seconds"] for e in history),
        })  # fmt: skip
    return rows


PHASES = {  # column -> (from mark, to mark); marks from run.json, timeline.json and reports
    "trial boot": ("trial_process", "run_trial"),
    "to worker": ("run_trial", "process_started"),
    "worker boot": ("process_started", "imports_started"),
    "imports": ("imports_started", "loop_started"),
    "model ready": ("loop_started", "model_ready"),
    "build+copy": ("data_ready", "model_built"),
    "optimizer": ("model_built", "optimizer_ready"),
    "fit end": ("last_report", "fit_returned"),
}


def phase_row(experiment: Path, run_dir: Path) -> dict | None:
    """Seconds per phase of one trial (None where a mark is missing, e.g. a cut trial)."""
    record, timeline = read_json(run_dir / RUN_FILE), read_json(run_dir / TIMELINE_FILE)
    history = read_history(run_dir)
    stamps = report_stamps(experiment, run_dir)
    if not (record and history and stamps and "first_epoch_started" in timeline):
        return None
    marks = timeline | {
        "trial_process": record.get("process_started_at"),
        "run_trial": record.get("started_at"),
        "last_report": stamps[-1],
        "fit_returned": record.get("ended_at"),
    }
    row = {"trial": run_dir.name}
    for column, (start, end) in PHASES.items():
        both = marks.get(start) is not None and marks.get(end) is not None
        row[column] = marks[end] - marks[start] if both else None
    epochs = [e["epoch_seconds"] for e in history]
    row["epoch 1"] = epochs[0]  # training only, as the others: no evaluation
    row["later epochs"] = statistics.median(epochs[1:]) if len(epochs) > 1 else None
    row["training"] = sum(epochs)
    return row


def print_phases(experiments: list[Path]) -> int:
    rows = [
        row
        for experiment in experiments
        for run_dir in sorted(experiment.glob(f"runs/*/{TIMELINE_FILE}"))
        if (row := phase_row(experiment, run_dir.parent)) is not None
    ]
    if not rows:
        print("no trial reached its first report in these folders")
        return 1
    columns = [*PHASES, "epoch 1", "later epochs", "training"]
    print(f"{'trial (seconds)':<40}" + "".join(f"{c:>13}" for c in columns))
    medians = {c: _median([row[c] for row in rows if row[c] is not None]) for c in columns}
    for row in [*rows, {"trial": "median"} | medians]:
        cells = ("-" if row[c] is None else f"{row[c]:.1f}" for c in columns)
        print(f"{row['trial'][:39]:<40}" + "".join(f"{cell:>13}" for cell in cells))
    return 0


def report_stamps(experiment: Path, run_dir: Path) -> list[float]:
    """When Tune received each of the run's reports (unix seconds), from its trial folder."""
    return [
        json.loads(line)["timestamp"] for line in _lines(experiment / run_dir.name / TUNE_RESULTS)
    ]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", type=Path)
    parser.add_argument("--phases", action="store_true", help="where each trial's time went")
    parser.add_argument(
        "--total-images",
        type=float,
        help="also say how long this many training images take at the rate measured (the six "
        "report spaces at full fidelity: 20.7e6)",
    )
    args = parser.parse_args()
    if args.phases:
        return print_phases(args.experiments)
    rows = [row for folder in args.experiments for row in trial_rows(folder)]
    if not rows:
        print("no trial reached its first step in these folders")
        return 1
    t0 = min(row["process"] for row in rows)
    print(f"{'trial':<58}{'worker':>8}{'step 1':>8}{'last':>8}{'epochs':>8}{'img/s':>9}")
    for row in sorted(rows, key=lambda r: r["process"]):
        times = [row[key] - t0 for key in ("process", "first_step", "last_report")]
        print(f"{row['trial']:<58}" + "".join(f"{t:>8.0f}" for t in times), end="")
        print(f"{row['epochs']:>8}{row['rate']:>9.0f}")
    images = sum(row["images"] for row in rows)
    span = max(row["last_report"] for row in rows) - min(row["first_step"] for row in rows)
    print(f"\n{len(rows)} trials trained {images / 1e6:.2f} M images in {span:.0f} s: ", end="")
    print(f"{images / span:,.0f} images/s together (first step to last report)")
    if args.total_images:
        minutes = args.total_images / (images / span) / 60
        print(f"{args.total_images / 1e6:.1f} M training images at that rate: {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
