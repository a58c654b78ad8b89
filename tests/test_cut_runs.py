"""A sweep stopped by Ctrl-C: runs that its interrupt cut say so, not "failed"."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from deepnets.errors import SweepInterrupted
from deepnets.results.collect import decide_status
from deepnets.runlog import RUN_FILE
from deepnets.storage import Location
from deepnets.sweep import check_finished, mark_cut_runs
from deepnets.trial_watch import _last_seen

DIED = "ActorDiedError: The actor died unexpectedly before finishing this task."


def _run(runs, name: str, status: str, error: str | None = None):
    folder = runs / name
    folder.mkdir(parents=True)
    (folder / RUN_FILE).write_text(json.dumps({"status": status, "error": error}))
    return folder


def _status(folder) -> dict:
    return json.loads((folder / RUN_FILE).read_text())


def test_only_cut_trials_whose_workers_died_say_running_again(tmp_path):
    runs = tmp_path / "runs"
    cut = _run(runs, "vgg16-sgd-momentum-s0-e8c6e_00005", "failed", DIED)
    earlier = _run(runs, "vgg11-s0-e8c6e_00001", "failed", DIED)
    broken = _run(runs, "vgg16-lr0.01-s0-e8c6e_00003", "failed", "RuntimeError: out of memory")
    done = _run(runs, "vgg19-s0-e8c6e_00002", "finished")
    mark_cut_runs(Location(runs), ["e8c6e_00005", "e8c6e_00002", "e8c6e_00003"])
    assert _status(cut) == {"status": "running", "error": None, "cut_with": DIED}
    assert _status(earlier)["status"] == "failed"  # not among the trials the interrupt cut
    assert _status(broken)["status"] == "failed"  # cut while waiting for its retry: kept
    assert _status(done)["status"] == "finished"
    history = [{"epoch": 6, "train_loss": 0.01}]
    assert decide_status(None, _status(cut), history, target=10, classes=10) == "running"


def test_an_interrupted_sweep_marks_its_cut_runs_before_it_says_so(tmp_path):
    experiment = tmp_path / "exp"
    cut = _run(experiment / "runs", "vgg16-s0-e8c6e_00000", "failed", DIED)
    plan = SimpleNamespace(
        experiment_dir=Location(experiment), runs_dir=Location(experiment / "runs")
    )
    _last_seen[str(plan.experiment_dir)] = {"e8c6e_00000": "RUNNING", "e8c6e_00001": "TERMINATED"}
    try:
        with pytest.raises(SweepInterrupted, match="1 of 2 trials unfinished"):
            check_finished(plan, grid=[object(), object()])
    finally:
        _last_seen.pop(str(plan.experiment_dir))
    assert _status(cut)["status"] == "running"
