"""Before any work: how much memory a request needs, and a one-line refusal over the cap.

Every command that holds audio in memory estimates its peak from durations x rates x sources
(:func:`mixture_bytes`) and calls :func:`check_memory` before it allocates: ``render`` (the
largest mixture of the metadata x workers, before the first shard; and each mixture in the
renderer, which the stream, ``inspect`` and ``curate`` use too), ``eval`` (each rendered
mixture before it is decoded), ``inspect`` (each mixture before its media are drawn) and
``synthesize`` (the longest mixture x workers, before sampling). Without the check a valid
1-hour record rendered with ``--sample-rate 384000`` asked for tens of GiB and was killed by the
kernel (or took the machine down with it).

The bytes per output frame are upper bounds measured with ``/usr/bin/time -v`` on 10-minute
48 kHz mixtures of 2 and 5 sources (render 1.22 / 2.32 GB, eval without SDR 1.92 / 2.95 GB,
eval with SDR 6.06 GB for 2 sources, inspect 2.32 GB for 2 sources), plus :data:`BASE_BYTES` for the
interpreter and libraries.

The cap: ``--max-memory SIZE`` (commands that hold audio) or ``$HIVE_MAX_MEMORY``, as bytes with
an optional unit (``512M``, ``8G``, ``16GiB``), a percentage of the available memory (``90%``),
or ``none``; by default :data:`DEFAULT_FRACTION` of the memory available now (``MemAvailable``,
bounded by the cgroup limit).
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import HiveError

#: the environment variable of the cap (the ``--max-memory`` flag sets it for worker processes)
ENV = "HIVE_MAX_MEMORY"
#: default cap: this fraction of the memory available when the command starts
DEFAULT_FRACTION = 0.8
#: interpreter, NumPy, soundfile, matplotlib, ... (measured ~0.4 GB with matplotlib loaded)
BASE_BYTES = 512 * 2**20
#: bytes per output frame: (per source, fixed) — see the module docstring for the measurements
RENDER_PER_FRAME = (16, 24)
EVAL_PER_FRAME = (16, 48)
EVAL_SDR_PER_FRAME = 150  # torchmetrics' BSS-eval of one source: FFTs of twice the signal's length
INSPECT_PER_FRAME = (24, 48)
#: the renderer's decoded-chunk cache (mixing.render.CHUNK_CACHE_BYTES)
CHUNK_CACHE_BYTES = 64 << 20

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
#: a cap below this is a typo, not a budget
MIN_CAP = 64 * 2**20
MAX_CAP = 2**60


class MemoryCapError(HiveError, MemoryError):
    """A request would need more memory than the cap allows (refused before anything is allocated)."""


def size_text(n: float, binary: bool = True) -> str:
    """``n`` bytes for a person: binary units (``20.6 GiB``; memory), or with ``binary=False``
    decimal ones (``50.8 MB``; files and disks). The one size formatter of the project."""
    step, units = (1024, ("B", "KiB", "MiB", "GiB", "TiB")) if binary else (1000, ("B", "kB", "MB", "GB", "TB"))
    for unit in units:
        if abs(n) < step or unit == units[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= step
    raise AssertionError  # pragma: no cover


def parse_size(text: str) -> int | float | None:
    """``"8G"`` -> bytes (int); ``"90%"`` -> 0.9 (a fraction of the available memory); ``"none"`` ->
    None (no cap). Raises ``ValueError`` with what is expected (the checked-number rule: finite,
    bounded)."""
    t = str(text).strip()
    if t.lower() in ("none", "off", "unlimited"):
        return None
    if t.endswith("%"):
        try:
            pct = float(t[:-1])
        except ValueError:
            pct = math.nan
        if not (math.isfinite(pct) and 1 <= pct <= 100):
            raise ValueError(f"{t!r} is not a percentage of the available memory in 1..100%")
        return pct / 100
    m = _SIZE.match(t)
    if not m:
        raise ValueError(f"{t!r} is not a memory size (bytes with an optional unit k/M/G/T, e.g. 8G or 512MiB; "
                         "a percentage such as 90%; or none)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not (math.isfinite(value) and MIN_CAP <= value <= MAX_CAP):
        raise ValueError(f"{t!r} is not a memory size in {size_text(MIN_CAP)}..{size_text(MAX_CAP)}")
    return int(value)


#: seconds a reading of the available memory is reused (the stream checks every mixture: reading
#: /proc and the cgroup files each time cost a fifth of its time)
AVAILABLE_TTL_S = 1.0
_last_reading: tuple[float, int | None] | None = None


def available_memory(max_age: float = AVAILABLE_TTL_S) -> int | None:
    """Bytes of memory available now (a reading at most ``max_age`` seconds old): ``MemAvailable``
    of ``/proc/meminfo``, bounded by the cgroup (v2 or v1) limit minus its usage; None when unknown."""
    global _last_reading
    now = time.monotonic()
    last = _last_reading
    if last is not None and now - last[0] < max_age:
        return last[1]
    avail = _read_available_memory()
    _last_reading = (now, avail)
    return avail


def _read_available_memory() -> int | None:
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit_text = Path(limit_file).read_text().strip()
            if limit_text == "max":
                continue
            room = int(limit_text) - int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if 0 < room < 2**60:
            avail = room if avail is None else min(avail, room)
    return avail


@dataclass(frozen=True)
class MemoryCap:
    limit: int | None  # bytes; None = no cap
    how: str  # where it comes from, for messages

    def describe(self) -> str:
        return "no cap" if self.limit is None else f"{size_text(self.limit)} ({self.how})"


def memory_cap() -> MemoryCap:
    """The cap of this process: ``$HIVE_MAX_MEMORY`` (set by ``--max-memory``), else
    :data:`DEFAULT_FRACTION` of the available memory (no cap when that is unknown)."""
    text = os.environ.get(ENV)
    if text is not None and text.strip():
        try:
            value = parse_size(text)
        except ValueError as exc:
            raise MemoryCapError(f"environment variable {ENV}: {exc}; fix or unset it") from None
        if value is None:
            return MemoryCap(None, f"{ENV}=none")
        if isinstance(value, float):
            avail = available_memory()
            if avail is None:
                return MemoryCap(None, f"{ENV}={text.strip()}, available memory unknown")
            return MemoryCap(int(avail * value), f"{text.strip()} of the {size_text(avail)} available")
        return MemoryCap(value, f"--max-memory / {ENV}")
    avail = available_memory()
    if avail is None:
        return MemoryCap(None, "available memory unknown")
    return MemoryCap(int(avail * DEFAULT_FRACTION), f"{DEFAULT_FRACTION:.0%} of the {size_text(avail)} available")


def mixture_bytes(kind: str, frames: int, sources: int, *, sdr: bool = False) -> int:
    """Peak bytes of one mixture of ``frames`` output frames and ``sources`` sources for
    ``kind``: ``render`` (the renderer and a shard writer; also the stream, synthesis levels and
    curation), ``eval`` (decode + metrics; ``sdr``: BSS-eval SDR too) or ``inspect`` (render or
    decode, then WAV and spectrogram media). Excludes :data:`BASE_BYTES`."""
    frames, sources = max(0, int(frames)), max(1, int(sources))
    if kind == "render":
        per_source, fixed = RENDER_PER_FRAME
        return frames * (per_source * sources + fixed) + CHUNK_CACHE_BYTES
    if kind == "eval":
        per_source, fixed = EVAL_PER_FRAME
        return frames * (per_source * sources + fixed + (EVAL_SDR_PER_FRAME if sdr else 0))
    if kind == "inspect":
        per_source, fixed = INSPECT_PER_FRAME
        return frames * (per_source * sources + fixed) + CHUNK_CACHE_BYTES
    raise ValueError(f"memory estimate kind {kind!r}; expected render, eval or inspect")


def describe_mixture(frames: int, sources: int, rate: int | None = None) -> str:
    if rate:
        return f"{frames / rate:g} s at {rate} Hz ({frames} frames) x {sources} sources"
    return f"{frames} frames x {sources} sources"


_FIX = {"render": "render at a lower --sample-rate (or fix the record's target_duration)",
        "eval": "evaluate at a lower rate (render with --sample-rate) or with --no-sdr",
        "inspect": "inspect a shorter mixture, or render it at a lower --sample-rate"}


def check_mixture_memory(kind: str, mix_id: str, frames: int, sources: int, rate: int | None = None, *,
                         sdr: bool = False, cap: MemoryCap | None = None) -> None:
    """:func:`check_memory` of one mixture (the renderer, eval and inspect call it before they
    allocate its audio)."""
    check_memory(mixture_bytes(kind, frames, sources, sdr=sdr),
                 f"mixture {mix_id!r} ({describe_mixture(frames, sources, rate)})", _FIX[kind], cap=cap)


def check_memory(need: int, what: str, fix: str, *, cap: MemoryCap | None = None, workers: int = 1) -> None:
    """Raise :class:`MemoryCapError` (one line: what, how much, the cap, what to do) when
    ``workers`` processes each needing ``need`` bytes (plus :data:`BASE_BYTES` each) exceed the cap."""
    cap = cap or memory_cap()
    if cap.limit is None:
        return
    total = workers * (need + BASE_BYTES)
    if total <= cap.limit:
        return
    per = f" ({workers} workers x {size_text(need + BASE_BYTES)})" if workers > 1 else ""
    raise MemoryCapError(f"{what} needs about {size_text(total)} of memory{per}, over the cap of "
                         f"{cap.describe()}; {fix}, or raise the cap with --max-memory SIZE or {ENV}=SIZE")
