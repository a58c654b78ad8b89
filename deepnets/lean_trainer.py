"""Fewer Ray processes per training run: what a sweep of many short trials pays for.

Besides its controller and workers, Ray Train 2.60 starts two helper actors for every run, each
a fresh Python that imports ray.train, ray.data and pandas (~1.6-2.1 CPU-seconds each on the
2-core machine, bench/process_cpu.py; BENCHMARKS.md):
- a `DatasetManager`, even for a run that passes no Ray Datasets (deepnets never does: its
  workers read a tensor cache);
- a detached `PlacementGroupCleaner`, which polls the state API every second so that a run's
  placement group is removed if its controller dies without removing it. Under Tune that is
  how a trial ASHA stops ends: Tune stops the trial's actor, the controller (which that actor
  owns) dies with it, and its placement group lives on as long as the sweep's driver.

`LeanTorchTrainer` leaves out the first when there are no datasets. In sweeps, each run also
carries a `WatchedByJanitor` callback, which takes the cleaner's place: one
`PlacementGroupJanitor` per sweep (deepnets/pg_janitor.py) watches every run's controller.

Its backend is `TorchBackendConfig` (deepnets/torch_backend.py), Ray's torch backend with the
torch steps run in the workers only, so that neither Tune's trial process nor the controller
imports torch.

These are Ray Train internals, pinned by tests/test_lean_trainer.py (which fails on a Ray whose
hooks moved). Where the imports below fail, `janitor_supported()` is False: sweeps keep Ray's
cleaner, and only the unused DatasetManager is left out where that class still exists. With
Ray Train V2 switched off, `trainer_class()` is Ray's own TorchTrainer.
"""

from __future__ import annotations

import logging

import ray
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

from deepnets.torch_backend import TorchBackendConfig

try:
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
except ImportError:
    DatasetsCallback = None

try:
    from ray.train.v2._internal.callbacks.placement_group_callback import (
        PlacementGroupCleanerCallback,
    )
    from ray.train.v2._internal.constants import is_v2_enabled
    from ray.train.v2._internal.execution.callback import WorkerGroupCallback
except ImportError:  # a Ray without the per-run cleaner: nothing to replace
    PlacementGroupCleanerCallback = WorkerGroupCallback = None

logger = logging.getLogger(__name__)

# How long a controller waits for the janitor to take its group before training without it.
HOLD_TIMEOUT_S = 30.0


class LeanTorchTrainer(DataParallelTrainer):
    """TorchTrainer minus torch where it is not used and the per-run helper actors a deepnets
    run does not need."""

    def __init__(self, train_loop_per_worker, *, scaling_config=None, **kwargs):
        use_gpu = bool(scaling_config and scaling_config.use_gpu)
        super().__init__(
            train_loop_per_worker,
            backend_config=TorchBackendConfig.for_devices(use_gpu),
            scaling_config=scaling_config,
            **kwargs,
        )

    def _create_default_callbacks(self):
        callbacks = super()._create_default_callbacks()
        watchers = [cb for cb in callbacks if isinstance(cb, WatchedByJanitor)]
        kept = [cb for cb in callbacks if cb not in watchers and not self._serves_no_data(cb)]
        if watchers:  # in the cleaner's slot, as early as it registered, not after all others
            slot = next((i for i, cb in enumerate(kept) if _is_ray_cleaner(cb)), len(kept))
            kept[slot : slot + 1] = watchers
        return kept

    def _serves_no_data(self, callback) -> bool:
        is_datasets = DatasetsCallback is not None and isinstance(callback, DatasetsCallback)
        return is_datasets and not self.datasets


def _is_ray_cleaner(callback) -> bool:
    return isinstance(callback, PlacementGroupCleanerCallback)


def trainer_class():
    """LeanTorchTrainer on Ray Train V2 (Ray's default), Ray's TorchTrainer where V2 is off."""
    from ray.train.v2._internal.constants import is_v2_enabled

    if is_v2_enabled():
        return LeanTorchTrainer
    from ray.train.torch import TorchTrainer

    return TorchTrainer


def janitor_supported() -> bool:
    """Whether this Ray Train has the hooks WatchedByJanitor and LeanTorchTrainer rely on."""
    return PlacementGroupCleanerCallback is not None and is_v2_enabled()


if WorkerGroupCallback is not None:

    class WatchedByJanitor(WorkerGroupCallback):
        """Runs in the Train controller: hands each placement group it starts to the sweep's
        janitor, and takes it back when the controller removes the group itself."""

        def __init__(self, janitor):
            self.janitor = janitor

        def after_worker_group_start(self, worker_group) -> None:
            state = worker_group.get_worker_group_state()
            group = state.placement_group_handle.placement_group
            context = ray.get_runtime_context()
            hold = self.janitor.hold.remote(context.get_actor_id(), context.current_actor, group)
            try:  # wait: a trial stopped right after this must find its group held
                ray.get(hold, timeout=HOLD_TIMEOUT_S)
            except ray.exceptions.RayError as err:  # train on; only the cleanup is lost
                logger.warning(
                    "placement group janitor unreachable (%s): if this trial is stopped, its "
                    "placement group stays until the sweep ends",
                    err,
                )

        # Both remove the group before these run.
        def after_worker_group_shutdown(self, worker_group_context) -> None:
            self._forget()

        def after_worker_group_abort(self, worker_group_context) -> None:
            self._forget()

        def _forget(self) -> None:
            self.janitor.forget.remote(ray.get_runtime_context().get_actor_id())

else:

    class WatchedByJanitor:  # never used: janitor_supported() is False
        def __init__(self, janitor):
            raise RuntimeError("this Ray Train has no worker-group callbacks")
