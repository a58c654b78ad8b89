"""Run a sweep: `python jobs/sweep.py [--space tune_spaces/X.yaml] [--fidelity proxy] ...`.

Same as `deepnets sweep`; this file is what `ray job submit -- python jobs/sweep.py` runs.
With no --space it runs tune_spaces/quickstart.yaml (embedded digits data, no download).
"""

import sys
from pathlib import Path

# Under `ray job submit --working-dir .` the project may not be installed on the cluster.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deepnets.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
