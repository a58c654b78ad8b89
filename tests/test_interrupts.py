"""Ctrl-C for a parent waiting on its children (deepnets/interrupts.py), on a hand-set clock;
SIGTERM handled as Ctrl-C, in real processes."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from deepnets.interrupts import ChildInterrupts


class Child:
    """Stands in for a subprocess.Popen: running until `exited`, records signals sent."""

    def __init__(self, exited: bool = False):
        self.exited, self.signals = exited, []

    def poll(self):
        return 0 if self.exited else None

    def send_signal(self, signum) -> None:
        self.signals.append(signum)


def _interrupts(children, clock):
    return ChildInterrupts(
        lambda: children, duplicate_s=2.0, forward_after_s=60.0, clock=lambda: clock[0]
    )


def test_the_group_signal_is_not_forwarded_nor_its_duplicate():
    children, clock = [Child(), Child()], [100.0]
    interrupts = _interrupts(children, clock)
    assert not interrupts.interrupted
    interrupts()  # the terminal's Ctrl-C: the children got it too
    clock[0] += 0.001
    interrupts()  # `timeout -s INT`: the same signal, to the group after the process
    clock[0] += 30
    interrupts.tick()
    assert interrupts.interrupted
    assert [child.signals for child in children] == [[], []]


def test_a_later_ctrl_c_is_passed_on_to_the_children_still_running():
    running, finished, clock = Child(), Child(exited=True), [100.0]
    interrupts = _interrupts([running, finished], clock)
    interrupts()
    clock[0] += 5
    interrupts()  # someone insists
    assert running.signals == [signal.SIGINT] and finished.signals == []


def test_children_still_running_long_after_the_first_get_it_once():
    """A SIGINT sent to the parent alone never reached them: it is passed on, once."""
    child, clock = Child(), [100.0]
    interrupts = _interrupts([child], clock)
    interrupts()
    clock[0] += 59
    interrupts.tick()
    assert child.signals == []
    clock[0] += 2
    interrupts.tick()
    interrupts.tick()
    assert child.signals == [signal.SIGINT]


def test_no_ctrl_c_no_signals():
    child, clock = Child(), [100.0]
    interrupts = _interrupts([child], clock)
    clock[0] += 1000
    interrupts.tick()
    assert not interrupts.interrupted and child.signals == []


# Installs the SIGTERM handling, sets SIGINT's handler as given, then SIGTERMs itself.
SIGTERM_SELF = """
import os, signal, sys, time
from deepnets.interrupts import sigterm_as_ctrl_c
sigterm_as_ctrl_c()
if sys.argv[1] == "handler":
    signal.signal(signal.SIGINT, lambda *_: print("ctrl-c handler ran", flush=True))
elif sys.argv[1] == "ignored":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    print("still running after SIGTERM")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""


@pytest.mark.parametrize(
    ("sigint", "expected"),
    [
        ("default", "KeyboardInterrupt"),  # Python's own Ctrl-C
        ("handler", "ctrl-c handler ran"),  # e.g. Tune's, during a sweep: it decides
        ("ignored", "KeyboardInterrupt"),  # a background start ignores SIGINT: still stops
    ],
)
def test_sigterm_does_what_ctrl_c_does(sigint, expected):
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_SELF, sigint], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == expected
