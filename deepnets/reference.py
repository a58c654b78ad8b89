"""The seed report's result rows, as data (deepnets/reference/report_tables.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REFERENCE_FILE = Path(__file__).parent / "reference" / "report_tables.yaml"


@dataclass(frozen=True)
class ReferenceRow:
    dataset: str
    family: str
    id: str
    accuracy: float  # test accuracy in percent, as the report printed it
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return f"{self.dataset}-{self.family}"


@cache
def reference_data() -> dict[str, Any]:
    """The whole reference file: tables, per-class appendix figures, segmentation."""
    return yaml.safe_load(REFERENCE_FILE.read_text())


def report_rows() -> list[ReferenceRow]:
    """All 40 rows, in the report's order."""
    rows = []
    for table in reference_data()["tables"]:
        for row in table["rows"]:
            settings = {k: v for k, v in row.items() if k not in ("id", "accuracy")}
            rows.append(
                ReferenceRow(
                    table["dataset"], table["family"], row["id"], row["accuracy"], settings
                )
            )
    return rows


def table_ids(dataset: str, family: str) -> list[str]:
    """The variant ids of one report table, in order."""
    return [r.id for r in report_rows() if r.dataset == dataset and r.family == family]


def report_tables() -> list[tuple[str, str]]:
    """(dataset, family) of each of the six tables, in order."""
    return [(t["dataset"], t["family"]) for t in reference_data()["tables"]]
