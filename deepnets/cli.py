"""`deepnets train|sweep|report ...`: the thin command-line front over training, sweeps, reports.

Settings come from, in increasing priority: a YAML file (`--config`), the flags below, and
`key=value` overrides with dotted keys (`optim.lr=0.01 model.options.batch_norm=after_relu`).
Exit codes: 0 success, 1 training failed, 2 bad input (printed as one line before Ray starts).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepnets.errors import InputError, SweepInterrupted
from deepnets.interrupts import SIGTERM_RECEIVED

# flag -> dotted config key; the flag's value is parsed like a `key=value` override.
TRAIN_FLAGS = {
    "task": "task",
    "model": "model.name",
    "dataset": "data.dataset",
    "data_root": "data.root",
    "train_subset": "data.train_subset",
    "test_subset": "data.test_subset",
    "resolution": "data.resolution",
    "augment": "data.augment",
    "epochs": "epochs",
    "batch_size": "global_batch_size",
    "workers": "num_workers",
    "cpus_per_worker": "cpus_per_worker",
    "optimizer": "optim.name",
    "lr": "optim.lr",
    "momentum": "optim.momentum",
    "width": "model.options.width",
    "stem": "model.options.stem",
    "precision": "precision",
    "compile": "compile",
    "seed": "seed",
    "output_dir": "output_dir",
    "name": "name",
}


def add_train_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one model on Ray Train")
    p.add_argument("--config", type=Path, help="YAML file of TrainConfig settings")
    for flag, key in TRAIN_FLAGS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, metavar="V", help=f"sets {key}")
    p.add_argument("--gpu", action="store_true", help="sets use_gpu=true")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")


def train_overrides(args: argparse.Namespace) -> list[str]:
    overrides = [
        f"{key}={getattr(args, flag)}"
        for flag, key in TRAIN_FLAGS.items()
        if getattr(args, flag) is not None
    ]
    if args.gpu:
        overrides.append("use_gpu=true")
    return overrides + list(args.overrides)


def run_train(args: argparse.Namespace) -> int:
    from ray.train import TrainingFailedError

    from deepnets.config import load_config
    from deepnets.launch import run_training

    cfg = load_config(args.config, train_overrides(args))
    try:
        summary = run_training(cfg)
    except TrainingFailedError as err:
        print(f"deepnets: training failed: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0


def format_summary(summary) -> str:
    def pct(value):
        return "n/a" if value is None else f"{value:.2%}"

    lines = [
        f"run: {summary.run_dir}",
        f"epochs: {summary.epochs_done}   best val acc: {pct(summary.best_val_accuracy)}   "
        f"test acc: {pct(summary.test_accuracy)}   wall: {summary.wall_seconds:.1f}s",
    ]
    if summary.test_miou is not None:  # segmentation: the accuracies above are per pixel
        lines.append(f"test mean IoU: {pct(summary.test_miou)}")
    return "\n".join(lines)


DEFAULT_SPACE = Path(__file__).resolve().parent.parent / "tune_spaces" / "quickstart.yaml"
SWEEP_COLUMNS = (
    "variant", "seed", "status", "epochs", "best_val_accuracy", "final_val_accuracy",
    "test_accuracy", "wall_seconds",
)  # fmt: skip
SEGMENTATION_NOTE = "segmentation accuracies are per pixel"
INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C
INTERRUPTED_NOTE = (
    "deepnets: interrupted; checkpoints and results written so far are kept: run the same "
    "command again to resume (a sweep: with --resume)"
)
PLAN_COLUMNS = (
    "variant", "seed", "model", "options", "dataset", "train", "optim", "epochs", "batch",
    "augment", "workers",
)  # fmt: skip


def add_sweep_parser(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="run a tune_spaces/*.yaml sweep on Ray Tune")
    p.add_argument("--space", type=Path, default=DEFAULT_SPACE, help="space file (YAML)")
    p.add_argument("--fidelity", help="fidelity profile of the space (e.g. proxy, full)")
    p.add_argument("--storage", default="runs", help="where experiments go (default: runs)")
    p.add_argument("--name", help="experiment name (default: <space>-<fidelity>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    p.add_argument("--max-concurrent", type=int, help="cap on trials running at once")
    p.add_argument("--dry-run", action="store_true", help="validate, print trials, no Ray")
    p.add_argument("--report-dir", type=Path, help="report folder (default <experiment>/report)")


def run_sweep_command(args: argparse.Namespace) -> int:
    from deepnets.sweep_plan import plan_sweep, preflight, resolve_paths, trial_rows
    from deepnets.tables import format_table

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise InputError(f"--max-concurrent: must be at least 1 (got {args.max_concurrent})")
    plan = plan_sweep(args.space, fidelity=args.fidelity, storage=args.storage, name=args.name)
    print(f"{plan.space.name}: {plan.trial_count()} trials [{plan.fidelity or 'no profile'}]")
    print(format_table(trial_rows(plan), PLAN_COLUMNS))
    if args.dry_run:
        return 0
    from deepnets.sweep import check_resume_state, run_sweep

    check_resume_state(plan, args.resume)  # before preflight writes the experiment folder
    warn_if_storage_is_temporary(args.storage)
    resolve_paths(plan)
    preflight(plan)

    rows = run_sweep(plan, resume=args.resume, max_concurrent=args.max_concurrent)
    print(f"\nexperiment: {plan.experiment_dir}")
    segmentation = any(r.get("test_miou") is not None for r in rows)
    print(format_table(rows, SWEEP_COLUMNS + (("test_miou",) if segmentation else ())))
    notes = ["* stopped early by ASHA"] if any(r["epochs"].endswith("*") for r in rows) else []
    notes += [SEGMENTATION_NOTE] if segmentation else []
    if notes:
        print(f"({'; '.join(notes)})")
    print(f"report: {write_sweep_report(plan, args.report_dir)}")
    return 1 if any(r["status"].startswith("failed") for r in rows) else 0


def warn_if_storage_is_temporary(storage: str) -> None:
    """Under `ray job submit` a relative --storage lands in the job's copy of the working
    directory, which Ray deletes with the job."""
    import os

    submitted = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ
    if submitted and "://" not in storage and not Path(storage).expanduser().is_absolute():
        print(
            f"deepnets: warning: --storage '{storage}' is inside the job's temporary working "
            "directory; pass an absolute shared path or a URI to keep the results",
            file=sys.stderr,
        )


def write_sweep_report(plan, report_dir: Path | None) -> str:
    """The aggregator's report of a finished sweep: in `report_dir`, else beside the runs in
    `<experiment>/report/` (under `ray job submit` the working directory is a temporary copy)."""
    import tempfile

    from deepnets.results.report import build_report

    remote = plan.experiment_dir.remote
    out = report_dir or (
        Path(tempfile.mkdtemp(prefix="deepnets-report-"))
        if remote
        else plan.experiment_dir.local_path / "report"
    )
    build_report([str(plan.experiment_dir)], out)
    if remote and report_dir is None:
        (plan.experiment_dir / "report").upload_folder(out)
        return str(plan.experiment_dir / "report" / "index.html")
    return str(out.resolve() / "index.html")


def add_report_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="tables, plots and index.html from experiments")
    p.add_argument("experiments", nargs="+", help="experiment directories (local or URI)")
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. reports/NAME")


def run_report_command(args: argparse.Namespace) -> int:
    from deepnets.results.report import build_report

    try:
        tables = build_report(list(args.experiments), args.out)
    except FileNotFoundError as err:
        raise InputError(str(err)) from None
    print(f"report: {args.out.resolve() / 'index.html'} ({len(tables)} tables)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepnets", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    add_sweep_parser(subparsers)
    add_report_parser(subparsers)
    return parser


COMMANDS = {"train": run_train, "sweep": run_sweep_command, "report": run_report_command}


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Like parse_args, but `key=value` overrides may come between flags too (`--model fcn8s
    task=segmentation --epochs 3 data.augment=none`): argparse alone takes one run of them."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        code = COMMANDS[args.command](args)
    except InputError as err:
        print(f"deepnets: error: {err}", file=sys.stderr)
        return 2
    except SweepInterrupted as err:
        print(f"deepnets: {err}", file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside Tune's own handling
        print(INTERRUPTED_NOTE, file=sys.stderr)
        return INTERRUPTED
    except SystemExit:
        if not SIGTERM_RECEIVED.is_set():
            raise
        code = 0  # Ray Train's Ctrl-C handler exits after aborting the run (or says it ended)
    if SIGTERM_RECEIVED.is_set() and code == 0:
        print(INTERRUPTED_NOTE, file=sys.stderr)
        return INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
