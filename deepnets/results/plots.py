"""Report figures: learning curves, confusion matrices and example test predictions.

Figures are drawn on an Agg canvas of their own (no pyplot: no global figure state, no GUI
backend) at a fixed size and dpi, and saved without the "Software" PNG text chunk, so the same
records give byte-identical files and a regenerated report differs only where a number did.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepnets.results.collect import RunRecord, finite

DPI = 100
# Beyond this many classes the per-cell counts are unreadable and only the colours are kept.
MAX_ANNOTATED_CLASSES = 30
# Ten colours in the default cycle; further variants reuse them with another line style.
LINE_STYLES = ("-", "--", ":", "-.")
EXAMPLE_BATCH = 128
METRIC_LABELS = {"val_accuracy": "validation accuracy", "val_miou": "validation mean IoU"}


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def mean_curve(records: list[RunRecord], key: str) -> tuple[list[int], list[float]]:
    """(epochs, mean of `key` over the runs with a finite value at that epoch).

    A seed that stopped early simply drops out of the later epochs' means."""
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for record in records:
        for row in record.history:
            if finite(row.get(key)):
                by_epoch[int(row["epoch"])].append(float(row[key]))
    epochs = sorted(by_epoch)
    return epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]


def _by_variant(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for record in records:
        groups[record.variant].append(record)
    return {variant: groups[variant] for variant in sorted(groups)}


def plot_curves(
    records: list[RunRecord], title: str, path: Path, metric: str = "val_accuracy"
) -> Path:
    """Validation accuracy (or `metric`, e.g. val_miou) in % and training loss per epoch, one
    line per variant (the mean over its seeds); returns `path`."""
    figure = _figure(12.0, 4.5)
    acc_axes, loss_axes = figure.subplots(1, 2)
    for index, (variant, group) in enumerate(_by_variant(records).items()):
        style = {"label": variant, "linestyle": LINE_STYLES[index // 10 % len(LINE_STYLES)]}
        epochs, accs = mean_curve(group, metric)
        acc_axes.plot(epochs, [100.0 * a for a in accs], marker=".", **style)
        loss_axes.plot(*mean_curve(group, "train_loss"), marker=".", **style)
    label = METRIC_LABELS.get(metric, metric)
    acc_axes.set(xlabel="epoch", ylabel=f"{label} (%)", title=label)
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="training loss")
    for axes in (acc_axes, loss_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    if records:
        # One entry per variant: both panels carry the same labels.
        handles, labels = acc_axes.get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside right upper", fontsize="small", title="variant")
    figure.suptitle(title)
    return _save(figure, path)


def _annotate_counts(axes, matrix: np.ndarray) -> None:
    # White text on the dark cells, black on the light ones.
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > threshold else "black"
        axes.text(col, row, str(count), ha="center", va="center", fontsize=8, color=colour)


def _accuracy_text(value: float | None) -> str:
    return f"{value:.2%}" if finite(value) else "n/a"


def plot_confusion(record: RunRecord, path: Path) -> Path:
    """The run's test confusion matrix (rows true, columns predicted) with counts; returns
    `path`. Raises ValueError when the run has no test report."""
    per_class = record.test_report.get("per_class", {})
    if "confusion_matrix" not in per_class:
        raise ValueError(f"{record.run_dir}: no confusion matrix in its test report")
    matrix = np.asarray(per_class["confusion_matrix"], dtype=np.int64)
    names = per_class.get("class_names") or [str(i) for i in range(len(matrix))]
    side = min(max(0.5 * len(names) + 2.5, 5.0), 16.0)
    figure = _figure(side, side)
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    ticks = range(len(names))
    axes.set_xticks(ticks, names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(ticks, names)
    axes.set(xlabel="predicted", ylabel="true")
    if len(names) <= MAX_ANNOTATED_CLASSES:
        _annotate_counts(axes, matrix)
    accuracy = _accuracy_text(record.test_report.get("test_accuracy", record.test_accuracy))
    axes.set_title(f"{record.variant} (seed {record.seed}): test accuracy {accuracy}")
    return _save(figure, path)


def _local_run_dir(run_dir: str) -> Path | None:
    """The run folder as a local path; None for object storage (its checkpoints are remote)."""
    if "://" not in run_dir:
        return Path(run_dir)
    parsed = urlparse(run_dir)
    return Path(parsed.path) if parsed.scheme == "file" else None


def _final_weights(run_dir: str) -> dict | None:
    from deepnets.checkpoint import latest_checkpoint_dir, load_state

    local = _local_run_dir(run_dir)
    checkpoint = latest_checkpoint_dir(local) if local is not None else None
    return load_state(checkpoint)["model"] if checkpoint is not None else None


def _test_data(cfg):
    """The run's datasets, read from `data.root` only: a report must not start a download."""
    from deepnets.data import load_datasets
    from deepnets.errors import DataError

    try:
        return load_datasets(cfg.data.model_copy(update={"download": False}), cfg.seed)
    except (DataError, OSError):
        return None


def _first_examples(model, data, cfg, per_kind: int) -> tuple[list[int], list[int], np.ndarray]:
    """Indices of the first `per_kind` correct and wrong test predictions, and predictions."""
    import torch

    from deepnets.data import make_loader

    loader = make_loader(
        data, data.test, cfg.data, batch_size=EXAMPLE_BATCH, train=False, seed=cfg.seed
    )
    right, wrong, preds = [], [], []
    model.eval()
    with torch.no_grad():
        # Evaluation batches come in test order, so stopping early keeps "the first ones".
        for images, labels in loader:
            batch = model(images).argmax(dim=1)
            for pred, label in zip(batch.tolist(), labels.tolist(), strict=True):
                (right if pred == label else wrong).append(len(preds))
                preds.append(pred)
            if len(right) >= per_kind and len(wrong) >= per_kind:
                break
    return right[:per_kind], wrong[:per_kind], np.asarray(preds)


def replay(record: RunRecord):
    """(config, datasets, model with the run's final weights, in eval mode), or None when the run
    cannot be replayed here: no config or checkpoint, or its dataset is not under data.root."""
    if not record.config:
        return None
    weights = _final_weights(record.run_dir)
    if weights is None:
        return None
    from deepnets.config import TrainConfig
    from deepnets.models import create_configured_model

    cfg = TrainConfig.model_validate(record.config)
    data = _test_data(cfg)
    if data is None:
        return None
    model = create_configured_model(
        cfg.model.name, cfg.model.options, num_classes=data.num_classes, in_chans=data.in_chans
    )
    model.load_state_dict(weights)
    return cfg, data, model.eval()


def _predict(record: RunRecord, per_kind: int):
    """(datasets, correct indices, wrong indices, predictions) or None when not reproducible."""
    replayed = replay(record)
    if replayed is None:
        return None
    cfg, data, model = replayed
    return data, *_first_examples(model, data, cfg, per_kind)


def _show_image(axes, image) -> None:
    """A uint8 [C, H, W] tensor, greyscale or colour, without ticks."""
    pixels = image.numpy()
    if pixels.shape[0] == 1:
        axes.imshow(pixels[0], cmap="gray", vmin=0, vmax=255)
    else:
        axes.imshow(np.transpose(pixels, (1, 2, 0)))
    axes.set_xticks([])
    axes.set_yticks([])


def _draw_examples(data, groups: list[list[int]], preds: np.ndarray, columns: int) -> Figure:
    """One block of rows per group (correct first, then wrong), each starting on a new row."""
    rows = [math.ceil(len(group) / columns) for group in groups]
    figure = _figure(2.0 * columns, 2.2 * max(sum(rows), 1))
    grid = figure.subplots(max(sum(rows), 1), columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    first_row = 0
    for group, height in zip(groups, rows, strict=True):
        for slot, index in enumerate(group):
            axes = grid[first_row + slot // columns, slot % columns]
            axes.axis("on")
            _show_image(axes, data.test.images[index])
            truth, guess = int(data.test.labels[index]), int(preds[index])
            colour = "green" if truth == guess else "red"
            text = f"true: {data.classes[truth]} / pred: {data.classes[guess]}"
            axes.set_title(text, fontsize=8, color=colour)
        first_row += height
    return figure


def plot_examples(record: RunRecord, path: Path, *, count: int = 16) -> Path | None:
    """A grid of test images with the run's final predictions: the first correctly classified
    ones, then the first misclassified ones (up to count // 2 each).

    Returns None when the run cannot be replayed here: its folder is not local, it has no
    checkpoint, or its dataset is not under `data.root`."""
    per_kind = max(count // 2, 1)
    predicted = _predict(record, per_kind)
    if predicted is None:
        return None
    data, right, wrong, preds = predicted
    columns = max(1, min(per_kind, math.ceil(math.sqrt(count))))
    figure = _draw_examples(data, [right, wrong], preds, columns)
    accuracy = _accuracy_text(record.test_accuracy)
    figure.suptitle(f"{record.variant} (seed {record.seed}), test accuracy {accuracy}")
    return _save(figure, path)
