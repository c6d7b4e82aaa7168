"""``accelerate launch scripts/<x>.py ...``: run a ``hive`` command as this process's rank.

The scripts under ``scripts/`` hold no logic: each calls :func:`run_as_rank` with its command.
It makes accelerate's ``PartialState`` (on CPU unless asked for GPUs and CUDA is there; the state
also sets up the ``torch.distributed`` group whose barrier mine and curate meet at), reads the
ranks from it (:meth:`mixing.ranks.Ranks.from_accelerate`) and runs ``hive COMMAND ARGS --rank R
--world-size W``.
"""

from __future__ import annotations

import sys
from typing import Sequence

from mixing.ranks.world import Ranks


def run_as_rank(command: Sequence[str], argv: Sequence[str] | None = None, *, gpu: bool = False) -> int:
    """``hive COMMAND ARGV`` as this process's rank of an accelerate launch; its exit status.

    ``gpu``: use CUDA when there is one, and give each process its own device (``--device
    cuda:<local index>``) unless the arguments name one (``merge`` takes no device)."""
    from mixing import optional

    accelerate = optional.require("accelerate", "accelerate launch scripts/*.py", "models")
    args = list(sys.argv[1:] if argv is None else argv)
    cpu = True
    if gpu:
        torch = optional.require("torch", "accelerate launch with GPUs", "models")
        cpu = not torch.cuda.is_available()
    state = accelerate.PartialState(cpu=cpu)
    full = [*command, *args, *Ranks.from_accelerate(state).flags()]
    if gpu and state.device.type == "cuda" and "--device" not in args and args[:1] != ["merge"]:
        full += ["--device", f"cuda:{state.local_process_index}"]
    from mixing.cli import main

    return main(full)
