"""Reproduce the report: all six report spaces (40 rows) or those chosen, then one report.

    python jobs/reproduce.py [--fidelity full] [--storage runs] [--out reports/reproduction]
                             [--spaces cifar10_googlenet,mnist_vgg,...] [--together]

`full` is the report's settings for one GPU machine (several trials share the GPU);
`full_compiled` the same rows compiled, two trials per GPU; `full_graphed` the same rows with
each training step replayed as one CUDA graph in bf16, five trials per GPU; `proxy` is the
2-core CPU version.
The sweeps run one after another in one Ray session, or all at once with --together;
re-running the command resumes an interrupted sweep and skips finished ones.
Wall times per sweep and in total go to <out>/reproduction.json, next to the report
(index.html, tables.md).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deepnets.cli import INTERRUPTED  # noqa: E402
from deepnets.cli import main as deepnets  # noqa: E402
from deepnets.errors import ConfigError  # noqa: E402
from deepnets.interrupts import ChildInterrupts  # noqa: E402
from deepnets.runlog import RESULTS_FILE  # noqa: E402
from deepnets.storage import Location  # noqa: E402
from deepnets.trial_order import space_cost  # noqa: E402

INTERRUPTED_NOTE = (
    "interrupted: the sweeps saved their state (their logs: {logs}); "
    "run the same command again to continue them"
)

STAGGER_S = 3  # between sweep starts under --together: the heavier asks for places first

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


def sweep_argv(space: str, args: argparse.Namespace) -> tuple[str, list[str] | None]:
    """(experiment, `deepnets` arguments that run or resume its sweep; None when finished)."""
    name = f"repro-{args.fidelity}-{space.removeprefix('report_')}"
    experiment = Location(args.storage) / name
    if (experiment / RESULTS_FILE).exists() and not args.dry_run:
        print(f"{name}: finished earlier, skipped")
        return str(experiment), None
    argv = ["sweep", "--space", str(ROOT / "tune_spaces" / f"{space}.yaml"), "--name", name]
    argv += ["--fidelity", args.fidelity, "--storage", args.storage]
    argv += ["--resume"] if (experiment / "tuner.pkl").exists() else []
    argv += ["--dry-run"] if args.dry_run else []
    return str(experiment), argv


def one_after_another(args: argparse.Namespace) -> dict[str, tuple[str, int, float]]:
    """Each space's sweep in this process, in order; space -> (experiment, exit code, s)."""
    done = {}
    for space in args.spaces:
        experiment, argv = sweep_argv(space, args)
        start = time.perf_counter()
        code = deepnets(argv) if argv else 0
        done[space] = (experiment, code, time.perf_counter() - start)
        if code in (2, INTERRUPTED):  # bad input, or Ctrl-C: stop here, not at the next space
            break
    return done


def all_at_once(args: argparse.Namespace) -> dict[str, tuple[str, int, float]]:
    """Every space's sweep at the same time, each its own process on this process's Ray: one
    after another, each space waits for its slowest trial (ResNet101) with the GPU half idle;
    together, the other spaces' trials fill it. Logs go to <out>/logs/<space>.log. Ctrl-C:
    the sweeps save and stop, and this process waits for them (deepnets/interrupts.py)."""
    start = time.perf_counter()
    to_run = {space: sweep_argv(space, args) for space in heaviest_first(args)}
    done = {space: (experiment, 0, 0.0) for space, (experiment, argv) in to_run.items() if not argv}
    if len(done) == len(to_run):
        return done
    running: dict[str, tuple[str, subprocess.Popen]] = {}
    interrupts = ChildInterrupts(lambda: [process for _, process in running.values()])
    previous = signal.signal(signal.SIGINT, interrupts)
    try:
        env = sweep_environment()
        for space, (experiment, argv) in to_run.items():
            if argv and not interrupts.interrupted:  # one stopped while starting stays unstarted
                if running:  # let the one before ask for its places first
                    time.sleep(STAGGER_S)
                    if interrupts.interrupted:  # Ctrl-C while waiting: start no more
                        break
                running[space] = (experiment, start_sweep(space, argv, env, args.out / "logs"))
        wait_for_sweeps(running, done, interrupts, start)
    finally:
        signal.signal(signal.SIGINT, previous)
    stopped = len(done) < len(to_run) or INTERRUPTED in (code for _, code, _ in done.values())
    if interrupts.interrupted and stopped:
        print(INTERRUPTED_NOTE.format(logs=args.out / "logs"), file=sys.stderr, flush=True)
        return {"interrupted": ("", INTERRUPTED, 0.0)}
    return done


def heaviest_first(args: argparse.Namespace) -> list[str]:
    """The spaces to run together, the one with the most training first: its sweep starts
    first, asks for GPU places first and (its trials longest first, deepnets/trial_order.py)
    starts ResNet101 early rather than at the end. A space that does not plan keeps its place:
    its sweep reports the problem."""

    def cost(space: str) -> float:
        try:
            return space_cost(ROOT / "tune_spaces" / f"{space}.yaml", args.fidelity)
        except (ConfigError, TypeError, ValueError):  # a setting of the wrong type, say
            return 0.0

    return sorted(args.spaces, key=lambda space: -cost(space))


def wait_for_sweeps(running: dict, done: dict, interrupts: ChildInterrupts, start: float) -> None:
    """Until every sweep has exited, moving each from `running` to `done` with its exit code
    and its seconds since `start`."""
    while running:
        time.sleep(1)
        interrupts.tick()
        for space, (experiment, process) in list(running.items()):
            if process.poll() is not None:
                done[space] = (experiment, process.returncode, time.perf_counter() - start)
                print(f"{space}: exit {process.returncode} after {done[space][2] / 60:.1f} min")
                del running[space]


def sweep_environment() -> dict[str, str]:
    """Start (or join) Ray here: the sweeps join it through RAY_ADDRESS."""
    import ray

    from deepnets.launch import ensure_ray

    ensure_ray()
    return os.environ | {
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        # A trial's workers may now wait for the GPU while other spaces' trials hold it.
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "7200",
        "PYTHONUNBUFFERED": "1",  # the logs follow the sweeps as they go
    }


def start_sweep(space: str, argv: list[str], env: dict, logs: Path) -> subprocess.Popen:
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{space}.log", "w") as log:
        command = [sys.executable, str(ROOT / "jobs" / "sweep.py"), *argv[1:]]
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fidelity",
        default="full",
        help="full (GPU, default), full_compiled or full_graphed (GPU), or proxy (CPU)",
    )
    parser.add_argument("--storage", default="runs", help="where the six experiments go")
    parser.add_argument("--out", type=Path, default=Path("reports/reproduction"))
    parser.add_argument("--dry-run", action="store_true", help="validate all six, no Ray")
    parser.add_argument(
        "--spaces",
        type=spaces_in_order,
        default=SPACES,
        help="which spaces, in this order (comma-separated, e.g. cifar10_googlenet,mnist_vgg)",
    )
    parser.add_argument(
        "--together", action="store_true", help="run the spaces' sweeps at the same time"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    together = args.together and not args.dry_run
    done = all_at_once(args) if together else one_after_another(args)
    codes = [code for _, code, _ in done.values()]
    stop = next((code for code in codes if code in (2, INTERRUPTED)), None)
    if stop is not None or args.dry_run:
        return stop or 0
    total = time.perf_counter() - start
    code = deepnets(
        ["report", *(experiment for experiment, _, _ in done.values()), "--out", str(args.out)]
    )
    record = {
        "fidelity": args.fidelity,
        "together": together,
        "wall_seconds": total,
        "sweep_wall_seconds": {space: seconds for space, (_, _, seconds) in done.items()},
        "sweep_exit_codes": {space: code for space, (_, code, _) in done.items()},
    }
    (args.out / "reproduction.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{len(args.spaces)} spaces in {total / 60:.1f} min; report: {args.out / 'index.html'}")
    return max(code, *codes)


if __name__ == "__main__":
    sys.exit(main())
