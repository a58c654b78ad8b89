"""A Ray Train worker process stopped mid-step ends quietly instead of aborting.

Ray Train runs the training loop in a daemon thread. When a worker process is told to exit
while that thread is inside a torch operator (ASHA stopping a trial, an aborted run), its main
thread finalizes the interpreter, and from then on CPython ends any daemon thread that asks for
the GIL back with pthread_exit. Its forced unwinding through torch's C++ frames (which release
the GIL around each operator) calls std::terminate, so the process aborts and Ray prints ~100
lines of SIGABRT stack dumps per worker into the sweep's output. An exit handler runs before
that point: if training is still under way, it flushes the process's output and ends it at
once (os._exit). A process whose training finished exits as usual. No Ray import: testable in a
bare process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

_running = 0  # training loops under way in this process
_handler_registered = False


@contextlib.contextmanager
def while_training():
    """Mark a training loop as under way for its duration (usable as a decorator)."""
    global _running
    _register_exit_handler()
    _running += 1
    try:
        yield
    finally:
        _running -= 1


def _register_exit_handler() -> None:
    global _handler_registered
    if not _handler_registered:
        atexit.register(_exit_now_if_training)
        _handler_registered = True


def _exit_now_if_training() -> None:
    if _running:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)  # the process was asked to exit: it does, without finalizing
