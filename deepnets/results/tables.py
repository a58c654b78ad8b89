"""Run records -> comparison tables: ours beside the report's, seeds pooled, every row labelled.

A report table lists every reference row in the report's order, including rows with no run yet
(`missing`). A variant's accuracy is the mean +- sample std of its usable runs' test accuracy
over seeds (with n); diverged or failed runs never show an accuracy, only their status. Free
search spaces get a ranked table of their trials instead.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from deepnets.reference import ReferenceRow, report_rows
from deepnets.results.collect import RunRecord

SETTING_WORDS = {
    "optimizer": lambda v: {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}.get(v, v),
    "momentum": lambda v: f"momentum {v}",
    "lr": lambda v: f"lr {v}",
    "batch_norm": lambda v: f"BN {v.replace('_', ' ')}",
    "augment": lambda v: "augmentation" if v else "no augmentation",
    "epochs": lambda v: f"{v} epochs",
}


def setting_in_words(row: ReferenceRow) -> str:
    """'vgg16, SGD, momentum 0.9' from the reference row's settings."""
    words = [row.settings.get("model", "")]
    words += [SETTING_WORDS[k](v) for k, v in row.settings.items() if k in SETTING_WORDS]
    return ", ".join(w for w in words if w)


@dataclass
class Summary:
    """Seeds of one variant pooled: the numbers a table row shows."""

    n: int
    mean: float | None  # test accuracy in percent
    std: float | None
    status: str
    epochs: str
    wall_seconds: float | None
    runs: list[RunRecord] = field(default_factory=list)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for std when n < 2)."""
    if not values:
        return None, None
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), std


def pooled_status(runs: list[RunRecord]) -> str:
    """One status for a variant's runs; mixed outcomes are listed with their counts."""
    if not runs:
        return "missing"
    counts = Counter(r.status for r in runs)
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{status} (x{n})" for status, n in sorted(counts.items()))


def epochs_text(runs: list[RunRecord]) -> str:
    """'10'; '2/10*' when ASHA stopped it, '6/10' when it has not finished (still running,
    or its sweep was interrupted), diverged or failed; a range when seeds differ."""
    if not runs:
        return "-"
    done = sorted({r.epochs_run for r in runs})
    target = max(r.epochs_target for r in runs)
    shown = str(done[0]) if len(done) == 1 else f"{done[0]}-{done[-1]}"
    if done[0] >= target:
        return shown
    return f"{shown}/{target}" + ("*" if any(r.status == "stopped early" for r in runs) else "")


def summarise(runs: list[RunRecord]) -> Summary:
    usable = [r for r in runs if r.usable]
    mean, std = mean_std([100.0 * r.test_accuracy for r in usable])
    walls = [r.wall_seconds for r in runs if r.wall_seconds is not None]
    wall = statistics.fmean(walls) if walls else None
    return Summary(len(usable), mean, std, pooled_status(runs), epochs_text(runs), wall, runs)


def accuracy_text(summary: Summary) -> str:
    if summary.mean is None:
        return "-"
    spread = f" ± {summary.std:.2f}" if summary.std is not None else ""
    return f"{summary.mean:.2f}{spread} (n={summary.n})"


def provenance_of(runs: list[RunRecord]) -> dict[str, str]:
    """The settings a row's number depends on, joined over its runs (usually one value each)."""

    def values(get) -> str:
        found = sorted({str(v) for v in (get(r) for r in runs) if v not in (None, "")})
        return ", ".join(found) or "-"

    return {
        "git_commit": values(lambda r: _short_commit(r.provenance.get("git_commit", ""))),
        "versions": values(lambda r: _versions(r.provenance.get("versions", {}))),
        "device": values(lambda r: r.test_report.get("device")),
        "workers": values(lambda r: r.config.get("num_workers")),
        "dataset": values(lambda r: r.test_report.get("dataset_source")),
        "resolution": values(lambda r: r.test_report.get("resolution")),
        "images": values(_image_counts),
        "fidelity": values(lambda r: r.fidelity),
        "seeds": values(lambda r: r.seed),
    }


def _short_commit(commit: str) -> str:
    """12 hex digits, keeping the '-dirty' mark of a run made with uncommitted changes."""
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def _versions(versions: dict) -> str:
    keys = ("torch", "ray", "deepnets")
    return " ".join(f"{k} {versions[k]}" for k in keys if k in versions)


def _image_counts(record: RunRecord) -> str | None:
    rep = record.test_report
    if not rep:
        return None
    return (
        f"train {rep.get('train_images')}/val {rep.get('val_images')}/test {rep.get('test_images')}"
    )


def report_table_rows(table: str, records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every reference row of `table` (e.g. 'mnist-vgg'), ours beside the report's."""
    by_variant: dict[str, list[RunRecord]] = defaultdict(list)
    for record in records:
        by_variant[record.variant].append(record)
    rows = []
    for ref in (r for r in report_rows() if r.table == table):
        summary = summarise(by_variant.get(ref.id, []))
        diff = None if summary.mean is None else summary.mean - ref.accuracy
        rows.append(
            {
                "table": table,
                "variant": ref.id,
                "setting": setting_in_words(ref),
                "report_accuracy": ref.accuracy,
                "ours": accuracy_text(summary),
                "ours_mean": summary.mean,
                "ours_std": summary.std,
                "n": summary.n,
                "difference": diff,
                "epochs": summary.epochs,
                "wall_seconds": summary.wall_seconds,
                "status": summary.status,
            }
            | provenance_of(summary.runs)
        )
    return rows


def search_table_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Trials of a free search, best first (by best validation accuracy); unusable runs last."""

    def rank_key(r: RunRecord):
        return (not r.usable, -(r.best_val_accuracy or 0.0), r.variant, r.seed, r.run_dir)

    rows = []
    for rank, r in enumerate(sorted(records, key=rank_key), start=1):
        params = ", ".join(f"{k}={short_value(v)}" for k, v in sorted(r.search.items()))
        rows.append(
            {
                "rank": rank,
                "trial": r.run_dir.rsplit("/", 1)[-1],
                "params": params or "-",
                "best_val_accuracy": r.best_val_accuracy if r.usable else None,
                "test_accuracy": r.test_accuracy if r.usable else None,
                "epochs": epochs_text([r]),
                "wall_seconds": r.wall_seconds,
                "status": r.status,
            }
            | provenance_of([r])
        )
    return rows


def short_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
