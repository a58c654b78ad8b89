"""Stopping gracefully: SIGTERM handled as Ctrl-C, and Ctrl-C for a process that runs child
processes in its own process group and waits for them (`jobs/reproduce.py --together`: one
sweep process per space, on a Ray it may have started).

A terminal's Ctrl-C, and `timeout -s INT`, signal the whole group: the children get it
themselves, save their state and exit. So the first SIGINT only marks the run interrupted and
the parent keeps waiting; were it to exit first, a Ray it started would go with it, under
children still saving. A repeat within `duplicate_s` is the same signal delivered twice
(`timeout` signals the process, then its group). A later one is someone insisting, and is passed
on to every child still running; so is the first, once the children are still running
`forward_after_s` after it, which is how a SIGINT sent to the parent alone reaches them.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable

SIGTERM_RECEIVED = threading.Event()  # set by the handler: the CLI then exits 130, not 0


def sigterm_as_ctrl_c() -> None:
    """From now on SIGTERM stops this process the way Ctrl-C does (a sweep saves its state and
    exits 130, ready for --resume). SIGTERM is what `ray job stop`, Kubernetes and Slurm send;
    Python's default, and a Ray driver's, is to die on the spot. Only the main thread may set
    handlers."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_ctrl_c)


def _as_ctrl_c(signum, frame) -> None:
    # The SIGINT handler itself, not a raised SIGINT: Ray starts a job's driver with SIGINT
    # blocked, and a process started in the background may ignore it; SIGTERM must still stop.
    SIGTERM_RECEIVED.set()
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # Tune's during a sweep, ChildInterrupts, or Python's default
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


class ChildInterrupts:
    def __init__(
        self,
        children: Callable[[], Iterable],
        *,
        duplicate_s: float = 2.0,
        forward_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.children = children  # the child processes (Popen) to forward to, when asked
        self.duplicate_s, self.forward_after_s, self.clock = duplicate_s, forward_after_s, clock
        self.first: float | None = None  # when the first SIGINT came
        self.forwarded = False

    @property
    def interrupted(self) -> bool:
        return self.first is not None

    def __call__(self, signum=None, frame=None) -> None:
        """The SIGINT handler."""
        now = self.clock()
        if self.first is None:
            self.first = now
        elif now - self.first > self.duplicate_s:
            self.forward()

    def tick(self) -> None:
        """Call while waiting: forwards the first SIGINT if the children ignored it so far."""
        late = self.interrupted and self.clock() - self.first > self.forward_after_s
        if late and not self.forwarded:
            self.forward()

    def forward(self) -> None:
        for child in self.children():
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        self.forwarded = True
