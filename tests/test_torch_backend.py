"""deepnets' torch backend: Ray's torch steps run in the workers only, so that Tune's trial process
and the Train controller never import torch (deepnets/torch_backend.py)."""

from __future__ import annotations

import hashlib
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter that notes any import of torch: what Tune's trial process does (import
# the sweep's module, validate the trial's config as run_trial does, build the trainer), then
# what the controller does with the trainer's parts (unpickle them, make the backend).
WITHOUT_TORCH = textwrap.dedent(
    """
    import pickle, sys

    attempts = []

    class NoteTorch:  # records, and lets the import go on: a guarded import cannot hide
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                attempts.append(name)

    sys.meta_path.insert(0, NoteTorch())
    import ray.cloudpickle as cloudpickle
    import ray.tune.integration.ray_train  # noqa: F401  (TuneReportCallback: needs a session)

    import deepnets.sweep  # noqa: F401  (Tune unpickles run_trial from it)
    from deepnets.config import MODELS_CHECKED, TrainConfig
    from deepnets.launch import build_trainer
    from deepnets.lean_trainer import WatchedByJanitor

    tree = {"model": {"name": "resnet18"}, "data": {"dataset": "digits"}, "use_gpu": True,
            "num_workers": 2, "gpus_per_worker": 1, "output_dir": sys.argv[1], "name": "probe"}
    cfg = TrainConfig.model_validate(tree, context={MODELS_CHECKED: True})
    trainer = build_trainer(cfg, [WatchedByJanitor(None)])
    parts = (trainer.backend_config, trainer._get_train_func(), trainer.run_config)
    backend_config, _, _ = pickle.loads(cloudpickle.dumps(parts))
    backend_config.backend_cls()
    print(type(trainer).__name__, backend_config.to_dict()["backend"], attempts[:1] or "none")
    """
)


def test_ray_has_the_torch_steps_the_backend_runs_in_workers():
    """Pinned: the Ray functions TorchBackend calls by name, with the arguments it passes."""
    from ray.train.torch import config

    from deepnets.torch_backend import RAY_TORCH_STEPS

    for step in RAY_TORCH_STEPS:
        assert callable(getattr(config, step, None)), f"ray.train.torch.config.{step} is gone"
    setup = inspect.signature(config._setup_torch_process_group).parameters
    assert {"backend", "world_rank", "world_size", "init_method", "timeout_s"} <= set(setup)
    assert "destroy_process_group" in inspect.signature(config._shutdown_torch).parameters
    assert callable(config.TorchConfigContextManager)
    assert config._TorchBackend.share_cuda_visible_devices  # ours says the same


# Ray's backend methods that deepnets/torch_backend.py mirrors, as in Ray 2.60. A new Ray that
# changes one fails here: compare the new source with TorchBackend, mend it, update the hash.
MIRRORED_SOURCE = {
    "on_start": "2d82fd3c05311849",
    "on_shutdown": "7dab1784f3fc07e5",
    "on_training_start": "df438bd024c211de",
}


@pytest.mark.parametrize("method", sorted(MIRRORED_SOURCE))
def test_the_ray_backend_it_mirrors_is_unchanged(method):
    from ray.train.torch import config

    source = inspect.getsource(getattr(config._TorchBackend, method))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == MIRRORED_SOURCE[method], f"Ray's _TorchBackend.{method} changed"


def test_building_and_unpickling_a_trainer_imports_no_torch(tmp_path):
    probe = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.split() == ["LeanTorchTrainer", "nccl", "none"], probe.stdout


@pytest.mark.slow
def test_the_train_controller_runs_without_torch_and_workers_with_it(ray_session, tmp_path):
    """A real 2-worker run: the controller (where this callback runs) has not imported torch,
    and the workers trained through the process group the backend set up."""
    from ray.train.v2._internal.execution.callback import WorkerGroupCallback

    from deepnets.config import load_config
    from deepnets.launch import fit_and_record, resolved

    class RecordsTorch(WorkerGroupCallback):  # pickled by value into the controller
        def __init__(self, path: str):
            self.path = path

        def after_worker_group_start(self, worker_group) -> None:
            self._note()

        def after_worker_group_shutdown(self, worker_group_context) -> None:
            self._note()  # after the backend's on_shutdown, the last thing it runs

        def _note(self) -> None:
            with open(self.path, "a") as out:
                out.write(f"{'torch' in sys.modules} ")

    record = tmp_path / "torch_in_controller"
    settings = ["model.name=resnet18", "model.options.stem=small", "model.options.width=0.125"]
    settings += ["data.dataset=digits", "data.train_subset=200", "data.test_subset=100"]
    settings += ["num_workers=2", "cpus_per_worker=1", "epochs=1", f"output_dir={tmp_path}"]
    cfg = resolved(load_config(None, settings))
    summary = fit_and_record(cfg, callbacks=[RecordsTorch(str(record))])
    assert summary.error is None and summary.epochs_done == 1
    assert record.read_text().split() == ["False", "False"]
    assert summary.test_accuracy is not None
