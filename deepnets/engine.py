"""One training epoch and one evaluation pass: plain PyTorch, no Ray, testable on a CPU.

Both return `Counts` of this rank only; the caller reduces them across ranks. Targets are one
label per image (classification) or per pixel (segmentation, where `ignore_index` marks pixels
that count nowhere: not in the loss, the accuracy or the confusion matrix).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable

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


def compiled(model: nn.Module, how: str) -> nn.Module:
    """The model as a config's `compile` asks: "off", a torch.compile mode, or "cudagraphs":
    AOT Autograd's forward and backward graphs replayed as CUDA graphs without Inductor's code
    generation (no kernel fusion), so less to compile than the 17-22 s per graph Inductor took
    on a GPU (not yet timed there). Off a GPU it skips the CUDA graphs and runs the traced
    graphs as they are. "step_graph" leaves the model as it is: the training loop graphs the
    whole step instead (`deepnets.step_graph`)."""
    if how in ("off", "step_graph"):
        return model
    if how == "cudagraphs":
        return torch.compile(model, backend="cudagraphs")
    return torch.compile(model, mode=how)


def autocast(device: torch.device, precision: str, cache: bool = True):
    """Mixed precision as asked; `cache=False` for CUDA-graph capture, which must not keep
    autocast's copies of the weights from one step to the next."""
    dtype = PRECISION_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


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


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    criterion: nn.Module,
    aux_weight: float = 0.3,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    device: torch.device | str = "cpu",
    autocast_cache: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on one batch: (loss, main logits)."""
    with autocast(torch.device(device), precision, cache=autocast_cache):
        loss, logits = compute_loss(model(images), targets, criterion, aux_weight)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss, logits


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
    step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> tuple[Counts, float]:
    """Train over `batches` once; returns this rank's counts and the seconds it took.
    `step` replaces the eager `training_step` (a `GraphedStep` around it, kept across epochs)."""
    device = torch.device(device)
    model.train()
    step = step or functools.partial(
        training_step, model, optimizer, criterion=criterion, aux_weight=aux_weight,
        precision=precision, scaler=scaler, device=device,
    )  # fmt: skip
    tally = Tally(ignore_index)
    start = time.perf_counter()
    for images, targets in batches:
        loss, logits = step(images, targets)
        if scheduler is not None:
            scheduler.step()
        tally.add(loss.detach(), logits.detach(), targets)
    # The epoch's one read from the GPU, which waits for it to finish (with fp16, GradScaler
    # also reads its inf check back every step).
    counts = tally.counts()
    return counts, time.perf_counter() - start


class Tally:
    """A training epoch's loss, hits and counts, summed on the device the batches are on.

    Reading them back per step would make the CPU wait for the GPU after every step, so it
    could not queue the next step's kernels while the GPU runs this one; they are read once,
    by `counts()`. Non-finite losses are counted (that is how a diverged run is recognised
    later) and left out of the sum, which `counts()` then reports as NaN."""

    def __init__(self, ignore_index: int | None):
        self.ignore_index = ignore_index
        self.sums = None  # loss sum, non-finite steps, correct[, labelled pixels]
        self.images = self.targets = 0  # known on the host: images, and targets to classify

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        hits = logits.argmax(dim=1) == targets
        labelled = []
        if self.ignore_index is None:
            n = targets.numel()
            self.targets += n
        else:  # segmentation: only the labelled pixels count
            mask = targets != self.ignore_index
            hits, n = hits & mask, mask.sum().double()
            labelled = [n]
        finite = torch.isfinite(loss)
        loss_sum = torch.where(finite, loss.double() * n, 0.0)  # the mean over n targets
        step = torch.stack([loss_sum, (~finite).double(), hits.sum().double(), *labelled])
        self.sums = step if self.sums is None else self.sums.add_(step)
        self.images += targets.shape[0]

    def counts(self) -> Counts:
        if self.sums is None:
            return Counts()
        loss_sum, nonfinite, correct, *labelled = self.sums.tolist()
        count = int(labelled[0]) if labelled else self.targets
        loss_sum = math.nan if nonfinite else loss_sum
        return Counts(loss_sum, int(correct), count, int(nonfinite), images=self.images)


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
    loss_sum, images = torch.zeros((), dtype=torch.float64), 0
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for inputs, targets in batches:  # summed where the batches are and read once, as in `Tally`
        with autocast(device, precision):
            logits = net(inputs)
        loss_sum = loss_sum.to(targets.device) + criterion(logits.float(), targets).double()
        batch = confusion_matrix(logits.argmax(dim=1), targets, num_classes, ignore_index)
        confusion, images = confusion.to(targets.device) + batch, images + targets.shape[0]
    confusion, loss = confusion.cpu(), loss_sum.item()
    correct, count = int(confusion.trace()), int(confusion.sum())  # read off the matrix
    loss = loss if math.isfinite(loss) else math.nan
    return Counts(loss, correct, count, confusion=confusion, images=images)
