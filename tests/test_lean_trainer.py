"""Fewer processes per run: LeanTorchTrainer's callbacks, and the sweep's placement-group janitor
on a real Ray cluster (a placement group made by an actor outlives it; the janitor removes it)."""

from __future__ import annotations

import time

import pytest

from deepnets.lean_trainer import (
    DatasetsCallback,
    LeanTorchTrainer,
    PlacementGroupCleanerCallback,
    WatchedByJanitor,
    janitor_supported,
)


def _noop(config):
    pass


def _default_callbacks(callbacks=()) -> list:
    from ray.train import RunConfig

    trainer = LeanTorchTrainer(_noop, run_config=RunConfig(callbacks=list(callbacks)))
    return trainer._create_default_callbacks()


def _types(callbacks) -> list[type]:
    return [type(cb) for cb in callbacks]


def test_this_ray_has_the_hooks_the_lean_trainer_uses():
    # If a Ray upgrade moves them, sweeps quietly fall back to Ray's cleaner: fail here instead.
    assert janitor_supported()
    assert DatasetsCallback is not None and PlacementGroupCleanerCallback is not None


def test_no_datasets_manager_without_datasets_and_the_janitor_in_the_cleaners_place():
    alone = _types(_default_callbacks())
    assert DatasetsCallback not in alone
    assert PlacementGroupCleanerCallback in alone  # a run outside a sweep keeps Ray's cleaner

    watched = _types(_default_callbacks([WatchedByJanitor(janitor=None)]))
    assert PlacementGroupCleanerCallback not in watched
    assert watched.count(WatchedByJanitor) == 1
    # Where the cleaner was: the group is handed over as early as Ray's cleaner took it.
    assert watched.index(WatchedByJanitor) == alone.index(PlacementGroupCleanerCallback)


@pytest.fixture
def controller_class(ray_session):
    """A stand-in for Ray Train's controller: an async actor that makes a 1-CPU placement group
    and hands it to the janitor, as WatchedByJanitor does, or removes it and says so."""
    ray = ray_session

    @ray.remote(num_cpus=0)
    class Controller:
        async def start_group(self, janitor):
            from ray.util import placement_group

            self.group = placement_group([{"CPU": 1}])
            await self.group.ready()
            context = ray.get_runtime_context()
            await janitor.hold.remote(context.get_actor_id(), context.current_actor, self.group)
            return self.group

        async def shut_down_group(self, janitor):
            from ray.util import remove_placement_group

            remove_placement_group(self.group)
            await janitor.forget.remote(ray.get_runtime_context().get_actor_id())

    return Controller


def _state(group) -> str:
    from ray.util import placement_group_table

    return placement_group_table(group)["state"]


def _wait_for_state(group, state: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _state(group) != state:
        assert time.monotonic() < deadline, f"group still {_state(group)}, not {state}"
        time.sleep(0.2)


def test_janitor_removes_a_group_only_once_its_controller_is_dead(ray_session, controller_class):
    ray = ray_session
    from deepnets.pg_janitor import PING_INTERVAL_S, PlacementGroupJanitor

    janitor = PlacementGroupJanitor.remote()
    dying, living = controller_class.remote(), controller_class.remote()
    dying_group = ray.get(dying.start_group.remote(janitor))
    living_group = ray.get(living.start_group.remote(janitor))
    assert len(ray.get(janitor.held.remote())) == 2

    ray.kill(dying)  # as a controller dies with the Tune trial that owns it
    _wait_for_state(dying_group, "REMOVED")
    time.sleep(4 * PING_INTERVAL_S)
    assert _state(living_group) == "CREATED"  # a live controller's group is never touched
    assert len(ray.get(janitor.held.remote())) == 1

    # A controller that removes its own group takes it back; a restarted one holds a new one.
    ray.get(living.shut_down_group.remote(janitor))
    assert ray.get(janitor.held.remote()) == []
    restarted_group = ray.get(living.start_group.remote(janitor))
    assert len(ray.get(janitor.held.remote())) == 1
    ray.kill(living)
    _wait_for_state(restarted_group, "REMOVED")
    assert ray.get(janitor.drain.remote(5.0)) == 0
    ray.kill(janitor)


def test_a_group_outlives_the_actor_that_made_it(ray_session, controller_class, capsys):
    """Why the janitor exists: while the job lives, nothing else removes such a group. And a
    janitor already gone when the sweep ends is a note, not a traceback over the sweep's end."""
    ray = ray_session
    from deepnets.pg_janitor import PlacementGroupJanitor, stop_janitor

    janitor = PlacementGroupJanitor.remote()
    controller = controller_class.remote()
    group = ray.get(controller.start_group.remote(janitor))
    ray.kill(janitor)  # nobody watching; ray.kill returns before the actor is gone, and a
    with pytest.raises(ray.exceptions.ActorDiedError):  # janitor still pinging would remove it
        ray.get(janitor.__ray_ready__.remote())
    ray.kill(controller)
    time.sleep(3)
    assert _state(group) == "CREATED"
    stop_janitor(janitor)
    assert "placement-group janitor unreachable (ActorDiedError)" in capsys.readouterr().out
    from ray.util import remove_placement_group

    remove_placement_group(group)
