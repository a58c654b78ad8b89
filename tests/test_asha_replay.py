"""bench/asha_replay.py's stop rule against Ray Tune's own ASHA bracket, fed the same results."""

import sys
from pathlib import Path

import numpy as np
import pytest
from ray.tune.schedulers.async_hyperband import _Bracket
from ray.tune.schedulers.trial_scheduler import TrialScheduler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from asha_replay import Bracket, Trial, replay  # noqa: E402


class _Named:  # what Ray's bracket reads off a trial
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


@pytest.mark.parametrize("grace,reduction,max_t", [(1, 4, 9), (3, 3, 27), (2, 2, 16), (1, 1.5, 6)])
def test_replay_bracket_decides_as_rays(grace, reduction, max_t):
    rng = np.random.default_rng(grace * 100 + max_t)
    values = rng.uniform(0.0, 1.0, size=(12, max_t))
    ours, rays = Bracket(grace, reduction, max_t), _Bracket(grace, max_t, reduction, 0)
    alive = set(range(len(values)))
    for epoch in range(1, max_t + 1):  # round-robin: each live trial reports its epoch in turn
        for trial in sorted(alive):
            value = float(values[trial, epoch - 1])
            ray_keeps = rays.on_result(_Named(str(trial)), epoch, value) == TrialScheduler.CONTINUE
            assert ours.keeps(str(trial), epoch, value) == ray_keeps, (trial, epoch)
            if not ray_keeps:
                alive.discard(trial)
    assert alive and len(alive) < len(values)  # the rule stopped some and kept some


def test_replay_counts_epochs_and_follows_arrival_order():
    # Three 4-epoch trials, one at a time, rung at epoch 2 keeping the top half.
    curves = [[0.5, 0.5, 0.7, 0.8], [0.1, 0.2, 0.3, 0.4], [0.9, 0.9, 0.9, 0.95]]
    trials = [Trial(f"t{i}", i, c, [1.0] * 4) for i, c in enumerate(curves)]
    epochs, last = replay(trials, 2, 2.0, 1, [0.0] * 3)
    # t0 is first at the rung and goes on; t1 is below t0's value and stops; t2 goes on.
    assert epochs == 4 + 2 + 4 and last == {"t0": 0.8, "t1": 0.2, "t2": 0.95}
    # Reversed arrival: t2 first, t1 stops, and so does t0 (0.5 < the median of 0.9 and 0.2).
    epochs, last = replay(trials[::-1], 2, 2.0, 1, [0.0] * 3)
    assert epochs == 4 + 2 + 2 and last["t0"] == 0.5
