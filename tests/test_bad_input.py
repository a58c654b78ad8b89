"""Bad input costs seconds, not a cluster-hour: every case below is answered by one line on
stderr and exit code 2, before any Ray work, with nothing written.

"Before any Ray work" is enforced, not hoped for: each command runs with RAY_ADDRESS pointing
at a port where nothing listens, so reaching ray.init would fail differently (or hang until the
timeout). The same list, in words, is in docs/bad_input.md; a test keeps the two in step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "tune_spaces/smoke.yaml")


def _image_tree(root: Path, classes: int, broken: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k in range(classes):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                    folder / f"{i}.png"
                )
    if broken:
        (root / "train/class0/broken.png").write_bytes(b"not a png")
    return root


def _voc_folder(root: Path, *, bad_class: bool = False, no_lists: bool = False) -> str:
    from deepnets.data.shapes import write_shapes_dataset

    folder = write_shapes_dataset(root / "voc", train=4, val=2)
    if bad_class:
        with Image.open(folder / "SegmentationClass/shape_00001.png") as mask:
            mask.load()[3, 2] = 9  # a palette index with no class
            mask.save(folder / "SegmentationClass/shape_00001.png")
    if no_lists:
        (folder / "ImageSets/Segmentation/train.txt").unlink()
    return f"voc:{folder}"


SEGMENT = ["task=segmentation", "--model", "fcn8s"]


def _file(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


SPACE = """name: s
base: {data: {dataset: digits}, model: {name: resnet18, options: {width: 0.25}}}
variants: [{id: a}, {id: b, overrides: {optim.lr: 0.01}}]
"""

# (id, "train" | "sweep", args (a function of the test's tmp dir), a fragment of the one line)
Case = tuple[str, str, Callable[[Path], list[str]], str]
CASES: list[Case] = [
    ("unknown model", "train", lambda t: ["--model", "vgg17"], "unknown model 'vgg17'"),
    ("unknown option of a known model", "train", lambda t: ["model.options.depthh=3"],
     "depthh"),
    ("bad value of a known option", "train", lambda t: ["--stem", "tiny"], "option 'stem'"),
    ("malformed YAML config", "train", lambda t: ["--config", _file(t, "c.yaml", "epochs: [1,\n")],
     "c.yaml"),
    ("config file that is not a mapping", "train",
     lambda t: ["--config", _file(t, "l.yaml", "- 1\n- 2\n")], "l.yaml"),
    ("missing config file", "train", lambda t: ["--config", str(t / "none.yaml")], "cannot read"),
    ("wrong type: epochs", "train", lambda t: ["epochs=abc"], "epochs"),
    ("wrong type: batch size", "train", lambda t: ["global_batch_size=1.5"], "global_batch_size"),
    ("zero epochs", "train", lambda t: ["--epochs", "0"], "epochs"),
    ("negative learning rate", "train", lambda t: ["--lr", "-0.1"], "optim.lr"),
    ("zero learning rate", "train", lambda t: ["--lr", "0"], "optim.lr"),
    ("zero batch size", "train", lambda t: ["--batch-size", "0"], "global_batch_size"),
    ("batch smaller than the worker count", "train",
     lambda t: ["--workers", "4", "--batch-size", "2"], "smaller than num_workers"),
    ("zero workers", "train", lambda t: ["--workers", "0"], "num_workers"),
    ("zero CPUs per worker", "train", lambda t: ["cpus_per_worker=0"], "cpus_per_worker"),
    ("unknown top-level key", "train", lambda t: ["epochz=3"], "unknown key"),
    ("unknown nested key", "train", lambda t: ["optim.lrr=0.1"], "unknown key"),
    ("unknown precision", "train", lambda t: ["precision=fp8"], "precision"),
    ("unknown compile mode", "train", lambda t: ["--compile", "fast"], "reduce-overhead"),
    ("validation fraction out of range", "train", lambda t: ["data.val_fraction=0.95"],
     "data.val_fraction"),
    ("unknown dataset", "train", lambda t: ["--dataset", "imagenet"], "unknown dataset"),
    ("missing dataset directory", "train",
     lambda t: ["--dataset", "mnist", "--data-root", str(t / "nothing"), "data.download=false"],
     "MNIST"),
    ("missing image folder", "train", lambda t: ["--dataset", f"imagefolder:{t / 'none'}"],
     "does not exist"),
    ("image folder with one class", "train",
     lambda t: ["--dataset", f"imagefolder:{_image_tree(t / 'one', 1)}"], "at least 2 class"),
    ("image folder with a corrupt image", "train",
     lambda t: ["--dataset", f"imagefolder:{_image_tree(t / 'bad', 2, broken=True)}"],
     "broken.png"),
    ("subset below the minimum", "train", lambda t: ["data.train_subset=5"],
     "data.train_subset"),
    ("subset too small to hold out every class", "train", lambda t: ["data.train_subset=12"],
     "cannot hold out every class"),
    ("in_chans that does not match the data", "train", lambda t: ["model.options.in_chans=3"],
     "model.options.in_chans: 3 does not match"),
    ("storage path that cannot be written", "train",
     lambda t: ["output_dir=/proc/deepnets-cannot-write"], "output_dir: cannot write"),
    ("unknown storage scheme", "train", lambda t: ["output_dir=ftp://host/runs"],
     "unknown storage scheme 'ftp://'"),
    ("GPUs asked for where there are none", "train", lambda t: ["--gpu"], "GPUs"),
    ("whole-step CUDA graph with a changing lr", "train", lambda t: ["--compile", "step_graph"],
     "compile 'step_graph' needs a constant lr"),
    ("segmentation task on classification data", "train", lambda t: SEGMENT,
     "is a classification dataset"),
    ("segmentation model for classification", "train", lambda t: ["--model", "fcn8s"],
     "does not do classification"),
    ("classifier for segmentation", "train",
     lambda t: ["task=segmentation", "--dataset", "shapes"], "does not do segmentation"),
    ("rotation augmentation for segmentation", "train",
     lambda t: [*SEGMENT, "--dataset", "shapes", "data.augment=report"], "data.augment"),
    ("VOC folder without its split lists", "train",
     lambda t: [*SEGMENT, "--dataset", _voc_folder(t, no_lists=True)], "train.txt"),
    ("VOC mask with an unknown class id", "train",
     lambda t: [*SEGMENT, "--dataset", _voc_folder(t, bad_class=True)], "class id 9"),
    ("voc2012 absent and downloads off", "train",
     lambda t: [*SEGMENT, "--dataset", "voc2012", "data.download=false", f"data.root={t}"],
     "voc2012: not found"),
    ("missing VGG16 weights file", "train",
     lambda t: [*SEGMENT, "--dataset", "shapes", f"model.options.weights={t}/vgg16.pth"],
     "model.options.weights: no file"),
    ("weights file that is not VGG16", "train",
     lambda t: [*SEGMENT, "--dataset", "shapes",
                f"model.options.weights={_file(t, 'w.pth', 'text')}"], "as a PyTorch file"),
    ("segmentation metric for a classification space", "sweep",
     lambda t: ["--space", _file(t, "m.yaml", SPACE + "metric: val_miou\n")],
     "segmentation metric"),
    ("space whose variant ids repeat", "sweep",
     lambda t: ["--space", _file(t, "dup.yaml", SPACE.replace("id: b", "id: a"))],
     "appears more than once"),
    ("malformed space YAML", "sweep",
     lambda t: ["--space", _file(t, "m.yaml", "name: [\n")], "m.yaml"),
    ("unknown key in a space", "sweep",
     lambda t: ["--space", _file(t, "k.yaml", SPACE + "schedular: {type: fifo}\n")], "schedular"),
    ("unknown fidelity profile", "sweep", lambda t: ["--space", SMOKE, "--fidelity", "gpu"],
     "fidelity 'gpu' is not defined"),
    ("invalid search domain", "sweep",
     lambda t: ["--space", _file(t, "d.yaml", SPACE + "search: {optim.lr: {uniform: [1, 0]}}\n")],
     "low < high"),
    ("variant override of an unknown option", "sweep",
     lambda t: ["--space", _file(t, "o.yaml", SPACE.replace("optim.lr: 0.01", "optim.lrr: 0.01"))],
     "lrr"),
    ("GPUs per trial where there are none", "sweep",
     lambda t: ["--space", _file(t, "g.yaml", SPACE + "resources: {gpus_per_worker: 1}\n")],
     "GPUs"),
    ("unknown storage scheme for a sweep", "sweep",
     lambda t: ["--space", SMOKE, "--storage", "ftp://host/x"], "unknown storage scheme"),
    ("sweep storage that cannot be written", "sweep",
     lambda t: ["--space", SMOKE, "--storage", "/proc/deepnets-no"], "cannot write"),
    ("--max-concurrent below 1", "sweep", lambda t: ["--space", SMOKE, "--max-concurrent", "0"],
     "--max-concurrent"),
    ("--resume with nothing to resume", "sweep", lambda t: ["--space", SMOKE, "--resume"],
     "no sweep to resume"),
]  # fmt: skip


def _run(kind: str, args: list[str], cwd: Path, no_cluster: bool) -> subprocess.CompletedProcess:
    out = ["--output-dir", str(cwd / "out")] if kind == "train" else []
    if kind == "sweep" and "--storage" not in args:
        out = ["--storage", str(cwd / "out")]
    env = os.environ | {"RAY_ADDRESS": "127.0.0.1:9", "CUDA_VISIBLE_DEVICES": ""}
    if no_cluster:  # the GPU check counts this machine's GPUs: only without a cluster address
        env.pop("RAY_ADDRESS")
    return subprocess.run(
        [sys.executable, str(ROOT / f"jobs/{kind}.py"), *args, *out],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(("kind", "args", "fragment"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2_before_ray(kind, args, fragment, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPNETS_CACHE_DIR", str(tmp_path / "cache"))
    result = _run(kind, args(tmp_path), tmp_path, no_cluster="GPUs" in fragment)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("deepnets: error: ") and fragment in lines[0], lines[0]
    assert not (tmp_path / "out").exists()  # nothing written, not even an empty folder
    assert "Ray instance" not in result.stdout + result.stderr  # no local Ray was started


def test_at_least_25_cases_and_all_listed_in_the_docs():
    assert len(CASES) >= 25
    documented = (ROOT / "docs/bad_input.md").read_text()
    missing = [case[0] for case in CASES if f"| {case[0]} |" not in documented]
    assert not missing, f"add to docs/bad_input.md: {missing}"


def write_docs() -> str:
    """docs/bad_input.md from the real messages: `python tests/test_bad_input.py`."""
    import tempfile

    rows = []
    for name, kind, args, _ in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["DEEPNETS_CACHE_DIR"] = str(Path(tmp) / "cache")
            shown = args(Path(tmp))
            line = _run(kind, shown, Path(tmp), no_cluster="GPU" in name).stderr.strip()
            shown = " ".join(shown).replace(tmp, "/tmp/x").replace(str(ROOT) + "/", "")
            rows.append(f"| {name} | `{kind} {shown}` | {line.replace(tmp, '/tmp/x')} |")
    return "\n".join([DOCS_HEADER, *rows, ""])


DOCS_HEADER = """# Bad input: what deepnets refuses, and how

Every case below is refused in seconds with one line on stderr and exit code 2, before Ray
starts or is contacted, with nothing written. `tests/test_bad_input.py` runs each of them;
this page is generated from the real messages by `python tests/test_bad_input.py`
(paths shortened to /tmp/x). Train cases run `jobs/train.py`, sweep cases `jobs/sweep.py`.

| case | command | message |
| --- | --- | --- |"""


if __name__ == "__main__":
    (ROOT / "docs/bad_input.md").write_text(write_docs())
