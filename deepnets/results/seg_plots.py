"""The segmentation figure: test images, their true masks and the best run's predictions, in
VOC's colour map, with a legend of the classes that appear."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepnets.results.collect import RunRecord
from deepnets.results.plots import _figure, _save, replay

IGNORE_COLOUR = (224, 224, 192)  # VOC's colour for "void" (and here: the canvas padding)


def voc_colormap(count: int) -> np.ndarray:
    """[count, 3] uint8: PASCAL VOC's class colours (class id bits spread over R, G and B)."""
    colours = np.zeros((count, 3), dtype=np.uint8)
    for index in range(count):
        red = green = blue = 0
        code = index
        for bit in range(8):
            red |= ((code >> 0) & 1) << (7 - bit)
            green |= ((code >> 1) & 1) << (7 - bit)
            blue |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        colours[index] = (red, green, blue)
    return colours


def colourise(mask: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """[H, W] class ids (255 = ignore) -> [H, W, 3] uint8."""
    image = np.empty((*mask.shape, 3), dtype=np.uint8)
    image[:] = IGNORE_COLOUR
    known = mask < len(colours)
    image[known] = colours[mask[known]]
    return image


def _predictions(record: RunRecord, count: int):
    """(datasets, masks predicted for the first `count` test images) or None."""
    replayed = replay(record)
    if replayed is None:
        return None
    import torch

    from deepnets.data import make_loader

    cfg, data, model = replayed
    loader = make_loader(data, data.test, cfg.data, batch_size=count, train=False, seed=cfg.seed)
    images, _ = next(iter(loader))
    with torch.no_grad():
        return data, model(images).argmax(dim=1).numpy()


def plot_segmentation(record: RunRecord, path: Path, *, count: int = 6) -> Path | None:
    """Rows of (input, truth, prediction) for the first `count` test images. None when the run
    cannot be replayed here (remote folder, no checkpoint, dataset not under data.root)."""
    predicted = _predictions(record, count)
    if predicted is None:
        return None
    data, preds = predicted
    colours = voc_colormap(data.num_classes)
    figure = _figure(7.5, 2.4 * len(preds) + 0.8)
    grid = figure.subplots(len(preds), 3, squeeze=False)
    seen: set[int] = set()
    for row, pred in enumerate(preds):
        truth = data.test.labels[row].numpy()
        shown = np.where(truth == 255, 255, pred)  # padding and void outlines are not scored
        seen |= set(np.unique(truth[truth != 255]).tolist()) | set(np.unique(pred).tolist())
        image = np.transpose(data.test.images[row].numpy(), (1, 2, 0))
        for axes, picture in zip(
            grid[row], (image, colourise(truth, colours), colourise(shown, colours)), strict=True
        ):
            axes.imshow(picture, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
    for axes, title in zip(grid[0], ("input", "truth", "prediction"), strict=True):
        axes.set_title(title)
    _legend(figure, data.classes, colours, sorted(seen))
    miou = record.test_miou
    figure.suptitle(
        f"{record.variant} (seed {record.seed}), test mean IoU {100 * (miou or 0):.2f}%"
    )
    return _save(figure, path)


def _legend(figure, classes: list[str], colours: np.ndarray, shown: list[int]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=colours[i] / 255.0, label=classes[i]) for i in shown]
    figure.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize="small"
    )
