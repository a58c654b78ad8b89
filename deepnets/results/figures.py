"""The report's pictures and its page: curves per table, confusion matrix and example grid of
each table's best run, and index.html tying them to the tables."""

from __future__ import annotations

from pathlib import Path

from deepnets.results.html import Section, write_index
from deepnets.results.plots import plot_confusion, plot_curves, plot_examples
from deepnets.results.report import PER_CLASS_COLUMNS, TableOut, cell, settings_line
from deepnets.results.seg_plots import plot_segmentation
from deepnets.results.segmentation import PER_CLASS_COLUMNS as SEG_COLUMNS
from deepnets.results.segmentation import section_title

IMAGE_DIR = "img"


def write_figures(out: Path, tables: list[TableOut]) -> None:
    """PNG files under out/img, recorded on each table as (caption, relative path)."""
    folder = out / IMAGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for table in tables:
        table.images.clear()
        segmentation = table.kind == "segmentation"
        if any(r.history for r in table.records):
            name = f"{table.slug}-curves.png"
            metric = "val_miou" if segmentation else "val_accuracy"
            plot_curves(table.records, table.key, folder / name, metric)
            what = "mean IoU" if segmentation else "accuracy"
            table.images.append((f"{table.key}: validation {what} and training loss", name))
        best = table.best()
        if best is None:
            continue
        if segmentation:
            _segmentation_figure(table, best, folder)
            continue
        name = f"{table.slug}-confusion.png"
        plot_confusion(best, folder / name)
        table.images.append(
            (f"{table.key}: confusion matrix of the best run ({best.variant})", name)
        )
        name = f"{table.slug}-examples.png"
        if plot_examples(best, folder / name) is not None:
            caption = f"{table.key}: test images the best run ({best.variant}) got right and wrong"
            table.images.append((caption, name))
    for table in tables:
        table.images[:] = [(caption, f"{IMAGE_DIR}/{name}") for caption, name in table.images]


def _segmentation_figure(table: TableOut, best, folder: Path) -> None:
    name = f"{table.slug}-segmentation.png"
    if plot_segmentation(best, folder / name) is not None:
        caption = f"{table.key}: test images, truth and the best run's ({best.variant}) prediction"
        table.images.append((caption, name))


def write_page(
    out: Path, tables: list[TableOut], per_class: list[dict], segmented: list[dict]
) -> Path:
    sections = [
        Section(
            title=table.key,
            columns=table.columns,
            rows=[[cell(row.get(c), c) for c in table.columns] for row in table.rows],
            images=list(table.images),
            notes=[f"Settings: {settings_line(table.rows)}"],
        )
        for table in tables
    ]
    for section in per_class:
        sections.append(
            Section(
                title=f"Per-class metrics: {section['table']} (best run {section['variant']})",
                columns=PER_CLASS_COLUMNS,
                rows=[[cell(row[c], c) for c in PER_CLASS_COLUMNS] for row in section["rows"]],
                notes=[
                    f"Ours: accuracy {section['accuracy']:.2f}, macro F1 "
                    f"{section['macro_f1']:.2f}. The report's appendix: accuracy "
                    f"{section['report_accuracy']}, macro F1 {section['report_macro_f1']}."
                ],
            )
        )
    for section in segmented:
        sections.append(
            Section(
                title=section_title(section),
                columns=SEG_COLUMNS,
                rows=[[cell(row[c], c) for c in SEG_COLUMNS] for row in section["rows"]],
                notes=["IoU and Dice in percent per class, over the test split's pixels."],
            )
        )
    return write_index(out, "deepnets results", sections)
