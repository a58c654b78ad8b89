"""`jobs/reproduce.py` for real: two report spaces at proxy fidelity, their sweeps run at once,
interrupted as `timeout -s INT` does it, then continued and finished by the same command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SPACES = {"cifar10_googlenet": 2, "mnist_googlenet": 4}  # the two smallest: 6 trials
PLACES = 2  # proxy trials take 1 CPU; every Ray here has 2


def _command(tmp_path: Path) -> list[str]:
    return [
        sys.executable, "jobs/reproduce.py", "--fidelity", "proxy", "--together",
        "--spaces", ",".join(SPACES), "--storage", str(tmp_path / "runs"),
        "--out", str(tmp_path / "report"),
    ]  # fmt: skip


def _reproduce(head, tmp_path: Path) -> subprocess.CompletedProcess:
    # On the session's head (RAY_ADDRESS), as under `ray job submit`: the sweeps join it too.
    return subprocess.run(
        _command(tmp_path), env=head.env, cwd=ROOT, capture_output=True, text=True, timeout=1500
    )


def _interrupt_once_both_sweeps_trained(head, tmp_path: Path) -> subprocess.CompletedProcess:
    """Start the command in its own process group and on a Ray of its own (as on a GPU machine:
    no RAY_ADDRESS, so the command's exit would end that Ray), wait until every space has a
    trial with an epoch done, then signal the group and the command again, as `timeout -s INT`
    does."""
    env = {key: value for key, value in head.env.items() if key != "RAY_ADDRESS"}
    driver = subprocess.Popen(
        _command(tmp_path), env=env, cwd=ROOT, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        experiments = [tmp_path / "runs" / f"repro-proxy-{space}" for space in SPACES]
        deadline = time.monotonic() + 900
        while not all(any(e.glob("runs/*/metrics.jsonl")) for e in experiments):
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "no epoch done in every space"
            time.sleep(1)
        os.killpg(driver.pid, signal.SIGINT)
        os.kill(driver.pid, signal.SIGINT)
        stdout, stderr = driver.communicate(timeout=600)
    finally:  # whatever failed, nothing of this command outlives the test
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    return subprocess.CompletedProcess(driver.args, driver.returncode, stdout, stderr)


def test_spaces_run_together_stop_on_ctrl_c_and_continue_into_one_report(ray_head, tmp_path):
    cut = _interrupt_once_both_sweeps_trained(ray_head, tmp_path)
    assert cut.returncode == 130, cut.stdout[-3000:] + cut.stderr[-3000:]
    assert "run the same command again to continue them" in cut.stderr
    for space in SPACES:  # each sweep stopped on its own terms: its state saved, no traceback
        log = (tmp_path / "report" / "logs" / f"report_{space}.log").read_text()
        # (Ray streams its actors' lines, "(TrainController pid=..) ...", into the same log:
        # a trial stopped while its workers start logs the failed start; that is Ray's.)
        own = "\n".join(line for line in log.splitlines() if " pid=" not in line)
        assert "Traceback" not in own, own[-3000:]
        saved = ("continue it with --resume", "run the same command again to resume")
        assert any(phrase in own for phrase in saved) or f"report_{space}: exit 0" in cut.stdout

    done = _reproduce(ray_head, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "report"
    record = json.loads((out / "reproduction.json").read_text())
    assert record["together"] and set(record["sweep_exit_codes"].values()) == {0}
    for space, trials in SPACES.items():
        experiment = tmp_path / "runs" / f"repro-proxy-{space}"
        rows = json.loads((experiment / "sweep_results.json").read_text())
        assert len(rows) == trials
        assert not any(row["status"].startswith(("failed", "running")) for row in rows), rows
        assert "trials [proxy]" in (out / "logs" / f"report_{space}.log").read_text()
    tables = (out / "tables.md").read_text()
    assert "## cifar10-googlenet [proxy]" in tables and "## mnist-googlenet [proxy]" in tables

    # Both sweeps ran at once, but shared the cluster's trial places: never more trials running
    # than places (without them each sweep ran two, and two of the four waited in fit(), idle).
    runs = [tmp_path / "runs" / f"repro-proxy-{space}" / "runs" for space in SPACES]
    assert _most_running_at_once(runs) <= PLACES

    again = _reproduce(ray_head, tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("finished earlier, skipped") == 2


def _most_running_at_once(runs_dirs: list[Path]) -> int:
    """The most trials running at once, each from the start of its fit() (in run.json) to its
    end, or, for a trial killed before it wrote that, the last write to its run folder."""
    spans = [_run_span(run) for folder in runs_dirs for run in folder.glob("*/run.json")]
    assert spans
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    alive = most = 0  # at a tie an end (-1) sorts first: a place freed, then taken
    for _, change in events:
        alive += change
        most = max(most, alive)
    return most


def _run_span(run_file: Path) -> tuple[float, float]:
    record = json.loads(run_file.read_text())
    # The sweep rewrites run.json at its end: the other files say when the trial last wrote.
    written = [path.stat().st_mtime for path in run_file.parent.rglob("*") if path != run_file]
    return record["started_at"], record.get("ended_at") or max(written, default=0.0)
