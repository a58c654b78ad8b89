"""A process told to exit while its training thread is inside torch ends quietly (exit 0),
where it would otherwise abort (std::terminate, Ray's SIGABRT stack dumps in a sweep's log)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A daemon thread running torch operators (as Ray Train's training thread does) while the main
# thread exits the interpreter (as a worker process told to stop does).
SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, {root!r})
    import torch
    from deepnets.quiet_exit import while_training

    torch.set_num_threads(1)
    x = torch.zeros(2_000_000)
    started = threading.Event()

    def train():
        with {context}:
            started.set()
            while True:
                x.add_(1)

    threading.Thread(target=train, daemon=True).start()
    started.wait()
    time.sleep(0.3)
    print("exiting", flush=True)
    sys.exit(0)
    """
)


def _run(context: str) -> subprocess.CompletedProcess:
    code = SCRIPT.format(root=str(ROOT), context=context)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_process_exiting_mid_step_ends_quietly():
    result = _run("while_training()")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "terminate called" not in result.stderr and result.stdout.strip() == "exiting"


def test_without_it_the_same_process_aborts():
    """The control: what `while_training` prevents (CPython 3.11-3.13 end daemon threads with
    pthread_exit during finalization; 3.14 leaves them hanging instead)."""
    if sys.version_info >= (3, 14):
        pytest.skip("Python 3.14 no longer ends daemon threads with pthread_exit")
    result = _run("__import__('contextlib').nullcontext()")
    assert result.returncode != 0 and "terminate called" in result.stderr, result.stderr[-2000:]
