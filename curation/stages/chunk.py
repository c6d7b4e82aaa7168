"""Stage 1, ``chunk``: files into virtual chunks, silent chunks out.

* A file (or the item's range of it) of at most ``window`` seconds is one chunk, kept whole.
* A longer one is cut into ``window`` s windows every ``hop`` s; a window cut short by the end of
  the file is kept only if it lasts at least ``min_last`` s, and the windows stop at the first
  *non-silent* one that reaches the end. As in the reference script (``01_audio_chunking.py``), a
  silent window that reaches the end does not stop them: the next, shorter windows (inside it) are
  still tried while they last ``min_last`` s. ``--stop-at-end`` stops at the first window that
  reaches the end, silent or not.
* A chunk whose mean-square energy, computed on the mono downmix (mean over channels), is below
  ``silence_threshold`` is dropped as ``silent``. A file (or range) of at most ``window`` seconds
  is kept whole without that check, as the reference does; ``--drop-silent-short`` checks it too.
  Missing and undecodable files are dropped as
  ``missing_file`` / ``unreadable``.

Chunks are virtual: the records carry ``chunk_start_second``/``chunk_end_second`` into the
original file, chosen so that ``int(seconds * sr)`` gives back the exact frame. Writing segment
files is optional (``export_dir``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from mixing import numbers
from mixing.audio import chunk_frames, open_sound_file, probe, seek_is_exact
from mixing.errors import UnreadableAudioError
from mixing.failures import UNREADABLE_AUDIO
from mixing.resume import AtomicFile

from .base import AUDIO_ERRORS, Drop, Item, Result, Stage, frames_to_seconds, opt, read_error_reason


def plan_windows(n: int, sr: int, window: float, hop: float, min_last: float,
                 past_end: bool = False) -> list[tuple[int, int]]:
    """Frame ranges ``[s, e)`` of the chunks of an ``n``-frame range; ``past_end``: also the
    windows after the first one that reaches the end (candidates if that one is silent)."""
    w, h, m = round(window * sr), round(hop * sr), round(min_last * sr)
    if n <= 0:
        return []
    if n <= w:
        return [(0, n)]
    out = []
    s = 0
    while True:
        e = min(s + w, n)
        if e - s < m:
            break
        out.append((s, e))
        if e == n and not past_end:
            break
        s += h
    return out


def window_energies(f: sf.SoundFile, offset: int, windows: list[tuple[int, int]]) -> list[float]:
    """Mean square of the mono downmix over each window, reading the file once, in order."""
    bounds = sorted({b for w in windows for b in w})
    sums = np.zeros(len(bounds))  # sums[j] = sum of squares over [bounds[0], bounds[j])
    f.seek(offset + bounds[0])
    for j in range(1, len(bounds)):
        need = bounds[j] - bounds[j - 1]
        data = f.read(need, dtype="float32", always_2d=True)
        if data.shape[0] != need:
            raise UnreadableAudioError(
                f"{f.name}: got {data.shape[0]} of {need} frames at frame {offset + bounds[j - 1]}; the "
                "file is truncated or its header lies about its length: re-download it")
        if data.shape[1] == 1:
            mono = data[:, 0]
        elif data.shape[1] == 2:
            mono = (data[:, 0] + data[:, 1]) * np.float32(0.5)
        else:
            mono = data.mean(axis=1, dtype=np.float32)
        sums[j] = sums[j - 1] + float(np.dot(mono, mono))
    index = {b: j for j, b in enumerate(bounds)}
    return [(sums[index[e]] - sums[index[s]]) / (e - s) for s, e in windows]


@dataclass
class ChunkStage(Stage):
    name = "chunk"
    description = "cut files into 10 s virtual chunks (5 s hop) and drop silent ones"
    default_batch_size = 8

    window: float = opt(10.0, "chunk length in seconds; shorter files are kept whole", type=numbers.SECONDS)
    hop: float = opt(5.0, "hop between chunk starts in seconds", type=numbers.SECONDS)
    min_last: float = opt(5.0, "a chunk cut short by the end of the file is kept only if at least "
                          "this long (seconds)", type=numbers.real(0.0, numbers.MAX_SECONDS, what="a number of seconds"))
    silence_threshold: float = opt(5e-4, "chunks whose mean-square energy (mono downmix) is below "
                                   "this are dropped as 'silent'", type=numbers.NON_NEGATIVE_REAL)
    drop_silent_short: bool = opt(False, "also drop a file of at most --window seconds as 'silent' when "
                                  "its energy is below the threshold (the reference keeps it whole "
                                  "unchecked)", flag="--drop-silent-short")
    stop_at_end: bool = opt(False, "stop at the first window that reaches the end of the file even if "
                            "it is silent (the reference tries the next, shorter windows)",
                            flag="--stop-at-end")
    export_dir: str | None = opt(None, "also write each kept chunk as a float WAV file under this folder")
    export_prefix: str = opt("segments", "corpus prefix recorded in 'segment_path' for exported files")

    def thresholds(self) -> dict:
        return {"silence_threshold": self.silence_threshold, "min_last": self.min_last,
                "stop_at_end": self.stop_at_end, "drop_silent_short": self.drop_silent_short}

    def process_item(self, item: Item) -> Result:
        try:
            local = self.audio.resolve(item.path)
            info = probe(local)
            if info.frames <= 0:
                return [Drop.of(item, UNREADABLE_AUDIO, "the file holds no audio frames")]
            sr = info.samplerate
            start = int(item.chunk_start_second * sr)
            stop = info.frames
            if item.chunk_end_second is not None:
                start, stop = chunk_frames(item.chunk_start_second, item.chunk_end_second, sr,
                                           info.frames, item.path)
            windows = plan_windows(stop - start, sr, self.window, self.hop, self.min_last,
                                   past_end=not self.stop_at_end)
            if not windows:
                return [Drop.of(item, "empty_range", f"frames [{start}, {stop}) hold nothing to chunk")]
            if seek_is_exact(info):
                with open_sound_file(str(local)) as f:
                    energies = window_energies(f, start, windows)
            else:  # Vorbis/Opus/MP3: each chunk decoded from its own start, as the renderer reads it
                energies = []
                for s, e in windows:
                    with open_sound_file(str(local)) as f:
                        energies += window_energies(f, start + s, [(0, e - s)])
        except AUDIO_ERRORS as exc:  # soundfile's errors are RuntimeErrors
            return [Drop.of(item, read_error_reason(exc), str(exc))]
        out: Result = []
        for k, ((s, e), ms) in enumerate(zip(windows, energies)):
            cid = f"{item.clip_id}-{k:03d}"
            cs, ce = frames_to_seconds(start + s, sr), frames_to_seconds(start + e, sr)
            whole_short = len(windows) == 1 and windows[0] == (0, stop - start) and \
                stop - start <= round(self.window * sr)
            silent = not ms >= self.silence_threshold  # NaN counts as silent
            if silent and (self.drop_silent_short or not whole_short):
                out.append(Drop(cid, "silent", f"mean square {ms:.3g} < {self.silence_threshold:g}",
                                item.path, cs, ce, {"mean_square": float(ms)}))
                continue
            chunk = item.replace(clip_id=cid, chunk_start_second=cs, chunk_end_second=ce,
                                 native_sample_rate=sr, num_channels=info.channels)
            chunk.provenance["chunk"] = {"source_clip_id": item.clip_id, "index": k,
                                         "mean_square": round(float(ms), 9),
                                         "file_seconds": info.frames / sr}
            if silent:  # a short file kept whole without the check, as the reference does
                chunk.provenance["chunk"]["below_silence_threshold"] = True
            if self.export_dir:
                try:
                    chunk.extra["segment_path"] = self._export(local, start + s, start + e, cid)
                except (OSError, RuntimeError) as exc:
                    out.append(Drop.of(chunk, "export_failed", str(exc)))
                    if e == stop - start:
                        break
                    continue
            out.append(chunk)
            if e == stop - start:  # a sound window reaching the end ends the file's chunks
                break
        return out

    def _export(self, local: Path, start: int, stop: int, cid: str) -> str:
        sub = hashlib.sha1(cid.encode()).hexdigest()[:2]
        rel = f"{sub}/{cid}.wav"
        dest = Path(self.export_dir) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open_sound_file(str(local)) as f:
            f.seek(start)
            data = f.read(stop - start, dtype="float32", always_2d=True)
            sr = f.samplerate
        with AtomicFile(dest) as out:
            sf.write(str(out.tmp), data, sr, format="WAV", subtype="FLOAT")
        return f"{self.export_prefix}/{rel}"
