"""Run one 2-worker DDP training on a two-node Ray cluster on this machine; print JSON.

`python tests/twonode.py OUT_DIR` starts `ray.cluster_utils.Cluster` (a head and one more node,
one CPU each, so the two 1-CPU workers must land on different nodes), trains, prints what the
test needs and shuts the cluster down (only the processes it started). Run as a subprocess: a
test process can be connected to one Ray cluster only, and the session's head is another.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from deepnets.config import load_config  # noqa: E402
from deepnets.launch import run_training  # noqa: E402
from deepnets.runlog import TEST_REPORT_FILE, read_history, read_json  # noqa: E402

SETTINGS = [
    "model.name=resnet18", "model.options.stem=small", "model.options.width=0.25",
    "data.dataset=digits", "data.val_fraction=0.2", "num_workers=2", "cpus_per_worker=1",
    "global_batch_size=64", "optim.lr=0.005", "schedule.name=none", "epochs=2", "name=twonode",
]  # fmt: skip


def main(out: Path) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        cfg = load_config(None, [*SETTINGS, f"output_dir={out}"])
        summary = run_training(cfg)
        alive = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
        report = read_json(summary.run_dir / TEST_REPORT_FILE)
        print(json.dumps({
            "cluster_nodes": alive,
            "rank_nodes": report["nodes"],
            "world_size": report["world_size"],
            "history": read_history(summary.run_dir),
            "error": summary.error,
        }))  # fmt: skip
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
