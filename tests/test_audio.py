"""``mixing.audio`` on real files: which formats seek exactly, FIFOs refused before they are opened
(render, check, synthesize and mine all probe through it), and tail decoding of truncated files."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixing.audio import decode_tail, probe, read_frames, seek_is_exact
from mixing.errors import UnreadableAudioError

HAVE_MP3 = "MP3" in sf.available_formats()


class FifoGuard:
    """Opens ``fifo`` for writing (and closes it) once ``after`` seconds have passed, so a reader
    that blocked opening it gets EOF instead of hanging the suite; ``unjammed`` says it had to."""

    def __init__(self, fifo: str | os.PathLike, after: float = 15.0):
        self.fifo, self.after = str(fifo), after
        self.unjammed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self._stop.wait(self.after):
            return
        while not self._stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: nobody is reading
                if exc.errno != errno.ENXIO:
                    return
            else:
                self.unjammed = True
                os.close(fd)
            time.sleep(0.05)

    def __enter__(self) -> "FifoGuard":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _write(path: Path, fmt: str, subtype: str, sr: int = 16000, seconds: float = 3.0, channels: int = 1):
    t = np.arange(int(sr * seconds)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    y += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(str(path), np.stack([y] * channels, 1) if channels > 1 else y, sr, format=fmt, subtype=subtype)
    return path


FORMATS = [("WAV", "PCM_16", ".wav", True), ("WAV", "FLOAT", ".wav", True), ("FLAC", "PCM_24", ".flac", True),
           ("AIFF", "PCM_16", ".aiff", True), ("WAV", "IMA_ADPCM", ".wav", False),
           ("OGG", "VORBIS", ".ogg", False), ("OGG", "OPUS", ".opus", False),
           pytest.param("MP3", "MPEG_LAYER_III", ".mp3", False,
                        marks=pytest.mark.skipif(not HAVE_MP3, reason="libsndfile < 1.1 cannot write MP3"))]


@pytest.mark.parametrize("fmt,subtype,ext,exact", FORMATS)
def test_seek_exactness_by_format_and_intact_tails_decode(tmp_path, fmt, subtype, ext, exact):
    sr = 48000 if subtype == "OPUS" else 16000
    path = _write(tmp_path / f"x{ext}", fmt, subtype, sr=sr)
    info = probe(path)
    assert (info.format, info.subtype) == (fmt, subtype)
    assert seek_is_exact(info) is exact
    decode_tail(path, info)  # an intact file's end decodes
    if exact:  # the window fast path may seek inside such files: check that it is exact here
        whole, _ = read_frames(path, 0, info.frames)
        for start in (1, 777, info.frames // 2 + 3, info.frames - 500):
            part, _ = read_frames(path, start, start + 400)
            np.testing.assert_array_equal(part, whole[start:start + 400])


@pytest.mark.parametrize("fmt,subtype,ext", [("FLAC", "PCM_16", ".flac"), pytest.param(
    "MP3", "MPEG_LAYER_III", ".mp3", marks=pytest.mark.skipif(not HAVE_MP3, reason="no MP3 writer"))])
def test_truncated_file_whose_header_claims_the_full_length_fails_decode_tail(tmp_path, fmt, subtype, ext):
    path = _write(tmp_path / f"cut{ext}", fmt, subtype, seconds=5.0, channels=2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    info = probe(path)  # the header still opens and claims 5 s
    assert info.frames == 5 * 16000
    with pytest.raises(UnreadableAudioError):
        decode_tail(path, info)


def test_fifo_is_refused_by_probe_and_read_frames_without_opening_it(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    (tmp_path / "folder.wav").mkdir()
    with FifoGuard(fifo) as guard:
        with pytest.raises(UnreadableAudioError, match="FIFO"):
            probe(fifo)
        with pytest.raises(UnreadableAudioError, match="FIFO"):
            read_frames(fifo, 0, 10)
    assert not guard.unjammed
    with pytest.raises(UnreadableAudioError, match="directory"):
        probe(tmp_path / "folder.wav")


def test_fifo_in_a_labelled_list_is_dropped_by_synthesize_and_mine(tmp_path):
    """``hive synthesize --labels`` and ``hive mine chunk`` probe listed files: a FIFO is dropped
    as unreadable, the real file next to it goes through."""
    from curation.manifest import read_items
    from curation.stages.chunk import ChunkStage
    from mixing.render import Renderer
    from mixing.synthesis.labelled import build_pool_from_labels

    root = tmp_path / "corpus"
    root.mkdir()
    _write(root / "tone.wav", "WAV", "PCM_16", seconds=12.0)
    os.mkfifo(root / "pipe.wav")
    dp = tmp_path / "dataset_paths.json"
    dp.write_text('{"C": "%s"}' % root)
    listing = tmp_path / "labels.csv"
    listing.write_text("audio_path,text_label,split\nC/pipe.wav,Dog,train\nC/tone.wav,Dog,train\n")
    with FifoGuard(root / "pipe.wav") as guard:
        pool = build_pool_from_labels(listing, str(dp))
        with pytest.raises(UnreadableAudioError):
            Renderer(str(dp)).info(str(root / "pipe.wav"))  # synthesis from a pool file probes so
        stage = ChunkStage(dataset_paths=str(dp))
        stage.ensure_setup()
        results = {it.path: stage.process_item(it) for it in read_items(listing)}
    assert not guard.unjammed, "a FIFO was opened"
    assert {e.path for e in pool.entries} == {"C/tone.wav"}
    assert sum(pool.dropped.values()) == 1 and "unreadable_audio" in pool.dropped
    assert [d.reason for d in results["C/pipe.wav"]] == ["unreadable_audio"]
    assert all(type(r).__name__ == "Item" for r in results["C/tone.wav"])
