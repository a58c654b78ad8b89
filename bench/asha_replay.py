"""Replay ASHA over a finished full grid: the epochs each setting would spend and the trial it
would pick, in seconds and without training.

`python bench/asha.py --keep DIR` keeps the full grid it ran in DIR/full. Training is
deterministic (a trial's curve is the same under either scheduler: checked on the kept ASHA
sweep's trials), so Ray Tune's ASHA stop rule can be applied to the full grid's per-epoch metric
after the fact, for any grace period and reduction factor. Which trials ASHA stops also depends
on the order in which they reach each rung: the first trial at a rung always goes on, a later
one is compared with those before it. So the replay models time — `--concurrent` trials at a
time, started in trial order, each paying a start-up drawn from `--startup` +- `--jitter`
seconds, then its own recorded epoch times — and repeats each setting `--repeats` times with
different draws.

    python bench/asha_replay.py DIR/full [--settings 3x3,1x4,1x2] [--concurrent 2]

Prints, per setting (grace period x reduction factor): the epochs consumed against the full
grid's (median and range over the repeats), how often the pick (best metric at each trial's
last epoch, as Tune ranks) is the full grid's winner, and the most frequent pick with its rank
in the full grid.
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asha import finished_trials  # noqa: E402

from deepnets.runlog import read_history, read_json  # noqa: E402


@dataclass
class Trial:
    key: str  # variant, seed and sampled values, as bench/asha.py names trials
    order: int  # Tune's trial index: the order trials start in
    values: list[float]  # the metric after each epoch
    epoch_seconds: list[float]


def load_grid(experiment: Path, metric: str) -> list[Trial]:
    """Every trial of a finished sweep, in Tune's order, with its per-epoch metric."""
    trials = []
    for key, trial, run_dir in finished_trials(experiment):
        history = read_history(run_dir)
        order = int(trial.get("trial_id", "0_0").rsplit("_", 1)[-1])
        values = [_number(epoch.get(metric)) for epoch in history]
        seconds = [epoch.get("epoch_seconds", 1.0) for epoch in history]
        trials.append(Trial(key, order, values, seconds))
    return sorted(trials, key=lambda t: t.order)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def best(values: dict[str, float]) -> str:
    """The key of the largest value; NaN (a diverged trial) never wins."""
    return max(values, key=lambda k: -math.inf if math.isnan(values[k]) else values[k])


class Bracket:
    """Ray Tune's ASHA rule for one bracket, as `ray.tune.schedulers.async_hyperband._Bracket`
    applies it (stop_last_trials on): rungs at grace * reduction**k; the first result at or past
    a rung the trial has not yet passed is compared with the (1 - 1/reduction) quantile of the
    values recorded there before it, then recorded."""

    def __init__(self, grace: int, reduction: float, max_t: int):
        grace = min(grace, max_t)  # as deepnets.sweep hands it to Tune
        count = int(np.log(max_t / grace) / np.log(reduction) + 1)
        self.reduction = reduction
        self.rungs = [(grace * reduction**k, {}) for k in reversed(range(count))]

    def keeps(self, key: str, epoch: int, value: float) -> bool:
        for milestone, recorded in self.rungs:
            if epoch < milestone or key in recorded:
                continue
            seen = list(recorded.values())
            cutoff = np.nanpercentile(seen, (1 - 1 / self.reduction) * 100) if seen else None
            if not math.isnan(value):  # Ray records no result that lacks the metric
                recorded[key] = value
            return cutoff is None or not value < cutoff
        return True


def replay(trials: list[Trial], grace: int, reduction: float, concurrent: int, startups):
    """(epochs consumed, last metric value per trial) under ASHA, mode max (pass negated values
    for min); `startups[i]` is trials[i]'s seconds before its first epoch."""
    bracket = Bracket(grace, reduction, max(len(t.values) for t in trials))
    waiting, events, last, epochs = list(zip(startups, trials, strict=True)), [], {}, 0

    def start(now: float) -> None:
        startup, trial = waiting.pop(0)
        first = now + startup + trial.epoch_seconds[0]
        heapq.heappush(events, (first, trial.order, trial, 1))

    for _ in range(min(concurrent, len(waiting))):
        start(0.0)
    while events:
        now, _, trial, epoch = heapq.heappop(events)
        epochs += 1
        last[trial.key] = trial.values[epoch - 1]
        kept = bracket.keeps(trial.key, epoch, trial.values[epoch - 1])
        if not kept or epoch >= len(trial.values):
            if waiting:
                start(now)
            continue
        following = now + trial.epoch_seconds[epoch]
        heapq.heappush(events, (following, trial.order, trial, epoch + 1))
    return epochs, last


def replay_often(trials: list[Trial], grace: int, reduction: float, args) -> tuple:
    """(epochs ratio per replay, how often each trial was picked) over `args.repeats` draws of
    the start-ups; every setting meets the same draws, so settings compare pair by pair."""
    full_epochs = sum(len(t.values) for t in trials)
    ratios, picks = [], Counter()
    rng = np.random.default_rng(0)
    for _ in range(args.repeats):
        startups = args.startup + rng.uniform(-args.jitter, args.jitter, size=len(trials))
        epochs, last = replay(trials, grace, reduction, args.concurrent, startups)
        ratios.append(epochs / full_epochs)
        picks[best(last)] += 1
    return ratios, picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="a full grid's experiment folder")
    parser.add_argument("--settings", default="3x3,1x3,2x3,1x4,1x2,2x2,3x2,6x2,9x3")
    parser.add_argument("--concurrent", type=int, default=2, help="trials at a time")
    parser.add_argument("--startup", type=float, default=10.0, help="seconds before epoch 1")
    parser.add_argument("--jitter", type=float, default=2.0, help="+- seconds on the start-up")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    space = read_json(args.experiment / "sweep.json").get("space", {})
    metric, mode = space.get("metric", "val_accuracy"), space.get("mode", "max")
    trials = load_grid(args.experiment, metric)
    if mode == "min":  # ASHA keeps the largest values; so does everything below
        for trial in trials:
            trial.values = [-v for v in trial.values]
    finals = {t.key: t.values[-1] for t in trials}
    winner, full_epochs = best(finals), sum(len(t.values) for t in trials)
    sign = -1 if mode == "min" else 1
    print(f"{len(trials)} trials, {full_epochs} epochs in the full grid; {metric} ({mode})")
    print(f"full grid's winner: {winner} ({sign * finals[winner]:.4f})")
    print(f"{args.repeats} replays per setting, start-up {args.startup:g} +- {args.jitter:g} s\n")
    print(f"{'grace x rf':<12}{'ratio (range)':>18}{'same':>7}  {'most frequent pick':<32}rank")
    for setting in args.settings.split(","):
        grace, reduction = int(setting.split("x")[0]), float(setting.split("x")[1])
        ratios, picks = replay_often(trials, grace, reduction, args)
        usual = picks.most_common(1)[0][0]
        rank = 1 + sum(finals[k] > finals[usual] for k in finals)  # ties share a rank
        spread = f"{np.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        same = f"{picks[winner] / args.repeats:.0%}"
        print(f"{setting:<12}{spread:>18}{same:>7}  {usual:<32}{rank}")


if __name__ == "__main__":
    main()
