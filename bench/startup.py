"""Fixed cost of a sweep: how long before the first training step, and how much each trial pays.

Runs `jobs/sweep.py` (a fresh process, as a user would) on a space of N tiny trials (one
variant x N seeds: ResNet18 at width 0.125 on 256 digits images, 1 epoch, FIFO), one trial at
a time with all cores, then reads the milestones each trial left behind (run.json's
`started_at`, the worker's timeline.json, the epoch log) and prints:

- start-up: seconds from launching the sweep to the first training step of the first trial;
- per-trial overhead: (sweep wall time - training time the trials report) / N, and the
  steady-state part of it: the median time from one trial's last step to the next one's first;
- where a trial's fixed seconds go, phase by phase (median over trials).

    python bench/startup.py [--trials 8] [--cpus 2] [--keep DIR]
    python bench/startup.py --cpus 1 --against 765699b --rounds 3   # the same, side by side

With --against REV the benchmark alternates runs of REV's tree (a temporary git worktree) and
this tree and prints each run's per-trial overhead, the means and their ratio.

Target (issue 5): per-trial overhead <= 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deepnets.runlog import (  # noqa: E402
    RUN_FILE,
    TEST_REPORT_FILE,
    TIMELINE_FILE,
    read_history,
    read_json,
)  # noqa: E402

SPACE = """
name: startup-bench
description: N copies of one tiny trial, to measure what a trial costs besides training
base:
  data: {{dataset: digits, train_subset: 256, test_subset: 64, val_fraction: 0.25}}
  model: {{name: resnet18, options: {{stem: small, width: 0.125}}}}
  epochs: 1
  global_batch_size: 32
variants: [{{id: tiny}}]
seeds: {seeds}
scheduler: {{type: fifo}}
resources: {{workers_per_trial: 1, cpus_per_worker: {cpus}}}
"""

# (label, from-milestone, to-milestone) within one trial. From run.json (the trial's own
# process): trial_process, trial (fit_and_record starts), fit_returned; the rest from rank 0's
# timeline.json, and last_step = first step + the training seconds the epochs report.
PHASES = [
    ("trial start -> Train worker process exists", "trial", "process_started"),
    ("worker process -> deepnets imported (Ray, DDP set-up)", "process_started", "imports_started"),
    ("importing deepnets.worker (torch, ray.train)", "imports_started", "loop_started"),
    ("train loop -> data on the device", "loop_started", "data_ready"),
    ("data -> model and optimizer ready", "data_ready", "model_ready"),
    ("model -> first training step", "model_ready", "first_epoch_started"),
    ("last step -> fit() returns (eval, checkpoint, shutdown)", "last_step", "fit_returned"),
]
BETWEEN = "fit() returns -> next trial's code starts (Tune, imports)"


def run_sweep(
    workdir: Path, trials: int, cpus: int, root: Path = ROOT
) -> tuple[float, float, Path]:
    """`root`'s jobs/sweep.py on the tiny space. PYTHONPATH makes the driver and every Ray
    worker import `root`'s deepnets, not the checkout the virtual environment points at."""
    space = workdir / "startup.yaml"
    space.write_text(SPACE.format(seeds=list(range(trials)), cpus=cpus))
    command = [sys.executable, str(root / "jobs/sweep.py"), "--space", str(space)]
    command += ["--storage", str(workdir / "runs"), "--name", "startup"]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path}
    start = time.time()
    subprocess.run(command, check=True, cwd=root, env=env, stdout=subprocess.DEVNULL)
    return start, time.time(), workdir / "runs" / "startup" / "runs"


def measure(workdir: Path, trials: int, cpus: int, root: Path = ROOT) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    start, end, runs_dir = run_sweep(workdir, trials, cpus, root)
    return report(start, end, trial_records(runs_dir))


def compare(against: str, rounds: int, trials: int, cpus: int) -> dict:
    """Per-trial overhead of commit `against` and of this tree, alternating run by run (this
    machine drifts between runs by about as much as a change is worth)."""
    overheads: dict[str, list[float]] = {against: [], "this tree": []}
    with tempfile.TemporaryDirectory(prefix="deepnets-startup-") as tmp:
        other = Path(tmp) / "against"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(other), against], check=True)
        try:
            for n in range(1, rounds + 1):
                for label, root in ((against, other), ("this tree", ROOT)):
                    result = measure(Path(tmp) / f"{root.name}-{n}", trials, cpus, root)
                    overheads[label].append(result["per_trial_overhead_seconds"])
                    print(f"round {n}: {label:<12} {overheads[label][-1]:6.2f} s", flush=True)
        finally:
            subprocess.run([*git, "remove", "--force", str(other)], check=False)
    means = {label: statistics.mean(values) for label, values in overheads.items()}
    ratio = means["this tree"] / means[against]
    print(
        f"per-trial overhead, mean of {rounds}: {against} {means[against]:.2f} s, "
        f"this tree {means['this tree']:.2f} s ({ratio:.2f}x); target <= 10 s"
    )
    return {"per_trial_overhead_seconds": overheads, "means": means, "ratio": ratio}


def trial_records(runs_dir: Path) -> list[dict]:
    """Per trial: its milestones (unix seconds) and the training seconds it reported."""
    records = []
    for run in sorted(runs_dir.iterdir()):
        record = read_json(run / RUN_FILE)
        marks = read_json(run / TIMELINE_FILE) | {
            "trial_process": record["process_started_at"],
            "trial": record["started_at"],
            "fit_returned": record["ended_at"],
        }
        history = read_history(run)
        train = sum(row["epoch_seconds"] for row in history)
        marks["last_step"] = marks["first_epoch_started"] + train
        threads = read_json(run / TEST_REPORT_FILE).get("threads", {})
        records.append({"marks": marks, "train_seconds": train, "threads": threads})
    return sorted(records, key=lambda r: r["marks"]["trial"])


def report(start: float, end: float, records: list[dict]) -> dict:
    wall = end - start
    train = sum(r["train_seconds"] for r in records)
    pairs = list(zip(records, records[1:], strict=False))
    gaps = [b["marks"]["first_epoch_started"] - a["marks"]["last_step"] for a, b in pairs]
    phases = {
        label: statistics.median(r["marks"][b] - r["marks"][a] for r in records)
        for label, a, b in PHASES
    }
    if pairs:
        between = [b["marks"]["trial"] - a["marks"]["fit_returned"] for a, b in pairs]
        phases[BETWEEN] = statistics.median(between)
    return {
        "trials": len(records),
        "sweep_wall_seconds": wall,
        "training_seconds": train,
        "startup_seconds": records[0]["marks"]["first_epoch_started"] - start,
        "per_trial_overhead_seconds": (wall - train) / len(records),
        "steady_gap_seconds": statistics.median(gaps) if gaps else float("nan"),
        "driver_to_first_trial_seconds": records[0]["marks"]["trial"] - start,
        "last_step_to_sweep_exit_seconds": end - records[-1]["marks"]["last_step"],
        "phases_median_seconds": phases,
        "threads_in_first_trial": records[0]["threads"],
    }  # the phases of concurrent trials overlap: with --cpus 1 some gaps come out negative


def print_report(result: dict, cpus: int) -> None:
    print(f"\nsweep of {result['trials']} tiny trials, {cpus} CPU(s) each")
    rows = [
        ("sweep wall time", result["sweep_wall_seconds"]),
        ("training time the trials report", result["training_seconds"]),
        ("start-up: launch -> first training step", result["startup_seconds"]),
        ("  of which launch -> first trial starts", result["driver_to_first_trial_seconds"]),
        ("per-trial overhead: (wall - training) / N", result["per_trial_overhead_seconds"]),
        ("  steady state: last step -> next trial's first step", result["steady_gap_seconds"]),
        ("last step -> sweep exits (report included)", result["last_step_to_sweep_exit_seconds"]),
    ]
    rows += [(f"  {label}", s) for label, s in result["phases_median_seconds"].items()]
    width = max(len(label) for label, _ in rows)
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds:7.2f} s")
    print(f"threads in the first trial's worker: {result['threads_in_first_trial']}")
    print("target: per-trial overhead <= 10 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs per trial (default: 2)")
    parser.add_argument("--keep", type=Path, help="keep the sweep here instead of a temp folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--against", metavar="REV", help="alternate with this git commit's tree")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each tree (--against)")
    args = parser.parse_args()
    if args.against:
        result = compare(args.against, args.rounds, args.trials, args.cpus)
    else:
        with tempfile.TemporaryDirectory(prefix="deepnets-startup-") as tmp:
            result = measure(args.keep or Path(tmp), args.trials, args.cpus)
        print_report(result, args.cpus)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
