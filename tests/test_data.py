"""Datasets as tensors: readers, cache, subsets, sharding and batched augmentation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepnets.config import DataConfig
from deepnets.data import load_datasets, make_loader
from deepnets.data.augment import build_augment, random_crop
from deepnets.data.cache import cache_path, forget
from deepnets.errors import DataError

SHARED = Path(os.environ.get("DEEPNETS_DATA_ROOT", Path(__file__).parents[2] / "shared/datasets"))


def test_digits_is_embedded_and_mnist_shaped():
    data = load_datasets(DataConfig(dataset="digits", val_fraction=0.1), seed=0)
    assert data.train.images.dtype == torch.uint8
    assert tuple(data.train.images.shape[1:]) == (1, 28, 28)
    assert data.num_classes == 10 and data.in_chans == 1
    total = len(data.train) + len(data.val) + len(data.test)
    assert total == 1797
    assert 0.0 < float(data.mean) < 1.0 and float(data.std) > 0.0


def test_subsets_are_stratified_and_seeded():
    cfg = DataConfig(dataset="digits", train_subset=200, test_subset=100, val_fraction=0.0)
    a, b = load_datasets(cfg, seed=1), load_datasets(cfg, seed=1)
    c = load_datasets(cfg, seed=2)
    assert len(a.train) == 200 and len(a.test) == 100 and a.val is None
    assert torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.train.images, c.train.images)
    assert torch.bincount(a.train.labels, minlength=10).min() >= 19  # 20 per class, +-1


def _loader(data, split, train, rank, world, batch=16, augment="none"):
    cfg = DataConfig(dataset="digits", augment=augment)
    return make_loader(
        data, split, cfg, batch_size=batch, train=train, seed=0, rank=rank, world_size=world
    )


def test_eval_shards_cover_every_image_exactly_once():
    data = load_datasets(DataConfig(dataset="digits"), seed=0)
    seen = torch.cat([_loader(data, data.test, False, r, 3).shard_indices() for r in range(3)])
    assert sorted(seen.tolist()) == list(range(len(data.test)))
    batches = sum(len(list(_loader(data, data.test, False, r, 3))) for r in range(3))
    assert batches >= 3


def test_train_shards_take_equal_steps_and_reshuffle_each_epoch():
    data = load_datasets(DataConfig(dataset="digits", train_subset=101, val_fraction=0.0), seed=0)
    loaders = [_loader(data, data.train, True, r, 2) for r in range(2)]
    assert len(loaders[0]) == len(loaders[1]) == len(list(loaders[1]))
    first = loaders[0].shard_indices().clone()
    loaders[0].set_epoch(1)
    assert not torch.equal(first, loaders[0].shard_indices())
    images, labels = next(iter(loaders[0]))
    assert images.dtype == torch.float32 and images.shape == (16, 1, 28, 28)
    assert labels.dtype == torch.int64


def test_loader_resizes_for_imagenet_stems():
    data = load_datasets(DataConfig(dataset="digits"), seed=0)
    cfg = DataConfig(dataset="digits", resolution=64)
    loader = make_loader(data, data.test, cfg, batch_size=4, train=False, seed=0)
    assert next(iter(loader))[0].shape == (4, 1, 64, 64)


@pytest.mark.parametrize("preset", ["none", "standard", "report"])
def test_augment_presets_keep_shape_and_range(preset):
    x = torch.rand(8, 3, 32, 32)
    augment = build_augment(preset, hflip=True, size=32)
    if preset == "none":
        assert augment is None
        return
    gen = torch.Generator().manual_seed(0)
    y = augment(x, gen)
    assert y.shape == x.shape and y.min() >= 0.0 and y.max() <= 1.0
    assert not torch.equal(x, y)
    again = augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(y, again)  # seeded: the same epoch augments the same way


def test_random_crop_is_a_shifted_window():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    y = random_crop(x, torch.Generator().manual_seed(3), padding=2)
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        windows = [padded[:, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(y[i], w) for w in windows)


def _write_tree(root: Path, classes: int, per_class: int = 3, size=(12, 12)) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k in range(classes):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_imagefolder_reads_and_caches(tmp_path, isolated_cache):
    _write_tree(tmp_path / "shapes", classes=3, per_class=10)
    cfg = DataConfig(dataset=f"imagefolder:{tmp_path / 'shapes'}", val_fraction=0.0)
    data = load_datasets(cfg, seed=0)
    assert data.classes == ["class0", "class1", "class2"]
    assert tuple(data.train.images.shape) == (30, 3, 12, 12)
    assert cache_path(cfg.dataset, tmp_path / "shapes").exists()
    assert torch.equal(load_datasets(cfg, seed=0).train.images, data.train.images)


def test_an_edited_folder_replaces_its_cache_entry_and_forget_removes_it(tmp_path, isolated_cache):
    folder = tmp_path / "shapes"
    _write_tree(folder, classes=2, per_class=2)
    cfg = DataConfig(dataset=f"imagefolder:{folder}", val_fraction=0.0)
    load_datasets(cfg, seed=0)
    first = cache_path(cfg.dataset, folder)
    (folder / "train/class0/0.png").unlink()  # the folder changes: decoded again
    assert len(load_datasets(cfg, seed=0).train) == 3
    second = cache_path(cfg.dataset, folder)
    assert second != first and second.exists() and not first.exists()
    assert not Path(f"{first}.lock").exists()
    other = DataConfig(dataset=f"imagefolder:{tmp_path / 'other'}", val_fraction=0.0)
    _write_tree(tmp_path / "other", classes=2, per_class=2)
    load_datasets(other, seed=0)

    forget(cfg.dataset, folder)
    assert not second.exists()
    assert cache_path(other.dataset, tmp_path / "other").exists()  # other sources stay


def test_imagefolder_with_one_class_is_refused(tmp_path, isolated_cache):
    _write_tree(tmp_path / "one", classes=1)
    with pytest.raises(DataError, match="at least 2 class folders"):
        load_datasets(DataConfig(dataset=f"imagefolder:{tmp_path / 'one'}"), seed=0)


def test_corrupt_image_names_the_file(tmp_path, isolated_cache):
    _write_tree(tmp_path / "bad", classes=2)
    (tmp_path / "bad/train/class1/broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        load_datasets(DataConfig(dataset=f"imagefolder:{tmp_path / 'bad'}"), seed=0)


def test_missing_dataset_is_one_line_saying_where(tmp_path, isolated_cache):
    cfg = DataConfig(dataset="mnist", root=tmp_path / "nothing", download=False)
    with pytest.raises(DataError) as info:
        load_datasets(cfg, seed=0)
    message = str(info.value)
    assert "\n" not in message and "MNIST/raw" in message and "DEEPNETS_DATA_ROOT" in message


@pytest.mark.skipif(not (SHARED / "MNIST/raw").is_dir(), reason="shared MNIST not present")
def test_real_mnist_from_shared_copy(isolated_cache):
    cfg = DataConfig(dataset="mnist", root=SHARED, download=False, test_subset=1000)
    data = load_datasets(cfg, seed=0)
    assert len(data.train) + len(data.val) == 60_000 and len(data.test) == 1000
    assert abs(float(data.mean) - 0.1307) < 0.01  # the well-known MNIST pixel mean
    assert "torchvision IDX" in data.source
