"""One actor per sweep that removes the placement groups of ended trials (see lean_trainer.py).

It imports only Ray's core: a process that imported torch or ray.train to watch placement
groups would cost as much CPU as the per-run cleaners it replaces.
"""

from __future__ import annotations

import asyncio
import logging

import ray

logger = logging.getLogger(__name__)

# How often the janitor asks whether an ended trial's controller is gone yet.
PING_INTERVAL_S = 0.5


@ray.remote(num_cpus=0)
class PlacementGroupJanitor:
    """One per sweep, owned by its driver: removes the placement group of an ended trial once
    that trial's Train controller is dead (a controller that ends normally has removed it)."""

    def __init__(self):
        self._held: dict[str, tuple] = {}  # trial id -> (controller handle, placement group)

    def hold(self, trial_id: str, controller, placement_group) -> None:
        self._held[trial_id] = (controller, placement_group)

    async def release(self, trial_id: str) -> None:
        """The trial has ended: wait for its controller to die, then remove its group. Waiting
        matters: Tune calls this before it stops the trial's actor, and a controller that lost
        its group while alive could start a new one that nobody would remove."""
        entry = self._held.get(trial_id)
        if entry is None:  # it ended before its workers started, or this is a repeat
            return
        controller, group = entry
        while not await _is_dead(controller):
            await asyncio.sleep(PING_INTERVAL_S)
        if self._held.get(trial_id) is entry:  # not replaced by a retry of the trial
            del self._held[trial_id]
        _remove(group)

    def held(self) -> list[str]:
        return sorted(self._held)


async def _is_dead(actor) -> bool:
    try:
        await actor.__ray_ready__.remote()
    except ray.exceptions.RayActorError:
        return True
    return False


def _remove(group) -> None:
    from ray.util import remove_placement_group

    try:
        remove_placement_group(group)  # a no-op for one its controller already removed
    except Exception as err:  # noqa: BLE001 - never let cleanup fail the sweep
        logger.warning("could not remove placement group %s: %s", group.id, err)
