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
    """Loss sum, correct predictions and their count over one pass; add, reduce, then read.

    `count` is what the loss and accuracy average over: images for classification, labelled
    pixels (not the ignored ones) for segmentation; `images` counts images either way."""

    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0
    nonfinite_steps: int = 0
    confusion: torch.Tensor | None = field(default=None, repr=False)
    images: int = 0

    def reduced(self) -> Counts:
        scalars = torch.tensor(
            [self.loss_sum, self.correct, self.count, self.nonfinite_steps, self.images],
            dtype=torch.float64,
        )
        loss_sum, correct, count, nonfinite, images = all_reduce_sum(scalars).tolist()
        confusion = None if self.confusion is None else all_reduce_sum(self.confusion.cpu())
        return Counts(loss_sum, int(correct), int(count), int(nonfinite), confusion, int(images))

    @property
    def loss(self) -> float:
        return self.loss_sum / self.count if self.count else math.nan

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else math.nan


def confusion_matrix(
    preds: torch.Tensor, targets: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """[true, predicted] counts as int64; targets equal to `ignore_index`, or not a class id
    at all (e.g. 255 with no ignore_index), are left out."""
    cells = num_classes**2
    flat = targets.to(torch.int64) * num_classes + preds.to(torch.int64)
    left_out = (targets < 0) | (targets >= num_classes)
    if ignore_index is not None:
        left_out |= targets == ignore_index
    flat = flat.masked_fill(left_out, cells)  # one overflow bin, dropped: no data-dependent shape
    # index_add_ into a fixed size: bincount on CUDA reads the largest index back first (a sync)
    flat = flat.flatten()
    counts = torch.zeros(cells + 1, dtype=torch.int64, device=flat.device)
    counts.index_add_(0, flat, torch.ones_like(flat))
    return counts[:cells].view(num_classes, -1)


def per_class_report(confusion: torch.Tensor | np.ndarray, class_names: list[str]) -> dict:
    """scikit-learn's `classification_report(..., output_dict=True, zero_division=0)` layout
    (precision, recall, F1, support per class, accuracy, macro and weighted averages), computed
    from the confusion matrix itself: importing scikit-learn would cost every run a second."""
    matrix = np.asarray(confusion, dtype=np.int64)
    hits, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    precision, recall = _ratio(hits, predicted), _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    report: dict = {
        name: _scores(precision[i], recall[i], f1[i], support[i])
        for i, name in enumerate(class_names)
    }
    total = int(support.sum())
    report["accuracy"] = float(hits.sum() / total) if total else 0.0
    report["macro avg"] = _scores(precision.mean(), recall.mean(), f1.mean(), total)
    weights = support / total if total else np.zeros(len(support))
    weighted = [float((v * weights).sum()) for v in (precision, recall, f1)]
    report["weighted avg"] = _scores(*weighted, total)
    report["confusion_matrix"] = matrix.tolist()
    report["class_names"] = list(class_names)
    return report


def segmentation_report(confusion: torch.Tensor | np.ndarray, class_names: list[str]) -> dict:
    """Per-class IoU and Dice, their means, pixel accuracy and mean class accuracy, from a pixel
    confusion matrix [true, predicted] (ignored pixels are not in it).

    IoU = TP / (TP + FP + FN), Dice = 2 TP / (2 TP + FP + FN). The means are over the classes
    that occur in the truth or the predictions: a class absent from both has no IoU (0 / 0),
    and counting it as 0 or 1 would move the mean by something the model did not do."""
    matrix = np.asarray(confusion, dtype=np.int64)
    hits, truth, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    union = truth + predicted - hits
    iou, dice = _ratio(hits, union), _ratio(2 * hits, truth + predicted)
    present = union > 0
    total = int(truth.sum())
    per_class = {
        name: {"iou": float(iou[i]), "dice": float(dice[i]), "pixels": int(truth[i])}
        for i, name in enumerate(class_names)
    }
    return {
        "mean_iou": float(iou[present].mean()) if present.any() else 0.0,
        "mean_dice": float(dice[present].mean()) if present.any() else 0.0,
        "pixel_accuracy": float(hits.sum() / total) if total else 0.0,
        "mean_class_accuracy": float(_ratio(hits, truth)[truth > 0].mean()) if total else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _scores(precision, recall, f1, support) -> dict:
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1-score": float(f1),
        "support": int(support),
    }


def split_metrics(prefix: str, counts: Counts, classes: list[str], task: str) -> dict:
    """What an epoch row shows of one evaluated split: `val_loss`, `val_accuracy` (pixel
    accuracy for segmentation) and, for segmentation, `val_miou` and `val_mean_dice`."""
    row = {f"{prefix}_loss": counts.loss, f"{prefix}_accuracy": counts.accuracy}
    if task == "segmentation" and counts.confusion is not None:
        report = segmentation_report(counts.confusion, classes)
        row |= {f"{prefix}_miou": report["mean_iou"], f"{prefix}_mean_dice": report["mean_dice"]}
    return row
