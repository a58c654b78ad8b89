"""One training epoch and one evaluation pass: plain PyTorch, no Ray, testable on a CPU.

Both return `Counts` of this rank only; the caller reduces them across ranks. Targets are one
label per image (classification) or per pixel (segmentation, where `ignore_index` marks pixels
that count nowhere: not in the loss, the accuracy or the confusion matrix).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable

import torch
import torch.nn as nn

from deepnets.metrics import Counts, confusion_matrix

PRECISION_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
NO_IGNORE = -100  # CrossEntropyLoss's default ignore_index: no class id is ever negative


def cross_entropy(ignore_index: int | None, **options) -> nn.CrossEntropyLoss:
    """The loss, ignoring targets equal to `ignore_index` (None: none are ignored)."""
    ignored = NO_IGNORE if ignore_index is None else ignore_index
    return nn.CrossEntropyLoss(ignore_index=ignored, **options)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside torch.compile's wrapper and DistributedDataParallel, whose
    parameter names (no `_orig_mod.` or `module.` prefix) checkpoints use."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def autocast(device: torch.device, precision: str):
    dtype = PRECISION_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def compute_loss(
    outputs: torch.Tensor | tuple[torch.Tensor, ...],
    targets: torch.Tensor,
    criterion: nn.Module,
    aux_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, main logits). Auxiliary heads (GoogLeNet) add `aux_weight * sum(aux losses)`:
    under DDP every head must take part in the loss, or the gradient reduction never finishes."""
    if isinstance(outputs, tuple | list):
        logits, *aux = outputs
        loss = criterion(logits, targets) + aux_weight * sum(criterion(a, targets) for a in aux)
        return loss, logits
    return criterion(outputs, targets), outputs


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    *,
    criterion: nn.Module,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    aux_weight: float = 0.3,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    device: torch.device | str = "cpu",
    ignore_index: int | None = None,
) -> tuple[Counts, float]:
    """Train over `batches` once; returns this rank's counts and the seconds it took."""
    device = torch.device(device)
    model.train()
    counts = Counts()
    start = time.perf_counter()
    for images, targets in batches:
        with autocast(device, precision):
            loss, logits = compute_loss(model(images), targets, criterion, aux_weight)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        _accumulate(counts, loss.detach(), logits.detach(), targets, ignore_index)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return counts, time.perf_counter() - start


def _accumulate(counts: Counts, loss, logits, targets, ignore_index: int | None) -> None:
    # One transfer from the GPU per step (loss, hits and, for segmentation, labelled pixels
    # together); cheap next to a step, and it lets us count non-finite losses, which is how a
    # diverged run is recognised later.
    hits = logits.argmax(dim=1) == targets
    stats = [loss.double()]
    if ignore_index is None:
        stats.append(hits.sum().double())
    else:
        labelled = targets != ignore_index
        stats += [(hits & labelled).sum().double(), labelled.sum().double()]
    value, correct, *labelled_count = torch.stack(stats).tolist()
    n = int(labelled_count[0]) if labelled_count else targets.numel()
    if math.isfinite(value):  # the mean over the n labelled targets
        counts.loss_sum += value * n
    else:
        counts.nonfinite_steps += 1
        counts.loss_sum = math.nan
    counts.correct += int(correct)
    counts.count += n
    counts.images += targets.shape[0]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_classes: int,
    precision: str = "fp32",
    device: torch.device | str = "cpu",
    ignore_index: int | None = None,
) -> Counts:
    """Loss, accuracy and confusion matrix of this rank's share of a split (eval mode)."""
    device = torch.device(device)
    net = unwrap(model)  # no DDP wrapper: evaluation must not take part in collectives
    net.eval()
    criterion = cross_entropy(ignore_index, reduction="sum")
    counts = Counts(confusion=torch.zeros(num_classes, num_classes, dtype=torch.int64))
    for images, targets in batches:
        with autocast(device, precision):
            logits = net(images)
        loss = criterion(logits.float(), targets).item()
        counts.loss_sum += loss if math.isfinite(loss) else math.nan
        batch = confusion_matrix(logits.argmax(dim=1), targets, num_classes, ignore_index).cpu()
        counts.confusion += batch
        counts.correct += int(batch.trace())  # correct and counted: read off the matrix
        counts.count += int(batch.sum())
        counts.images += targets.shape[0]
    return counts
