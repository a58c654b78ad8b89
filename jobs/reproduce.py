"""Reproduce the report: all six report spaces (40 rows) or those chosen, then one report.

    python jobs/reproduce.py [--fidelity full] [--storage runs] [--out reports/reproduction]
                             [--spaces cifar10_googlenet,mnist_vgg,...]

`full` is the report's settings for one GPU machine (several trials share the GPU); `proxy`
is the 2-core CPU version. The sweeps run one after another in one Ray session; re-running
the command resumes an interrupted sweep and skips finished ones. Wall times per sweep and in
total go to <out>/reproduction.json, next to the report (index.html, tables.md).
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deepnets.cli import INTERRUPTED  # noqa: E402
from deepnets.cli import main as deepnets  # noqa: E402
from deepnets.runlog import RESULTS_FILE  # noqa: E402
from deepnets.storage import Location  # noqa: E402

SPACES = [
    f"report_{dataset}_{family}"
    for dataset in ("mnist", "cifar10")
    for family in ("vgg", "resnet", "googlenet")
]


def spaces_in_order(text: str) -> list[str]:
    """`cifar10_googlenet,mnist_vgg` -> the report spaces of those names, in that order."""
    names = [name.strip().removeprefix("report_") for name in text.split(",") if name.strip()]
    allowed = [space.removeprefix("report_") for space in SPACES]
    unknown = [name for name in names if name not in allowed] or ([] if names else [text])
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown space {unknown[0]!r}; allowed: {', '.join(allowed)}"
        )
    return [f"report_{name}" for name in dict.fromkeys(names)]


def sweep(space: str, args: argparse.Namespace) -> tuple[str, int, float]:
    """Run (or resume, or skip when finished) one space's sweep; (experiment, exit code, s)."""
    name = f"repro-{args.fidelity}-{space.removeprefix('report_')}"
    experiment = Location(args.storage) / name
    if (experiment / RESULTS_FILE).exists() and not args.dry_run:
        print(f"{name}: finished earlier, skipped")
        return str(experiment), 0, 0.0
    argv = ["sweep", "--space", str(ROOT / "tune_spaces" / f"{space}.yaml"), "--name", name]
    argv += ["--fidelity", args.fidelity, "--storage", args.storage]
    argv += ["--resume"] if (experiment / "tuner.pkl").exists() else []
    argv += ["--dry-run"] if args.dry_run else []
    start = time.perf_counter()
    code = deepnets(argv)
    return str(experiment), code, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelity", default="full", help="full (GPU, default) or proxy (CPU)")
    parser.add_argument("--storage", default="runs", help="where the six experiments go")
    parser.add_argument("--out", type=Path, default=Path("reports/reproduction"))
    parser.add_argument("--dry-run", action="store_true", help="validate all six, no Ray")
    parser.add_argument(
        "--spaces",
        type=spaces_in_order,
        default=SPACES,
        help="which spaces, in this order (comma-separated, e.g. cifar10_googlenet,mnist_vgg)",
    )
    args = parser.parse_args()
    start, walls, experiments = time.perf_counter(), {}, []
    for space in args.spaces:
        experiment, code, seconds = sweep(space, args)
        if code in (2, INTERRUPTED):  # bad input, or Ctrl-C: stop here, not at the next space
            return code
        experiments.append(experiment)
        walls[space] = seconds
    if args.dry_run:
        return 0
    total = time.perf_counter() - start
    code = deepnets(["report", *experiments, "--out", str(args.out)])
    record = {"fidelity": args.fidelity, "wall_seconds": total, "sweep_wall_seconds": walls}
    (args.out / "reproduction.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{len(args.spaces)} spaces in {total / 60:.1f} min; report: {args.out / 'index.html'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
