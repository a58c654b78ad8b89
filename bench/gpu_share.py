"""Several small trials on one GPU: aggregate training images/s of N processes at once.

A `full` sweep gives each trial a fraction of the GPU (0.2: five at a time). At the report's
batch of 64 a training step is a few milliseconds of kernel launches, so one process leaves the
GPU idle between kernels. This starts N processes that train the same model together (after a
common barrier, for the same seconds) and prints their summed images/s beside one process's.

    python bench/gpu_share.py [--models resnet18,googlenet] [--procs 1,2,4,8] [--seconds 8]
                              [--precision fp32|bf16] [--batch 64] [--compile reduce-overhead]

--compile MODE puts each process's model through torch.compile (eager without it): mode
`default` fuses kernels, `reduce-overhead` also replays each step as a CUDA graph; to see
whether fewer, fused launches let the shared GPU train more images/s than eager processes do.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SHAPE = (3, 32, 32)  # CIFAR-10, where the report's spaces spend most of their steps


def train_for(model, args: argparse.Namespace, barrier, rates) -> None:
    """One trial's worth of work: warm up, wait for the others, train for `seconds`."""
    import torch
    from throughput import build_steps, sync

    device, width = torch.device(args.device), 1.0 if args.device == "cuda" else 0.125
    _, train_step, _ = build_steps(
        model, SHAPE, width, args.batch, device, True, args.precision, args.compile
    )
    for _ in range(5):  # compile; cuDNN picks its algorithms, the allocator fills its pool
        train_step()
    sync(device)
    barrier.wait()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        train_step()
        steps += 1
    sync(device)
    rates.put(steps * args.batch / (time.perf_counter() - start))


def shared_rate(model: str, procs: int, args: argparse.Namespace) -> list[float]:
    """Images/s of each of `procs` processes training `model` at the same time."""
    ctx = mp.get_context("spawn")  # CUDA cannot be initialised in a forked child
    barrier, rates = ctx.Barrier(procs), ctx.Queue()
    workers = [
        ctx.Process(target=train_for, args=(model, args, barrier, rates)) for _ in range(procs)
    ]
    for worker in workers:
        worker.start()
    results = [rates.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,googlenet")
    parser.add_argument(
        "--procs", default="1,2,4,8", help="process counts; the first is the baseline (keep 1)"
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--compile",
        help="torch.compile mode (default, reduce-overhead, ...), cudagraphs or step_graph",
    )
    parser.add_argument("--device", default="cuda", help="cpu only checks the script (width 1/8)")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this benchmark measures processes sharing one GPU")
        return 0
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    compiled = f", compile {args.compile}" if args.compile else ", eager"
    print(f"{name}, {SHAPE}, batch {args.batch}, {args.precision}, channels_last{compiled}")
    print(f"{'model':<12}{'procs':>6}{'total img/s':>14}{'per process':>14}{'vs one':>8}")
    for model in args.models.split(","):
        alone = None
        for procs in (int(n) for n in args.procs.split(",")):
            rates = shared_rate(model, procs, args)
            total = sum(rates)
            alone = alone or total / procs
            ratio = total / alone
            print(f"{model:<12}{procs:>6}{total:>14.0f}{total / procs:>14.0f}{ratio:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
