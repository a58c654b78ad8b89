"""The report's pictures and its page: curves per table, confusion matrix and example grid of
each table's best run, and index.html tying them to the tables."""

from __future__ import annotations

from pathlib import Path

from deepnets.results.html import Section, write_index
from deepnets.results.plots import plot_confusion, plot_curves, plot_examples
from deepnets.results.report import PER_CLASS_COLUMNS, TableOut, cell, settings_line

IMAGE_DIR = "img"


def write_figures(out: Path, tables: list[TableOut]) -> None:
    """PNG files under out/img, recorded on each table as (caption, relative path)."""
    folder = out / IMAGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for table in tables:
        table.images.clear()
        if any(r.history for r in table.records):
            name = f"{table.slug}-curves.png"
            plot_curves(table.records, table.key, folder / name)
            table.images.append((f"{table.key}: validation accuracy and training loss", name))
        best = table.best()
        if best is None:
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


def write_page(out: Path, tables: list[TableOut], per_class: list[dict]) -> Path:
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
    return write_index(out, "deepnets results", sections)
