"""AudioSet tagger on sherpa-onnx ``AudioTagging`` (zipformer ONNX model + labels CSV).

The zipformer audio-tagging models of sherpa-onnx (e.g.
``sherpa-onnx-zipformer-audio-tagging-2024-04-09``) compute 80-bin fbank features at 16 kHz, so
this tagger declares ``sample_rate = 16000`` and the stage resamples clips to it before calling
:meth:`SherpaTagger.tag`. (The reference script fed 48 kHz audio to the same model; a clip is
checked here to be 1-D float audio, and the rate handed to sherpa-onnx is always 16 kHz.)

sherpa-onnx ends the whole process (``exit(-1)``, status 255) on a label file it cannot read or
on a model whose class count differs from the file's rows, so the user's file never reaches it:

* the user's CSV is read and checked by :func:`curation.models.labels.read_labels_csv`;
* a normalised copy is written to a private temporary file in the one form sherpa-onnx 2.0.1
  accepts (found by experiment; see :func:`sherpa_labels_text`) and only that copy is given to it;
* the model is first loaded in a child process (:func:`probe`); only if that succeeds is it
  loaded here, and a failure becomes :class:`SherpaModelError` with sherpa-onnx's own message.

Tags take their names and mids from the user's table by output index, so names with commas or
quotes come back exactly as the CSV spells them.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from curation.models.audio_io import as_mono_float32
from curation.models.labels import LabelTable, read_labels_csv
from curation.models.lazy import LazyModel, existing, require
from curation.models.registry import BackendSpecError
from mixing.errors import HiveError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: seconds the child process may take to load the model before the load counts as failed
PROBE_TIMEOUT = 600.0
_MISMATCH = re.compile(r"number of classes: (\d+) \(model\) != (\d+) \(label file\)")


class SherpaModelError(HiveError, RuntimeError):
    """sherpa-onnx cannot load the model with the given labels."""


def sherpa_labels_text(table: LabelTable) -> str:
    """The label file sherpa-onnx reads, for ``table``.

    sherpa-onnx 2.0.1 skips the first line, then splits each line at its first two commas: the
    index must be an integer, the middle field is ignored, and the rest must start and end with
    a double quote, which are removed (nothing inside is unescaped). A ``\\r`` before the line
    end, an unquoted name, a trailing blank line or a non-integer index kills the process (or
    raises). So: ``\\n`` line ends, no blank line, and ``INDEX,MID,"NAME"`` with the name verbatim
    (quotes inside it survive) and the mid without commas (sherpa-onnx ignores it).
    """
    lines = ["index,mid,display_name"]
    for i, (mid, name) in enumerate(zip(table.mids, table.names)):
        lines.append(f'{i},{mid.replace(",", "")},"{name}"')
    return "\n".join(lines) + "\n"


def _config(sherpa_onnx, model: str, labels: str, num_threads: int, provider: str, top_k: int):
    return sherpa_onnx.AudioTaggingConfig(
        model=sherpa_onnx.AudioTaggingModelConfig(
            zipformer=sherpa_onnx.OfflineZipformerAudioTaggingModelConfig(model=model),
            num_threads=num_threads, provider=provider),
        labels=labels, top_k=top_k)


def probe(model: str, labels: str, num_threads: int, provider: str, top_k: int,
          timeout: float = PROBE_TIMEOUT) -> tuple[int, str]:
    """Load the model in a child process; ``(exit status, its stderr)`` (0 = it loads)."""
    root = str(Path(__file__).resolve().parents[2])  # the folder that holds the curation package
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "curation.models.sherpa_tagger", model, labels,
           str(num_threads), provider, str(top_k)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return -1, f"loading the model took more than {timeout:g} s"
    return done.returncode, done.stderr


def _failure_detail(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if "csrc/" in ln or "Error" in ln or "took more than" in ln]
    return (useful or lines or ["no message"])[-1]


class SherpaTagger(LazyModel):
    """``Tagger`` backed by ``sherpa_onnx.AudioTagging``.

    Options: ``model`` (the zipformer ``model.onnx`` or ``model.int8.onnx``), ``labels``
    (``class_labels_indices.csv``; default: the AudioSet index shipped with hive-uss,
    ``mixing/data/audioset_class_labels_indices.csv``), ``num_threads``, ``provider``
    (``cpu``, ``cuda``, ...).
    """

    sample_rate = SAMPLE_RATE
    backend = "sherpa tagger"
    requires = {"sherpa_onnx": "sherpa-onnx"}
    remember = (HiveError,)  # a bad labels file or model is not tried again per clip

    def __init__(self, model: str, labels: str = "", num_threads: int = 1, provider: str = "cpu"):
        if num_threads <= 0:
            raise BackendSpecError(f"sherpa tagger: num_threads={num_threads} must be > 0")
        if not labels:
            from mixing import packaged
            labels = str(packaged.audioset_labels_path())
        self.model_path = str(model)
        self.labels_path = str(labels)
        self.num_threads = int(num_threads)
        self.provider = provider
        self.model_id = self.model_path
        self._labels: LabelTable | None = None

    @property
    def provenance(self) -> dict[str, Any]:
        return {"backend": "sherpa-onnx", "model": self.model_path, "labels": self.labels_path,
                "sample_rate": self.sample_rate}

    @property
    def labels(self) -> LabelTable:
        if self._labels is None:
            self._labels = read_labels_csv(self.labels_path)
        return self._labels

    def load(self, sherpa_onnx) -> dict[str, Any]:
        """The ``sherpa_onnx.AudioTagging`` object as ``model``."""
        existing(self.model_path, "sherpa tagger", "model file",
                 "download a zipformer audio-tagging model (sherpa-onnx-zipformer-audio-tagging-*) "
                 "and pass model=.../model.onnx", folder=False)
        labels = self.labels  # our parser checks the user's CSV; sherpa-onnx never reads it
        fd, private = tempfile.mkstemp(prefix="hive-sherpa-labels-", suffix=".csv")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(sherpa_labels_text(labels))
            return {"model": self._build(sherpa_onnx, private, len(labels))}
        finally:
            os.unlink(private)  # sherpa-onnx reads the names while it loads

    def _build(self, sherpa_onnx, private_labels: str, n_labels: int):
        top_k = min(5, n_labels)
        status, stderr = probe(self.model_path, private_labels, self.num_threads, self.provider, top_k)
        if status != 0:
            what = (f"sherpa tagger: sherpa-onnx cannot load model {self.model_path} with the "
                    f"{n_labels} classes of labels file {self.labels_path}")
            m = _MISMATCH.search(stderr)
            if m:
                raise SherpaModelError(
                    f"{what}: the model outputs {m.group(1)} classes but the labels file has "
                    f"{m.group(2)} rows; pass the class_labels_indices.csv that comes with the "
                    "model (labels=...)")
            raise SherpaModelError(f"{what}: {_failure_detail(stderr)} (exit status {status} in a "
                                   "trial load); check that model= is a sherpa-onnx zipformer "
                                   "audio-tagging model")
        config = _config(sherpa_onnx, self.model_path, private_labels, self.num_threads,
                         self.provider, top_k)
        return sherpa_onnx.AudioTagging(config)

    def tag(self, clips: list[np.ndarray], top_k: int) -> list[list[tuple[str, str, float]]]:
        """``(display name, mid, probability)`` best first, ``top_k`` per clip (16 kHz clips)."""
        if top_k <= 0:
            raise ValueError(f"top_k must be > 0, got {top_k}")
        tagger = self.model
        labels = self.labels
        k = min(int(top_k), len(labels))
        results = []
        for clip in clips:
            y = as_mono_float32(clip)
            stream = tagger.create_stream()
            stream.accept_waveform(self.sample_rate, y)
            events = tagger.compute(stream, top_k=k)
            tags = []
            for e in events:
                i = int(e.index)
                if not 0 <= i < len(labels):
                    raise SherpaModelError(f"sherpa tagger: the model returned class {i}; the "
                                           f"labels file {self.labels_path} has {len(labels)}")
                tags.append((labels.names[i], labels.mids[i], float(e.prob)))
            tags.sort(key=lambda t: -t[2])  # sherpa-onnx returns them best first; keep it so
            results.append(tags)
        return results


def _probe_main(argv: list[str]) -> int:
    """Child side of :func:`probe`: ``MODEL LABELS NUM_THREADS PROVIDER TOP_K``; builds the tagger."""
    sherpa_onnx = require("sherpa_onnx", SherpaTagger.backend, "sherpa-onnx")
    model, labels, num_threads, provider, top_k = argv
    config = _config(sherpa_onnx, model, labels, int(num_threads), provider, int(top_k))
    if hasattr(config, "validate") and not config.validate():
        print("sherpa-onnx rejects the config (see its message above)", file=sys.stderr)
        return 3
    try:
        sherpa_onnx.AudioTagging(config)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as text
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
