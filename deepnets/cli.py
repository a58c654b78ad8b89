"""`deepnets train ...`: the thin command-line front over `deepnets.launch`.

Settings come from, in increasing priority: a YAML file (`--config`), the flags below, and
`key=value` overrides with dotted keys (`optim.lr=0.01 model.options.batch_norm=after_relu`).
Exit codes: 0 success, 1 training failed, 2 bad input (printed as one line before Ray starts).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepnets.errors import InputError

# flag -> dotted config key; the flag's value is parsed like a `key=value` override.
TRAIN_FLAGS = {
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
    from deepnets.config import load_config
    from deepnets.launch import run_training

    cfg = load_config(args.config, train_overrides(args))
    summary = run_training(cfg)
    print(format_summary(summary))
    return 1 if summary.error else 0


def format_summary(summary) -> str:
    def pct(value):
        return "n/a" if value is None else f"{value:.2%}"

    lines = [
        f"run: {summary.run_dir}",
        f"epochs: {summary.epochs_done}   best val acc: {pct(summary.best_val_accuracy)}   "
        f"test acc: {pct(summary.test_accuracy)}   wall: {summary.wall_seconds:.1f}s",
    ]
    if summary.error:
        lines.append(f"FAILED: {summary.error}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepnets", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    return parser


COMMANDS = {"train": run_train}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as err:
        print(f"deepnets: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
