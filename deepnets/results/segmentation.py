"""Segmentation results: ours beside the report's FCN (IoU 42%, Dice 57% on VOC2012), the best
run's per-class IoU and Dice, and a grid of input, truth and prediction.

A variant's IoU and Dice are the mean +- sample std over seeds of each run's test mean IoU /
mean Dice (means over classes, from the run's pixel confusion matrix). The report's figures sit
beside ours only where ours are on VOC2012 too: on other data they would compare nothing.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from deepnets.reference import reference_data
from deepnets.results.collect import RunRecord
from deepnets.results.tables import epochs_text, mean_std, pooled_status, provenance_of, short_value

SEGMENTATION_COLUMNS = [
    "variant", "model", "report_iou", "ours_iou", "report_dice", "ours_dice", "pixel_accuracy",
    "epochs", "wall_seconds", "status", "device", "git_commit",
]  # fmt: skip
PER_CLASS_COLUMNS = ["class", "iou", "dice", "pixels"]
COARSE_FIRST = {"fcn32s": 0, "fcn16s": 1, "fcn8s": 2}  # the paper's order


def report_reference(records: list[RunRecord]) -> dict:
    """The report's segmentation figures when our runs are on its dataset, else {}."""
    reference = reference_data().get("segmentation", {})
    datasets = {r.config.get("data", {}).get("dataset") for r in records}
    return reference if datasets == {reference.get("dataset")} else {}


def _percent_text(values: list[float]) -> str:
    mean, std = mean_std([100.0 * v for v in values])
    if mean is None:
        return "-"
    spread = f" ± {std:.2f}" if std is not None else ""
    return f"{mean:.2f}{spread} (n={len(values)})"


def row_label(record: RunRecord) -> str:
    """The variant, and a free search's sampled values: trials of a search are not seeds."""
    params = ", ".join(f"{k}={short_value(v)}" for k, v in sorted(record.search.items()))
    return f"{record.variant} ({params})" if params else record.variant


def _variant_order(item: tuple[str, list[RunRecord]]) -> tuple:
    variant, runs = item
    return COARSE_FIRST.get(runs[0].config.get("model", {}).get("name"), 9), variant


def segmentation_table_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per variant, seeds pooled, coarse models first."""
    reference = report_reference(records)
    by_variant: dict[str, list[RunRecord]] = defaultdict(list)
    for record in records:
        by_variant[row_label(record)].append(record)
    rows = []
    for variant, runs in sorted(by_variant.items(), key=_variant_order):
        usable = [r for r in runs if r.usable and r.test_miou is not None]
        ious, dices = [r.test_miou for r in usable], [r.test_mean_dice or 0.0 for r in usable]
        pixel, _ = mean_std([100.0 * r.test_accuracy for r in usable])
        walls = [r.wall_seconds for r in runs if r.wall_seconds is not None]
        rows.append(
            {
                "variant": variant,
                "model": runs[0].config.get("model", {}).get("name"),
                "report_iou": reference.get("iou"),
                "ours_iou": _percent_text(ious),
                "ours_iou_mean": mean_std([100.0 * v for v in ious])[0],
                "report_dice": reference.get("dice"),
                "ours_dice": _percent_text(dices),
                "ours_dice_mean": mean_std([100.0 * v for v in dices])[0],
                "pixel_accuracy": pixel,
                "n": len(usable),
                "epochs": epochs_text(runs),
                "wall_seconds": sum(walls) / len(walls) if walls else None,
                "status": pooled_status(runs),
            }
            | provenance_of(runs)
        )
    return rows


def segmentation_section(key: str, best: RunRecord) -> dict:
    """The best run's per-class IoU and Dice (percent) and its summary figures."""
    report = best.test_report.get("segmentation", {})
    per_class = report.get("per_class", {})
    rows = [
        {"class": name, "iou": 100 * v["iou"], "dice": 100 * v["dice"], "pixels": v["pixels"]}
        for name, v in ((n, per_class[n]) for n in report.get("class_names", []))
    ]
    reference = report_reference([best])
    return {
        "table": key,
        "variant": best.variant,
        "run_dir": best.run_dir,
        "mean_iou": 100 * report.get("mean_iou", 0.0),
        "mean_dice": 100 * report.get("mean_dice", 0.0),
        "pixel_accuracy": 100 * report.get("pixel_accuracy", 0.0),
        "report_iou": reference.get("iou"),
        "report_dice": reference.get("dice"),
        "rows": rows,
    }


def section_title(section: dict) -> str:
    report = (
        f"report: IoU {section['report_iou']}, Dice {section['report_dice']}"
        if section["report_iou"] is not None
        else "the report's IoU 42 / Dice 57 are for VOC2012, not this data"
    )
    return (
        f"Per-class IoU and Dice: {section['table']} (best run: {section['variant']}, mean IoU "
        f"{section['mean_iou']:.2f}, mean Dice {section['mean_dice']:.2f}, pixel accuracy "
        f"{section['pixel_accuracy']:.2f}; {report})"
    )
