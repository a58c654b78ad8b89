"""compile=step_graph: the whole training step captured once as a CUDA graph and replayed.

Off a GPU the graphed step runs eagerly, and must train exactly as the plain loop does (what
the CPU can check). The tests marked `gpu` capture for real; they run where CUDA is
(`pytest -m gpu` on a GPU machine) and are skipped here.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from deepnets.checkpoint import restore_training_state, training_state
from deepnets.config import DataConfig, OptimConfig, ScheduleConfig
from deepnets.data import load_datasets, make_loader
from deepnets.engine import train_one_epoch, training_step
from deepnets.models import create_model
from deepnets.optim import build_optimizer, build_scheduler
from deepnets.runlog import TEST_REPORT_FILE
from deepnets.step_graph import (
    WARMUP_STEPS,
    GraphedStep,
    graphed_training_step,
    set_capturable,
)

ROOT = Path(__file__).resolve().parent.parent
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ON_A_GPU = [pytest.mark.gpu, needs_cuda]


def _resnet(device="cpu", name="resnet18", in_chans=1):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=in_chans, stem="small", width=0.125)
    return model.to(device)


def _two_epochs(graphed: bool, optimizer_name: str):
    cfg = DataConfig(dataset="digits", train_subset=600, val_fraction=0.0)
    data = load_datasets(cfg, seed=0)
    batches = make_loader(data, data.train, cfg, batch_size=32, train=True, seed=0)
    model = _resnet()
    optimizer = build_optimizer(model.parameters(), OptimConfig(name=optimizer_name, lr=3e-3))
    criterion = nn.CrossEntropyLoss()
    step = graphed_training_step(model, optimizer, criterion=criterion) if graphed else None
    losses = []
    for epoch in range(2):
        batches.set_epoch(epoch)
        counts, _ = train_one_epoch(model, batches, optimizer, criterion=criterion, step=step)
        losses.append(counts.loss)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return losses, weights, step, 2 * len(batches)


@pytest.mark.parametrize("optimizer_name", ["adam", "sgd"])
def test_graphed_step_trains_exactly_as_the_eager_loop_off_a_gpu(optimizer_name):
    eager_losses, eager_weights, _, _ = _two_epochs(False, optimizer_name)
    losses, weights, step, steps = _two_epochs(True, optimizer_name)
    assert step.graph is None and step.eager_steps == steps  # nothing to capture on a CPU
    assert losses == eager_losses
    assert torch.equal(weights, eager_weights)
    assert losses[1] < losses[0]


def test_set_capturable_moves_step_counters_both_ways_and_leaves_sgd_alone():
    model = _resnet()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    adam.step()
    for on in (True, False):
        set_capturable(adam, on)
        assert all(group["capturable"] is on for group in adam.param_groups)
        steps = [adam.state[p]["step"] for p in model.parameters()]
        assert all(s.dtype == torch.float32 and s.item() == 1.0 for s in steps)
    adam.step()  # the eager form runs again on the CPU
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    set_capturable(sgd, True)
    assert "capturable" not in sgd.param_groups[0]  # no step counter, nothing to switch


def test_resuming_a_graphed_runs_checkpoint_steps_eagerly_on_a_cpu():
    """A step_graph run on a GPU saves capturable Adam groups; resumed on a CPU (or without
    step_graph) the optimizer must step eagerly there."""
    model = _resnet()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    adam.step()
    set_capturable(adam, True)  # as after a capture (on a CPU only the flags can be shown)
    scheduler = build_scheduler(adam, ScheduleConfig(name="none"), epochs=1, steps_per_epoch=1)
    state = training_state(model, adam, scheduler, None, 1, [])
    fresh = _resnet()
    again = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    restore_training_state(state, fresh, again, scheduler, None)
    assert not any(group["capturable"] for group in again.param_groups)
    fresh(torch.randn(4, 1, 8, 8)).sum().backward()
    again.step()  # would fail with capturable groups on a CPU


@pytest.fixture
def deterministic_cudnn(monkeypatch):
    """The same convolution algorithms eagerly and in the graph, so results compare closely."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


def _cuda_steps(graphed: bool, optimizer_name: str, batches):
    """Train a fresh resnet18 on `batches` in order, graphed or eagerly: (losses, weights,
    the step)."""
    model = _resnet("cuda", in_chans=3).to(memory_format=torch.channels_last)
    momentum = 0.0 if optimizer_name in ("adam", "adamw") else 0.9
    optimizer = build_optimizer(
        model.parameters(), OptimConfig(name=optimizer_name, lr=1e-3, momentum=momentum)
    )
    options = {"criterion": nn.CrossEntropyLoss(), "device": "cuda"}
    if graphed:
        step = graphed_training_step(model, optimizer, **options)
    else:
        step = _eager_steps_as_graphed(model, optimizer, options)
    losses = [step(x, y)[0].item() for x, y in batches]
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    return losses, weights, step


def _eager_steps_as_graphed(model, optimizer, options):
    """The eager reference for a graphed run: the same steps, with the optimizer switched to
    `capturable` where the graph switches it (at capture, after the warm-up steps).

    capturable Adam computes its bias corrections as float32 tensors on the GPU, not as Python
    floats, and Adam divides by sqrt(v): for weights whose gradients are near zero a rounding
    difference flips a whole step. On this test's ResNet a 1e-6 change of Adam's lr moves
    weights by up to 3e-3 after 8 steps, where SGD's move by 1e-6 (measured on the CPU); the
    first GPU run of these tests, comparing against Adam left as built, failed by 1e-4."""
    steps_done = itertools.count()

    def step(images, targets):
        if next(steps_done) == WARMUP_STEPS:
            set_capturable(optimizer, True)
        return training_step(model, optimizer, images, targets, **options)

    return step


def _batches(n=8, batch=16):
    torch.manual_seed(1)
    shape = (batch, 3, 32, 32)
    return [
        (
            torch.randn(shape, device="cuda").contiguous(memory_format=torch.channels_last),
            torch.randint(0, 10, (batch,), device="cuda"),
        )
        for _ in range(n)
    ]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("optimizer_name", ["sgd", "adam", "adamw", "rmsprop"])
def test_replayed_graph_trains_as_the_eager_steps_do(optimizer_name, deterministic_cudnn):
    batches = _batches()
    eager_losses, eager_weights, _ = _cuda_steps(False, optimizer_name, batches)
    losses, weights, step = _cuda_steps(True, optimizer_name, batches)
    assert step.graph is not None and step.eager_steps == WARMUP_STEPS  # the rest replayed
    assert losses == pytest.approx(eager_losses, rel=1e-4, abs=1e-5)
    assert torch.allclose(weights, eager_weights, rtol=1e-3, atol=1e-5)


@pytest.mark.gpu
@needs_cuda
def test_a_batch_of_another_shape_runs_eagerly_between_replays(deterministic_cudnn):
    """A smaller batch after capture trains eagerly, the next full one replays again, and the
    weights end where all-eager training puts them."""
    full = _batches()
    small = [(x[:5], y[:5]) for x, y in full[:1]]
    batches = full[:6] + small + full[6:]
    eager_losses, eager_weights, _ = _cuda_steps(False, "adam", batches)
    losses, weights, step = _cuda_steps(True, "adam", batches)
    assert step.graph is not None and step.eager_steps == WARMUP_STEPS + 1
    assert losses == pytest.approx(eager_losses, rel=1e-4, abs=1e-5)
    assert torch.allclose(weights, eager_weights, rtol=1e-3, atol=1e-5)


@pytest.mark.gpu
@needs_cuda
def test_googlenet_aux_heads_train_under_bf16_in_a_graph():
    """GoogLeNet's (logits, aux, aux) outputs and bf16 autocast, captured: one batch seen 30
    times is learnt (a step that did not update the weights would leave its loss where it
    was after the first steps' transient)."""
    torch.manual_seed(0)
    model = create_model("googlenet", num_classes=10, in_chans=3, stem="small", width=0.25)
    model = model.cuda().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = graphed_training_step(
        model, optimizer, criterion=nn.CrossEntropyLoss(), precision="bf16", device="cuda"
    )
    (x, y), *_ = _batches(n=1)
    losses = [step(x, y)[0].item() for _ in range(30)]
    assert step.graph is not None and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[5]


@pytest.mark.gpu
@needs_cuda
def test_a_step_that_cannot_be_captured_trains_eagerly_and_says_so(capsys):
    """A step that reads a value back (here the loss, each step) cannot be captured: one line
    on stderr, the optimizer back in its eager form, and training goes on."""
    model = _resnet("cuda", in_chans=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    options = {"criterion": nn.CrossEntropyLoss(), "device": "cuda"}

    def reads_back(x, y):
        loss, logits = training_step(model, optimizer, x, y, **options)
        float(loss)  # a GPU-to-CPU wait: not allowed while capturing
        return loss, logits

    step = GraphedStep(reads_back, optimizer)
    batches = _batches()
    losses = [step(x, y)[0].item() for x, y in batches]
    assert step.graph is None and step.failed and step.eager_steps == len(batches)
    assert not any(group["capturable"] for group in optimizer.param_groups)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert "capture failed, training eagerly" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=ON_A_GPU)])
def test_deepnets_train_with_step_graph(device, tmp_path, request):
    """The whole path: Ray Train, the worker's graphed step (eager on a CPU), two epochs. On
    the CPU it joins the session's Ray head; on a GPU it starts its own Ray, which sees it."""
    gpu = ["--gpu"] if device == "gpu" else []
    env = os.environ if gpu else request.getfixturevalue("ray_head").env
    result = subprocess.run(
        [sys.executable, str(ROOT / "jobs/train.py"), *gpu, "--compile", "step_graph",
         "--dataset", "digits", "--model", "resnet18", "--width", "0.25", "--stem", "small",
         "--epochs", "2", "schedule.name=none", "--output-dir", str(tmp_path / "runs")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "runs/resnet18-digits-s0" / TEST_REPORT_FILE).read_text())
    assert (report["device"] != "cpu") == (device == "gpu")
    assert report["test_accuracy"] > 0.8  # 91% on the 2-core CPU
