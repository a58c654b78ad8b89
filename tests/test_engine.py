"""The plain-PyTorch engine, metrics, schedules and checkpoints, without Ray."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from deepnets.checkpoint import load_state, restore_training_state, save_state, training_state
from deepnets.config import DataConfig, OptimConfig, ScheduleConfig
from deepnets.data import load_datasets, make_loader
from deepnets.engine import compiled, compute_loss, evaluate, train_one_epoch
from deepnets.metrics import Counts, confusion_matrix, per_class_report
from deepnets.models import create_model
from deepnets.optim import build_optimizer, build_scheduler


def _digits(batch=32):
    cfg = DataConfig(dataset="digits", train_subset=600, val_fraction=0.0)
    data = load_datasets(cfg, seed=0)
    train = make_loader(data, data.train, cfg, batch_size=batch, train=True, seed=0)
    test = make_loader(data, data.test, cfg, batch_size=batch, train=False, seed=0)
    return data, train, test


def test_training_lowers_loss_and_evaluate_counts_everything():
    torch.manual_seed(0)
    data, train, test = _digits()
    model = create_model("resnet18", num_classes=10, in_chans=1, stem="small", width=0.25)
    optimizer = build_optimizer(model.parameters(), OptimConfig(name="adam", lr=3e-3))
    criterion = nn.CrossEntropyLoss()
    losses = []
    for epoch in range(3):
        train.set_epoch(epoch)
        counts, seconds = train_one_epoch(model, train, optimizer, criterion=criterion)
        losses.append(counts.loss)
        assert seconds > 0 and counts.count == len(train) * 32
    assert losses[-1] < losses[0] * 0.7
    result = evaluate(model, test, num_classes=10)
    assert result.count == len(data.test) == int(result.confusion.sum())
    assert result.correct == int(result.confusion.trace())
    assert result.accuracy > 0.5


def test_cudagraphs_compiled_model_trains_like_the_eager_one(monkeypatch):
    """compile=cudagraphs goes through torch.compile's tracing (Dynamo, AOT Autograd) on any
    device; on the CPU the graphs then run as traced (no CUDA graphs): same steps as eager."""
    data, train, _ = _digits()
    asked, real_compile = [], torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda *a, **kw: asked.append(kw) or real_compile(*a, **kw)
    )
    finals = []
    for how in ("off", "cudagraphs"):
        torch.manual_seed(0)
        model = create_model("resnet18", num_classes=10, in_chans=1, stem="small", width=0.125)
        optimizer = build_optimizer(model.parameters(), OptimConfig(name="adam", lr=3e-3))
        net = compiled(model, how)
        assert hasattr(net, "_orig_mod") == (how != "off")  # torch.compile's wrapper
        train.set_epoch(0)
        counts, _ = train_one_epoch(net, train, optimizer, criterion=nn.CrossEntropyLoss())
        finals.append((counts.loss, torch.cat([p.flatten() for p in model.parameters()])))
    assert asked == [{"backend": "cudagraphs"}]  # Dynamo's CUDA-graph backend, not Inductor
    (eager_loss, eager_weights), (graph_loss, graph_weights) = finals
    assert graph_loss == pytest.approx(eager_loss, rel=1e-3)
    assert torch.allclose(graph_weights, eager_weights, atol=1e-3)


def test_aux_heads_are_weighted_into_the_loss():
    logits = torch.randn(4, 10)
    aux1, aux2 = torch.randn(4, 10), torch.randn(4, 10)
    targets = torch.randint(0, 10, (4,))
    ce = nn.CrossEntropyLoss()
    loss, main = compute_loss((logits, aux1, aux2), targets, ce, aux_weight=0.3)
    expected = ce(logits, targets) + 0.3 * (ce(aux1, targets) + ce(aux2, targets))
    assert torch.allclose(loss, expected) and main is logits


def test_nonfinite_loss_is_counted_not_hidden():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e30)
    batches = [(torch.randn(8, 4) * 1e30, torch.randint(0, 2, (8,))) for _ in range(4)]
    counts, _ = train_one_epoch(model, batches, optimizer, criterion=nn.CrossEntropyLoss())
    assert counts.nonfinite_steps > 0 and math.isnan(counts.loss)


def test_confusion_matrix_leaves_out_ignored_and_unknown_targets():
    preds = torch.tensor([0, 1, 1, 0, 2, 2])
    targets = torch.tensor([0, 1, 255, -100, 1, 7])  # 255, -100 and 7 are no class of three
    expected = [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert confusion_matrix(preds, targets, 3).tolist() == expected
    assert confusion_matrix(preds, targets, 3, ignore_index=255).tolist() == expected


def test_an_epoch_without_batches_counts_nothing():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    counts, _ = train_one_epoch(model, [], optimizer, criterion=nn.CrossEntropyLoss())
    assert (counts.count, counts.images, counts.nonfinite_steps) == (0, 0, 0)
    assert math.isnan(counts.loss)


@pytest.mark.parametrize("case", ["noisy", "class never predicted", "class never present"])
def test_per_class_report_equals_sklearns_classification_report(case):
    from sklearn.metrics import classification_report

    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 500)
    pred = np.where(rng.random(500) < 0.7, true, rng.integers(0, 4, 500))
    if case == "class never predicted":
        pred[pred == 2] = 1
    if case == "class never present":
        true[true == 3] = 0
    names = ["a", "b", "c", "d"]
    ours = per_class_report(
        confusion_matrix(torch.as_tensor(pred), torch.as_tensor(true), 4), names
    )
    theirs = classification_report(
        true, pred, labels=range(4), target_names=names, output_dict=True, zero_division=0
    )
    assert set(ours) - {"confusion_matrix", "class_names"} == set(theirs)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value), key


@pytest.mark.parametrize("name", ["none", "cosine", "step", "onecycle"])
def test_schedules_start_warm_and_stay_positive(name):
    model = nn.Linear(2, 2)
    optimizer = build_optimizer(model.parameters(), OptimConfig(name="sgd", lr=0.1))
    cfg = ScheduleConfig(name=name, warmup_epochs=1, step_epochs=1)
    scheduler = build_scheduler(optimizer, cfg, epochs=3, steps_per_epoch=10)
    lrs = []
    for _ in range(30):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert all(lr > 0 for lr in lrs) and max(lrs) <= 0.1 + 1e-9
    assert lrs[0] < lrs[9]  # warming up
    if name in ("cosine", "onecycle", "step"):
        assert lrs[-1] < 0.05


def test_checkpoint_round_trip_restores_everything(tmp_path):
    model = nn.Linear(3, 2)
    optimizer = build_optimizer(model.parameters(), OptimConfig(name="adam"))
    scheduler = build_scheduler(
        optimizer, ScheduleConfig(name="cosine"), epochs=2, steps_per_epoch=5
    )
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    history = [{"epoch": 1, "val_accuracy": 0.5}]
    save_state(tmp_path, training_state(model, optimizer, scheduler, None, 1, history))
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary file left
    fresh = nn.Linear(3, 2)
    opt2 = build_optimizer(fresh.parameters(), OptimConfig(name="adam"))
    sched2 = build_scheduler(opt2, ScheduleConfig(name="cosine"), epochs=2, steps_per_epoch=5)
    epoch, restored = restore_training_state(load_state(tmp_path), fresh, opt2, sched2, None)
    assert epoch == 1 and restored == history
    assert torch.equal(fresh.weight, model.weight)
    assert sched2.last_epoch == scheduler.last_epoch
    assert opt2.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]


def _reduce_on_rank(rank: int, world: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    local = Counts(loss_sum=1.5 * (rank + 1), correct=rank + 1, count=10 * (rank + 1))
    local.confusion = torch.full((2, 2), rank + 1, dtype=torch.int64)
    total = local.reduced()
    out.put((rank, total.loss_sum, total.correct, total.count, total.confusion.tolist()))
    dist.destroy_process_group()


def test_counts_are_summed_across_real_processes():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_reduce_on_rank, args=(r, 2, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    for _, loss_sum, correct, count, confusion in results:
        assert (loss_sum, correct, count) == (4.5, 3, 30)
        assert confusion == [[3, 3], [3, 3]]


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
def test_resuming_with_more_epochs_redraws_the_schedule(tmp_path, name):
    def build(epochs):
        model = nn.Linear(2, 2)
        optimizer = build_optimizer(model.parameters(), OptimConfig(name="sgd", lr=0.1))
        cfg = ScheduleConfig(name=name)
        return model, optimizer, build_scheduler(optimizer, cfg, epochs=epochs, steps_per_epoch=5)

    model, optimizer, scheduler = build(2)
    for _ in range(10):  # two epochs of five steps
        optimizer.step()
        scheduler.step()
    save_state(tmp_path, training_state(model, optimizer, scheduler, None, 2, []))
    model, optimizer, longer = build(4)
    epoch, _ = restore_training_state(load_state(tmp_path), model, optimizer, longer, None)
    assert epoch == 2 and longer.last_epoch == 10
    _, reference_opt, reference = build(4)
    for _ in range(10):
        reference_opt.step()
        reference.step()
    assert longer.get_last_lr() == pytest.approx(reference.get_last_lr())
    for _ in range(10):  # the remaining two epochs run without one-cycle's step-limit error
        optimizer.step()
        longer.step()
