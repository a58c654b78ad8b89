"""Fewer Ray processes per training run: what a sweep of many short trials pays for.

Besides its controller and workers, Ray Train 2.60 starts two helper processes for every run
(measured with bench/startup.py, 2-core machine, each ~2 s of CPU: a fresh Python importing
ray.train, ray.data and pandas):
- a `DatasetManager` actor, even for a run that passes no Ray Datasets (deepnets never does: its
  workers read a tensor cache);
- a detached `PlacementGroupCleaner`, which polls the state API every second so that a run's
  placement group is removed if its controller dies without removing it. Under Tune that is
  the normal end of a trial ASHA stops: Tune kills the trial's actor, the controller dies with
  it, and a placement group lives as long as the job (the sweep's driver), not its creator.

`LeanTorchTrainer` leaves out the first when there are no datasets, and the second when the run
carries a `ReleaseOnTrialEnd` callback: then one `PlacementGroupJanitor` per sweep
(deepnets/pg_janitor.py) does the cleaner's job for all trials, told by the sweep driver when a
trial has ended.

These hooks are Ray Train internals (pinned by tests/test_lean_trainer.py); if they move, the
imports below fail and runs fall back to Ray's own helpers.
"""

from __future__ import annotations

import logging

import ray
from ray.train.torch import TorchTrainer

try:
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
    from ray.train.v2._internal.execution.callback import WorkerGroupCallback
except ImportError:  # another Ray Train layout: keep every default helper
    DatasetsCallback = WorkerGroupCallback = None

try:
    from ray.train.v2._internal.callbacks.placement_group_callback import (
        PlacementGroupCleanerCallback,
    )
except ImportError:  # Ray before the cleaner existed
    PlacementGroupCleanerCallback = None

logger = logging.getLogger(__name__)


class LeanTorchTrainer(TorchTrainer):
    def _create_default_callbacks(self):
        callbacks = super()._create_default_callbacks()
        janitor_watches = any(isinstance(cb, ReleaseOnTrialEnd) for cb in callbacks)
        return [cb for cb in callbacks if not self._redundant(cb, janitor_watches)]

    def _redundant(self, callback, janitor_watches: bool) -> bool:
        if DatasetsCallback and isinstance(callback, DatasetsCallback):
            return not self.datasets
        cleaner = PlacementGroupCleanerCallback
        return bool(janitor_watches and cleaner and isinstance(callback, cleaner))


def janitor_supported() -> bool:
    """Whether this Ray Train has the hooks ReleaseOnTrialEnd and LeanTorchTrainer rely on."""
    return PlacementGroupCleanerCallback is not None and WorkerGroupCallback is not None


class ReleaseOnTrialEnd(WorkerGroupCallback or object):
    """Runs in the Train controller: tells the sweep's janitor which placement group is this
    trial's, so the janitor can remove it when the trial ends and its controller is gone."""

    def __init__(self, janitor, trial_id: str):
        self.janitor, self.trial_id = janitor, trial_id

    def after_worker_group_start(self, worker_group) -> None:
        state = worker_group.get_worker_group_state()
        group = state.placement_group_handle.placement_group
        controller = ray.get_runtime_context().current_actor
        try:  # wait for it: a trial stopped right after this must find its group registered
            ray.get(self.janitor.hold.remote(self.trial_id, controller, group))
        except ray.exceptions.RayError as err:  # training goes on; only the cleanup is lost
            logger.warning(
                "placement group janitor unreachable (%s): if this trial is "
                "stopped, its placement group stays until the sweep ends",
                err,
            )
