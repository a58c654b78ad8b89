"""Train and eval images/s of the report's models at 28x28 (1 channel) and 32x32 (3 channels).

For each model and input shape: channels_last off and on; on a GPU also bf16 autocast and
`--compile-mode` (channels_last, fp32 and bf16). Small-image stems; width 0.25 on a CPU (full
width takes minutes per model there), 1.0 on a GPU unless --width says otherwise.

    python bench/throughput.py [--width W] [--batch 64] [--steps 8] [--models vgg16,resnet18]
                               [--compile-mode reduce-overhead|cudagraphs|step_graph | --no-compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from deepnets.engine import autocast, compiled, training_step  # noqa: E402
from deepnets.models import create_model  # noqa: E402
from deepnets.step_graph import WARMUP_STEPS, graphed_training_step  # noqa: E402

REPORT_MODELS = ("vgg11", "vgg16", "vgg19", "resnet18", "resnet101", "googlenet")
SHAPES = {"28x28x1": (1, 28, 28), "32x32x3": (3, 32, 32)}


def variants(device: torch.device, compile_mode: str | None) -> list[dict]:
    runs = [{"channels_last": False}, {"channels_last": True}]
    if device.type == "cuda":
        runs += [{"channels_last": True, "precision": "bf16"}]
        if compile_mode:  # without launch costs, bf16's smaller kernels may pay off at last
            runs += [{"channels_last": True, "compile": compile_mode}]
            runs += [{"channels_last": True, "precision": "bf16", "compile": compile_mode}]
    return runs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_steps(name, shape, width, batch, device, channels_last, precision="fp32", compile=None):
    """(network, train step, eval step) of one model on one random batch kept on the device;
    `compile` is a torch.compile mode ("default", "reduce-overhead": CUDA graphs), "cudagraphs"
    (CUDA graphs without Inductor, deepnets.engine.compiled), "step_graph" (the whole training
    step captured as one CUDA graph, deepnets.step_graph) or None."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=shape[0], stem="small", width=width)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    net = compiled(model, compile or "off")
    x = torch.randn(batch, *shape, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    optimizer, loss_fn = torch.optim.SGD(model.parameters(), lr=0.01), nn.CrossEntropyLoss()
    options = {"criterion": loss_fn, "precision": precision, "device": device}
    if compile == "step_graph":  # the whole step replayed as one CUDA graph, no compiling
        graphed = graphed_training_step(model, optimizer, **options)

        def train_step():
            graphed(x, y)
    else:

        def train_step():
            training_step(net, optimizer, x, y, **options)

    def eval_step():
        with torch.no_grad(), autocast(device, precision):
            net(x)

    return net, train_step, eval_step


def measure(
    name, shape, width, batch, steps, device, channels_last, precision="fp32", compile=None
):
    net, train_step, eval_step = build_steps(
        name, shape, width, batch, device, channels_last, precision, compile
    )
    rates = []
    for mode, step in (("train", train_step), ("eval", eval_step)):
        net.train(mode == "train")
        for _ in range(WARMUP_STEPS + 2):  # warm-up (and compiling, or capturing the step)
            step()
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        rates.append(steps * batch / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--models", default=",".join(REPORT_MODELS), help="comma-separated")
    parser.add_argument(
        "--compile-mode",
        default="default",
        help="torch.compile mode on a GPU: default, reduce-overhead (CUDA graphs), max-autotune, "
        "cudagraphs (CUDA graphs without Inductor) or step_graph (the whole step as one CUDA "
        "graph, no compiling)",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (minutes)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    width = args.width or (1.0 if device.type == "cuda" else 0.25)
    print(f"device {device}, width {width}, batch {args.batch}; images/s (train / eval)")
    runs = variants(device, None if args.no_compile else args.compile_mode)
    widths = [max(24, len(_label(v)) + 2) for v in runs]  # labels never run together
    header = "".join(f"{_label(v):>{w}}" for v, w in zip(runs, widths, strict=True))
    for shape_name, shape in SHAPES.items():
        print(f"\n{shape_name:<12}{header}")
        for name in args.models.split(","):
            cells = [measure(name, shape, width, args.batch, args.steps, device, **v) for v in runs]
            text = [f"{t:.0f} / {e:.0f}" for t, e in cells]
            print(f"{name:<12}" + "".join(f"{c:>{w}}" for c, w in zip(text, widths, strict=True)))


def _label(variant: dict) -> str:
    parts = ["channels_last" if variant["channels_last"] else "NCHW"]
    parts += [variant["precision"]] if "precision" in variant else []
    parts += [f"compile({variant['compile']})"] if variant.get("compile") else []
    return "+".join(parts)


if __name__ == "__main__":
    main()
