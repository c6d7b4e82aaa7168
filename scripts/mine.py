"""`accelerate launch [--multi_gpu] --num_processes N scripts/mine.py STAGE --input … --output …`

Each process runs its rank of the stage; rank 0 waits for the others and merges. On a machine
without CUDA this script uses ``PartialState(cpu=True)``. No logic here: it only maps the
launcher's ranks (and each process's GPU) onto ``hive mine STAGE --rank --world-size --device``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from accelerate import PartialState  # noqa: E402

from mixing.cli import main  # noqa: E402

if __name__ == "__main__":
    import torch

    state = PartialState(cpu=not torch.cuda.is_available())
    argv = ["mine", *sys.argv[1:], "--rank", str(state.process_index),
            "--world-size", str(state.num_processes)]
    if state.device.type == "cuda" and "--device" not in argv and sys.argv[1:2] != ["merge"]:
        argv += ["--device", f"cuda:{state.local_process_index}"]
    sys.exit(main(argv))
