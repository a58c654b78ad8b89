"""Segmentation data without Ray: VOC-layout folders, voc2012, loaders, joint augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from deepnets.config import DataConfig
from deepnets.data import load_datasets, make_loader
from deepnets.data.seg_augment import crop_transforms, warp_pair
from deepnets.data.shapes import CLASSES, write_shapes_dataset
from deepnets.data.voc import IGNORE_INDEX, read_voc_folder
from deepnets.errors import DataError

# Their VOC folders live in temp dirs: decode them into a temp cache, not the user's.
pytestmark = pytest.mark.usefixtures("isolated_cache")


def _data(folder, **overrides) -> tuple[DataConfig, object]:
    cfg = DataConfig(dataset=f"voc:{folder}", **({"val_fraction": 0.0} | overrides))
    return cfg, load_datasets(cfg, seed=0)


# --- data ---


def test_voc_folder_is_padded_onto_one_canvas_with_ignored_padding(shapes):
    raw = read_voc_folder(shapes)
    assert raw.classes == CLASSES
    assert raw.train_images.shape == (48, 3, 64, 64) and raw.train_labels.dtype == torch.uint8
    assert raw.test_images.shape[0] == 16
    # A 48x64 image sits centred: 8 rows of padding above and below, all ignored.
    with Image.open(shapes / "SegmentationClass/shape_00000.png") as first:
        height, width = first.height, first.width
        mask = torch.from_numpy(np.array(first))
    top, left = (64 - height) // 2, (64 - width) // 2
    assert torch.equal(raw.train_labels[0, top : top + height, left : left + width], mask)
    padding = torch.ones(64, 64, dtype=torch.bool)
    padding[top : top + height, left : left + width] = False
    assert (raw.train_labels[0][padding] == IGNORE_INDEX).all()
    assert (raw.train_images[0][:, padding] == 0).all()


def test_voc_folder_errors_name_the_problem(tmp_path, shapes):
    with pytest.raises(DataError, match="ImageSets/Segmentation/train.txt"):
        read_voc_folder(tmp_path)
    bad = write_shapes_dataset(tmp_path / "bad", train=2, val=1)
    with Image.open(bad / "SegmentationClass/shape_00000.png") as mask:
        mask.load()[0, 0] = 7  # a palette index with no class
        mask.save(bad / "SegmentationClass/shape_00000.png")
    with pytest.raises(DataError, match="class id 7 but only 4 classes"):
        read_voc_folder(bad)


def test_voc2012_is_read_from_the_data_root_in_the_vocdevkit_layout(tmp_path, isolated_cache):
    folder = write_shapes_dataset(tmp_path / "VOCdevkit/VOC2012", train=6, val=3)
    (folder / "classes.txt").unlink()  # VOC2012 itself has none: its 21 classes are built in
    data = load_datasets(DataConfig(dataset="voc2012", root=tmp_path, download=False), seed=0)
    assert data.num_classes == 21 and data.classes[15] == "person"
    assert data.source.startswith(f"voc2012 ({folder})") and len(data.test) == 3
    with pytest.raises(DataError, match="voc2012: not found under"):
        load_datasets(DataConfig(dataset="voc2012", root=tmp_path / "x", download=False), 0)


def test_segmentation_subsets_and_loaders(shapes):
    cfg, data = _data(shapes, train_subset=20, test_subset=10, val_fraction=0.25, resolution=32)
    assert (len(data.train), len(data.val), len(data.test)) == (15, 5, 10)
    assert data.task == "segmentation" and data.num_classes == 4
    train = make_loader(data, data.train, cfg, batch_size=4, train=True, seed=0)
    images, masks = next(iter(train))
    assert images.shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32)
    assert masks.dtype == torch.int64
    test = make_loader(data, data.test, cfg, batch_size=4, train=False, seed=0)
    assert [m.shape for _, m in test] == [(4, 64, 64), (4, 64, 64), (2, 64, 64)]  # whole canvas


def test_two_ranks_evaluate_every_test_image_exactly_once(shapes):
    cfg, data = _data(shapes)
    seen = []
    for rank in range(2):
        loader = make_loader(
            data, data.test, cfg, batch_size=3, train=False, seed=0, rank=rank, world_size=2
        )
        seen += [int(i) for i in loader.shard_indices()]
    assert sorted(seen) == list(range(len(data.test)))


# --- joint augmentation ---


def test_a_mirror_warp_flips_image_and_mask_exactly():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 16, 16)
    masks = torch.randint(0, 4, (3, 16, 16), dtype=torch.uint8)
    masks[0, 0, 0] = IGNORE_INDEX
    theta = torch.tensor([[[-1.0, 0, 0], [0, 1.0, 0]]]).repeat(3, 1, 1)
    warped, labels = warp_pair(images, masks, theta, 16)
    assert torch.allclose(warped, images.flip(-1), atol=1e-5)
    assert torch.equal(labels, masks.flip(-1).long())
    assert torch.rand(1, generator=gen).item() >= 0  # the generator is untouched by warp_pair


def test_random_zoom_crop_keeps_labels_on_their_pixels():
    """Channel 0 of the image encodes each pixel's class; after a random zoom/crop/flip the
    warped image still says, wherever a label is surrounded by the same label, that label."""
    gen = torch.Generator().manual_seed(3)
    masks = torch.zeros(8, 64, 64, dtype=torch.uint8)
    masks[:, 10:40, 8:30], masks[:, 30:60, 35:60] = 1, 2
    masks[:, 50:64, 0:20] = IGNORE_INDEX
    images = masks.float().unsqueeze(1).repeat(1, 3, 1, 1) / 10
    theta = crop_transforms(8, (64, 64), 32, gen, scale=True, hflip=True, device="cpu")
    warped, labels = warp_pair(images, masks, theta, 32)
    assert warped.shape == (8, 3, 32, 32) and labels.shape == (8, 32, 32)
    # "Surrounded": the same label over a 5x5 window, i.e. at least one canvas pixel away from
    # any edge at the largest zoom (2x), beyond the reach of bilinear interpolation.
    window = {"kernel_size": 5, "stride": 1, "padding": 2}
    high = nn.functional.max_pool2d(labels.float().unsqueeze(1), **window).squeeze(1)
    low = -nn.functional.max_pool2d(-labels.float().unsqueeze(1), **window).squeeze(1)
    inner = (high == low) & (labels != IGNORE_INDEX)
    assert inner.sum() > 1000 and (labels[inner] > 0).sum() > 300
    assert torch.allclose(warped[:, 0][inner] * 10, labels[inner].float(), atol=1e-4)
    assert set(labels.unique().tolist()) <= {0, 1, 2, IGNORE_INDEX}


def test_zooming_out_past_the_canvas_pads_with_ignore():
    images, masks = torch.ones(1, 3, 16, 16), torch.zeros(1, 16, 16, dtype=torch.uint8)
    theta = torch.tensor([[[2.0, 0, 0], [0, 2.0, 0]]])  # the crop sees twice the canvas
    warped, labels = warp_pair(images, masks, theta, 16)
    assert (labels[0, :3] == IGNORE_INDEX).all() and (labels[0, 6:10, 6:10] == 0).all()
    assert (warped[0, :, :3] == 0).all()


# --- voc2012 downloads ---


def test_voc2012_download_runs_once_behind_a_file_lock(tmp_path, isolated_cache, monkeypatch):
    """torchvision's downloader is replaced by one that writes a small VOC tree slowly (the
    network is torchvision's business); four threads asking at once must download it once."""
    import threading
    import time

    import torchvision.datasets

    from deepnets.data.voc import fetch_voc2012

    calls = []

    class SlowVOC:
        def __init__(self, root, year, image_set, download):
            calls.append((year, image_set, download))
            time.sleep(0.3)
            write_shapes_dataset(tmp_path / "VOCdevkit/VOC2012", train=2, val=1)

    monkeypatch.setattr(torchvision.datasets, "VOCSegmentation", SlowVOC)
    found = []
    threads = [
        threading.Thread(target=lambda: found.append(fetch_voc2012(tmp_path, True)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [("2012", "train", True)]
    assert found == [tmp_path / "VOCdevkit/VOC2012"] * 4


def test_a_failed_voc2012_download_is_one_data_error(tmp_path, isolated_cache, monkeypatch):
    import torchvision.datasets

    from deepnets.data.voc import fetch_voc2012

    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("no route to host")

    monkeypatch.setattr(torchvision.datasets, "VOCSegmentation", Offline)
    with pytest.raises(DataError, match="the download failed \\(OSError\\)"):
        fetch_voc2012(tmp_path, True)
