"""One actor per sweep that removes placement groups their Train controllers left behind.

A placement group lives as long as the job that owns it (the sweep's driver), not as long as
the Train controller that created it. A controller that ends normally removes its group; one
that dies with its Tune trial (ASHA stops it, the trial's process fails) does not, and the
group would hold its CPUs/GPUs for the rest of the sweep. Ray Train guards against that with a
cleaner process per run; deepnets sweeps use this janitor for all their runs instead
(deepnets/lean_trainer.py).

It imports only Ray's core: a process that imported torch or ray.train to watch placement
groups would cost as much CPU as the per-run cleaners it replaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import ray

logger = logging.getLogger(__name__)

# How often the janitor asks each controller it watches whether it is still alive.
PING_INTERVAL_S = 0.5


@ray.remote(num_cpus=0)
class PlacementGroupJanitor:
    """Watches each controller that registered a group, from `hold` until the controller
    either says it removed the group itself (`forget`) or is found dead: then it removes it."""

    def __init__(self):
        self._groups: dict[str, tuple] = {}  # controller actor id -> (handle, placement group)
        # One ping loop per controller; kept here also because asyncio holds tasks weakly.
        self._watches: dict[str, asyncio.Task] = {}

    async def hold(self, controller_id: str, controller, group) -> None:
        self._groups[controller_id] = (controller, group)  # a restarted group replaces the old
        if controller_id not in self._watches:
            self._watches[controller_id] = asyncio.create_task(self._watch(controller_id))

    def forget(self, controller_id: str) -> None:
        """The controller removed its group (shutdown or abort): drop it and the handle, which
        would otherwise keep an idle controller alive until its trial's process exits."""
        self._groups.pop(controller_id, None)

    def held(self) -> list[str]:
        return sorted(self._groups)

    async def drain(self, timeout_s: float) -> int:
        """Wait until every group is forgotten or removed; how many are still held."""
        deadline = time.monotonic() + timeout_s
        while self._groups and time.monotonic() < deadline:
            await asyncio.sleep(PING_INTERVAL_S)
        return len(self._groups)

    async def _watch(self, controller_id: str) -> None:
        try:
            while controller_id in self._groups:
                controller, _ = self._groups[controller_id]
                if await _is_dead(controller):
                    _, group = self._groups.pop(controller_id)
                    _remove(group)
                    return
                await asyncio.sleep(PING_INTERVAL_S)
        finally:
            self._watches.pop(controller_id, None)


def start_janitor():
    """One actor that removes placement groups dead trials left behind, instead of Ray Train's
    cleaner process per trial; None where this Ray lacks the hooks."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from deepnets.lean_trainer import janitor_supported

    if not janitor_supported():
        return None
    # On the driver's node (the head, under `ray job submit`): it lives exactly as long as the
    # sweep there, where a worker node scaled down mid-sweep would take it along.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return PlacementGroupJanitor.options(scheduling_strategy=here).remote()


def stop_janitor(janitor, *, drain_s: float = 30.0) -> None:
    """After the last trial: let it remove the groups of controllers still dying (a later sweep
    in the same process would wait for their CPUs), then end it."""
    if janitor is None:
        return
    try:
        if drain_s and ray.get(janitor.drain.remote(drain_s)):
            print(f"placement groups still held {drain_s:g} s after the sweep", flush=True)
    except ray.exceptions.RayError as err:
        # The janitor, or the whole cluster, is gone or unreachable (e.g. a Ctrl-C also stopped
        # the process that started Ray): what it held goes with the cluster, or when this
        # driver's job ends; the sweep's own state is saved already.
        print(f"placement-group janitor unreachable ({type(err).__name__})", flush=True)
    finally:
        with contextlib.suppress(ray.exceptions.RayError):
            ray.kill(janitor)


async def _is_dead(actor) -> bool:
    """Only a death counts: an actor that is briefly unreachable (ActorUnavailableError, e.g.
    a network blip to its node) may be running a trial that still needs its group."""
    try:
        await actor.__ray_ready__.remote()
    except ray.exceptions.ActorDiedError:
        return True
    except ray.exceptions.RayActorError:
        pass  # unavailable for now: ask again at the next ping
    return False


def _remove(group) -> None:
    from ray.util import remove_placement_group

    try:
        remove_placement_group(group)
    except Exception as err:  # noqa: BLE001 - never let cleanup fail the sweep
        logger.warning("could not remove placement group %s: %s", group.id, err)
