"""Counts that add up across ranks, and the per-class report derived from them.

Every metric is kept as a sum (loss summed over images, correct predictions, image count, a
confusion matrix) so that one all-reduce gives the exact global value: averaging per-rank
accuracies would weight a rank's images by how many the rank happened to get.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all ranks (a no-op outside torch.distributed)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        # gloo reduces CPU tensors, NCCL CUDA ones: reduce on whichever device the backend uses.
        device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
        reduced = tensor.to(device)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.to(tensor.device)
    return tensor


@dataclass
class Counts:
    """Loss sum, correct predictions and image count over one pass; add, reduce, then read."""

    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0
    nonfinite_steps: int = 0
    confusion: torch.Tensor | None = field(default=None, repr=False)

    def reduced(self) -> Counts:
        scalars = torch.tensor(
            [self.loss_sum, self.correct, self.count, self.nonfinite_steps], dtype=torch.float64
        )
        loss_sum, correct, count, nonfinite = all_reduce_sum(scalars).tolist()
        confusion = None if self.confusion is None else all_reduce_sum(self.confusion.cpu())
        return Counts(loss_sum, int(correct), int(count), int(nonfinite), confusion)

    @property
    def loss(self) -> float:
        return self.loss_sum / self.count if self.count else math.nan

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else math.nan


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[true, predicted] counts as int64."""
    flat = targets.to(torch.int64) * num_classes + preds.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)


def per_class_report(confusion: torch.Tensor | np.ndarray, class_names: list[str]) -> dict:
    """scikit-learn's classification report (precision, recall, F1, support per class plus
    macro/weighted averages) of the predictions summarised by a confusion matrix."""
    from sklearn.metrics import classification_report

    matrix = np.asarray(confusion, dtype=np.int64)
    n = len(class_names)
    # Expand the counts back into label pairs: exact, and lets sklearn define every metric.
    true = np.repeat(np.repeat(np.arange(n), n), matrix.ravel())
    pred = np.repeat(np.tile(np.arange(n), n), matrix.ravel())
    report = classification_report(
        true,
        pred,
        labels=np.arange(n),
        target_names=class_names,
        output_dict=True,
        zero_division=0,
    )
    report["confusion_matrix"] = matrix.tolist()
    report["class_names"] = list(class_names)
    return report
