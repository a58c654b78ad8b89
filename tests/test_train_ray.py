"""A real 2-worker DDP run through Ray Train's TorchTrainer on the embedded digits dataset."""

from __future__ import annotations

import json

import pytest

from deepnets.checkpoint import latest_checkpoint_dir, load_state
from deepnets.config import load_config
from deepnets.data import load_datasets, make_loader
from deepnets.engine import evaluate
from deepnets.launch import run_training
from deepnets.models import create_configured_model
from deepnets.results.collect import diverged_at
from deepnets.runlog import RUN_FILE, TEST_REPORT_FILE, TIMELINE_FILE, read_history

pytestmark = pytest.mark.slow

SETTINGS = [
    "model.name=resnet18",
    "model.options.stem=small",
    "model.options.width=0.25",
    "data.dataset=digits",
    "data.val_fraction=0.2",
    "num_workers=2",
    "cpus_per_worker=1",
    "global_batch_size=64",
    "optim.lr=0.005",
    "schedule.name=none",
]


def _accuracy_of_weights_on_whole_test_set(cfg, state) -> float:
    data = load_datasets(cfg.data, cfg.seed)
    model = create_configured_model(cfg.model.name, cfg.model.options, num_classes=10, in_chans=1)
    model.load_state_dict(state["model"])
    loader = make_loader(data, data.test, cfg.data, batch_size=32, train=False, seed=cfg.seed)
    counts = evaluate(model, loader, num_classes=10)
    assert counts.count == len(data.test)
    return counts.accuracy


def test_ddp_run_reports_global_metrics_checkpoints_and_resumes(ray_session, tmp_path):
    cfg = load_config(None, [*SETTINGS, "epochs=2", f"output_dir={tmp_path}", "name=ddp"])
    summary = run_training(cfg)
    run_dir = tmp_path / "ddp"
    assert summary.error is None and summary.epochs_done == 2

    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(row["weights_finite"] is True for row in history)
    assert history[1]["train_loss"] < history[0]["train_loss"]
    assert history[1]["val_accuracy"] > 0.3  # well above chance (10 classes) after two epochs

    state = load_state(latest_checkpoint_dir(run_dir))
    assert state["epoch"] == 2 and len(state["history"]) == 2
    # The reported accuracy is the whole test set's, not rank 0's half of it. Recomputed here in
    # one process, batches are cut differently, so a near-tie logit may round the other way:
    # allow that one image and no more.
    reported = history[-1]["test_accuracy"]
    whole = _accuracy_of_weights_on_whole_test_set(cfg, state)
    assert abs(reported - whole) <= 1 / 360 + 1e-12
    report = json.loads((run_dir / TEST_REPORT_FILE).read_text())
    assert report["world_size"] == 2 and report["test_images"] == 360
    matrix = report["per_class"]["confusion_matrix"]
    assert sum(map(sum, matrix)) == 360
    assert sum(matrix[k][k] for k in range(10)) / 360 == pytest.approx(reported)
    assert report["per_class"]["accuracy"] == pytest.approx(reported)
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert record["status"] == "finished" and record["provenance"]["versions"]["ray"]
    # Rank 0's start-up milestones, in the order they happen (bench/run_rate.py --phases).
    marks = json.loads((run_dir / TIMELINE_FILE).read_text())
    order = ["process_started", "imports_started", "loop_started", "data_ready", "model_built"]
    order += ["optimizer_ready", "model_ready", "first_epoch_started"]
    assert sorted(marks, key=marks.get) == order
    assert record["process_started_at"] <= record["started_at"] <= marks["process_started"]

    # Same run directory, one more epoch: continues after epoch 2 instead of starting over.
    resumed = run_training(cfg.model_copy(update={"epochs": 3}))
    assert resumed.error is None
    history3 = read_history(run_dir)
    assert [row["epoch"] for row in history3] == [1, 2, 3]
    assert history3[:2] == history  # the first two epochs were not trained again
    assert load_state(latest_checkpoint_dir(run_dir))["epoch"] == 3


def test_a_run_whose_weights_turn_nonfinite_stops_there_on_every_rank(ray_session, tmp_path):
    """A NaN weight stays NaN, so training on only spends time: both DDP ranks stop after the
    epoch that broke the weights (neither waits on the other; ranks that disagree:
    test_weights_finite.py), the run ends without error, and its history says why."""
    settings = [*SETTINGS, "model.name=vgg11", "model.options.batch_norm=none", "optim.lr=100"]
    settings += ["epochs=3", f"output_dir={tmp_path}", "name=nan"]  # NaN within 18 steps
    summary = run_training(load_config(None, settings))
    assert summary.error is None and summary.epochs_done == 1
    (row,) = read_history(tmp_path / "nan")
    assert row["weights_finite"] is False
    assert diverged_at([row], num_classes=10, finished=False) == 1
    assert not (tmp_path / "nan" / TEST_REPORT_FILE).exists()  # no test of broken weights
    record = json.loads((tmp_path / "nan" / RUN_FILE).read_text())
    assert record["status"] == "finished"


def test_compiled_run_saves_plain_weights_that_an_eager_run_resumes(ray_session, tmp_path):
    """torch.compile wraps the model (`_orig_mod.` names): checkpoints must hold the bare
    module's weights, the ones the test accuracy was measured with."""
    one_worker = [s for s in SETTINGS if not s.startswith(("num_workers", "data.val"))]
    settings = [*one_worker, "num_workers=1", "data.train_subset=400", "data.test_subset=200"]
    cfg = load_config(None, [*settings, "epochs=1", "compile=default", f"output_dir={tmp_path}"])
    summary = run_training(cfg.model_copy(update={"name": "compiled"}))
    assert summary.error is None and summary.epochs_done == 1
    run_dir = tmp_path / "compiled"
    state = load_state(latest_checkpoint_dir(run_dir))
    plain = create_configured_model(cfg.model.name, cfg.model.options, num_classes=10, in_chans=1)
    assert list(state["model"]) == list(plain.state_dict())
    reported = read_history(run_dir)[-1]["test_accuracy"]
    assert abs(_accuracy_of_weights_on_whole_test_set(cfg, state) - reported) <= 1 / 200 + 1e-12

    eager = cfg.model_copy(update={"name": "compiled", "epochs": 2, "compile": "off"})
    assert run_training(eager).error is None
    assert [row["epoch"] for row in read_history(run_dir)] == [1, 2]
