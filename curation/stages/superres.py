"""Stage 6, ``superres``: bring every kept clip to 44.1 kHz and write it as a file.

The backend must be chosen: ``apollo:...`` (the reference's model, with its windowing; the
weights are the user's) or ``resample`` (soxr HQ, built in: a rate change, no bandwidth
extension), or another :class:`SuperResolver` by name. There is no silent default, so a pool is
never band-limited by accident. The clip (mono downmix) is processed, checked (length preserved in time,
finite samples) and written as 32-bit float WAV (or 24-bit FLAC, refusing clipping) under
``output_root``, as ``<sub>/<clip_id>.<ext>`` (``sub`` from a hash of the id: unique names, small
folders). Records point at the new files through the new corpus ``prefix`` (rate 44100, one
channel, the whole file) and keep the original in ``provenance.original_path``; the merge step
writes ``dataset_paths.json`` next to the output with the new prefix added. The output of this
stage is the single-event pool.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from mixing.audio import resampled_length
from mixing.corpora import DatasetPaths
from mixing.resume import AtomicFile

from .base import (
    AUDIO_ERRORS, Drop, Item, Result, Stage, StageError, frames_to_seconds, load_backend, opt,
    read_error_reason,
)

TARGET_RATE = 44100
LENGTH_TOLERANCE = 10  # frames a backend may be off before the clip is refused


@dataclass
class SuperResStage(Stage):
    name = "superres"
    description = "bring clips to 44.1 kHz (soxr or a super-resolution model) and write pool files"
    default_batch_size = 8

    backend: str | None = opt(None, "required: apollo:code=/src/Apollo,checkpoint=/m/apollo.bin (the "
                              "reference's model) or 'resample' (soxr only: no bandwidth extension), or "
                              "another super-resolution backend NAME[:key=value,...]", required=True)
    output_root: str | None = opt(None, "folder the 44.1 kHz files are written to", required=True)
    prefix: str | None = opt(None, "corpus prefix of the new files in the pool's paths", required=True)
    audio_format: str = opt("wav", "wav: 32-bit float (default); flac: 24-bit, clips that would "
                            "clip are dropped", choices=("wav", "flac"))

    def setup(self) -> None:
        if not self.backend:
            raise StageError("the superres stage needs --backend: 'apollo:code=…,checkpoint=…' as the "
                             "reference (Apollo's code and weights are yours to supply), or 'resample' "
                             "for a soxr rate change without bandwidth extension")
        if not self.output_root or not self.prefix:
            raise StageError("the superres stage needs --output-root (a folder) and --prefix (the new "
                             "corpus prefix, e.g. Hive_superres)")
        if "/" in self.prefix or "\\" in self.prefix or self.prefix in (".", ".."):
            raise StageError(f"--prefix {self.prefix!r} is not a corpus prefix; expected one folder "
                             "name such as Hive_superres")
        # every backend, the built-in ``resample`` (soxr HQ, no model) included, comes from the registry
        self._backend = load_backend("superres", self.backend, self.device)

    def models(self) -> dict:
        b = getattr(self, "_backend", None)
        return {"superres": {"spec": self.backend, "model_id": getattr(b, "model_id", None),
                             "settings": getattr(b, "provenance", None)}}

    def thresholds(self) -> dict:
        return {"target_rate": TARGET_RATE, "length_tolerance_frames": LENGTH_TOLERANCE}

    def process_item(self, item: Item) -> Result:
        try:
            y, sr = self.audio.read(item)
        except AUDIO_ERRORS as exc:
            return [Drop.of(item, read_error_reason(exc), str(exc))]
        want = resampled_length(len(y), sr, TARGET_RATE)
        try:
            z = np.asarray(self._backend.process(y, sr), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - counted as a named drop, with the error
            return [Drop.of(item, "superres_failed", f"{type(exc).__name__}: {exc}")]
        if z.ndim != 1 or abs(len(z) - want) > LENGTH_TOLERANCE:
            return [Drop.of(item, "superres_bad_length", f"backend returned shape {z.shape}; expected "
                            f"{want} samples (the clip's length at {TARGET_RATE} Hz)")]
        z = z[:want] if len(z) >= want else np.pad(z, (0, want - len(z)))
        if not np.all(np.isfinite(z)):
            return [Drop.of(item, "superres_nonfinite", "the backend returned NaN or infinite samples")]
        if self.audio_format == "flac" and len(z) and float(np.max(np.abs(z))) > 1.0:
            return [Drop.of(item, "would_clip", f"peak {float(np.max(np.abs(z))):.3f} > 1 cannot be "
                            "stored in FLAC; use --audio-format wav")]
        sub = hashlib.sha1(item.clip_id.encode()).hexdigest()[:2]
        rel = f"{sub}/{item.clip_id}.{self.audio_format}"
        dest = Path(self.output_root) / rel
        try:
            with AtomicFile(dest) as out:
                if self.audio_format == "wav":
                    sf.write(str(out.tmp), z, TARGET_RATE, format="WAV", subtype="FLOAT")
                else:
                    sf.write(str(out.tmp), z, TARGET_RATE, format="FLAC", subtype="PCM_24")
        except (OSError, RuntimeError) as exc:
            return [Drop.of(item, "write_failed", str(exc))]
        out = item.replace(path=f"{self.prefix}/{rel}", chunk_start_second=0.0,
                           chunk_end_second=frames_to_seconds(want, TARGET_RATE),
                           native_sample_rate=TARGET_RATE, num_channels=1)
        out.provenance.setdefault("original_path", item.path)
        out.provenance["superres"] = {
            "backend": self._backend.model_id, "source_path": item.path,
            "source_chunk": [item.chunk_start_second, item.chunk_end_second],
            "source_sample_rate": sr, "source_channels": item.num_channels}
        return [out]

    def finalize(self, output_dir: Path) -> None:
        """``dataset_paths.json`` for the pool: the input's mapping plus the new prefix."""
        roots: dict[str, str] = {}
        if self.dataset_paths:
            roots = {k: str(v.resolve()) for k, v in DatasetPaths.coerce(self.dataset_paths).roots.items()}
        roots[self.prefix] = str(Path(self.output_root).resolve())
        (Path(output_dir) / "dataset_paths.json").write_text(json.dumps(roots, indent=2) + "\n")
