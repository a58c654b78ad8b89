"""Training throughput, steady state: a bare PyTorch loop vs the deepnets engine vs Ray Train.

Same model (ResNet18, small stem), same data, same batch (64), same optimizer (Adam), same
memory format (NCHW) and the same threads (all cores) in all three. On the CPU: width 0.25 and
the embedded digits (28x28); with --device cuda: full width and 10,000 CIFAR-10 training images
(32x32x3), resident on the GPU in all three, where any per-step wait for the GPU would show.
Every run is a fresh process, as a training run is (a Ray Train worker always is one): on the
2-core machine fresh processes of the same loop trained at speeds up to ~30% apart, so one
process's speed against another's says little. Each round runs each path once, in a rotated
order, each run after the machine has settled; it prints each run (its median and its slowest
and fastest epoch), each path's median run and two ratios to the bare loop: of the medians,
and the median of each round's ratio to that round's bare run. Ray is started before the
first run; the first epoch of each run is a warm-up. ~80 s a round on the 2-core machine.

    python bench/overhead.py [--epochs 6] [--rounds 3] [--device cpu|cpu-small-steps|cuda]

Targets (issue 5): engine >= 0.98x bare, through Ray Train >= 0.95x bare.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from throughput import sync  # noqa: E402

from deepnets.config import DataConfig, OptimConfig, load_config  # noqa: E402
from deepnets.data import load_datasets, make_loader  # noqa: E402
from deepnets.engine import train_one_epoch  # noqa: E402
from deepnets.models import create_model  # noqa: E402
from deepnets.optim import build_optimizer  # noqa: E402

MODEL = {"name": "resnet18", "stem": "small"}
PATHS = ("bare", "engine", "ray")
LABELS = {"bare": "bare PyTorch loop", "engine": "deepnets engine", "ray": "Ray Train, 1 worker"}
DIGITS = {"dataset": "digits", "val_fraction": 0.0}
SETUPS = {  # setup -> the data, width and batch all three paths use there
    "cpu": {"width": 0.25, "batch": 64, "data": DIGITS},
    # A step bound by Python launching operators, as a GPU step at batch 64 is (~10 ms, most
    # of it dispatch): shows on the CPU what else in the process takes the interpreter's time.
    "cpu-small-steps": {"width": 0.0625, "batch": 4, "data": DIGITS},
    "cuda": {
        "width": 1.0,
        "batch": 64,
        "data": {"dataset": "cifar10", "val_fraction": 0.0, "train_subset": 10000},
    },
}


def device_of(setup_name: str) -> torch.device:
    """The device a setup runs on ("cpu-small-steps" runs on the CPU)."""
    return torch.device(setup_name.split("-")[0])


def training_split(setup: dict):
    """The training split all three paths run an epoch of (digits: 1,437 images)."""
    return load_datasets(DataConfig(**setup["data"]), seed=0)


def fresh_model(setup: dict, data, device: torch.device):
    torch.manual_seed(0)
    in_chans = data.train.images.shape[1]
    model = create_model(
        MODEL["name"], num_classes=10, in_chans=in_chans, stem=MODEL["stem"], width=setup["width"]
    )
    return model.to(device)


def bare_epochs(setup: dict, data, device: torch.device):
    """The textbook loop: shuffle, slice, normalise, forward, backward, step. Yields one
    epoch's images/s per next()."""
    model, loss_fn = fresh_model(setup, data, device), nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = data.train.images.to(device), data.train.labels.to(device)
    mean, std = (t.view(1, -1, 1, 1).to(device) for t in (data.mean, data.std))
    while True:
        model.train()
        order = torch.randperm(len(labels), device=device)
        batch = setup["batch"]
        steps = len(labels) // batch
        start = time.perf_counter()
        for step in range(steps):
            index = order[step * batch : (step + 1) * batch]
            x = (images[index].float() / 255.0 - mean) / std
            loss = loss_fn(model(x), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        yield steps * batch / (time.perf_counter() - start)


def engine_epochs(setup: dict, data, device: torch.device):
    """The deepnets engine on the same data, model, batch and optimizer (no Ray)."""
    model = fresh_model(setup, data, device)
    optimizer = build_optimizer(model.parameters(), OptimConfig(name="adam", lr=1e-3))
    cfg = DataConfig(**setup["data"])
    loader = make_loader(
        data, data.train, cfg, batch_size=setup["batch"], train=True, seed=0, device=device
    )
    criterion, epoch = nn.CrossEntropyLoss(), 0
    while True:
        epoch += 1
        loader.set_epoch(epoch)
        counts, seconds = train_one_epoch(
            model, loader, optimizer, criterion=criterion, device=device
        )
        yield counts.count / seconds


def ray_train(setup: dict, epochs: int, threads: int, device: torch.device) -> list[float] | None:
    """One TorchTrainer worker holding every core (and the GPU); images/s from the run's own
    epoch log, or None if the run failed."""
    from deepnets.launch import run_training
    from deepnets.runlog import TEST_REPORT_FILE, read_history, read_json

    out = tempfile.mkdtemp(prefix="deepnets-bench-")
    data = [f"data.{key}={value}" for key, value in setup["data"].items()]
    gpu = ["use_gpu=true", "gpus_per_worker=1"] if device.type == "cuda" else []
    cfg = load_config(
        None,
        [
            f"model.name={MODEL['name']}", f"model.options.stem={MODEL['stem']}",
            f"model.options.width={setup['width']}", *data, *gpu, "precision=fp32",
            f"epochs={epochs}", f"global_batch_size={setup['batch']}", "schedule.name=none",
            "channels_last=false", f"cpus_per_worker={threads}", f"output_dir={out}",
            "name=overhead",
        ],
    )  # fmt: skip
    summary = run_training(cfg)
    if summary.error is not None or summary.epochs_done < epochs:
        print(f"overhead: the Ray Train run: {summary.error}", file=sys.stderr)
        return None
    seen = read_json(summary.run_dir / TEST_REPORT_FILE)["threads"]
    print(
        f"inside the Train worker ({threads} CPUs): OMP_NUM_THREADS={seen['OMP_NUM_THREADS']}, "
        f"torch threads {seen['torch_before']} before deepnets sets them, {seen['torch']} after"
    )
    return [row["images_per_second"] for row in read_history(summary.run_dir)]


def start_ray_and_settle(limit_s: float = 120.0) -> tuple[float, bool]:
    """Start Ray (as the Ray Train path would) and wait until the machine is idle again.

    A fresh Ray's own processes (GCS, raylet, dashboard and its agents) go on starting after
    ray.init() returns, and a run measured meanwhile would pay for them (on 2 cores the bare
    loop would share the cores with Ray's start, the later runs not). Every path then runs
    beside an idle Ray. Returns (seconds waited, whether it settled)."""
    from deepnets.launch import ensure_ray

    start = time.perf_counter()
    ensure_ray()
    settled = settle(limit_s)
    return time.perf_counter() - start, settled


def settle(limit_s: float) -> bool:
    """Wait until the machine's CPU use has stayed under half a core for 3 s in a row (or
    `limit_s` passed): steady state is what this benchmark compares, and a run that starts
    while the last Ray Train run's processes are still exiting would share the cores."""
    import psutil

    start, quiet_for, cores = time.perf_counter(), 0, psutil.cpu_count() or 1
    while quiet_for < 3 and time.perf_counter() - start < limit_s:
        busy_cores = psutil.cpu_percent(interval=1.0) / 100 * cores
        quiet_for = quiet_for + 1 if busy_cores < 0.5 else 0
    return quiet_for >= 3


def steady(rates: list[float]) -> dict[str, float]:
    """A run's images/s: the median epoch after the warm-up, and the slowest and fastest of
    those epochs (how steady the machine was during the run)."""
    counted = rates[1:] if len(rates) > 1 else rates
    return {"rate": statistics.median(counted), "low": min(counted), "high": max(counted)}


EPOCHS_OF = {"bare": bare_epochs, "engine": engine_epochs}  # the paths run by --child
RESULT = "overhead result: "  # starts the one stdout line of a child that the parent reads


def child_main(path: str, setup: dict, epochs: int, device: torch.device, threads: int) -> None:
    """`--child PATH`: one run of the bare loop or the engine; prints its epochs' images/s."""
    torch.set_num_threads(threads)
    data = training_split(setup)
    run = EPOCHS_OF[path](setup, data, device)
    print(RESULT + json.dumps([next(run) for _ in range(epochs)]), flush=True)


def in_fresh_process(path: str, epochs: int, device_name: str) -> list[float] | None:
    """The epochs' images/s of the bare loop or the engine, run in a new Python process;
    None if that failed (its errors went to our stderr)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", path]
    command += ["--epochs", str(epochs), "--device", device_name]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not results:
        return None
    return json.loads(results[-1].removeprefix(RESULT))


def one_round(number: int, epochs: int, device_name: str, threads: int) -> dict | None:
    """Each path once, each in its own fresh process, the order rotated round by round so
    that no path always runs first or last. Returns path -> steady(), or None if a run
    failed."""
    setup, device = SETUPS[device_name], device_of(device_name)
    order = PATHS[number % len(PATHS) :] + PATHS[: number % len(PATHS)]
    runs = {}
    for path in order:
        settle(limit_s=30.0)
        if path == "ray":
            rates = ray_train(setup, epochs, threads, device)
        else:
            rates = in_fresh_process(path, epochs, device_name)
        if rates is None:
            print(f"overhead: the {path} run failed (its errors are above)", file=sys.stderr)
            return None
        runs[path] = steady(rates)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="per run; the first is a warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each path")
    parser.add_argument(
        "--device", default="cpu", choices=sorted(SETUPS), help="cpu-small-steps: see SETUPS"
    )
    parser.add_argument("--child", choices=sorted(EPOCHS_OF), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2 or args.rounds < 1:
        parser.error("--epochs: at least 2 (the first is a warm-up); --rounds: at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here")
    threads = os.cpu_count() or 1
    if args.child:
        child_main(args.child, SETUPS[args.device], args.epochs, device_of(args.device), threads)
        return
    waited, settled = start_ray_and_settle()
    state = "idle again" if settled else "still busy (measuring anyway)"
    print(f"Ray started; {state} after {waited:.0f} s")
    rounds = []
    for number in range(args.rounds):
        runs = one_round(number, args.epochs, args.device, threads)
        if runs is None:
            break
        rounds.append(runs)
        done = ", ".join(f"{path} {described(run)}" for path, run in runs.items())
        print(f"round {number + 1} (images/s in the order run, [slowest-fastest epoch]): {done}")
    if rounds:
        report(rounds, SETUPS[args.device], threads, args.device)
    if len(rounds) < args.rounds:
        sys.exit(f"overhead: {len(rounds)} of {args.rounds} rounds done")


def described(run: dict[str, float]) -> str:
    return f"{run['rate']:.0f} [{run['low']:.0f}-{run['high']:.0f}]"


def report(rounds: list[dict], setup: dict, threads: int, device_name: str) -> None:
    """Each path's median run and two ratios to the bare loop: of the medians (process
    draws, independent of one another, average out) and the median of each round's ratio to
    that round's bare run (a pair shares the machine's slower or faster minutes)."""
    where = torch.cuda.get_device_name() if device_name == "cuda" else device_name
    print(f"\n{where}, threads {threads}, batch {setup['batch']}, {setup['data']['dataset']},")
    print(f"width {setup['width']}; {len(rounds)} runs of each path, each in a fresh process")
    header = f"{'path':<22}{'images/s':>10}{'x bare':>9}{'paired':>9}"
    print(f"{header}   the runs' images/s [slowest-fastest epoch]")
    bare = statistics.median(r["bare"]["rate"] for r in rounds)
    for path in PATHS:
        rate = statistics.median(r[path]["rate"] for r in rounds)
        paired = statistics.median(r[path]["rate"] / r["bare"]["rate"] for r in rounds)
        runs = " ".join(described(r[path]) for r in rounds)
        print(f"{LABELS[path]:<22}{rate:>10.0f}{rate / bare:>9.3f}{paired:>9.3f}   {runs}")
    print("(images/s: the median run's; x bare: the ratio of the medians; paired: the median")
    print(" of each round's ratio to its bare run. Medians of an even count: the mean of the")
    print(" middle two)")


if __name__ == "__main__":
    main()
