"""The Ray Train worker: a thin, numbered shell around the plain-PyTorch engine.

[0] typed config  [1] data  [2] model and optimizer  [3] resume  [4] epochs  [5] test report
Every rank runs this; rank 0 alone writes files. Every rank calls `ray.train.report` once per
epoch (it is a barrier), and every reported number has been summed over all ranks first.
Classification and segmentation (`task`) share it: segmentation targets are masks whose 255
pixels are ignored, and its splits also report mean IoU and Dice.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.nn as nn

from deepnets.checkpoint import load_state, restore_training_state, save_state, training_state
from deepnets.config import TrainConfig
from deepnets.data import Datasets, load_datasets, make_loader
from deepnets.data.voc import IGNORE_INDEX
from deepnets.engine import compiled, cross_entropy, evaluate, train_one_epoch, unwrap
from deepnets.metrics import Counts, per_class_report, segmentation_report, split_metrics
from deepnets.models import create_configured_model
from deepnets.optim import build_optimizer, build_scheduler
from deepnets.quiet_exit import while_training
from deepnets.runlog import (
    TEST_REPORT_FILE,
    TensorBoardLog,
    Timeline,
    progress_line,
    write_history,
    write_json_atomically,
)
from deepnets.step_graph import graphed_training_step


def quiet_train_reports() -> None:
    """Ray Train logs each `ray.train.report` at INFO ("Reporting training result 3: ...") in
    every worker, a line per worker per epoch beside our own progress line. Its logger is named
    after its module's file, so it is found through the module (when that module is loaded)."""
    module = sys.modules.get("ray.train.v2._internal.execution.context")
    if module is not None:
        logging.getLogger(module.__file__).setLevel(logging.WARNING)


def configure_threads(cfg: TrainConfig) -> dict[str, Any]:
    """Size torch's intra-op pool to the CPUs this worker was given, and say what was found.

    Ray sets OMP_NUM_THREADS to the worker's CPUs and torch, which sizes its pool lazily,
    follows it (measured: bench/overhead.py and bench/startup.py print what a worker sees).
    Setting it here keeps that true on any launch path, e.g. a user's own OMP_NUM_THREADS."""
    found = {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "torch_before": torch.get_num_threads(),
    }
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker or 1)))
    return found | {"torch": torch.get_num_threads()}


def build_model(cfg: TrainConfig, data: Datasets, device: torch.device) -> nn.Module:
    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts)
    model = create_configured_model(
        cfg.model.name, cfg.model.options, num_classes=data.num_classes, in_chans=data.in_chans
    )
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = ray.train.torch.prepare_model(model)
    # Compiled around DDP, so its gradient hooks still overlap communication with backward.
    return compiled(model, cfg.compile)


def eval_batch_size(cfg: TrainConfig, data: Datasets, device: torch.device) -> int:
    """Images per evaluation batch. On a GPU a forward pass at the training batch (64) is
    bound by launching kernels, so evaluation takes up to 16x as many images at once, fewer at
    high resolution (at most 2**24 pixels a batch, to bound activation memory: 1,024 at 32 px,
    334 at 224 px). Eval-mode BatchNorm makes the results independent of the batch size."""
    if cfg.eval_batch_size is not None:
        return cfg.eval_batch_size
    batch = cfg.batch_size_per_worker
    if device.type != "cuda" or cfg.task == "segmentation":  # masks: sizes vary, memory too
        return batch
    side = cfg.data.resolution or data.native_size
    return max(batch, min(16 * batch, 2**24 // (side * side)))


def weights_finite(model: nn.Module) -> bool:
    """Whether every weight is still a finite number, on every rank. A NaN or infinite weight
    stays so whatever the optimizer does (any update of NaN is NaN), so a run that has one has
    diverged for good: its later epochs would only spend time (GPU places, in a sweep)."""
    finite = torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all().int()
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    return bool(finite.item())


def epoch_row(epoch, lr, train: Counts, seconds: float, val: dict, finite: bool) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train.loss,
        "train_accuracy": train.accuracy,
        "nonfinite_steps": train.nonfinite_steps,
        "weights_finite": finite,
        "epoch_seconds": seconds,
        "images_per_second": train.images / seconds if seconds > 0 else 0.0,
    } | val


def sync_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's BatchNorm statistics before evaluating: DDP copies them at the
    start of each training forward, then each rank updates its own from its own batch."""
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        for buffer in unwrap(model).buffers():
            torch.distributed.broadcast(buffer, src=0)


def save_checkpoint(state: dict, metrics: dict) -> None:
    """Report `metrics` with a checkpoint of `state` (rank 0's call carries the files)."""
    with tempfile.TemporaryDirectory(prefix="deepnets-ckpt-") as tmp:
        save_state(Path(tmp), state)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def rank_nodes() -> list[str]:
    """The Ray node id of every rank, gathered to all (where the run's workers really ran)."""
    node = ray.get_runtime_context().get_node_id()
    if not (torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
        return [node]
    nodes: list[str] = [""] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(nodes, node)
    return nodes


def test_report(cfg: TrainConfig, data: Datasets, test: Counts, threads: dict, nodes: list) -> dict:
    device = ray.train.torch.get_device()
    report = split_metrics("test", test, data.classes, cfg.task) | {"test_images": test.images}
    if cfg.task == "segmentation":
        report |= {
            "test_pixels": test.count,  # labelled ones: the padding and void outlines are not
            "segmentation": segmentation_report(test.confusion, data.classes),
        }
    return report | {
        "task": cfg.task,
        "per_class": per_class_report(test.confusion, data.classes),
        "world_size": len(nodes),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dataset_source": data.source,
        "train_images": len(data.train),
        "val_images": len(data.val) if data.val is not None else 0,
        "resolution": cfg.data.resolution or data.native_size,
        "threads": threads,
        "nodes": nodes,  # the Ray node id of each rank, in rank order
    }


@while_training()  # stopped mid-step (ASHA, an abort), the process ends quietly
def train_loop_per_worker(config: dict[str, Any]) -> None:
    timeline = Timeline()
    cfg = TrainConfig.model_validate(config)  # [0] the one place the dict becomes typed
    quiet_train_reports()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    threads, nodes = configure_threads(cfg), rank_nodes()
    device = ray.train.torch.get_device()

    # [1] data: tensor-resident, sharded by rank
    data = load_datasets(cfg.data, cfg.seed)

    def loader(split, train):
        batch = cfg.batch_size_per_worker if train else eval_batch_size(cfg, data, device)
        return make_loader(
            data, split, cfg.data, batch_size=batch, train=train, seed=cfg.seed, rank=rank,
            world_size=world, device=device, channels_last=cfg.channels_last,
        )  # fmt: skip

    train_batches = loader(data.train, True)
    val_batches = loader(data.val, False) if data.val is not None else None
    test_batches = loader(data.test, False)
    timeline.mark("data_ready")

    # [2] model, optimizer, schedule
    model = build_model(cfg, data, device)
    timeline.mark("model_built")  # on a GPU: CUDA's context and the first copy to the device
    torch.manual_seed(cfg.seed * 1000 + rank)  # dropout differs per rank, as it should
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    timeline.mark("optimizer_ready")  # the first optimizer imports torch._dynamo
    scheduler = build_scheduler(
        optimizer, cfg.schedule, epochs=cfg.epochs, steps_per_epoch=len(train_batches)
    )
    use_scaler = cfg.precision == "fp16" and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    ignore = IGNORE_INDEX if cfg.task == "segmentation" else None
    criterion = cross_entropy(ignore, label_smoothing=cfg.label_smoothing)
    step = None  # the eager step; "step_graph" captures it once and replays it every epoch
    if cfg.compile == "step_graph":
        step = graphed_training_step(
            model, optimizer, criterion=criterion, aux_weight=cfg.aux_loss_weight,
            precision=cfg.precision, device=device,
        )  # fmt: skip

    def evaluated(batches, prefix: str) -> tuple[Counts, dict]:
        counts = evaluate(
            model, batches, num_classes=data.num_classes, precision=cfg.precision,
            device=device, ignore_index=ignore,
        ).reduced()  # fmt: skip
        return counts, split_metrics(prefix, counts, data.classes, cfg.task)

    # [3] resume from the last checkpoint of this run, if there is one
    done, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = load_state(directory)
        done, history = restore_training_state(state, unwrap(model), optimizer, scheduler, scaler)
    run_dir = cfg.run_dir
    tb = TensorBoardLog(run_dir, first_epoch=done + 1) if rank == 0 else None
    timeline.mark("model_ready")

    # [4] epochs
    for epoch in range(done + 1, cfg.epochs + 1):
        train_batches.set_epoch(epoch)
        timeline.mark("first_epoch_started")
        lr = optimizer.param_groups[0]["lr"]
        counts, seconds = train_one_epoch(
            model, train_batches, optimizer, criterion=criterion, scheduler=scheduler,
            aux_weight=cfg.aux_loss_weight, precision=cfg.precision, scaler=scaler,
            device=device, ignore_index=ignore, step=step,
        )  # fmt: skip
        sync_buffers(model)
        val = evaluated(val_batches, "val")[1] if val_batches is not None else {}
        finite = weights_finite(model)
        row = epoch_row(epoch, lr, counts.reduced(), seconds, val, finite)
        last = epoch == cfg.epochs
        tested = last and finite  # NaN weights would only score chance
        if tested:  # [5] the held-out test set, once, with the final weights
            test, test_row = evaluated(test_batches, "test")
            row |= test_row
        history.append(row)
        if rank == 0:
            if epoch == done + 1:  # this attempt's start-up, once its first epoch is done
                timeline.save(run_dir)
            # Straight to the process's stdout: Ray Train's patched print would show it twice.
            print(progress_line(row, cfg.epochs), file=sys.__stdout__, flush=True)
            write_history(run_dir, history)
            tb.log(row)
            if tested:
                write_json_atomically(
                    run_dir / TEST_REPORT_FILE, test_report(cfg, data, test, threads, nodes)
                )
        if rank == 0 and (last or epoch % cfg.checkpoint.every_epochs == 0):
            state = training_state(unwrap(model), optimizer, scheduler, scaler, epoch, history)
            save_checkpoint(state, row)
        else:
            ray.train.report(row, checkpoint=None)
        if not finite:  # diverged for good: the report calls it so from the epochs so far
            if rank == 0:
                note = f"epoch {epoch}: weights are no longer finite; stopping"
                print(note, file=sys.__stdout__, flush=True)
            break
    if tb is not None:
        tb.close()
