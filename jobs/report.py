"""Build a report: `python jobs/report.py RUN_DIR [RUN_DIR ...] --out reports/NAME/`.

Same as `deepnets report`: tables.md/csv/json, PNG plots and index.html from experiment
directories (finished, partial or interrupted sweeps).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deepnets.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
