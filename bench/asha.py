"""ASHA against the full grid: how many epochs early stopping saves, and whether it still wins.

Runs one ablation space twice through `jobs/sweep.py` (fresh processes, as a user would):
once with its own ASHA scheduler, once with every trial trained to the end (FIFO). Then
compares the epochs each sweep consumed (the sum of the epochs every trial really ran) and the
best trial each picks by the space's metric at the trial's last epoch, as Tune ranks them.

    python bench/asha.py [--space tune_spaces/digits_optimizer_ablation.yaml] [--keep DIR]

Target (issue 5): ASHA uses <= 0.4x the full grid's epochs and picks the same winner.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deepnets.runlog import RESULTS_FILE, RUN_FILE, read_history, read_json  # noqa: E402

DEFAULT_SPACE = ROOT / "tune_spaces" / "digits_optimizer_ablation.yaml"


def fifo_copy(space: Path, fidelity: str | None, out: Path) -> Path:
    """The same space with every trial run to the end (the fidelity's scheduler too)."""
    tree = yaml.safe_load(space.read_text())
    tree["scheduler"] = {"type": "fifo"}
    for name, profile in (tree.get("fidelity") or {}).items():
        if "scheduler" in profile and name in (fidelity, tree.get("default_fidelity")):
            profile["scheduler"] = {"type": "fifo"}
    out.write_text(yaml.safe_dump(tree, sort_keys=False))
    return out


def run_sweep(space: Path, fidelity: str | None, storage: Path, name: str) -> float:
    command = [sys.executable, str(ROOT / "jobs/sweep.py"), "--space", str(space)]
    command += ["--storage", str(storage), "--name", name]
    command += ["--fidelity", fidelity] if fidelity else []
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def finished_trials(experiment: Path) -> list[tuple[str, dict, Path]]:
    """(key, Tune trial record, run folder) of every trial of a finished sweep; the key names
    the variant, seed and sampled values, e.g. 'adam s0 optim.lr=0.01'."""
    out = []
    for row in json.loads((experiment / RESULTS_FILE).read_text()):
        run_dir = Path(row["run_dir"])
        trial = read_json(run_dir / RUN_FILE).get("trial", {})
        search = ",".join(f"{k}={v}" for k, v in sorted(trial.get("search", {}).items()))
        key = f"{row['variant']} s{row['seed']}" + (f" {search}" if search else "")
        out.append((key, trial, run_dir))
    return out


def trials(experiment: Path, metric: str) -> dict[str, dict]:
    """Per trial (by key): epochs run, last metric value."""
    out = {}
    for key, _, run_dir in finished_trials(experiment):
        history = read_history(run_dir)
        last = history[-1].get(metric) if history else None
        out[key] = {"epochs": len(history), "last": last}
    return out


def winner(results: dict[str, dict], mode: str) -> str:
    scored = {k: v["last"] for k, v in results.items() if v["last"] is not None}
    pick = max if mode == "max" else min
    return pick(scored, key=scored.get)


def compare(asha: dict, full: dict, mode: str) -> dict:
    asha_best, full_best = winner(asha, mode), winner(full, mode)
    ranked = sorted(full, key=lambda k: full[k]["last"] or 0.0, reverse=mode == "max")
    return {
        "trials": len(full),
        "asha_epochs": sum(t["epochs"] for t in asha.values()),
        "full_epochs": sum(t["epochs"] for t in full.values()),
        "asha_winner": asha_best,
        "full_winner": full_best,
        "same_winner": asha_best == full_best,
        "asha_winner_rank_in_full": ranked.index(asha_best) + 1,
        "asha_winner_in_full": full[asha_best]["last"],
        "full_winner_in_full": full[full_best]["last"],
    }


def print_report(result: dict, metric: str) -> None:
    ratio = result["asha_epochs"] / result["full_epochs"]
    print(f"\n{result['trials']} trials; metric {metric} at each trial's last epoch")
    print(f"{'':<22}{'ASHA':>12}{'full grid':>12}")
    print(f"{'wall time (s)':<22}{result['asha_wall']:>12.0f}{result['full_wall']:>12.0f}")
    print(f"{'epochs consumed':<22}{result['asha_epochs']:>12}{result['full_epochs']:>12}")
    print(f"epochs ratio ASHA / full: {ratio:.2f} (target <= 0.40)")
    print(f"ASHA's winner:      {result['asha_winner']}")
    print(f"full grid's winner: {result['full_winner']} ({result['full_winner_in_full']:.4f})")
    print(
        f"same winner: {'yes' if result['same_winner'] else 'no'}; ASHA's winner ranks "
        f"{result['asha_winner_rank_in_full']} in the full grid "
        f"({result['asha_winner_in_full']:.4f} there)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, default=DEFAULT_SPACE)
    parser.add_argument("--fidelity", help="the space's fidelity profile, if it has several")
    parser.add_argument("--keep", type=Path, help="keep both sweeps here instead of a temp folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    space = yaml.safe_load(args.space.read_text())
    metric, mode = space.get("metric", "val_accuracy"), space.get("mode", "max")
    with tempfile.TemporaryDirectory(prefix="deepnets-asha-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        full_space = fifo_copy(args.space, args.fidelity, work / "full-grid.yaml")
        asha_wall = run_sweep(args.space, args.fidelity, work, "asha")
        full_wall = run_sweep(full_space, args.fidelity, work, "full")
        result = compare(trials(work / "asha", metric), trials(work / "full", metric), mode)
    result |= {"asha_wall": asha_wall, "full_wall": full_wall}
    print_report(result, metric)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
