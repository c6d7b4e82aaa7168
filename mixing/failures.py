"""One failure vocabulary for every command.

The same problem has the same name wherever it is reported: ``hive check``'s per-file status,
``hive render``'s ``_failures.jsonl``, the stream (``hive.py`` builder, :mod:`mixing.streaming`),
``hive synthesize`` (labelled-list drops, redraw counts) and ``hive mine`` (stage drops). An
exception raised on purpose maps to its reason through :func:`reason_of`, the single mapping.

Reasons that only one command can meet (a judge's unparseable answer, ``too_short`` in a
labelled list, ...) stay with that command; this module holds the ones several commands share.
"""

from __future__ import annotations

from .errors import (
    ChunkOutOfRangeError, ClippingError, CropBeyondChunkError, InvalidRecordError, MissingSourceAudioError,
    NonFiniteAudioError, NotInStoreError, PathEscapesRootError, StoreCorruptError, StoreStaleError,
    UnknownPrefixError, UnreadableAudioError,
)
from .memory_estimate import MemoryCapError

#: ``hive check``'s status of a file that is fine (not a failure)
PRESENT = "present"
MISSING_FILE = "missing_file"
UNREADABLE_AUDIO = "unreadable_audio"
UNKNOWN_PREFIX = "unknown_prefix"
UNSAFE_PATH = "unsafe_path"
CHUNK_BEYOND_END = "chunk_beyond_end"
CROP_BEYOND_CHUNK = "crop_beyond_chunk"
INVALID_RECORD = "invalid_record"
WOULD_CLIP = "would_clip"
NON_FINITE = "non_finite"
DUPLICATE_MIX_ID = "duplicate_mix_id"
OVER_MEMORY_CAP = "over_memory_cap"
NOT_IN_STORE = "not_in_store"
STORE_STALE = "store_stale"
STORE_CORRUPT = "store_corrupt"
#: an unexpected error while rendering (a bug or an environment problem; see the message)
RENDER_ERROR = "render_error"

#: reason -> one-line description (docs/failure-reasons.md and ``--help`` texts)
DESCRIPTIONS: dict[str, str] = {
    MISSING_FILE: "the referenced corpus file is not on disk",
    UNREADABLE_AUDIO: "the file exists but cannot be decoded: corrupt, truncated, or not a regular file",
    UNKNOWN_PREFIX: "the path's corpus prefix is not a key of dataset_paths.json",
    UNSAFE_PATH: "the path would resolve outside its corpus root",
    CHUNK_BEYOND_END: "the chunk ends more than 10 frames past the end of its file",
    CROP_BEYOND_CHUNK: "the crop starts at or after the end of its (resampled) chunk: the stem would be all zeros",
    INVALID_RECORD: "the metadata record breaks the schema or a rule of the data model",
    WOULD_CLIP: "a PCM/FLAC encoding of the audio would clip",
    NON_FINITE: "the audio would hold NaN or infinite samples",
    DUPLICATE_MIX_ID: "another record already has this mix_id",
    OVER_MEMORY_CAP: "the mixture (duration x rate x sources) would need more memory than the cap (--max-memory)",
    NOT_IN_STORE: "the chunk is not in the source store and --store-only forbids decoding it",
    STORE_STALE: "the source file changed (size or mtime) since the store was built: rebuild the store",
    STORE_CORRUPT: "a store segment is truncated or fails its checksum: run hive store verify, rebuild",
    RENDER_ERROR: "an unexpected error while rendering (see the message)",
}

#: the single mapping exception class -> reason (first match wins; subclasses before bases)
EXCEPTION_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (MissingSourceAudioError, MISSING_FILE),
    (UnreadableAudioError, UNREADABLE_AUDIO),
    (UnknownPrefixError, UNKNOWN_PREFIX),
    (PathEscapesRootError, UNSAFE_PATH),
    (ChunkOutOfRangeError, CHUNK_BEYOND_END),
    (CropBeyondChunkError, CROP_BEYOND_CHUNK),
    (InvalidRecordError, INVALID_RECORD),
    (ClippingError, WOULD_CLIP),
    (NonFiniteAudioError, NON_FINITE),
    (MemoryCapError, OVER_MEMORY_CAP),
    (NotInStoreError, NOT_IN_STORE),
    (StoreStaleError, STORE_STALE),
    (StoreCorruptError, STORE_CORRUPT),
)

#: the reasons a file (not a record) can have, in ``hive check``'s status order
FILE_STATUSES: tuple[str, ...] = (PRESENT, MISSING_FILE, UNREADABLE_AUDIO, UNKNOWN_PREFIX, UNSAFE_PATH)

_UNSET = object()


def reason_of(exc: BaseException, default=_UNSET):
    """The reason name of ``exc``. An exception outside :data:`EXCEPTION_REASONS` gives
    ``default`` (:data:`RENDER_ERROR` when not given; pass ``None`` to tell known from unknown)."""
    for cls, reason in EXCEPTION_REASONS:
        if isinstance(exc, cls):
            return reason
    return RENDER_ERROR if default is _UNSET else default


def describe(reason: str) -> str:
    """The one-line description of ``reason`` (the name itself for a command-specific reason)."""
    return DESCRIPTIONS.get(reason, reason.replace("_", " "))


def help_text(reasons: tuple[str, ...] | None = None) -> str:
    """``name: description`` lines for ``--help`` epilogs."""
    names = reasons if reasons is not None else tuple(DESCRIPTIONS)
    return "\n".join(f"  {name:<17} {DESCRIPTIONS[name]}" for name in names)
