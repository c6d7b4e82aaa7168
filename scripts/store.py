"""`accelerate launch [--multi_gpu] --num_processes N scripts/store.py --metadata … --dataset-paths … --output STORE`

Each rank builds its share of the plan's units (unit % world == rank); the last rank to finish
merges the index. On CPU this script runs with ``PartialState(cpu=True)``. No logic here: it only
maps the launcher's ranks onto ``hive store build --rank --world-size``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from accelerate import PartialState  # noqa: E402

from mixing.cli import main  # noqa: E402

if __name__ == "__main__":
    state = PartialState(cpu=True)
    argv = ["store", "build", *sys.argv[1:], "--rank", str(state.process_index),
            "--world-size", str(state.num_processes)]
    sys.exit(main(argv))
