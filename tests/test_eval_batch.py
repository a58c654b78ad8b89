"""Evaluation batches: bigger on a GPU (launch-bound at the training batch), never a change in
what is counted."""

from __future__ import annotations

import pytest
import torch

from deepnets.config import DataConfig, TrainConfig
from deepnets.data import load_datasets, make_loader
from deepnets.engine import evaluate
from deepnets.models import create_model
from deepnets.worker import eval_batch_size

CUDA, CPU = torch.device("cuda"), torch.device("cpu")  # device objects need no GPU


@pytest.fixture(scope="module")
def digits():
    return load_datasets(DataConfig(dataset="digits", val_fraction=0.0), seed=0)


def test_evaluation_counts_the_same_at_any_batch_size(digits):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10, in_chans=1, stem="small", width=0.125)
    cfg = DataConfig(dataset="digits", val_fraction=0.0)
    results = [
        evaluate(
            model,
            make_loader(digits, digits.test, cfg, batch_size=b, train=False, seed=0),
            num_classes=10,
        )  # fmt: skip
        for b in (64, 1000)
    ]
    small, large = results
    assert torch.equal(small.confusion, large.confusion) and small.images == large.images
    assert large.loss == pytest.approx(small.loss, rel=1e-5)


@pytest.mark.parametrize(
    ("settings", "device", "expected"),
    [
        ({}, CPU, 64),  # larger batches evaluated slower on the CPU: the training batch
        ({}, CUDA, 1024),  # 16 x 64 at 28 px (2**24 // 28**2 = 21,399 pixels' worth)
        ({"data": {"dataset": "digits", "resolution": 224}}, CUDA, 334),  # 2**24 // 224**2
        ({"data": {"dataset": "digits", "resolution": 1024}}, CUDA, 64),  # never below training
        ({"global_batch_size": 128, "num_workers": 2}, CUDA, 1024),  # 16 x each worker's 64
        ({"eval_batch_size": 200}, CUDA, 200),  # asked for: as asked
        ({"eval_batch_size": 200}, CPU, 200),
    ],
)
def test_eval_batch_size_grows_on_a_gpu_only(settings, device, expected, digits):
    cfg = TrainConfig.model_validate({"data": {"dataset": "digits"}} | settings)
    assert eval_batch_size(cfg, digits, device) == expected
