"""Build a report folder from experiment directories: tables (md/csv/json), plots, index.html.

`python jobs/report.py RUN_DIR [RUN_DIR ...] --out reports/NAME/`. Inputs may be finished,
partial or interrupted sweeps; the same inputs always give the same files, and directories that
share a variant pool their seeds.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from deepnets.reference import reference_data, report_tables
from deepnets.results import segmentation as seg
from deepnets.results.collect import RunRecord, collect
from deepnets.results.tables import report_table_rows, search_table_rows

REPORT_COLUMNS = [
    "variant", "setting", "report_accuracy", "ours", "difference", "epochs", "wall_seconds",
    "status", "device", "git_commit",
]  # fmt: skip
SEARCH_COLUMNS = [
    "rank", "trial", "params", "best_val_accuracy", "test_accuracy", "epochs", "wall_seconds",
    "status",
]  # fmt: skip
SETTINGS_KEYS = ["fidelity", "dataset", "resolution", "images", "workers", "seeds", "versions"]
PER_CLASS_COLUMNS = ["class", "precision", "recall", "f1-score", "support"]


@dataclass
class TableOut:
    key: str  # "mnist-vgg [proxy]" or "cifar10-resnet18-search [proxy]"
    kind: str  # "report", "search" or "segmentation"
    rows: list[dict]
    records: list[RunRecord] = field(repr=False, default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() or c == "-" else "_" for c in self.key).strip("_")

    @property
    def columns(self) -> list[str]:
        kinds = {"report": REPORT_COLUMNS, "segmentation": seg.SEGMENTATION_COLUMNS}
        return kinds.get(self.kind, SEARCH_COLUMNS)

    def best(self) -> RunRecord | None:
        usable = [r for r in self.records if r.usable]
        return max(usable, key=lambda r: (r.score, r.run_dir), default=None)


def table_kind(record: RunRecord) -> str:
    if record.task == "segmentation":
        return "segmentation"
    return "search" if record.table is None else "report"


def group_tables(records: list[RunRecord]) -> list[TableOut]:
    """One table per (report table, fidelity) in the report's order, then one per free search
    or segmentation space."""
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for record in records:
        kind = table_kind(record)
        groups[(record.table or record.space, record.fidelity or "-", kind)].append(record)
    order = {f"{d}-{f}": i for i, (d, f) in enumerate(report_tables())}
    tables = []
    kinds = ("report", "search", "segmentation")
    for (name, fidelity, kind), runs in sorted(
        groups.items(),
        key=lambda kv: (kinds.index(kv[0][2]), order.get(kv[0][0], 99), kv[0][0], kv[0][1]),
    ):
        if kind == "segmentation":
            rows = seg.segmentation_table_rows(runs)
        else:
            rows = search_table_rows(runs) if kind == "search" else report_table_rows(name, runs)
        tables.append(TableOut(f"{name} [{fidelity}]", kind, rows, runs))
    return tables


def cell(value, column: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if column == "support":
            return str(int(value))
        if column in ("best_val_accuracy", "test_accuracy"):
            return f"{100 * value:.2f}"
        if column == "difference":
            return f"{value:+.2f}"
        if column == "wall_seconds":
            return f"{value:.0f}"
        return f"{value:.2f}"
    return str(value)


def markdown_table(columns: list[str], rows: list[dict]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(cell(r.get(c), c) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def settings_line(rows: list[dict]) -> str:
    """The provenance shared by a table's rows, as one line."""
    parts = []
    for key in SETTINGS_KEYS:
        values = sorted({r.get(key) for r in rows if r.get(key) not in (None, "-")})
        if values:
            parts.append(f"{key}: {'; '.join(values)}")
    return " | ".join(parts)


def per_class_sections(tables: list[TableOut]) -> list[dict]:
    """The best run of each dataset x family: sklearn's per-class report beside the report's."""
    appendix = reference_data().get("per_class", {})
    best: dict[str, RunRecord] = {}
    for table in tables:
        run = table.best()
        if table.kind == "report" and run is not None:
            name = run.table
            if name not in best or run.test_accuracy > best[name].test_accuracy:
                best[name] = run
    sections = []
    for name, run in sorted(best.items()):
        report = run.test_report["per_class"]
        rows = [
            {"class": c} | {k: report[c][k] for k in PER_CLASS_COLUMNS[1:]}
            for c in report["class_names"]
        ]
        ref = appendix.get(name, {})
        sections.append(
            {
                "table": name,
                "variant": run.variant,
                "run_dir": run.run_dir,
                "accuracy": 100 * run.test_accuracy,
                "macro_f1": 100 * report["macro avg"]["f1-score"],
                "report_accuracy": ref.get("accuracy"),
                "report_macro_f1": ref.get("macro_f1"),
                "rows": rows,
            }
        )
    return sections


def segmentation_sections(tables: list[TableOut]) -> list[dict]:
    """Per-class IoU and Dice of each segmentation table's best run."""
    return [
        seg.segmentation_section(table.key, best)
        for table in tables
        if table.kind == "segmentation" and (best := table.best()) is not None
    ]


def csv_text(tables: list[TableOut]) -> str:
    columns = ["table_key", "kind"]
    for table in tables:
        columns += [k for row in table.rows for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for table in tables:
        for row in table.rows:
            writer.writerow({"table_key": table.key, "kind": table.kind} | row)
    return out.getvalue()


def markdown_text(tables: list[TableOut], per_class: list[dict], segmented: list[dict]) -> str:
    parts = [
        "# Results\n",
        "Accuracy in percent on each run's test split (segmentation: mean IoU and mean Dice over "
        "classes, and pixel accuracy); ours is mean ± std over seeds (n usable runs); `*` = "
        "stopped early by ASHA; diverged and failed runs show no accuracy.\n",
    ]
    for table in tables:
        parts += [f"## {table.key}\n", markdown_table(table.columns, table.rows) + "\n"]
        parts.append(f"Settings: {settings_line(table.rows)}\n")
    for section in per_class:
        parts.append(
            f"## Per-class: {section['table']} (best run: {section['variant']}, "
            f"accuracy {section['accuracy']:.2f}, macro F1 {section['macro_f1']:.2f}; report: "
            f"accuracy {section['report_accuracy']}, macro F1 {section['report_macro_f1']})\n"
        )
        parts.append(markdown_table(PER_CLASS_COLUMNS, section["rows"]) + "\n")
    for section in segmented:
        parts.append(f"## {seg.section_title(section)}\n")
        parts.append(markdown_table(seg.PER_CLASS_COLUMNS, section["rows"]) + "\n")
    return "\n".join(parts)


def write_tables(
    out: Path, tables: list[TableOut], per_class: list[dict], segmented: list[dict]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables.md").write_text(markdown_text(tables, per_class, segmented))
    (out / "tables.csv").write_text(csv_text(tables))
    data = {
        "tables": [{"key": t.key, "kind": t.kind, "rows": t.rows} for t in tables],
        "per_class": per_class,
        "segmentation": segmented,
    }
    (out / "tables.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def build_report(experiment_dirs: list[str], out: Path) -> list[TableOut]:
    """Write tables, plots and index.html for `experiment_dirs` into `out`."""
    from deepnets.results.figures import write_figures, write_page

    records, _ = collect(experiment_dirs)
    tables = group_tables(records)
    per_class, segmented = per_class_sections(tables), segmentation_sections(tables)
    write_tables(out, tables, per_class, segmented)
    write_figures(out, tables)
    write_page(out, tables, per_class, segmented)
    return tables
