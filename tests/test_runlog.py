"""TensorBoard scalars of a run, read back from the event files."""

from __future__ import annotations

import struct
from pathlib import Path

from deepnets.runlog import TensorBoardLog
from deepnets.storage import Location


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from TFRecord event files (length, crc, event, crc)."""
    from tensorboardX.proto import event_pb2

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_epochs_become_grouped_scalars_and_nonfinite_values_are_left_out(tmp_path):
    log = TensorBoardLog(Location(str(tmp_path)), first_epoch=1)
    log.log({"epoch": 1, "train_loss": float("nan"), "train_accuracy": 0.25, "lr": 0.1})
    log.log({"epoch": 2, "train_loss": 1.5, "train_accuracy": 0.5, "lr": 0.1, "note": "text"})
    log.close()
    scalars = _scalars(tmp_path / "tb")
    assert scalars["train/loss"] == [(2, 1.5)]  # epoch 1's NaN has no point
    assert scalars["train/accuracy"] == [(1, 0.25), (2, 0.5)]
    assert [step for step, _ in scalars["lr"]] == [1, 2]
    assert set(scalars) == {"train/loss", "train/accuracy", "lr"}
