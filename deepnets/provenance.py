"""Where a number came from: code version, package versions, machine. Attached to every run."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("deepnets", "torch", "torchvision", "ray", "timm", "scikit-learn", "pydantic")


def git_commit(start: Path | None = None) -> str:
    """`<sha>` or `<sha>-dirty` of the checkout holding this package, `unknown` outside git.

    DEEPNETS_GIT_COMMIT wins: `ray job submit` uploads the working tree without .git, so the
    submitter passes the commit in the job's runtime environment."""
    if os.environ.get("DEEPNETS_GIT_COMMIT"):
        return os.environ["DEEPNETS_GIT_COMMIT"]
    where = start or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not sha:
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine() -> dict[str, str | int]:
    return {
        "host": platform.node(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count() or 0,
        "processor": platform.machine(),
    }


def collect() -> dict:
    """Everything above, for a run's record (written by the process that starts the run)."""
    return {"git_commit": git_commit(), "versions": package_versions(), "machine": machine()}
