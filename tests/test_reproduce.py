"""`jobs/reproduce.py` for real: two report spaces at proxy fidelity, their sweeps run at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SPACES = {"cifar10_googlenet": 2, "mnist_googlenet": 4}  # the two smallest: 6 trials


def _reproduce(head, tmp_path: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "jobs/reproduce.py", "--fidelity", "proxy", "--together",
        "--spaces", ",".join(SPACES), "--storage", str(tmp_path / "runs"),
        "--out", str(tmp_path / "report"),
    ]  # fmt: skip
    # On the session's head (RAY_ADDRESS), as under `ray job submit`: the sweeps join it too.
    return subprocess.run(
        command, env=head.env, cwd=ROOT, capture_output=True, text=True, timeout=1500
    )


def test_spaces_run_together_into_one_report_and_a_rerun_skips_them(ray_head, tmp_path):
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

    again = _reproduce(ray_head, tmp_path)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count("finished earlier, skipped") == 2
