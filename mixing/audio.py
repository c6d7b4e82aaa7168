"""Audio reading and resampling with the reference release's semantics.

* frames ``[int(chunk_start*sr), int(chunk_end*sr))`` at the file's native rate; a chunk may end
  at most :data:`EOF_TOLERANCE_FRAMES` frames past the end of the file (clamped), beyond that it
  is an error;
* mean over channels;
* resampling equal to ``librosa.resample(y, orig_sr, target_sr, res_type="soxr_hq")`` (librosa
  0.11's default): soxr "HQ", output length ``ceil(len(y) * target_sr / orig_sr)``.

Seeking: libsndfile's ``seek`` is sample-exact only for uncompressed containers and FLAC
(:func:`seek_is_exact`). In Ogg Vorbis, Opus and MP3 it lands on a page or frame boundary and
decodes from there, so ``seek(a); read(n)`` can differ from frames ``[a, a+n)`` of a longer read
(Vorbis: up to 0.3 near the end of a file; MP3: up to 0.9, shifted by hundreds of frames, and the
result even depends on where the same handle read before). Code that
wants the reference's numbers for such files must read them the way the reference does: open the
file, seek to the chunk start, read the chunk (:func:`read_frames` opens the file afresh each call).

Only regular files are opened: a FIFO (or device) would block ``open`` forever, so it is refused
as unreadable before libsndfile sees it.

Decoder messages: libsndfile's MP3 decoder (libmpg123) prints lines such as
``[src/libmpg123/layer3.c:...] error: part2_3_length ... too large`` straight to file descriptor 2
when a chunk starts mid-file (the bit reservoir of the first frame is missing), on reads that
succeed. Every libsndfile call of the project (:func:`probe`, :func:`read_frames`,
:func:`decode_tail`, :func:`sf_read`, :func:`open_sound_file`) runs inside
:func:`decoder_stderr_captured`, which points fd 2 at a temporary file while it runs and logs what
the decoder printed at debug level (``-vv``); any other text written to stderr meanwhile (another
thread's log line, a progress bar) is passed on to the real stderr, never dropped.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import soundfile as sf
import soxr

from .errors import ChunkOutOfRangeError, MissingSourceAudioError, UnreadableAudioError

EOF_TOLERANCE_FRAMES = 10
SOXR_QUALITY = "HQ"
#: containers whose libsndfile seek is sample-exact for the subtypes below (uncompressed frames)
_EXACT_CONTAINERS = frozenset({"WAV", "WAVEX", "AIFF", "CAF", "W64", "RF64", "RAW", "AU"})
_EXACT_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE",
                             "ULAW", "ALAW"})
#: FLAC's decoder seeks to the exact sample
_EXACT_FLAC_SUBTYPES = frozenset({"PCM_S8", "PCM_16", "PCM_24"})
#: frames decoded at the end of a file by :func:`decode_tail`
TAIL_FRAMES = 64

log = logging.getLogger(__name__)


# ---- decoder messages on stderr ------------------------------------------------------------------
#: a message a C decoder library printed: ``[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: ...``
#: (found anywhere in a line: another thread may have written the start of a line just before)
_DECODER_MESSAGE = re.compile(rb"\[src/[^\]\n]*\] [^\n]*(?:\n|$)")
#: decoder lines kept for the debug log per capture (the rest are counted)
_LOGGED_LINES = 20
#: how files whose decoders never print start (RIFF/RIFX/RF64/BW64 WAV, W64, AIFF, CAF, AU, FLAC,
#: Ogg); anything else (MP3, whose libmpg123 prints, or unknown) is decoded with fd 2 captured
_QUIET_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64", b"riff", b"FORM", b"caff", b".snd", b"fLaC", b"OggS")


class _StderrCapture:
    """One process-wide redirect of fd 2 to a temporary file, shared by concurrent decodes.

    fd 2 belongs to the process, not to a thread, so threads cannot each have their own: the first
    decode to start points fd 2 at the file, the last to end points it back (a lock-protected
    count). What arrived meanwhile is then read: decoder messages go to the debug log, anything
    else (a line another thread wrote meanwhile) to the real stderr, a line per write so that it
    does not split a line written concurrently. The file is opened for appending and read from
    where the last read stopped, so a write still in flight when fd 2 is pointed back is read the
    next time, not lost. A forked child starts afresh with fd 2 restored."""

    #: the file is emptied when a capture starts with this much already read
    RESET_BYTES = 1 << 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None  # the real stderr while fd 2 points at the file
        self._fd: int | None = None     # the temporary file (one per process, reused)
        self._read = 0                  # bytes of it already read
        self._decoding: list[str] = []  # what was decoded while fd 2 pointed at the file

    def _open(self) -> int:
        fd, name = tempfile.mkstemp(prefix="hive-decoder-stderr-")
        try:
            appending = os.open(name, os.O_RDWR | os.O_APPEND)
        finally:
            os.close(fd)
            os.unlink(name)
        return appending

    def enter(self, what: str) -> bool:
        with self._lock:
            if self._depth == 0:
                try:
                    if self._fd is None:
                        self._fd, self._read = self._open(), 0
                    elif self._read >= self.RESET_BYTES:
                        os.ftruncate(self._fd, 0)
                        self._read = 0
                    saved = os.dup(2)
                except OSError:  # no fd 2 (closed), no temporary folder: decode uncaptured
                    return False
                try:
                    os.dup2(self._fd, 2)
                except OSError:
                    os.close(saved)
                    return False
                self._saved = saved
            self._depth += 1
            if len(self._decoding) < _LOGGED_LINES:
                self._decoding.append(what)
            return True

    def leave(self) -> tuple[bytes, list[str]]:
        """Ends one capture. The last one returns the decoder lines and the files decoded meanwhile."""
        with self._lock:
            self._depth -= 1
            if self._depth > 0:
                return b"", []
            saved, self._saved = self._saved, None
            decoding, self._decoding = self._decoding, []
            os.dup2(saved, 2)
            try:
                size = os.fstat(self._fd).st_size
                text = os.pread(self._fd, size - self._read, self._read) if size > self._read else b""
                self._read += len(text)
                decoder = _DECODER_MESSAGE.findall(text)
                other = _DECODER_MESSAGE.sub(b"", text) if decoder else text
                for line in other.splitlines(keepends=True):  # not the decoder's: pass it on, in order
                    os.write(saved, line)
            except OSError:
                decoder = []
            finally:
                os.close(saved)
            return b"".join(decoder), decoding

    def after_fork_in_child(self) -> None:
        if self._saved is not None:  # forked while a thread of the parent was decoding
            with contextlib.suppress(OSError):
                os.dup2(self._saved, 2)
                os.close(self._saved)
        if self._fd is not None:  # the parent's file: the child gets its own
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._lock = threading.Lock()
        self._depth, self._saved, self._fd, self._read, self._decoding = 0, None, None, 0, []


_CAPTURE = _StderrCapture()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_CAPTURE.after_fork_in_child)


def _may_print(file: Any) -> bool:
    """Whether decoding ``file`` (a path, or bytes in a BytesIO) may print to stderr: False for the
    containers whose decoders never do (:data:`_QUIET_MAGIC`), so their reads skip the redirect
    (and do not hold up other threads' stderr in ``hive check``'s thread pool)."""
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as f:
                head = f.read(4)
        elif hasattr(file, "getbuffer"):
            head = bytes(file.getbuffer()[:4])
        else:
            return True
    except OSError:
        return True
    return head not in _QUIET_MAGIC


@contextlib.contextmanager
def decoder_stderr_captured(what: object = "", check: bool = False) -> Iterator[None]:
    """Run a libsndfile call with fd 2 captured (see the module docstring); what the decoder
    printed is logged at debug level with ``what`` (the file being decoded). ``check``: only when
    ``what`` (a path or a BytesIO) may be a file whose decoder prints (MP3 or unknown)."""
    if check and not _may_print(what):
        yield
        return
    captured = _CAPTURE.enter(os.fspath(what) if isinstance(what, (str, os.PathLike)) and what
                              else "in-memory audio")
    try:
        yield
    finally:
        if captured:
            text, decoding = _CAPTURE.leave()
            if text:
                lines = text.decode("utf-8", "replace").splitlines()
                more = f" (+{len(lines) - _LOGGED_LINES} more)" if len(lines) > _LOGGED_LINES else ""
                decoding = list(dict.fromkeys(decoding))
                where = decoding[0] if len(decoding) == 1 else f"one of {', '.join(decoding)}"
                log.debug("decoder messages on stderr while decoding %s: %s%s", where,
                          " | ".join(lines[:_LOGGED_LINES]), more)


def sf_read(file: Any, **kwargs: Any) -> tuple[np.ndarray, int]:
    """``soundfile.read`` with the decoder's stderr captured (:func:`decoder_stderr_captured`)."""
    with decoder_stderr_captured(file, check=True):
        return sf.read(file, **kwargs)


@contextlib.contextmanager
def open_sound_file(file: Any, **kwargs: Any) -> Iterator[sf.SoundFile]:
    """``soundfile.SoundFile`` for reading, open (and fd 2 captured) for the ``with`` block."""
    with decoder_stderr_captured(file, check=True):
        with sf.SoundFile(file, **kwargs) as f:
            yield f


@dataclass(frozen=True)
class AudioInfo:
    samplerate: int
    frames: int
    channels: int
    format: str = ""
    subtype: str = ""

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate


def seek_is_exact(info: AudioInfo) -> bool:
    """Whether libsndfile's ``seek`` + ``read`` of this file returns exactly the frames a whole-file
    decode holds (uncompressed PCM/float in WAV-like containers, and FLAC). Anything else
    (Vorbis, Opus, MP3, ADPCM, unknown) is not trusted: read it from the chunk start."""
    if info.format == "FLAC":
        return info.subtype in _EXACT_FLAC_SUBTYPES
    return info.format in _EXACT_CONTAINERS and info.subtype in _EXACT_SUBTYPES


def require_regular_file(path: str | Path) -> None:
    """Refuse anything but a regular file (after symlinks) before it is opened: opening a FIFO
    for reading blocks until a writer appears, i.e. forever."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MissingSourceAudioError(f"audio file {path} does not exist") from None
    except OSError as exc:
        raise UnreadableAudioError(f"audio file {path} cannot be examined ({exc}); check its "
                                   "permissions") from exc
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise UnreadableAudioError(f"audio file {path} is {kind}; expected a regular audio file. "
                                   "Replace it with the corpus's real file")


def probe(path: str | Path) -> AudioInfo:
    """Header of an audio file; typed errors for missing and unreadable files (a FIFO, a device
    or a directory is unreadable, and is never opened)."""
    require_regular_file(path)
    try:
        with decoder_stderr_captured(path, check=True):
            info = sf.info(str(path))
    except FileNotFoundError:
        raise MissingSourceAudioError(f"audio file {path} does not exist") from None
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        if not Path(path).exists():
            raise MissingSourceAudioError(f"audio file {path} does not exist") from None
        raise UnreadableAudioError(f"audio file {path} cannot be opened by libsndfile ({exc}); "
                                   "re-download or convert it to WAV/FLAC") from exc
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels), info.format, info.subtype)


def chunk_frames(chunk_start: float, chunk_end: float, sr: int, total: int,
                 path: str | Path = "") -> tuple[int, int]:
    """Frame range of a chunk with the reference's clamping (≤ 10 frames past EOF tolerated)."""
    start = int(chunk_start * sr)
    stop = int(chunk_end * sr)
    if stop > total:
        if stop - total <= EOF_TOLERANCE_FRAMES:
            stop = total
        else:
            raise ChunkOutOfRangeError(
                f"chunk [{chunk_start}, {chunk_end}) s of {path} ends at frame {stop}, "
                f"{stop - total} frames past the end of the file ({total} frames at {sr} Hz); "
                f"at most {EOF_TOLERANCE_FRAMES} are tolerated. The local file differs from the one "
                "the metadata was made from: re-download it")
    start = max(0, min(start, total))
    return start, stop


def crop_beyond_chunk(crop_start: Any, chunk_start: Any, chunk_end: Any, sr: Any, total: Any,
                      out_sr: Any) -> Any:
    """Whether a source's crop starts at or after the end of its chunk once resampled to ``out_sr``
    (so its stem would be all zeros): ``int(crop_start * out_sr) >= ceil(n * out_sr / sr)`` with ``n``
    the chunk's frames clamped to the file's ``total`` frames, the renderer's own arithmetic. Works
    on scalars and on NumPy arrays (elementwise); ``sr`` must be > 0."""
    sr_ = np.asarray(sr, dtype=np.int64)
    total_ = np.asarray(total, dtype=np.int64)
    out = np.asarray(out_sr, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        start = np.clip(np.floor(np.asarray(chunk_start, dtype=np.float64) * sr_), 0, total_).astype(np.int64)
        stop = np.minimum(np.floor(np.asarray(chunk_end, dtype=np.float64) * sr_), total_).astype(np.int64)
        n = np.maximum(stop - start, 0)
        length = np.ceil(n * out.astype(np.float64) / sr_)
        c0 = np.floor(np.asarray(crop_start, dtype=np.float64) * out)
    result = c0 >= length
    return bool(result) if result.ndim == 0 else result


def decode_tail(path: str | Path, info: AudioInfo, frames: int = TAIL_FRAMES) -> None:
    """Decode the last ``frames`` frames the header promises; :class:`UnreadableAudioError` when
    they are not there (a truncated FLAC or MP3 keeps a header claiming the full length, so only
    decoding finds out)."""
    n = min(frames, info.frames)
    if n <= 0:
        return
    read_frames(path, info.frames - n, info.frames, dtype="float32")


def read_frames(path: str | Path, start: int, stop: int, dtype: str = "float64") -> tuple[np.ndarray, int]:
    """Frames ``[start, stop)`` as ``(frames, channels)`` and the native rate: the file is opened
    afresh, seeked to ``start`` and read (the reference's ``sf.read(start=, stop=)``)."""
    require_regular_file(path)
    try:
        with open_sound_file(str(path)) as f:
            sr = f.samplerate
            f.seek(start)
            data = f.read(max(0, stop - start), dtype=dtype, always_2d=True)
    except FileNotFoundError:
        raise MissingSourceAudioError(f"audio file {path} does not exist") from None
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UnreadableAudioError(f"audio file {path} cannot be decoded ({exc}); re-download it") from exc
    if data.shape[0] != max(0, stop - start):
        raise UnreadableAudioError(
            f"audio file {path}: asked for frames [{start}, {stop}) but got {data.shape[0]}; the file is "
            "truncated or its header lies about its length: re-download it")
    return data, sr


def to_mono(data: np.ndarray) -> np.ndarray:
    """Mean over channels of a ``(frames, channels)`` array (no copy for mono)."""
    if data.ndim == 1:
        return data
    if data.shape[1] == 1:
        return data[:, 0]
    return data.mean(axis=1)


def resampled_length(n: int, orig_sr: int, target_sr: int) -> int:
    return int(math.ceil(n * float(target_sr) / orig_sr))


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.resample(y, orig_sr=, target_sr=, res_type="soxr_hq")`` for 1-D ``y``."""
    if orig_sr == target_sr:
        return y
    out = soxr.resample(y, orig_sr, target_sr, quality=SOXR_QUALITY)
    n = resampled_length(len(y), orig_sr, target_sr)
    if len(out) > n:
        out = out[:n]
    elif len(out) < n:
        out = np.pad(out, (0, n - len(out)))
    return np.asarray(out, dtype=y.dtype)
