"""The aggregator on real small sweeps: rows, statuses, pooled seeds, determinism, the page."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from deepnets.results.collect import RunRecord, diverged_at
from deepnets.results.report import build_report
from deepnets.results.tables import mean_std, pooled_status, summarise
from deepnets.sweep_plan import plan_sweep

# Pretends to be the report's MNIST / GoogLeNet table, with a small ResNet on the embedded digits
# for speed (a tiny GoogLeNet's BatchNorm statistics need more steps than this): the aggregator
# joins runs to reference rows by variant id alone.
SPACE = """
name: {name}
report_table: {{dataset: mnist, family: googlenet}}
base:
  data: {{dataset: digits, train_subset: 600, test_subset: 100, val_fraction: 0.2}}
  model: {{name: resnet18, options: {{stem: small, width: 0.25}}}}
  optim: {{name: adam, lr: 0.003}}
  epochs: 2
  global_batch_size: 32
variants:
{variants}
seeds: [{seed}]
scheduler: {{type: fifo}}
resources: {{workers_per_trial: 1, cpus_per_worker: 1}}
"""
GOOD = "  - {id: googlenet-adam}"
DIVERGING = "  - {id: googlenet, overrides: {optim: {name: sgd, lr: 10.0}}}"


def _sweep(tmp_path: Path, name: str, variants: list[str], seed: int) -> str:
    from deepnets.sweep import run_sweep

    space = tmp_path / f"{name}.yaml"
    space.write_text(SPACE.format(name=name, variants="\n".join(variants), seed=seed))
    plan = plan_sweep(space, fidelity=None, storage=str(tmp_path / "exp"), name=None)
    run_sweep(plan)
    return str(plan.experiment_dir)


@pytest.fixture(scope="module")
def experiments(ray_session, tmp_path_factory):
    """Two real sweeps sharing a variant (seeds 0 and 1); one variant diverges."""
    tmp = tmp_path_factory.mktemp("report")
    first = _sweep(tmp, "part-a", [GOOD, DIVERGING], seed=0)
    second = _sweep(tmp, "part-b", [GOOD], seed=1)
    return tmp, [first, second]


@pytest.mark.slow
def test_tables_label_rows_pool_seeds_and_list_missing(experiments):
    tmp, dirs = experiments
    out = tmp / "out"
    build_report(dirs, out)
    data = json.loads((out / "tables.json").read_text())
    (table,) = data["tables"]
    assert table["key"] == "mnist-googlenet [-]"
    rows = {r["variant"]: r for r in table["rows"]}
    assert list(rows) == [
        "googlenet",
        "googlenet-augment",
        "googlenet-adam",
        "googlenet-adam-augment",
    ]
    assert rows["googlenet"]["status"].startswith("diverged at epoch ")
    assert rows["googlenet"]["ours"] == "-" and rows["googlenet"]["ours_mean"] is None
    assert rows["googlenet-augment"]["status"] == "missing"
    assert rows["googlenet-adam-augment"]["status"] == "missing"
    adam = rows["googlenet-adam"]
    assert adam["status"] == "ok" and adam["n"] == 2 and adam["seeds"] == "0, 1"
    accs = []
    for d in dirs:
        for report in Path(d, "runs").glob("googlenet-adam-*/test_report.json"):
            accs.append(100 * json.loads(report.read_text())["test_accuracy"])
    mean, std = mean_std(accs)
    assert adam["ours_mean"] == pytest.approx(mean) and adam["ours_std"] == pytest.approx(std)
    assert adam["difference"] == pytest.approx(mean - 99.0)
    assert adam["git_commit"] != "-" and adam["device"] == "cpu"
    assert "digits" in adam["dataset"] and adam["images"].startswith("train 480/val 120/test 100")
    md = (out / "tables.md").read_text()
    assert "| googlenet-augment |" in md and "missing" in md and "diverged at epoch" in md
    assert "Per-class: mnist-googlenet" in md
    csv_lines = (out / "tables.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 4
    images = sorted(p.name for p in (out / "img").iterdir())
    assert any(n.endswith("-curves.png") for n in images)
    assert any(n.endswith("-confusion.png") for n in images)
    assert any(n.endswith("-examples.png") for n in images)


@pytest.mark.slow
def test_report_is_deterministic_and_opens_in_chromium(experiments):
    tmp, dirs = experiments
    first, second = tmp / "det1", tmp / "det2"
    build_report(dirs, first)
    build_report(list(reversed(dirs)), second)
    for path in sorted(p for p in first.rglob("*") if p.is_file()):
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes(), path.name
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         f"--user-data-dir={tmp / 'chromium'}", "--virtual-time-budget=5000", "--dump-dom",
         f"file://{first / 'index.html'}"],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert 'data-images="ok"' in dom
    assert "googlenet-adam-augment" in dom and "diverged at epoch" in dom


def _record(status: str, acc: float | None, epochs: int = 2, target: int = 2) -> RunRecord:
    return RunRecord(
        "exp", "space", "mnist-vgg", None, "vgg16", 0, "run", status, epochs, target,
        None, None, acc, 1.0,
    )  # fmt: skip


def test_mean_and_std_for_known_inputs():
    mean, std = mean_std([99.0, 98.0, 97.0])
    assert mean == pytest.approx(98.0) and std == pytest.approx(1.0)
    assert mean_std([90.0]) == (90.0, None) and mean_std([]) == (None, None)
    summary = summarise(
        [_record("ok", 0.99), _record("ok", 0.97), _record("diverged at epoch 1", 0.1)]
    )
    assert summary.n == 2 and summary.mean == pytest.approx(98.0)
    assert summary.std == pytest.approx(1.4142135, rel=1e-6)
    assert summary.status == "diverged at epoch 1 (x1); ok (x2)"
    assert pooled_status([]) == "missing"
    assert summarise([_record("stopped early", 0.5, epochs=1, target=4)]).epochs == "1/4*"
    # Cut by an interrupted sweep (or still going): not ASHA's doing, so no star.
    assert summarise([_record("running", 0.5, epochs=6, target=10)]).epochs == "6/10"


def test_a_resumed_sweep_counts_runs_that_stopped_on_nonfinite_weights_as_done():
    from deepnets.sweep import final_epoch

    done, running = {"status": "finished"}, {"status": "running"}
    rows = [{"epoch": 1, "weights_finite": True}, {"epoch": 2, "weights_finite": True}]
    assert final_epoch(done, rows, epochs=2) == rows[-1]
    assert final_epoch(done, rows[:1], epochs=2) is None  # cut short: trains on when resumed
    assert final_epoch(running, rows, epochs=2) is None  # fit() never returned
    broken = [{"epoch": 1, "weights_finite": False}]
    assert final_epoch(done, broken, epochs=3) == broken[0]


def test_divergence_is_nonfinite_loss_or_weights_or_chance_accuracy_to_the_end():
    ok = [{"epoch": 1, "train_loss": 1.0, "val_accuracy": 0.5}]
    assert diverged_at(ok, 10) is None
    nan = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": None}]
    assert diverged_at(nan, 10) == 2
    stuck = [
        {"epoch": 1, "train_loss": 2.3, "val_accuracy": 0.3},
        {"epoch": 2, "train_loss": 2.3, "val_accuracy": 0.1},
        {"epoch": 3, "train_loss": 2.3, "val_accuracy": 0.09},
    ]
    assert diverged_at(stuck, 10) == 2
    recovered = stuck + [{"epoch": 4, "train_loss": 1.0, "val_accuracy": 0.6}]
    assert diverged_at(recovered, 10) is None
    assert diverged_at(stuck, 10, finished=False) is None  # cut short by ASHA: not judged
    assert diverged_at(nan, 10, finished=False) == 2
    # NaN weights after the epoch's last step (its loss still finite): the run stopped there.
    broken = ok + [{"epoch": 2, "train_loss": 1.0, "weights_finite": False}]
    assert diverged_at(broken, 10, finished=False) == 2
