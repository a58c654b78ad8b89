"""Faults on a real cluster: a killed worker, a killed sweep driver, many trials, no leaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from raycluster import actor_ids
from test_sweep_ray import RESUME_SPACE, _fit_returned, _sweep_process, resume_and_check

from deepnets.runlog import RUN_FILE, read_history, read_json

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, f"process ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _alive_actors(ray_session, class_name: str) -> list:
    from ray.util.state import list_actors

    return list_actors(filters=[("class_name", "=", class_name), ("state", "=", "ALIVE")])


def test_killed_worker_restarts_from_its_last_checkpoint(ray_head, ray_session, tmp_path):
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "jobs/train.py"), "--model", "resnet18", "--stem", "small",
         "--width", "0.25", "--dataset", "digits", "--epochs", "8", "--output-dir",
         str(tmp_path), "--name", "killed", "cpus_per_worker=1", "max_failures=1",
         "data.val_fraction=0.2"],
        env=ray_head.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    run_dir = tmp_path / "killed"
    _wait_for(lambda: len(read_history(run_dir)) >= 2, 300, "epoch 2", driver)
    (worker,) = _alive_actors(ray_session, "RayTrainWorker")
    workers_before = actor_ids("RayTrainWorker")
    epochs_before_kill = len(read_history(run_dir))
    os.kill(worker.pid, signal.SIGKILL)  # the process, as the OOM killer or a lost node would

    output, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, output[-4000:]
    assert epochs_before_kill < 8  # it really died mid-run
    epochs = [row["epoch"] for row in read_history(run_dir)]
    assert epochs == list(range(1, 9))  # no gap, no duplicate
    assert read_json(run_dir / RUN_FILE)["status"] == "finished"
    # Train started a replacement worker actor (Ray may have put it in a pre-started process).
    assert actor_ids("RayTrainWorker") - workers_before


def test_killed_sweep_driver_resumes_without_retraining(ray_head, ray_session, tmp_path):
    space = tmp_path / "resume.yaml"
    space.write_text(RESUME_SPACE)
    args = ["--space", str(space), "--storage", str(tmp_path), "--name", "killed"]
    runs = tmp_path / "killed/runs"
    driver = _sweep_process(ray_head, *args, "--max-concurrent", "1")
    _wait_for(lambda: _fit_returned(runs), 400, "a finished trial", driver)
    driver.kill()  # SIGKILL: no handler runs, Tune saves nothing more
    driver.wait(timeout=60)
    finished = {p.name: (p / "metrics.jsonl").read_text() for p in _fit_returned(runs)}
    checkpoints = {name: sorted((runs / name).glob("checkpoint_*")) for name in finished}

    resume_and_check(ray_head, args, tmp_path / "killed", finished)
    for name in finished:  # not even re-saved
        assert sorted((runs / name).glob("checkpoint_*")) == checkpoints[name]
    tables = json.loads((tmp_path / "killed/report/tables.json").read_text())
    statuses = [row["status"] for table in tables["tables"] for row in table["rows"]]
    assert statuses.count("ok") == 4  # the aggregator's table is complete


def test_sigterm_stops_a_training_run_and_the_same_command_resumes_it(ray_head, tmp_path):
    """SIGTERM (a scheduler's or `ray job stop`'s) stops `jobs/train.py` as Ctrl-C does: exit
    130 with how to continue, not 0; running the same command again finishes the run."""
    command = [
        sys.executable, str(ROOT / "jobs/train.py"), "--dataset", "digits", "--model", "resnet18",
        "--width", "0.25", "--stem", "small", "--epochs", "6", "--output-dir", str(tmp_path),
        "--name", "stopped", "data.train_subset=300", "data.test_subset=100",
    ]  # fmt: skip
    run = tmp_path / "stopped"
    env = ray_head.env | {"PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: bool(read_history(run)), 300, "an epoch done", first)
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=180)
    assert first.returncode == 130, stderr[-3000:]
    assert "run the same command again to resume" in stderr
    assert len(read_history(run)) < 6

    again = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [row["epoch"] for row in read_history(run)] == [1, 2, 3, 4, 5, 6]


MANY_SPACE = """
name: many
base:
  data: {dataset: digits, train_subset: 200, test_subset: 50, val_fraction: 0.25}
  model: {name: resnet18, options: {stem: small, width: 0.125}}
  epochs: 1
  global_batch_size: 32
variants: [{id: tiny}]
seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
scheduler: {type: fifo}
resources: {workers_per_trial: 1, cpus_per_worker: 1}
"""


# Detached actors Ray Train starts once per cluster and keeps for the next run: not per-trial
# state, so not a leak (the test still fails if any trial's actor or placement group stays).
RAY_SINGLETONS = {"_AutoscalingCoordinatorActor"}


def test_twenty_trials_all_report_and_leave_the_cluster_clean(ray_head, ray_session, tmp_path):
    from ray.util.state import list_actors, list_placement_groups

    space = tmp_path / "many.yaml"
    space.write_text(MANY_SPACE)
    sweep = _sweep_process(ray_head, "--space", str(space), "--storage", str(tmp_path))
    output, _ = sweep.communicate(timeout=1200)
    assert sweep.returncode == 0, output[-4000:]
    rows = json.loads((tmp_path / "many/sweep_results.json").read_text())
    assert sorted(r["seed"] for r in rows) == list(range(20))
    # Present, not good: one epoch on 150 images is near chance, which the table calls diverged.
    assert all(r["test_accuracy"] is not None for r in rows)
    assert not [r for r in rows if r["status"].startswith(("failed", "missing"))]

    def leaks():
        actors = list_actors(filters=[("state", "!=", "DEAD")])
        groups = list_placement_groups(filters=[("state", "!=", "REMOVED")])
        return [a for a in actors if a.class_name not in RAY_SINGLETONS] + groups

    deadline = time.monotonic() + 60  # actors of a finished job are reaped asynchronously
    while leaks() and time.monotonic() < deadline:
        time.sleep(1)
    assert leaks() == []
