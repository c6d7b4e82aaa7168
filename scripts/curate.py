"""`accelerate launch [--multi_gpu] --num_processes N scripts/curate.py --metadata … --output …`

Each rank scores the mixtures ``sorted(mix_id)[rank::N]``; after a barrier the main process
merges every rank's scores and applies the keep policy. On CPU this script runs with
``PartialState(cpu=True)``. No logic here: it maps the launcher's ranks onto
``hive curate --rank --world-size`` (:func:`mixing.cli.launch.run_as_rank`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from mixing.cli.launch import run_as_rank  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_as_rank(["curate"]))
