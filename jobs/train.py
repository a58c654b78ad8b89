"""Train one model: `python jobs/train.py --model resnet18 --dataset mnist --epochs 1 [k=v ...]`.

Same as `deepnets train`; this file is what `ray job submit -- python jobs/train.py` runs.
"""

import sys
from pathlib import Path

# Under `ray job submit --working-dir .` the project may not be installed on the cluster.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deepnets.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
