"""Fewer processes per run: LeanTorchTrainer's callbacks, and the sweep's placement-group janitor
on a real Ray cluster (a placement group made by an actor outlives it; the janitor removes it)."""

from __future__ import annotations

import time

import pytest

from deepnets.lean_trainer import (
    DatasetsCallback,
    LeanTorchTrainer,
    PlacementGroupCleanerCallback,
    ReleaseOnTrialEnd,
    janitor_supported,
)


def _noop(config):
    pass


def _default_callback_types(callbacks=()) -> set[type]:
    from ray.train import RunConfig

    trainer = LeanTorchTrainer(_noop, run_config=RunConfig(callbacks=list(callbacks)))
    return {type(cb) for cb in trainer._create_default_callbacks()}


def test_this_ray_has_the_hooks_the_lean_trainer_uses():
    # If a Ray upgrade moves them, runs quietly fall back to Ray's helpers: fail here instead.
    assert janitor_supported()
    assert DatasetsCallback is not None and PlacementGroupCleanerCallback is not None


def test_no_datasets_manager_without_datasets_and_no_cleaner_when_a_janitor_watches():
    alone = _default_callback_types()
    assert DatasetsCallback not in alone
    assert PlacementGroupCleanerCallback in alone  # a run outside a sweep keeps Ray's cleaner

    watched = _default_callback_types([ReleaseOnTrialEnd(janitor=None, trial_id="t")])
    assert PlacementGroupCleanerCallback not in watched
    assert ReleaseOnTrialEnd in watched


@pytest.fixture
def group_maker(ray_session):
    """An actor that makes a 1-CPU placement group and registers it like a Train controller."""
    ray = ray_session

    @ray.remote(num_cpus=0)
    class Controller:
        def make_group(self, janitor, trial_id):
            from ray.util import placement_group

            group = placement_group([{"CPU": 1}])
            ray.get(group.ready())
            me = ray.get_runtime_context().current_actor
            ray.get(janitor.hold.remote(trial_id, me, group))
            return group

    return Controller


def _state(group) -> str:
    from ray.util import placement_group_table

    return placement_group_table(group)["state"]


def _wait_for_state(group, state: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _state(group) != state:
        assert time.monotonic() < deadline, f"group still {_state(group)}, not {state}"
        time.sleep(0.2)


def test_janitor_removes_an_ended_trials_group_once_its_controller_is_dead(
    ray_session, group_maker
):
    ray = ray_session
    from deepnets.pg_janitor import PING_INTERVAL_S, PlacementGroupJanitor

    janitor = PlacementGroupJanitor.remote()
    kept, released = group_maker.remote(), group_maker.remote()
    kept_group = ray.get(kept.make_group.remote(janitor, "kept"))
    group = ray.get(released.make_group.remote(janitor, "ended"))
    assert ray.get(janitor.held.remote()) == ["ended", "kept"]

    janitor.release.remote("ended")
    time.sleep(4 * PING_INTERVAL_S)
    assert _state(group) == "CREATED"  # its controller still lives: not yet

    ray.kill(released)
    ray.kill(kept)
    _wait_for_state(group, "REMOVED")
    assert ray.get(janitor.held.remote()) == ["kept"]
    # What the janitor is for: an actor's group outlives the actor while the job lives.
    time.sleep(4 * PING_INTERVAL_S)
    assert _state(kept_group) == "CREATED"
    janitor.release.remote("kept")
    _wait_for_state(kept_group, "REMOVED")
    ray.kill(janitor)
