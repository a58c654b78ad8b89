"""Report spaces one after another vs all at once: wall time of `jobs/reproduce.py` both ways.

Run one after another, each space waits for its slowest trial with part of the machine idle;
`--together` runs every space's sweep at once on one Ray. Both runs start from empty storage
(tensor caches warm), one after the other, and this prints their wall times and the ratio.

    python bench/together.py [--fidelity proxy] [--spaces mnist_resnet,cifar10_googlenet,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def reproduce(args: argparse.Namespace, folder: Path, together: bool) -> tuple[float, dict]:
    """(wall seconds, reproduction.json) of one reproduce.py run into `folder`."""
    command = [
        sys.executable, str(ROOT / "jobs" / "reproduce.py"), "--fidelity", args.fidelity,
        "--spaces", args.spaces, "--storage", str(folder / "runs"), "--out", str(folder / "out"),
    ] + (["--together"] if together else [])  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return wall, json.loads((folder / "out" / "reproduction.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelity", default="proxy")
    parser.add_argument("--spaces", default="mnist_resnet,mnist_googlenet,cifar10_googlenet")
    args = parser.parse_args()
    print(f"spaces {args.spaces}, fidelity {args.fidelity}")
    walls = {}
    with tempfile.TemporaryDirectory(prefix="deepnets-together-") as tmp:
        for together in (False, True):
            mode = "together" if together else "one after another"
            folder = Path(tmp) / mode.replace(" ", "-")
            walls[mode], record = reproduce(args, folder, together)
            sweeps = ", ".join(f"{s}: {t:.0f} s" for s, t in record["sweep_wall_seconds"].items())
            print(f"{mode:<18} {walls[mode]:7.1f} s   ({sweeps})")
    print(f"together / one after another: {walls['together'] / walls['one after another']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
