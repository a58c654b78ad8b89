"""Segmentation on the session's Ray head: a 2-worker DDP run whose IoU is the whole test set's,
and the voc_fcn space (shapes fidelity) through a sweep into the aggregator's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepnets.checkpoint import latest_checkpoint_dir, load_state
from deepnets.config import load_config
from deepnets.data import load_datasets, make_loader
from deepnets.data.shapes import write_shapes_dataset
from deepnets.data.voc import IGNORE_INDEX
from deepnets.engine import evaluate
from deepnets.launch import run_training
from deepnets.metrics import segmentation_report
from deepnets.models import create_configured_model
from deepnets.runlog import read_history
from deepnets.sweep_plan import plan_sweep

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _test_confusion(cfg, state, rank: int = 0, world_size: int = 1):
    """The test split's pixel confusion matrix of `state`'s weights, as one process sees it."""
    data = load_datasets(cfg.data, cfg.seed)
    model = create_configured_model(
        cfg.model.name, cfg.model.options, num_classes=data.num_classes, in_chans=3
    )
    model.load_state_dict(state["model"])
    loader = make_loader(
        data, data.test, cfg.data, batch_size=4, train=False, seed=cfg.seed, rank=rank,
        world_size=world_size,
    )  # fmt: skip
    counts = evaluate(model, loader, num_classes=data.num_classes, ignore_index=IGNORE_INDEX)
    return counts.confusion, data.classes


def test_two_worker_run_reports_the_whole_test_sets_iou(ray_session, tmp_path, forget_voc_after):
    folder = write_shapes_dataset(tmp_path / "shapes", train=32, val=15, seed=1)
    forget_voc_after(folder)
    cfg = load_config(
        None,
        [
            "task=segmentation", f"data.dataset=voc:{folder}", "data.val_fraction=0.2",
            "data.augment=standard", "data.resolution=48", "model.name=fcn8s",
            "model.options={width: 0.125, head: compact, batch_norm: before_relu}",
            "optim.lr=0.01", "epochs=3", "global_batch_size=8", "num_workers=2",
            f"output_dir={tmp_path}", "name=seg2",
        ],
    )  # fmt: skip
    summary = run_training(cfg)
    assert summary.error is None and summary.epochs_done == 3
    history = read_history(tmp_path / "seg2")
    assert all("val_miou" in row for row in history)
    report = json.loads((tmp_path / "seg2" / "test_report.json").read_text())
    assert report["world_size"] == 2 and report["task"] == "segmentation"
    assert report["test_images"] == 15  # 15 test images: 8 on rank 0, 7 on rank 1

    # The reported confusion matrix is the sum over both ranks: the whole test split, as one
    # process evaluating the final checkpoint sees it (BatchNorm statistics are rank 0's).
    state = load_state(latest_checkpoint_dir(tmp_path / "seg2"))
    whole, classes = _test_confusion(cfg, state)
    reported = report["segmentation"]
    assert sum(map(sum, reported["confusion_matrix"])) == int(whole.sum()) == report["test_pixels"]
    assert reported["mean_iou"] == pytest.approx(segmentation_report(whole, classes)["mean_iou"])
    assert report["test_miou"] == reported["mean_iou"] == summary.test_miou
    # ... and not what rank 0 saw of it alone.
    half, _ = _test_confusion(cfg, state, rank=0, world_size=2)
    assert int(half.sum()) < int(whole.sum())
    assert segmentation_report(half, classes)["mean_iou"] != pytest.approx(reported["mean_iou"])


def test_voc_fcn_space_sweeps_into_a_report_with_iou_dice_and_a_grid(ray_session, tmp_path):
    from deepnets.results.report import build_report
    from deepnets.sweep import run_sweep

    plan = plan_sweep(
        ROOT / "tune_spaces/voc_fcn.yaml", fidelity="shapes", storage=str(tmp_path), name="fcn"
    )
    rows = {r["variant"]: r for r in run_sweep(plan, max_concurrent=2)}
    assert set(rows) == {"fcn32s", "fcn16s", "fcn8s"}
    assert all(r["status"] == "ok" and r["epochs"] == "12/12" for r in rows.values())
    best = max(r["test_miou"] for r in rows.values())
    assert best > 0.5  # every pixel background scores about 0.22

    out = tmp_path / "report"
    tables = build_report([str(plan.experiment_dir)], out)
    assert [t.kind for t in tables] == ["segmentation"]
    data = json.loads((out / "tables.json").read_text())
    table = data["tables"][0]
    assert [r["variant"] for r in table["rows"]] == ["fcn32s", "fcn16s", "fcn8s"]
    assert table["rows"][0]["report_iou"] is None  # shapes are not VOC2012: nothing to set beside
    assert max(r["ours_iou_mean"] for r in table["rows"]) == pytest.approx(100 * best)
    section = data["segmentation"][0]
    assert [r["class"] for r in section["rows"]] == ["background", "square", "circle", "triangle"]
    images = sorted(p.name for p in (out / "img").iterdir())
    assert images == ["voc-fcn__shapes-curves.png", "voc-fcn__shapes-segmentation.png"]
    assert "Per-class IoU and Dice" in (out / "tables.md").read_text()
    assert "segmentation.png" in (out / "index.html").read_text()
