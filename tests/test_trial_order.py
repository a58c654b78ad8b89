"""Longest trials first under FIFO (only when the last one ends can change), and the heaviest
report space's sweep started first under `reproduce.py --together`."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from deepnets.sweep_plan import plan_sweep, trial_rows
from deepnets.trial_order import estimated_cost, longest_first

ROOT = Path(__file__).resolve().parent.parent


def _config(model: str, epochs: int = 10, resolution: int | None = None, dataset="cifar10"):
    data = {"dataset": dataset, "resolution": resolution}
    return {"model": {"name": model}, "epochs": epochs, "data": data}


CONFIGS = {
    "resnet18": _config("resnet18"),
    "resnet18-lr0.01": _config("resnet18"),
    "resnet101": _config("resnet101"),
    "resnet18-e20": _config("resnet18", epochs=20),
    "vgg16": _config("vgg16"),
}


def test_fifo_starts_the_longest_first_and_keeps_the_space_order_among_equals():
    assert longest_first(CONFIGS, "fifo") == [
        "resnet101",
        "resnet18-e20",
        "resnet18",
        "resnet18-lr0.01",
        "vgg16",
    ]


def test_asha_keeps_the_space_order():
    assert longest_first(CONFIGS, "asha") == list(CONFIGS)


def test_cost_counts_epochs_model_and_pixels_and_unknown_models_as_resnet18():
    resnet18 = estimated_cost(CONFIGS["resnet18"])  # CIFAR-10 at its native 32 px
    assert estimated_cost(_config("resnet18", epochs=20)) == 2 * resnet18
    assert estimated_cost(_config("resnet18", resolution=64)) == 4 * resnet18
    assert estimated_cost(_config("resnet18", resolution=16)) == resnet18 / 4
    assert estimated_cost(_config("resnet18", dataset="mnist")) == resnet18 * 28**2 / 32**2
    assert estimated_cost(_config("timm/some_net")) == resnet18
    assert estimated_cost(_config("resnet101")) == 4.9 * resnet18
    assert estimated_cost({"epochs": 2}) == 2  # defaults absent from a space's tree: no crash


def _reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "jobs" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_together_starts_the_resnet_spaces_first(tmp_path):
    """The two spaces holding ResNet101 rows carry the most training: their sweeps start first
    and (FIFO) start ResNet101 first. A space that does not plan keeps its place."""
    reproduce = _reproduce()
    spaces, storage = reproduce.SPACES, str(tmp_path)
    args = argparse.Namespace(spaces=spaces, fidelity="full_graphed", storage=storage)
    order = reproduce.heaviest_first(args)
    assert sorted(order) == sorted(reproduce.SPACES)
    assert set(order[:2]) == {"report_mnist_resnet", "report_cifar10_resnet"}
    args.fidelity = "no_such_fidelity"
    assert reproduce.heaviest_first(args) == reproduce.SPACES


def test_ordering_the_spaces_does_not_import_torch():
    """The --together driver orders the spaces before any sweep starts: reading them must not
    import torch (validating their models would), which costs seconds."""
    code = (
        "import argparse, sys; sys.path.insert(0, 'jobs'); import reproduce; "
        "args = argparse.Namespace(spaces=reproduce.SPACES, fidelity='full', storage='/tmp'); "
        "reproduce.heaviest_first(args); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(("fidelity", "first"), [("full", "resnet101"), ("proxy", "resnet18")])
def test_dry_run_lists_trials_in_the_order_tune_starts_them(fidelity, first, tmp_path):
    """`full` is FIFO: ResNet101 first; `proxy` is ASHA: the space's order (resnet18 first)."""
    path = ROOT / "tune_spaces" / "report_mnist_resnet.yaml"
    plan = plan_sweep(path, fidelity=fidelity, storage=str(tmp_path), name=None)
    rows = trial_rows(plan)
    assert rows[0]["variant"] == first
    assert [row["variant"] for row in rows] == longest_first(plan.configs, plan.scheduler.type)
