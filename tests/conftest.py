"""Shared fixtures: one real Ray head per test session (`ray start --head`), started on demand."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Token auth on, set before any test module imports ray: ray caches its auth mode at import, and
# a process that cached "disabled" cannot talk to the token-protected cluster it starts.
os.environ.setdefault("RAY_AUTH_MODE", "token")
sys.path.insert(0, str(Path(__file__).parent))

from raycluster import RayHead, start_head  # noqa: E402


@pytest.fixture(scope="session")
def ray_head() -> RayHead:
    """A 2-CPU Ray head on free ports with its own temp dir; stopped (by pid) at the end.

    One per session: on 2 cores a start costs ~10 s. In-process tests and `ray job submit`
    tests share it, so there is only ever one Ray cluster on the machine."""
    head = start_head(num_cpus=2)
    yield head
    head.stop()


@pytest.fixture(scope="session")
def ray_session(ray_head):
    """This test process connected to the session's Ray head."""
    import ray

    ray.init(address=ray_head.gcs_address)
    yield ray
    ray.shutdown()


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Point the decoded-tensor cache at a temporary folder."""
    monkeypatch.setenv("DEEPNETS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """A tiny VOC-layout segmentation dataset of coloured shapes (48 train / 16 val images)."""
    from deepnets.data.shapes import write_shapes_dataset

    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), train=48, val=16, seed=0)


@pytest.fixture
def forget_voc_after():
    """Call with a VOC folder made in the test; its decoded-tensor cache entry goes when the
    test ends (Ray workers decode into the user's cache, which no fixture can redirect)."""
    from deepnets.data.cache import forget

    folders: list[Path] = []
    yield folders.append
    for folder in folders:
        forget(f"voc:{folder}", folder)
