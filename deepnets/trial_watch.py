"""Tell a finished sweep from one that Ctrl-C interrupted.

After Ctrl-C, Tune saves the experiment with its running trials unfinished (a resume runs them
again), then stops their actors and marks them TERMINATED in memory, and `fit()` returns
normally: the ResultGrid cannot tell them from trials that ended. This callback keeps the
statuses Tune held at the end of each step of its loop, which an interrupt leaves as they were.
"""

from __future__ import annotations

from ray.tune import Callback

ENDED = ("TERMINATED", "ERROR")

# Statuses by experiment folder. Module-level because Tuner.restore unpickles its own copy of the
# callback from the experiment folder, which the caller never sees.
_last_seen: dict[str, dict[str, str]] = {}


class TrialWatch(Callback):
    def __init__(self, experiment: str):
        self.experiment = experiment

    def on_step_end(self, iteration, trials, **info):
        _last_seen[self.experiment] = {trial.trial_id: trial.status for trial in trials}


def forget_trials(experiment: str) -> None:
    _last_seen.pop(experiment, None)


def unfinished_trials(experiment: str) -> list[str] | None:
    """Ids of trials that had not ended when Tune's loop stopped; None when nothing was seen
    (a sweep started before this watch existed)."""
    seen = _last_seen.get(experiment)
    if seen is None:
        return None
    return [trial_id for trial_id, status in seen.items() if status not in ENDED]
