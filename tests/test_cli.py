"""The command line: bad input is one line on stderr and exit code 2, before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _train(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs/train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# Every refused input (train and sweep) is in test_bad_input.py.


def test_help_lists_the_flags():
    result = _train("--help")
    assert result.returncode == 0
    for flag in ("--task", "--model", "--dataset", "--epochs", "--width", "--stem", "--data-root"):
        assert flag in result.stdout


def test_report_of_a_folder_that_is_not_a_sweep_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "jobs/report.py"), str(tmp_path), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"deepnets: error: {tmp_path}: no sweep.json (not a deepnets sweep)"
    ]


def test_sweep_dry_run_prints_the_trials_without_ray():
    result = subprocess.run(
        [sys.executable, str(ROOT / "jobs/sweep.py"), "--space",
         str(ROOT / "tune_spaces/report_mnist_vgg.yaml"), "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "report-mnist-vgg: 9 trials [proxy]" in result.stdout
    assert "vgg16-bn-after-relu" in result.stdout and "ray" not in result.stderr.lower()


def _sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs/sweep.py"),
         "--space", str(ROOT / "tune_spaces/smoke.yaml"), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_sweep_refuses_to_overwrite_or_resume_nothing_before_ray(tmp_path):
    result = _sweep("--storage", str(tmp_path), "--resume")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"deepnets: error: --resume: no sweep to resume at {tmp_path / 'smoke'}"
    ]
    (tmp_path / "smoke").mkdir(exist_ok=True)
    (tmp_path / "smoke" / "tuner.pkl").write_bytes(b"")  # what Tune leaves in an experiment
    result = _sweep("--storage", str(tmp_path))
    assert result.returncode == 2
    assert "a sweep already exists" in result.stderr and "--resume" in result.stderr
    assert "Started a local Ray instance" not in result.stdout + result.stderr


def test_gpu_reproduction_plans_all_40_report_rows_without_ray(tmp_path):
    result = subprocess.run(
        [sys.executable, "jobs/reproduce.py", "--dry-run", "--storage", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    counts = [int(line.split(": ")[1].split()[0]) for line in result.stdout.splitlines()
              if " trials [full]" in line]  # fmt: skip
    assert len(counts) == 6 and sum(counts) == 40
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_overrides_may_come_between_flags_and_later_ones_win():
    from deepnets.cli import parse, train_overrides

    args = parse(["train", "optim.lr=0.1", "--model", "vgg11", "epochs=3", "--lr", "0.2",
                  "epochs=4"])  # fmt: skip
    assert args.model == "vgg11"
    overrides = train_overrides(args)
    assert overrides.index("epochs=3") < overrides.index("epochs=4")
    assert "optim.lr=0.1" in overrides
    result = _train("--model", "vgg11", "--bogus")
    assert result.returncode == 2 and "unrecognized arguments: --bogus" in result.stderr
    result = subprocess.run(
        [sys.executable, str(ROOT / "jobs/sweep.py"), "--dry-run", "epochs=3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # Sweeps take their settings from the space file: an override there is refused.
    assert result.returncode == 2 and "unrecognized arguments: epochs=3" in result.stderr
