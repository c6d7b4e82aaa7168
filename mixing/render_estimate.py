"""Before a long render: how many mixtures, how much audio, how many bytes, and is there room.

Bytes = sum over valid mixtures of ``(1 + num_sources) x int(target_duration x rate) x bytes per
sample`` (32-bit float WAV: 4; 24-bit FLAC: at most 3, less after compression), plus the shard
files already in the output folder counted as done. Containers (tar headers, JSON, Parquet pages)
add well under 1 %.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import HiveError
from .memory_estimate import (
    CHUNK_CACHE_BYTES, RENDER_PER_FRAME, MemoryCap, check_memory, describe_mixture, size_text,
)
from .metadata_io import MetadataSource, open_metadata
from .validation import ValidationReport

log = logging.getLogger(__name__)

#: bytes per sample of each --audio-format (FLAC is an upper bound: 24-bit before compression)
BYTES_PER_SAMPLE = {"wav": 4, "flac": 3, "pcm16": 2}  # flac: an upper bound


class InsufficientSpaceError(HiveError, OSError):
    """The render would not fit on the output's filesystem."""


@dataclass(frozen=True)
class RenderEstimate:
    mixtures: int
    sources: int
    samples: int  # audio samples to write: mixes + stems
    seconds: float  # mixture audio (mixes only)
    bytes: int  # estimated output size
    existing_bytes: int  # shard bytes already in the output folder (a resumed render)
    free_bytes: int
    audio_format: str
    #: the largest mixture, for the memory check: (peak bytes, frames, sources, rate, mix_id)
    largest: tuple[int, int, int, int, str] | None = None

    @property
    def needed_bytes(self) -> int:
        return max(0, self.bytes - self.existing_bytes)

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.free_bytes

    def describe(self) -> str:
        kind = "32-bit float WAV" if self.audio_format == "wav" else "24-bit FLAC, at most"
        text = (f"{self.mixtures} mixtures, {self.sources} sources, {self.seconds / 3600:.2f} h of mixtures: "
                f"about {_size(self.bytes)} ({kind})")
        if self.existing_bytes:
            text += f", {_size(self.existing_bytes)} already rendered"
        return text + f"; {_size(self.free_bytes)} free"


def _size(n: float) -> str:
    return size_text(n, binary=False)


def free_space(path: str | os.PathLike) -> int:
    """Free bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def _existing_shards(output: Path) -> int:
    if not output.is_dir():
        return 0
    return sum(p.stat().st_size for pattern in ("*/*mix/tar_*.tar", "*/*mix/part_*.parquet")
               for p in output.glob(pattern))


def estimate_render(metadata: str | os.PathLike | MetadataSource, output: str | os.PathLike, *,
                    split: str | None = None, num_sources: int | None = None, audio_format: str = "wav",
                    sample_rate: int | None = None, revision: str | None = None) -> RenderEstimate:
    """Count the valid mixtures (the rows ``hive render`` would render) and estimate the output size."""
    if audio_format not in BYTES_PER_SAMPLE:
        raise ValueError(f"audio format {audio_format!r} is not one of {sorted(BYTES_PER_SAMPLE)}")
    source = metadata if isinstance(metadata, MetadataSource) else open_metadata(metadata, revision=revision)
    mixtures = sources = samples = 0
    seconds = 0.0
    largest: tuple[int, int, int, int, str] | None = None
    for batch in source.arrow_batches(split, num_sources, on_error="skip", report=ValidationReport()):
        n = batch.column("num_sources").to_numpy(zero_copy_only=False).astype(np.int64)
        dur = batch.column("target_duration").to_numpy(zero_copy_only=False).astype(np.float64)
        rate = (np.full(len(n), sample_rate, dtype=np.float64) if sample_rate else
                batch.column("sample_rate").to_numpy(zero_copy_only=False).astype(np.float64))
        frames = (dur * rate).astype(np.int64)
        if len(n):
            per_source, fixed = RENDER_PER_FRAME
            need = frames * (per_source * n + fixed)
            k = int(np.argmax(need))
            if largest is None or int(need[k]) > largest[0]:
                largest = (int(need[k]), int(frames[k]), int(n[k]), int(rate[k]),
                           str(batch.column("mix_id")[k].as_py()))
        mixtures += len(n)
        sources += int(n.sum())
        samples += int(((1 + n) * frames).sum())
        seconds += float(dur.sum())
    out = Path(output)
    est = RenderEstimate(mixtures, sources, samples, seconds, samples * BYTES_PER_SAMPLE[audio_format],
                         _existing_shards(out), free_space(out), audio_format, largest)
    log.info("render estimate: %s", est.describe())
    return est


def check_render_memory(est: RenderEstimate, num_workers: int = 1, cap: MemoryCap | None = None) -> None:
    """Refuse (one line) a render whose largest mixture, rendered by each of ``num_workers``
    workers at once, would need more memory than the cap; before any output is written."""
    if est.largest is None:
        return
    need, frames, n, rate, mix_id = est.largest
    check_memory(need + CHUNK_CACHE_BYTES, f"rendering the largest mixture ({mix_id!r}: "
                 f"{describe_mixture(frames, n, rate)})",
                 "render at a lower --sample-rate, with fewer --num-workers, or only the --split / --num-sources "
                 "that fit", cap=cap, workers=num_workers)


def check_space(est: RenderEstimate, output: str | os.PathLike, force: bool = False) -> None:
    """Raise :class:`InsufficientSpaceError` when the estimate exceeds the free space (unless ``force``)."""
    if est.fits or force:
        return
    raise InsufficientSpaceError(
        f"the render needs about {_size(est.needed_bytes)} but {output} has {_size(est.free_bytes)} free "
        f"({est.describe()}); free some space, choose another --output, render one --split or --num-sources "
        "at a time, use --audio-format flac, or pass --force to start anyway")
