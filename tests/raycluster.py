"""A real Ray head for the tests, started with `ray start --head` and stopped by process id.

It listens on free ports, keeps its files under its own temp dir and binds the dashboard to
127.0.0.1. Stopping it kills exactly the processes whose command line names that temp dir
(`ray stop` would kill every Ray process on the machine, other people's included).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from deepnets.launch import TRIAL_PLACES_RESOURCE

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayHead:
    gcs_address: str
    dashboard_url: str
    temp_dir: Path
    env: dict[str, str]  # for clients: token auth on, this head, the venv first on PATH

    def processes(self) -> list[psutil.Process]:
        marker = str(self.temp_dir)
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if any(marker in part for part in proc.info["cmdline"] or ()):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def stop(self) -> None:
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=15)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_head(num_cpus: int = 2) -> RayHead:
    # Unix socket paths are limited to ~107 bytes: keep the temp dir short.
    temp_dir = Path(tempfile.mkdtemp(prefix="dnray-", dir="/tmp"))
    port, dashboard_port = free_port(), free_port()
    env = os.environ | {
        "RAY_AUTH_MODE": "token",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [
        str(VENV_BIN / "ray"), "start", "--head",
        f"--port={port}", f"--dashboard-port={dashboard_port}", "--dashboard-host=127.0.0.1",
        f"--num-cpus={num_cpus}", f"--temp-dir={temp_dir}", "--disable-usage-stats",
        f"--ray-client-server-port={free_port()}", f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
        f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
        # A fixed-size cluster's head: sweeps running at once share its trial places.
        f"--resources={json.dumps({TRIAL_PLACES_RESOURCE: 1})}",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    head = RayHead(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard_port}", temp_dir, env)
    if result.returncode != 0:
        head.stop()
        raise RuntimeError(f"ray start failed:\n{result.stdout}\n{result.stderr}")
    head.env = env | {"RAY_ADDRESS": head.gcs_address}
    _wait_for_dashboard(head)
    return head


def _wait_for_dashboard(head: RayHead, timeout: float = 60.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{head.dashboard_url}/api/version", timeout=5)
            return
        except urllib.error.HTTPError:  # answering (401 without a token): it is up
            return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"dashboard at {head.dashboard_url} did not come up in {timeout:.0f} s")


def actor_ids(class_name: str) -> set[str]:
    """Ids of every actor of `class_name` the connected cluster has seen, dead ones included
    (Ray's state API)."""
    from ray.util.state import list_actors

    found = list_actors(filters=[("class_name", "=", class_name)], limit=10_000)
    return {actor.actor_id for actor in found}
