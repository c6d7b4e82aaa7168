"""The rank executor: how every job that splits its work across ranks (``hive render``, ``hive
store build``, ``hive mine``, ``hive curate``, the stream) does it, in one place.

* :mod:`~mixing.ranks.world`: :class:`Ranks`, this process's rank and the world size, from keyword
  arguments, ``$RANK``/``$WORLD_SIZE`` or accelerate's ``PartialState``, checked once by the
  checked-number rule; this rank's share of sorted work (``items[rank::world]``,
  ``index % world == rank``; the stream's work units, dynamic mixing's virtual shards).
* :mod:`mixing.cli.rank_options` (on the command-line floor): ``--rank`` / ``--world-size`` of every
  command, checked through :class:`Ranks`.
* :mod:`~mixing.ranks.run`: :class:`RankRun`, one rank's run over an output folder: the per-rank
  lock, stale temporaries, completion markers written last, and the merge run once when every
  rank is done (after a barrier under ``accelerate launch``, or by the rank that sees it).
* :mod:`~mixing.ranks.failure_records`: one builder of failure-manifest entries and one writer.
* :mod:`mixing.cli.launch` (on the command-line floor): the ``accelerate launch scripts/<x>.py`` entry.

Worker processes within a rank come from :func:`mixing.workers.process_pool` (they die with it).
"""

from .failure_records import (
    MESSAGE_CHARS,
    failure_record,
    invalid_record_failure,
    mixture_failure,
    one_line,
    write_manifest,
)
from .run import (
    AUTO,
    Merge,
    RankRun,
    RanksNotDoneError,
    RankSummary,
    Wait,
    group_barrier,
)
from .world import Ranks, checked

__all__ = [
    "AUTO", "MESSAGE_CHARS", "Merge", "RankRun", "RankSummary", "Ranks", "RanksNotDoneError", "Wait", "checked",
    "failure_record", "group_barrier", "invalid_record_failure", "mixture_failure", "one_line",
    "write_manifest",
]
