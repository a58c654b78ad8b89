"""Scale-out on real nodes: a 2-worker DDP run whose workers land on two different Ray nodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_ray import _accuracy_of_weights_on_whole_test_set
from twonode import SETTINGS

from deepnets.checkpoint import latest_checkpoint_dir, load_state
from deepnets.config import load_config

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent


def test_ddp_across_two_nodes_reports_global_metrics(tmp_path):
    result = subprocess.run(
        [sys.executable, str(HERE / "twonode.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    run = json.loads(result.stdout.strip().splitlines()[-1])
    assert run["error"] is None and run["world_size"] == 2
    assert len(run["cluster_nodes"]) == 2
    assert len(set(run["rank_nodes"])) == 2  # rank 0 and rank 1 ran on different nodes
    assert set(run["rank_nodes"]) == set(run["cluster_nodes"])
    assert [row["epoch"] for row in run["history"]] == [1, 2]

    # Global, not per-rank: the reported test accuracy is the whole test set's, as one process
    # computes it from the final checkpoint (one near-tie image may round the other way).
    cfg = load_config(None, [*SETTINGS, f"output_dir={tmp_path}"])
    state = load_state(latest_checkpoint_dir(tmp_path / "twonode"))
    whole = _accuracy_of_weights_on_whole_test_set(cfg, state)
    assert abs(run["history"][-1]["test_accuracy"] - whole) <= 1 / 360 + 1e-9
    assert whole > 0.5  # and it learned: far above chance after two epochs
