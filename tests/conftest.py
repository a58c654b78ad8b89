"""Shared fixtures: one real Ray instance per test session, started on demand."""

from __future__ import annotations

import os

import pytest

# Token auth on, set before any test module imports ray: ray caches its auth mode at import, and
# a process that cached "disabled" cannot talk to the token-protected cluster it starts.
os.environ.setdefault("RAY_AUTH_MODE", "token")


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """A local Ray instance with 2 CPUs, its own temp dir, the dashboard on loopback.

    Started once: on 2 cores each start costs seconds, and Train's placement-group cleaner
    needs the dashboard's state API."""
    import ray

    temp_dir = tmp_path_factory.mktemp("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=None,
        _temp_dir=str(temp_dir),
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Point the decoded-tensor cache at a temporary folder."""
    monkeypatch.setenv("DEEPNETS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
