"""`accelerate launch [--multi_gpu] --num_processes N scripts/mine.py STAGE --input … --output …`

Each process runs its rank of the stage; rank 0 waits for the others and merges. On a machine
without CUDA this script uses ``PartialState(cpu=True)``. No logic here: it only maps the
launcher's ranks (and each process's GPU) onto ``hive mine STAGE --rank --world-size --device`` (:func:`mixing.cli.launch.run_as_rank`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from mixing.cli.launch import run_as_rank  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_as_rank(["mine"], gpu=True))
