"""Segmentation without Ray: metrics, FCN models, overfitting, the aggregator's table.
(Data and augmentation: test_segmentation_data.py.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from deepnets.config import DataConfig, OptimConfig
from deepnets.data import load_datasets, make_loader
from deepnets.data.voc import IGNORE_INDEX
from deepnets.engine import cross_entropy, evaluate, train_one_epoch
from deepnets.metrics import segmentation_report
from deepnets.models import ModelConfigError, create_model
from deepnets.models.fcn import Upsample, _file_shapes, bilinear_kernel, check_weights_file
from deepnets.optim import build_optimizer

# Their VOC folders live in temp dirs: decode them into a temp cache, not the user's.
pytestmark = pytest.mark.usefixtures("isolated_cache")

TINY = {"width": 0.125, "head": "compact", "batch_norm": "before_relu"}


def _data(folder, **overrides) -> tuple[DataConfig, object]:
    cfg = DataConfig(dataset=f"voc:{folder}", **({"val_fraction": 0.0} | overrides))
    return cfg, load_datasets(cfg, seed=0)


# --- metrics, by hand ---


def test_iou_dice_and_pixel_accuracy_match_hand_computed_values():
    # truth/prediction over 8 labelled pixels of 3 classes; class 2 is never predicted.
    truth = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    preds = torch.tensor([0, 0, 1, 1, 1, 0, 1, 0])
    confusion = torch.zeros(3, 3, dtype=torch.int64)
    for t, p in zip(truth.tolist(), preds.tolist(), strict=True):
        confusion[t, p] += 1
    report = segmentation_report(confusion, ["a", "b", "c"])
    # class a: TP 2, FP 2 (a 1 and a 2 predicted as a), FN 1 -> IoU 2/5, Dice 4/7
    # class b: TP 2, FP 2, FN 1 -> IoU 2/5, Dice 4/7; class c: TP 0 -> 0, 0
    assert report["per_class"]["a"]["iou"] == pytest.approx(2 / 5)
    assert report["per_class"]["b"]["dice"] == pytest.approx(4 / 7)
    assert report["per_class"]["c"] == {"iou": 0.0, "dice": 0.0, "pixels": 2}
    assert report["mean_iou"] == pytest.approx((2 / 5 + 2 / 5 + 0) / 3)
    assert report["mean_dice"] == pytest.approx((4 / 7 + 4 / 7 + 0) / 3)
    assert report["pixel_accuracy"] == pytest.approx(4 / 8)
    assert report["mean_class_accuracy"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_a_class_absent_from_truth_and_prediction_is_left_out_of_the_means():
    confusion = torch.tensor([[5, 0, 0], [0, 3, 0], [0, 0, 0]])
    report = segmentation_report(confusion, ["a", "b", "absent"])
    assert report["mean_iou"] == 1.0 and report["mean_dice"] == 1.0


class FixedPredictions(nn.Module):
    """A real module whose logits put all weight on given class maps (to test the evaluation)."""

    def __init__(self, preds: torch.Tensor, classes: int):
        super().__init__()
        self.logits = nn.functional.one_hot(preds, classes).permute(0, 3, 1, 2).float() * 10

    def forward(self, x):
        return self.logits[: x.shape[0]]


def test_evaluate_ignores_void_pixels_in_every_count():
    truth = torch.tensor([[[0, 1], [IGNORE_INDEX, 2]]])
    preds = torch.tensor([[[0, 2], [1, 2]]])  # the void pixel's prediction must count nowhere
    counts = evaluate(
        FixedPredictions(preds, 3), [(torch.zeros(1, 3, 2, 2), truth)], num_classes=3,
        ignore_index=IGNORE_INDEX,
    )  # fmt: skip
    assert counts.count == 3 and counts.correct == 2 and counts.images == 1
    assert counts.confusion.sum() == 3 and counts.confusion[1, 2] == 1
    report = segmentation_report(counts.confusion, ["a", "b", "c"])
    assert report["per_class"]["c"]["iou"] == pytest.approx(1 / 2)  # TP 1, FP 1


# --- models ---


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
@pytest.mark.parametrize("upsample", ["learned", "bilinear"])
def test_fcn_output_matches_the_input_size_and_trains(name, upsample):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_chans=3, upsample=upsample, **TINY)
    for size in ((64, 64), (50, 70)):
        out = model(torch.randn(2, 3, *size))
        assert out.shape == (2, 5, *size)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_fcn8s_has_the_papers_parameter_count():
    with torch.device("meta"):
        model = create_model("fcn8s", num_classes=21, in_chans=3)
    # VGG16 convs 14,714,688 + fc6/fc7 as convs 119,545,856 + scorers 102,207 + upsamplers
    # 126,008 (2 x 21*21*4*4 + 21*21*16*16).
    assert sum(p.numel() for p in model.parameters()) == 134_489_759


def test_learned_upsampling_starts_as_bilinear_interpolation():
    ramp = torch.arange(8.0).view(1, 1, 1, 8).repeat(1, 2, 8, 1)
    learned = Upsample(2, 4, learned=True)(ramp, torch.Size([32, 32]))
    fixed = nn.functional.interpolate(ramp, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(learned[..., 4:-4, 4:-4], fixed[..., 4:-4, 4:-4], atol=1e-5)
    kernel = bilinear_kernel(3, 4)
    assert torch.count_nonzero(kernel[0, 1]) == 0  # channels never mix


def test_vgg16_weights_load_into_the_fcn(tmp_path):
    vgg = create_model("vgg16", num_classes=1000, in_chans=3, width=0.125)
    torch.save(vgg.state_dict(), tmp_path / "vgg16.pth")
    options = {"width": 0.125, "weights": str(tmp_path / "vgg16.pth")}
    check_weights_file("fcn16s", options, num_classes=4, in_chans=3)
    hits = _file_shapes.cache_info().hits
    check_weights_file("fcn8s", options, num_classes=4, in_chans=3)  # another variant, same file
    assert _file_shapes.cache_info().hits == hits + 1  # the file was not read again
    fcn = create_model("fcn16s", num_classes=4, in_chans=3, **options)
    assert torch.equal(fcn.features[28].weight, vgg.features[28].weight)
    assert torch.equal(fcn.head[0].weight.flatten(1), vgg.classifier[0].weight)
    assert torch.equal(fcn.head[3].weight.flatten(1), vgg.classifier[3].weight)
    with pytest.raises(ModelConfigError, match="features.0.weight has shape"):
        check_weights_file("fcn16s", options | {"width": 0.25}, num_classes=4, in_chans=3)
    (tmp_path / "junk.pth").write_text("not weights")
    with pytest.raises(ModelConfigError, match="cannot read .* as a PyTorch file"):
        check_weights_file("fcn16s", {"weights": str(tmp_path / "junk.pth")}, num_classes=4,
                           in_chans=3)  # fmt: skip


def test_our_vgg16_conv_stack_has_torchvisions_names_and_shapes():
    """So torchvision's vgg16-397923af.pth loads as is (checked on the meta device: no 528 MB)."""
    import torchvision

    with torch.device("meta"):
        theirs = torchvision.models.vgg16().state_dict()
        ours = create_model("fcn8s", num_classes=21, in_chans=3).state_dict()
    for key, value in theirs.items():
        if key.startswith("features."):
            assert ours[key].shape == value.shape, key
    assert ours["head.0.weight"].numel() == theirs["classifier.0.weight"].numel()
    assert ours["head.3.weight"].numel() == theirs["classifier.3.weight"].numel()


# --- training ---


def test_fcn8s_overfits_the_shapes_in_a_few_epochs(shapes):
    """Chance here (every pixel background) is a mean IoU of about 0.21."""
    torch.manual_seed(0)
    cfg, data = _data(shapes)
    model = create_model("fcn8s", num_classes=data.num_classes, in_chans=3, **TINY)
    optimizer = build_optimizer(model.parameters(), OptimConfig(name="adam", lr=0.01))
    train = make_loader(data, data.train, cfg, batch_size=8, train=True, seed=0)
    seen = make_loader(data, data.train, cfg, batch_size=16, train=False, seed=0)
    criterion = cross_entropy(IGNORE_INDEX)
    for epoch in range(1, 11):
        train.set_epoch(epoch)
        train_one_epoch(model, train, optimizer, criterion=criterion, ignore_index=IGNORE_INDEX)
    counts = evaluate(model, seen, num_classes=data.num_classes, ignore_index=IGNORE_INDEX)
    report = segmentation_report(counts.confusion, data.classes)
    assert report["mean_iou"] > 0.6, report["mean_iou"]
    assert min(v["iou"] for v in report["per_class"].values()) > 0.3


# --- the aggregator's comparison ---


def test_the_reports_iou_and_dice_sit_beside_ours_only_on_voc2012():
    from deepnets.results.collect import RunRecord
    from deepnets.results.segmentation import segmentation_table_rows

    def record(dataset: str, seed: int, miou: float) -> RunRecord:
        return RunRecord(
            experiment="e", space="voc-fcn", table=None, fidelity="full", variant="fcn8s",
            seed=seed, run_dir=f"r{seed}", status="ok", epochs_run=2, epochs_target=2,
            val_accuracy=0.9, best_val_accuracy=0.9, test_accuracy=0.9, wall_seconds=1.0,
            task="segmentation", test_miou=miou, test_mean_dice=miou + 0.1,
            config={"data": {"dataset": dataset}, "model": {"name": "fcn8s"}},
        )  # fmt: skip

    (voc,) = segmentation_table_rows([record("voc2012", 0, 0.40), record("voc2012", 1, 0.50)])
    assert (voc["report_iou"], voc["report_dice"]) == (42.0, 57.0)
    assert voc["ours_iou_mean"] == pytest.approx(45.0) and voc["n"] == 2
    assert voc["ours_iou"].startswith("45.00 ± 7.07")
    (shapes,) = segmentation_table_rows([record("shapes", 0, 0.7)])
    assert shapes["report_iou"] is None and shapes["report_dice"] is None


def test_search_trials_of_a_segmentation_space_get_a_row_each():
    from deepnets.results.collect import RunRecord
    from deepnets.results.segmentation import segmentation_table_rows

    def trial(lr: float) -> RunRecord:
        return RunRecord(
            experiment="e", space="s", table=None, fidelity=None, variant="base", seed=0,
            run_dir=f"r{lr}", status="ok", epochs_run=1, epochs_target=1, val_accuracy=0.9,
            best_val_accuracy=0.9, test_accuracy=0.9, wall_seconds=1.0, search={"optim.lr": lr},
            task="segmentation", test_miou=lr, test_mean_dice=lr,
            config={"data": {"dataset": "shapes"}, "model": {"name": "fcn8s"}},
        )  # fmt: skip

    rows = segmentation_table_rows([trial(0.1), trial(0.01)])
    assert sorted(r["variant"] for r in rows) == ["base (optim.lr=0.01)", "base (optim.lr=0.1)"]
    assert all(r["n"] == 1 for r in rows)
