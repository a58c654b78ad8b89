"""Real sweeps on the session's Ray head: ASHA pruning, `ray job submit`, interrupt + resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from raycluster import actor_ids

from deepnets.runlog import read_history
from deepnets.sweep_plan import plan_sweep

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

ASHA_SPACE = """
name: asha-test
base:
  data: {dataset: digits, train_subset: 1000, test_subset: 100, val_fraction: 0.25}
  model: {name: resnet18, options: {stem: small, width: 0.25}}
  optim: {name: adam, lr: 0.003}
  schedule: {name: none}
  epochs: 4
  global_batch_size: 32
variants:
  - {id: good-adam}
  - {id: good-sgd, overrides: {optim: {name: sgd, lr: 0.03, momentum: 0.9}}}
  - {id: bad-lr10, overrides: {optim: {name: sgd, lr: 10.0}}}
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
resources: {workers_per_trial: 1, cpus_per_worker: 1}
"""


def _placement_group_ids(*filters: tuple[str, str, str]) -> set[str]:
    from ray.util.state import list_placement_groups

    found = list_placement_groups(filters=list(filters), limit=10_000)
    return {group.placement_group_id for group in found}


RUN_HELPERS_LEFT_OUT = ("DatasetManager", "PlacementGroupCleaner")


def test_asha_stops_the_diverging_variant_at_its_grace_period(ray_session, tmp_path):
    from deepnets.sweep import run_sweep

    space = tmp_path / "asha.yaml"
    space.write_text(ASHA_SPACE)
    plan = plan_sweep(space, fidelity=None, storage=str(tmp_path / "exp"), name=None)
    groups_before = _placement_group_ids()
    helpers_before = {name: actor_ids(name) for name in RUN_HELPERS_LEFT_OUT}
    # One trial at a time, bad one last: ASHA compares it with the two finished rung entries.
    ctrl_c = signal.getsignal(signal.SIGINT)
    rows = {r["variant"]: r for r in run_sweep(plan, max_concurrent=1)}
    assert signal.getsignal(signal.SIGINT) is ctrl_c  # Tune's handler does not outlive the sweep
    # Stopped by ASHA at the grace period, epoch 1; starred as ASHA-stopped unless it diverged,
    # which its status then says (as in the report's tables).
    status = rows["bad-lr10"]["status"]
    assert status in ("stopped early", "diverged at epoch 1")
    assert rows["bad-lr10"]["epochs"] == "1/4" + ("*" if status == "stopped early" else "")
    assert any(rows[v]["epochs"] == "4/4" for v in ("good-adam", "good-sgd"))
    bad_run = Path(rows["bad-lr10"]["run_dir"])
    assert [r["epoch"] for r in read_history(bad_run)] == [1]
    assert json.loads((plan.experiment_dir / "sweep_results.json").read_text())

    # The stopped trial's Train controller died with its Tune actor and left its placement
    # group to this (still living) driver's job: the sweep's janitor removed it, and Ray
    # Train's per-run helpers were never started (deepnets/lean_trainer.py).
    deadline = time.monotonic() + 30
    while _placement_group_ids(("state", "!=", "REMOVED")) - groups_before:
        assert time.monotonic() < deadline, "a trial's placement group outlived the sweep"
        time.sleep(0.5)
    assert {name: actor_ids(name) for name in RUN_HELPERS_LEFT_OUT} == helpers_before


def _ray(head, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "ray"), *args],
        env=head.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


EXCLUDES = json.dumps(
    {
        "excludes": [
            ".venv",
            ".git",
            "runs",
            "reports",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
        ]
    }
)


def test_ray_job_submit_runs_the_sweep(ray_head, ray_session, tmp_path):
    storage = tmp_path / "jobs"
    commit = "0123456789abcdef0123456789abcdef01234567"  # the submitter's `git rev-parse HEAD`
    runtime_env = json.loads(EXCLUDES) | {"env_vars": {"DEEPNETS_GIT_COMMIT": commit}}
    submitted = _ray(
        ray_head, "job", "submit", "--address", ray_head.dashboard_url,
        "--submission-id", "deepnets-smoke", "--working-dir", ".",
        "--runtime-env-json", json.dumps(runtime_env),
        "--", "python", "jobs/sweep.py", "--space", "tune_spaces/smoke.yaml",
        "--storage", str(storage), "--name", "smoke-job",
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray_head.dashboard_url)
    assert client.get_job_status("deepnets-smoke") == JobStatus.SUCCEEDED
    assert "experiment:" in client.get_job_logs("deepnets-smoke")
    rows = json.loads((storage / "smoke-job/sweep_results.json").read_text())
    assert sorted(r["variant"] for r in rows) == ["adam", "sgd-momentum"]
    assert all(r["status"] == "ok" and r["epochs"] == "2/2" for r in rows)
    for row in rows:
        assert (Path(row["run_dir"]) / "test_report.json").exists()
        run = json.loads((Path(row["run_dir"]) / "run.json").read_text())
        assert run["provenance"]["git_commit"] == commit  # no .git in the uploaded copy


# A few seconds a trial: 240 training images at width 0.25.
TINY_BASE = """
base:
  data: {dataset: digits, train_subset: 300, test_subset: 100, val_fraction: 0.2}
  model: {name: resnet18, options: {stem: small, width: 0.25}}
  global_batch_size: 32
"""

RESUME_SPACE = (
    "name: resume-test"
    + TINY_BASE
    + """  epochs: 3
variants:
  - {id: a, overrides: {optim.lr: 0.003}}
  - {id: b, overrides: {optim.lr: 0.002}}
  - {id: c, overrides: {optim.lr: 0.001}}
  - {id: d, overrides: {optim.lr: 0.0005}}
scheduler: {type: fifo}
resources: {workers_per_trial: 1, cpus_per_worker: 1}
"""
)


def _sweep_process(head, *args: str) -> subprocess.Popen:
    # Unbuffered: Tune prints its progress with print(), which a pipe would hold back in 8 KB
    # blocks, so a test waiting for "completed after" could see it only once the sweep ended.
    return subprocess.Popen(
        [sys.executable, str(ROOT / "jobs/sweep.py"), *args],
        env=head.env | {"PYTHONUNBUFFERED": "1"}, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _fit_returned(runs_dir: Path) -> list[Path]:
    """Runs whose training finished (fit() returned). A test report alone is written before the
    last checkpoint is, and a run stopped in between rightly trains its last epoch again."""
    from deepnets.sweep import fit_returned

    return [
        p.parent for p in runs_dir.glob("*/run.json") if fit_returned(json.loads(p.read_text()))
    ]


def _collect_output(proc: subprocess.Popen) -> list[str]:
    """Read the process's output in a thread; the list fills as lines arrive."""
    import threading

    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return lines


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(
    ray_head, ray_session, tmp_path
):
    space = tmp_path / "resume.yaml"
    space.write_text(RESUME_SPACE)
    args = ["--space", str(space), "--storage", str(tmp_path), "--name", "resumable"]
    runs = tmp_path / "resumable/runs"
    driver = _sweep_process(ray_head, *args, "--max-concurrent", "1")
    lines = _collect_output(driver)
    deadline = time.monotonic() + 400
    # Interrupt once Tune itself has recorded a trial as completed.
    while not any("completed after" in line for line in lines) and driver.poll() is None:
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.5)
    driver.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves its state and stops
    driver.wait(timeout=120)
    assert driver.returncode == 130 and "continue it with --resume" in "".join(lines)
    assert not (tmp_path / "resumable/sweep_results.json").exists()  # not a finished sweep
    finished_before = {p.name: (p / "metrics.jsonl").read_text() for p in _fit_returned(runs)}
    assert 1 <= len(finished_before) < 4

    resume_and_check(ray_head, args, tmp_path / "resumable", finished_before)


def test_ray_job_stop_stops_the_sweep_as_ctrl_c_does(ray_head, ray_session, tmp_path):
    """`ray job stop` sends SIGTERM: the sweep saves its state and says how to go on, as on
    Ctrl-C, and --resume finishes it without training a finished trial again."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    space = tmp_path / "resume.yaml"
    space.write_text(RESUME_SPACE)
    args = ["--space", str(space), "--storage", str(tmp_path), "--name", "stopped"]
    # Ray's job supervisor sends SIGKILL 3 s after SIGTERM unless the job's environment gives
    # it longer: README's recipe.
    runtime_env = json.loads(EXCLUDES) | {"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": "60"}}
    submitted = _ray(
        ray_head, "job", "submit", "--address", ray_head.dashboard_url, "--no-wait",
        "--submission-id", "deepnets-stop", "--working-dir", ".",
        "--runtime-env-json", json.dumps(runtime_env),
        "--", "python", "jobs/sweep.py", *args, "--max-concurrent", "1",
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    client, runs = JobSubmissionClient(ray_head.dashboard_url), tmp_path / "stopped/runs"
    deadline = time.monotonic() + 400
    while not _fit_returned(runs):  # stop it once a trial has finished, before the last
        assert not client.get_job_status("deepnets-stop").is_terminal()
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.5)
    stopped = _ray(ray_head, "job", "stop", "--address", ray_head.dashboard_url, "deepnets-stop")
    assert stopped.returncode == 0, stopped.stdout[-3000:] + stopped.stderr[-3000:]
    while not client.get_job_status("deepnets-stop").is_terminal():
        assert time.monotonic() < deadline + 120, "the stopped job did not end"
        time.sleep(0.5)
    assert client.get_job_status("deepnets-stop") == JobStatus.STOPPED
    logs = client.get_job_logs("deepnets-stop")
    assert "continue it with --resume" in logs, logs[-4000:]
    assert not (tmp_path / "stopped/sweep_results.json").exists()
    finished_before = {p.name: (p / "metrics.jsonl").read_text() for p in _fit_returned(runs)}
    assert 1 <= len(finished_before) < 4

    resume_and_check(ray_head, args, tmp_path / "stopped", finished_before)


TWO_SPEEDS_SPACE = (
    "name: two-speeds"
    + TINY_BASE
    + """  epochs: 1
variants:
  - {id: quick}
  - {id: slow, overrides: {epochs: 15}}
scheduler: {type: fifo}
resources: {workers_per_trial: 1, cpus_per_worker: 1}
"""
)


def test_ctrl_c_while_every_unfinished_trial_runs_leaves_a_sweep_to_resume(
    ray_head, ray_session, tmp_path
):
    """On Ctrl-C Tune stops running trials and marks them TERMINATED, as if they had ended, and
    fit() returns normally: the sweep must still exit 130 with no final table, and --resume
    must finish the slow trial without training the quick one again."""
    space = tmp_path / "speeds.yaml"
    space.write_text(TWO_SPEEDS_SPACE)
    args = ["--space", str(space), "--storage", str(tmp_path), "--name", "speeds"]
    driver = _sweep_process(ray_head, *args)  # both trials run at once on the 2-CPU head
    lines = _collect_output(driver)
    deadline = time.monotonic() + 400
    while not any("completed after" in line for line in lines) and driver.poll() is None:
        assert time.monotonic() < deadline, "the quick trial did not finish in time"
        time.sleep(0.5)
    driver.send_signal(signal.SIGINT)
    driver.wait(timeout=120)
    output = "".join(lines)
    assert driver.returncode == 130, output[-4000:]
    assert "sweep interrupted with 1 of 2 trials unfinished" in output
    assert "epoch 1/1" in output and "Reporting training result" not in output  # Train's INFO
    assert not (tmp_path / "speeds/sweep_results.json").exists()
    quick = {
        p.name: (p / "metrics.jsonl").read_text() for p in _fit_returned(tmp_path / "speeds/runs")
    }
    assert [name.split("-")[0] for name in quick] == ["quick"]

    resumed = _sweep_process(ray_head, *args, "--resume")
    output, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, output[-4000:]
    rows = json.loads((tmp_path / "speeds/sweep_results.json").read_text())
    # (one epoch of 240 images leaves "quick" at chance, which the table calls diverged)
    assert {r["variant"]: r["epochs"] for r in rows} == {"quick": "1/1", "slow": "15/15"}
    assert not any(r["status"].startswith(("failed", "running")) for r in rows), rows
    for name, metrics in quick.items():
        assert (tmp_path / "speeds/runs" / name / "metrics.jsonl").read_text() == metrics


def resume_and_check(head, args: list[str], experiment: Path, finished: dict[str, str]) -> None:
    """`--resume` the RESUME_SPACE sweep: every trial ends ok with epochs 1..3 once each, and
    the runs in `finished` (name -> metrics.jsonl text) were not trained again."""
    resumed = _sweep_process(head, *args, "--resume")
    output, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, output[-4000:]
    rows = json.loads((experiment / "sweep_results.json").read_text())
    assert sorted(r["variant"] for r in rows) == ["a", "b", "c", "d"]
    assert all(r["status"] == "ok" for r in rows), rows
    runs = experiment / "runs"
    assert len(list(runs.iterdir())) == 4  # one run directory per trial: nothing ran twice
    for name, metrics in finished.items():
        assert (runs / name / "metrics.jsonl").read_text() == metrics  # untouched
    for run in runs.iterdir():
        assert [r["epoch"] for r in read_history(run)] == [1, 2, 3]


SECRET = "deepnets-test-secret-that-must-never-be-written"  # distinctive, so a leak is found


@pytest.fixture
def s3_server():
    """A local S3 endpoint (moto) on loopback, with a bucket; stopped by its pid."""
    from raycluster import free_port

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",  # moto accepts any credentials
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket_to(port):
                break
        except OSError:
            assert time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.3)
    from pyarrow import fs

    s3 = fs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{port}", scheme="http", access_key="testing",
        secret_key=SECRET, region="us-east-1", allow_bucket_creation=True,
    )  # fmt: skip
    s3.create_dir("deepnets-test")
    yield env
    server.terminate()
    server.wait(timeout=10)


def socket_to(port: int):
    import socket

    return socket.create_connection(("127.0.0.1", port), timeout=1)


def test_sweep_with_s3_storage(ray_head, ray_session, s3_server, monkeypatch):
    runtime_env = json.loads(EXCLUDES) | {"env_vars": s3_server}
    submitted = _ray(
        ray_head, "job", "submit", "--address", ray_head.dashboard_url,
        "--working-dir", ".", "--runtime-env-json", json.dumps(runtime_env),
        "--", "python", "jobs/sweep.py", "--space", "tune_spaces/smoke.yaml",
        "--storage", "s3://deepnets-test/exp", "--name", "smoke-s3",
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    from deepnets.runlog import read_json
    from deepnets.storage import Location

    experiment = Location("s3://deepnets-test/exp/smoke-s3")
    rows = json.loads((experiment / "sweep_results.json").read_text())
    assert all(r["status"] == "ok" for r in rows) and len(rows) == 2
    for row in rows:
        run = Location(row["run_dir"])
        assert run.text.startswith("s3://deepnets-test/exp/smoke-s3/runs/")
        assert read_json(run / "test_report.json")["test_images"] == 100
        assert [r["epoch"] for r in read_history(run)] == [1, 2]
        names = [c.name for c in run.children()]
        assert any(n.startswith("checkpoint_") for n in names) and "tb" in names
    # The credentials reached the job through its environment and nowhere else.
    assert SECRET not in submitted.stdout + submitted.stderr
    assert not [name for name, data in _all_files(experiment.text) if SECRET.encode() in data]


def _all_files(uri: str):
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(uri)
    for info in filesystem.get_file_info(fs.FileSelector(root, recursive=True)):
        if info.type == fs.FileType.File:
            with filesystem.open_input_stream(info.path) as stream:
                yield info.path, stream.read()
