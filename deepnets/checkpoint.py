"""Training state to and from a checkpoint directory: atomic writes, weights-only loads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from deepnets.step_graph import set_capturable

STATE_FILE = "state.pt"


def save_state(directory: Path, state: dict[str, Any]) -> Path:
    """Write `state` into `directory/state.pt` under a temporary name, then rename it, so a
    crash mid-write leaves no file rather than a truncated one."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / STATE_FILE
    tmp = directory / f".{STATE_FILE}.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, final)
    return final


def load_state(directory: Path | str) -> dict[str, Any]:
    """Read a state written by `save_state`; weights_only refuses pickled code."""
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)


def training_state(model, optimizer, scheduler, scaler, epoch: int, history: list[dict]) -> dict:
    """Everything needed to continue after `epoch` exactly where training left off."""
    return {
        "epoch": epoch,
        # The schedule's length: resuming with another number of epochs redraws the schedule.
        "schedule_total_steps": getattr(scheduler, "total_steps_planned", None),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "history": history,
    }


def restore_training_state(state: dict, model, optimizer, scheduler, scaler) -> tuple[int, list]:
    """Load a `training_state` into live objects; returns (last finished epoch, history).

    If the run now has a different length than when it was saved (more --epochs), the fresh
    scheduler is advanced to the same step instead of loading the old one, whose length (and,
    for one-cycle, whose step limit) belongs to the old plan."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    # A run that graphed its steps saved capturable groups, whose eager steps fail off a GPU;
    # a graphed step switches them back on when it captures.
    set_capturable(optimizer, False)
    if state.get("schedule_total_steps") == getattr(scheduler, "total_steps_planned", None):
        scheduler.load_state_dict(state["scheduler"])
    else:
        advance(scheduler, state["scheduler"]["last_epoch"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]), list(state["history"])


def advance(scheduler, steps: int) -> None:
    """Step a fresh scheduler `steps` times (no optimizer step: silence torch's order warning)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()


def latest_checkpoint_dir(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder Ray Train left in `run_dir` (None if none).

    Ray names them `checkpoint_<timestamp>`, so the name order is the time order; a folder
    without a state file is an interrupted upload and is skipped."""
    complete = [
        p for p in Path(run_dir).glob("checkpoint_*") if p.is_dir() and (p / STATE_FILE).exists()
    ]
    return max(complete, key=lambda p: p.name, default=None)
