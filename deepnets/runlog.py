"""What a run leaves in its directory besides checkpoints: the per-epoch log and TensorBoard.

`metrics.jsonl` is rewritten whole from the history carried in each checkpoint, so after a
restart from epoch k it holds epochs 1..k once each and then continues: no gap, no duplicate.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from deepnets.storage import Location

METRICS_FILE = "metrics.jsonl"
TEST_REPORT_FILE = "test_report.json"
RUN_FILE = "run.json"
PLAN_FILE = "sweep.json"  # in an experiment folder: the sweep's plan
RESULTS_FILE = "sweep_results.json"  # in an experiment folder: the sweep driver's final table
TIMELINE_FILE = "timeline.json"  # rank 0's start-up milestones (unix seconds), for bench/startup.py


def _jsonable(value: Any) -> Any:
    # JSON has no NaN: a diverged loss is written as null and read back as such.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomically(path: Location | Path | str, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    Location(path).write_text(text)


def read_json(path: Location | Path | str) -> dict:
    """The JSON object in `path`, or {} when the file does not exist."""
    location = Location(path)
    return json.loads(location.read_text()) if location.exists() else {}


def write_history(run_dir: Location | Path | str, history: list[dict]) -> None:
    """Rewrite metrics.jsonl from the full history (atomically)."""
    lines = [json.dumps({k: _jsonable(v) for k, v in row.items()}) for row in history]
    (Location(run_dir) / METRICS_FILE).write_text("".join(line + "\n" for line in lines))


def val_accuracies(history: list[dict]) -> list[float]:
    """The per-epoch validation accuracies a history recorded, in epoch order."""
    return [row["val_accuracy"] for row in history if row.get("val_accuracy") is not None]


def read_history(run_dir: Location | Path | str) -> list[dict]:
    path = Location(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Timeline:
    """Wall-clock milestones of one worker's start-up: where a run's fixed cost goes."""

    def __init__(self) -> None:
        from deepnets import IMPORT_STARTED_AT

        self.marks = {"process_started": process_start_time(), "imports_started": IMPORT_STARTED_AT}
        self.mark("loop_started")

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.time())  # the first time each milestone is reached

    def save(self, run_dir: Location | Path | str) -> None:
        write_json_atomically(Location(run_dir) / TIMELINE_FILE, self.marks)


def process_start_time() -> float:
    """When this process was created (unix seconds)."""
    try:
        import psutil

        return psutil.Process().create_time()
    except ImportError:  # psutil comes with Ray's default extras; without it, say "unknown"
        return float("nan")


class TensorBoardLog:
    """tensorboardX scalars under run_dir/tb; a restart purges the steps it will redo.

    For a run in object storage the events are written to a local folder and copied up after
    every epoch."""

    def __init__(self, run_dir: Location, first_epoch: int):
        from tensorboardX import SummaryWriter

        self.remote = (run_dir / "tb") if run_dir.remote else None
        local = Path(tempfile.mkdtemp(prefix="deepnets-tb-")) if self.remote else None
        self.local = local or (run_dir / "tb").local_path
        self.writer = SummaryWriter(str(self.local), purge_step=first_epoch)

    def log(self, row: dict[str, Any]) -> None:
        for key, value in row.items():
            # A diverged run's NaN loss has no point on a curve; tensorboardX would also print
            # "NaN or Inf found in input tensor" for it every epoch.
            if key != "epoch" and isinstance(value, int | float) and math.isfinite(value):
                group = key.split("_", 1)
                tag = "/".join(group) if len(group) == 2 else key
                self.writer.add_scalar(tag, value, row["epoch"])
        self.writer.flush()
        if self.remote is not None:
            self.remote.upload_folder(self.local)

    def close(self) -> None:
        self.writer.close()


def progress_line(row: dict[str, Any], epochs: int) -> str:
    """One human line per epoch, printed by rank 0."""
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.2%}",
    ]
    for split in ("val", "test"):
        if row.get(f"{split}_accuracy") is None:
            continue
        text = f"{split} loss {row[f'{split}_loss']:.4f} acc {row[f'{split}_accuracy']:.2%}"
        if row.get(f"{split}_miou") is not None:  # segmentation: acc is pixel accuracy
            text += f" mIoU {row[f'{split}_miou']:.2%}"
        parts.append(text)
    parts.append(f"lr {row['lr']:.2e}")
    parts.append(f"{row['epoch_seconds']:.1f}s {row['images_per_second']:.0f} img/s")
    return " | ".join(parts)
