"""The command line: bad input is one line on stderr and exit code 2, before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _train(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs/train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


BAD = [
    (["--model", "vgg17"], "unknown model 'vgg17'"),
    (["--model", "resnet18", "--stem", "tiny"], "option 'stem'"),
    (["--epochs", "0"], "epochs"),
    (["--lr", "-0.1"], "optim.lr"),
    (["--dataset", "imagenet"], "unknown dataset"),
    (["--workers", "4", "--batch-size", "2"], "smaller than num_workers"),
    (["optim.lrr=0.1"], "unknown key"),
    (["--dataset", "mnist", "--data-root", "/nonexistent/data", "data.download=false"], "MNIST"),
    (["--dataset", "imagefolder:/nonexistent/folder"], "does not exist"),
    (["--config", "/nonexistent/run.yaml"], "cannot read"),
    (["output_dir=ftp://host/runs"], "unknown storage scheme 'ftp://'"),
    (["output_dir=/proc/deepnets-cannot-write"], "output_dir: cannot write to /proc/"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(args, fragment, tmp_path):
    result = _train(*args, "--output-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepnets: error: ")
    assert fragment in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing written before the input was checked


def test_help_lists_the_flags():
    result = _train("--help")
    assert result.returncode == 0
    for flag in ("--model", "--dataset", "--epochs", "--width", "--stem", "--data-root"):
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
