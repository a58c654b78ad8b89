"""deepnets: distributed training of image classifiers on Ray (see README.md)."""

import time

# When this process started importing deepnets: in a Ray worker, the end of Ray's own start-up
# (bench/startup.py splits a run's fixed cost at this mark).
IMPORT_STARTED_AT = time.time()
