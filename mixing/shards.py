# Over 400 lines: the two output-shard writers (tar, Parquet) share one byte-identical encoding and ledger contract.
"""Shard writers for rendered mixtures: WebDataset tar and Parquet with ``datasets.Audio`` columns.

Both are byte-identical run to run: tar members in a fixed order with fixed headers (mtime 0,
uid/gid 0, no user names, mode 0644); Parquet with an explicit schema. A shard is written under
a temporary name and renamed when complete. The tar is streamed to its temporary file sample by
sample (one sample in memory) and hashed as it is written; float WAV members go from the array
to the file without intermediate copies.

WebDataset members per sample: ``{mix_id}.mix.{ext}``, ``{mix_id}.s1.{ext}`` … ``{mix_id}.sN.{ext}``,
``{mix_id}.json`` (the record in the reference's JSON layout plus a ``hive_render`` provenance
object). Parquet rows: ``mix_id, split, num_sources, sample_rate, target_duration, labels,
mix (Audio), sources (list of Audio), source_metadata (the Hub ``sources`` struct of lists),
global_normalization_factor, final_max_amplitude, render_json``.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import json
import struct
import tarfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from . import __version__
from .errors import ClippingError  # noqa: F401 - re-exported (defined in mixing.errors)
from .metadata import SOURCES_ARROW_TYPE
from .render import RenderedMixture
from .resume import AtomicFile, file_sha256, tmp_path

AudioFormat = Literal["wav", "flac", "pcm16"]
#: input records per piece: the unit of the ledger's piece checksums and of the work split
#: across workers when a render has fewer shards than workers (fixed, so ledgers never depend on
#: the number of workers)
PIECE_MIXTURES = 64
#: formats of the builder and the streaming path
AUDIO_FORMATS = ("wav", "flac")
#: formats ``hive render`` writes: also ``pcm16``, 16-bit PCM WAV as the reference wrote
RENDER_AUDIO_FORMATS = ("wav", "flac", "pcm16")
#: file extension of each format's members
AUDIO_EXT = {"wav": "wav", "flac": "flac", "pcm16": "wav"}
_SUBTYPE = {"wav": "FLOAT", "flac": "PCM_24", "pcm16": "PCM_16"}


def encode_audio(x: np.ndarray, sample_rate: int, fmt: AudioFormat, what: str = "") -> bytes:
    """Float WAV (lossless for float32, never clips), 24-bit FLAC with a peak check, or 16-bit
    PCM WAV (clips; see :func:`pcm16_wav_bytes`, and the writers' clip warnings)."""
    if fmt not in RENDER_AUDIO_FORMATS:
        raise ValueError(f"audio format {fmt!r} is not one of {RENDER_AUDIO_FORMATS}")
    if fmt == "pcm16":
        return pcm16_wav_bytes(x, sample_rate)
    if fmt == "flac":
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak > 1.0:
            raise ClippingError(
                f"{what}: peak {peak:.4f} > 1.0 would clip in 24-bit FLAC; use --audio-format wav "
                "(32-bit float) or --stems consistent")
    if fmt == "wav":
        return float_wav_bytes(x, sample_rate)
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, format=fmt.upper(), subtype=_SUBTYPE[fmt])
    return buf.getvalue()


def pcm16_clipped(x: np.ndarray) -> tuple[int, float]:
    """``(samples outside [-1, 1), peak |x|)``: the samples 16-bit PCM cannot hold (a signed
    16-bit sample holds ``[-32768, 32767] / 32768``), which are clipped to full scale."""
    if not x.size:
        return 0, 0.0
    return int(np.count_nonzero((x >= 1.0) | (x < -1.0))), float(np.max(np.abs(x)))


def pcm16_wav_bytes(x: np.ndarray, sample_rate: int) -> bytes:
    """Mono 16-bit PCM WAV written as the reference wrote its files: libsndfile's conversion of
    the float64 samples (``soundfile.write(buf, x, sr, format="WAV")``, whose default subtype is
    PCM_16; a float32 render is widened to float64 exactly first). Values outside ``[-1, 1)`` are
    clipped to full scale first (the libsndfile in use saturates them anyway; older versions
    wrapped around). No PEAK chunk or timestamp: the bytes are the same run to run."""
    y = np.clip(np.asarray(x, dtype=np.float64), -1.0, 32767.0 / 32768.0)
    buf = io.BytesIO()
    sf.write(buf, y, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def float_wav_header(num_frames: int, sample_rate: int) -> bytes:
    """The 56-byte header of a mono 32-bit float WAV of ``num_frames`` frames."""
    size = 4 * num_frames
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, 3, 1, sample_rate, sample_rate * 4, 4, 32)
    fact = struct.pack("<4sII", b"fact", 4, num_frames)
    body_head = b"WAVE" + fmt_chunk + fact + struct.pack("<4sI", b"data", size)
    return struct.pack("<4sI", b"RIFF", len(body_head) + size) + body_head


def _float_wav_parts(x: np.ndarray, sample_rate: int) -> tuple[bytes, memoryview]:
    """(header, samples) of a mono float WAV; no copy when ``x`` is little-endian float32."""
    data = np.ascontiguousarray(x, dtype="<f4")
    return float_wav_header(data.shape[0], sample_rate), memoryview(data).cast("B")


def float_wav_bytes(x: np.ndarray, sample_rate: int) -> bytes:
    """Mono 32-bit float WAV. Written by hand: libsndfile adds a PEAK chunk with a timestamp,
    which would make shards differ run to run."""
    header, data = _float_wav_parts(x, sample_rate)
    return header + data


def render_provenance(r: RenderedMixture, fmt: str) -> dict[str, Any]:
    return {"tool": "hive-uss", "version": __version__, "stem_mode": r.stem_mode,
            "stem_scale": r.stem_scale, "sample_rate": r.sample_rate, "audio_format": fmt,
            "num_frames": int(r.mix.shape[0])}


def sample_json(r: RenderedMixture, fmt: str) -> bytes:
    meta = r.record.to_legacy_dict(legacy_split_name=False)
    meta["hive_render"] = render_provenance(r, fmt)
    return json.dumps(meta, ensure_ascii=False, sort_keys=False).encode("utf-8")


class ShardWriter:
    """Collects rendered samples and writes one shard atomically on :meth:`close`."""

    suffix = ""

    def __init__(self, path: Path, audio_format: AudioFormat = "wav"):
        if audio_format not in RENDER_AUDIO_FORMATS:
            raise ValueError(f"audio format {audio_format!r} is not one of {RENDER_AUDIO_FORMATS}")
        self.path = Path(path)
        self.audio_format = audio_format
        self.ext = AUDIO_EXT[audio_format]
        self.count = 0
        #: one entry per written file that clipped (``pcm16``): mix_id, member, clipped_samples, peak
        self.warnings: list[dict[str, Any]] = []

    def _clip_check(self, x: np.ndarray, mix_id: str, member: str, pending: list[dict[str, Any]]) -> None:
        if self.audio_format != "pcm16":
            return
        n, peak = pcm16_clipped(x)
        if n:
            pending.append({"mix_id": mix_id, "member": member, "reason": "clipped",
                            "clipped_samples": n, "peak": round(peak, 6),
                            "message": f"{n} sample(s) outside [-1, 1) clipped to full scale in 16-bit PCM "
                                       f"(peak {peak:.4f}); use --audio-format wav (32-bit float) to keep them"})

    def add(self, r: RenderedMixture) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def end_piece(self) -> None:
        """Mark the end of a piece of :data:`PIECE_MIXTURES` input records (formats whose ledger
        checksum is per piece use it)."""

    def _write(self, tmp: Path) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> dict[str, Any]:
        """Write, rename into place, and return ``{count, sha256, bytes}``."""
        with AtomicFile(self.path) as f:
            self._write(f.tmp)
        return {"count": self.count, "sha256": file_sha256(self.path), "bytes": self.path.stat().st_size,
                "warnings": self.warnings}


def pieces_digest(pieces: list[list[Any]]) -> str:
    """The shard checksum of the ledger: sha256 over the ``offset length sha256`` lines of the
    shard's pieces (consecutive byte ranges, one per :data:`PIECE_MIXTURES` input records). Each
    piece is hashed by the process that wrote it, so shards rendered by several workers are
    checksummed in parallel; ``hive verify --checksums`` re-hashes each range."""
    h = hashlib.sha256()
    for offset, length, digest in pieces:
        h.update(f"{offset} {length} {digest}\n".encode())
    return h.hexdigest()


class WebDatasetShardWriter(ShardWriter):
    """Streams samples into ``.{name}.tmp-{pid}`` as they are added (the bytes of
    ``tarfile``'s GNU format with fixed headers), hashing each piece as it goes (see
    :func:`pieces_digest`; the caller marks piece ends with :meth:`end_piece`); :meth:`close`
    finishes the archive and renames it into place.

    ``fragment=True``: the writer produces one piece of a shard rendered by several workers: the
    members only (no end-of-archive blocks), in the temporary file :attr:`fragment_path`, never
    renamed; :func:`assemble_tar` puts the pieces together."""

    suffix = ".tar"

    def __init__(self, path: Path, audio_format: AudioFormat = "wav", fragment: bool = False):
        super().__init__(path, audio_format)
        self.fragment = fragment
        self._fh: Any = None
        self._file: AtomicFile | None = None
        self._hash = hashlib.sha256()
        self._offset = 0
        self._piece_start = 0
        #: ``[offset, length, sha256]`` of each finished piece
        self.pieces: list[list[Any]] = []

    @property
    def fragment_path(self) -> Path:
        return self._file.tmp if self._file is not None else tmp_path(self.path)

    def _emit(self, *chunks: bytes | memoryview) -> None:
        for c in chunks:
            self._fh.write(c)
            self._hash.update(c)
            self._offset += len(c)

    def end_piece(self) -> None:
        """Close the current piece (the bytes written since the last call)."""
        self.pieces.append([self._piece_start, self._offset - self._piece_start, self._hash.hexdigest()])
        self._hash = hashlib.sha256()
        self._piece_start = self._offset

    def _member(self, name: str, parts: tuple[bytes | memoryview, ...]) -> None:
        size = sum(len(p) for p in parts)
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._emit(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"), *parts)
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self._emit(tarfile.NUL * pad)

    def _audio(self, x: np.ndarray, sr: int, what: str) -> tuple[bytes | memoryview, ...]:
        if self.audio_format == "wav":
            return _float_wav_parts(x, sr)
        return (encode_audio(x, sr, self.audio_format, what),)

    def add(self, r: RenderedMixture) -> None:
        ext = self.ext
        key = r.record.mix_id
        # encode the whole sample first: a refused member (clipping) leaves the shard untouched
        warnings: list[dict[str, Any]] = []
        members = [(f"{key}.mix.{ext}", self._audio(r.mix, r.sample_rate, f"{key} mix"))]
        self._clip_check(r.mix, key, members[0][0], warnings)
        for i, stem in enumerate(r.stems, 1):
            members.append((f"{key}.s{i}.{ext}", self._audio(stem, r.sample_rate, f"{key} s{i}")))
            self._clip_check(stem, key, members[-1][0], warnings)
        members.append((f"{key}.json", (sample_json(r, self.audio_format),)))
        if self._fh is None:
            self._open()
        for name, parts in members:
            self._member(name, parts)
        self.count += 1
        self.warnings.extend(warnings)

    def _open(self) -> None:
        self._file = AtomicFile(self.path)
        self._fh = self._file.open("wb")

    def close(self) -> dict[str, Any]:
        if self._fh is None:
            self._open()
        if self._offset > self._piece_start or not self.pieces:
            self.end_piece()
        if self.fragment:
            self._fh.close()
            return {"count": self.count, "bytes": self._offset, "pieces": self.pieces, "warnings": self.warnings}
        try:
            self._fh.write(tar_end(self._offset))
            self._file.commit()
        finally:
            self._file.abort()  # after an error: the temporary file goes
        size = self._offset + len(tar_end(self._offset))
        return {"count": self.count, "sha256": pieces_digest(self.pieces), "bytes": size, "pieces": self.pieces,
                "warnings": self.warnings}


def tar_end(offset: int) -> bytes:
    """The end-of-archive blocks and record padding after ``offset`` bytes of members."""
    end = 2 * tarfile.BLOCKSIZE
    pad = -(offset + end) % tarfile.RECORDSIZE
    return tarfile.NUL * (end + pad)


def assemble_tar(path: Path, fragments: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """Write the shard ``path`` from the fragment files of its pieces (in order; each with its
    writer's ``close()`` info), in the kernel where possible (``copy_file_range``), then remove the
    fragments. The bytes equal a single writer's. Returns the ledger fields."""
    pieces: list[list[Any]] = []
    count, offset, warnings = 0, 0, []
    with AtomicFile(path) as af:
        with af.open("wb") as out:
            for frag, info in fragments:
                with open(frag, "rb") as src:
                    _copy(src, out, info["bytes"])
                for start, length, digest in info["pieces"]:
                    pieces.append([offset + start, length, digest])
                offset += info["bytes"]
                count += info["count"]
                warnings.extend(info.get("warnings", []))
            out.write(tar_end(offset))
    for frag, _ in fragments:
        frag.unlink(missing_ok=True)
    return {"count": count, "sha256": pieces_digest(pieces), "bytes": offset + len(tar_end(offset)),
            "pieces": pieces, "warnings": warnings}


def _copy(src: Any, dst: Any, n: int) -> None:
    """Copy ``n`` bytes from ``src`` to ``dst`` (file objects), in the kernel where possible."""
    dst.flush()
    done = 0
    try:
        while done < n:
            got = os.copy_file_range(src.fileno(), dst.fileno(), n - done)
            if got == 0:
                break
            done += got
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL) or done:
            raise
    if done < n:
        src.seek(done)
        dst.seek(0, os.SEEK_END)
        shutil.copyfileobj(src, dst, 1 << 20)
    else:
        dst.seek(0, os.SEEK_END)


def _audio_struct() -> pa.DataType:
    return pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


RENDERED_ARROW_SCHEMA = pa.schema([
    pa.field("mix_id", pa.string()),
    pa.field("split", pa.string()),
    pa.field("num_sources", pa.int32()),
    pa.field("sample_rate", pa.int32()),
    pa.field("target_duration", pa.float64()),
    pa.field("labels", pa.list_(pa.string())),
    pa.field("mix", _audio_struct()),
    pa.field("sources", pa.list_(_audio_struct())),
    pa.field("source_metadata", SOURCES_ARROW_TYPE),
    pa.field("global_normalization_factor", pa.float64()),
    pa.field("final_max_amplitude", pa.float64()),
    pa.field("render_json", pa.string()),
])


def rendered_features(decode: bool = True):
    """``datasets.Features`` of the rendered Parquet layout (and of the builder's examples)."""
    import datasets

    from .metadata import hub_features

    return datasets.Features({
        "mix_id": datasets.Value("string"),
        "split": datasets.Value("string"),
        "num_sources": datasets.Value("int32"),
        "sample_rate": datasets.Value("int32"),
        "target_duration": datasets.Value("float64"),
        "labels": datasets.List(datasets.Value("string")),
        "mix": datasets.Audio(decode=decode),
        "sources": datasets.List(datasets.Audio(decode=decode)),
        "source_metadata": hub_features()["sources"],
        "global_normalization_factor": datasets.Value("float64"),
        "final_max_amplitude": datasets.Value("float64"),
        "render_json": datasets.Value("string"),
    })


def _schema_with_features() -> pa.Schema:
    """The Arrow schema carrying the ``datasets`` features, so Audio columns decode natively."""
    try:
        feats = rendered_features()
    except Exception:  # datasets missing or too old: plain schema still loads as structs
        return RENDERED_ARROW_SCHEMA
    meta = {b"huggingface": json.dumps({"info": {"features": feats.to_dict()}}).encode()}
    return RENDERED_ARROW_SCHEMA.with_metadata(meta)


class ParquetShardWriter(ShardWriter):
    """Collects rows and writes the Parquet shard on :meth:`close`. ``fragment=True``: the rows of
    one piece go to an Arrow IPC file (:attr:`fragment_path`) for :func:`assemble_parquet`."""

    suffix = ".parquet"

    def __init__(self, path: Path, audio_format: AudioFormat = "wav", fragment: bool = False):
        super().__init__(path, audio_format)
        self.fragment = fragment
        self._rows: list[dict[str, Any]] = []

    @property
    def fragment_path(self) -> Path:
        return tmp_path(self.path)

    def add(self, r: RenderedMixture) -> None:
        fmt, ext = self.audio_format, self.ext
        rec = r.record
        key = rec.mix_id
        row = rec.to_hub_row()
        warnings: list[dict[str, Any]] = []
        self._clip_check(r.mix, key, f"{key}.mix.{ext}", warnings)
        for i, s in enumerate(r.stems, 1):
            self._clip_check(s, key, f"{key}.s{i}.{ext}", warnings)
        self._rows.append({
            "mix_id": key, "split": rec.split, "num_sources": rec.num_sources,
            "sample_rate": r.sample_rate, "target_duration": rec.target_duration, "labels": rec.labels,
            "mix": {"bytes": encode_audio(r.mix, r.sample_rate, fmt, f"{key} mix"), "path": f"{key}.mix.{ext}"},
            "sources": [{"bytes": encode_audio(s, r.sample_rate, fmt, f"{key} s{i}"), "path": f"{key}.s{i}.{ext}"}
                        for i, s in enumerate(r.stems, 1)],
            "source_metadata": row["sources"],
            "global_normalization_factor": rec.global_normalization_factor,
            "final_max_amplitude": rec.final_max_amplitude,
            "render_json": sample_json(r, fmt).decode("utf-8"),
        })
        self.count += 1
        self.warnings.extend(warnings)

    def _write(self, tmp: Path) -> None:
        schema = _schema_with_features()
        table = pa.Table.from_pylist(self._rows, schema=schema)
        pq.write_table(table, tmp, compression="none", row_group_size=64)

    def close(self) -> dict[str, Any]:
        if not self.fragment:
            return super().close()
        table = pa.Table.from_pylist(self._rows, schema=RENDERED_ARROW_SCHEMA)
        self.fragment_path.parent.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(self.fragment_path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        return {"count": self.count, "warnings": self.warnings}


def assemble_parquet(path: Path, fragments: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """Write the Parquet shard ``path`` from its pieces' Arrow IPC fragments (in order), exactly
    as one writer would; then remove the fragments."""
    tables = []
    for frag, _ in fragments:
        with pa.memory_map(str(frag)) as src:
            tables.append(pa.ipc.open_file(src).read_all())
    table = pa.concat_tables(tables).replace_schema_metadata(_schema_with_features().metadata)
    with AtomicFile(path) as af:
        pq.write_table(table.cast(_schema_with_features()), af.tmp, compression="none", row_group_size=64)
    for frag, _ in fragments:
        frag.unlink(missing_ok=True)
    return {"count": sum(i["count"] for _, i in fragments), "sha256": file_sha256(path),
            "bytes": path.stat().st_size, "warnings": [w for _, i in fragments for w in i.get("warnings", [])]}


def make_writer(fmt: str, path: Path, audio_format: AudioFormat, fragment: bool = False) -> ShardWriter:
    """A shard writer; ``fragment=True``: a writer of one piece of a shard (see
    :func:`assemble_shard`)."""
    if fmt == "webdataset":
        return WebDatasetShardWriter(path, audio_format, fragment)
    if fmt == "parquet":
        return ParquetShardWriter(path, audio_format, fragment)
    raise ValueError(f"shard format {fmt!r} is not 'webdataset' or 'parquet'")


def assemble_shard(fmt: str, path: Path, fragments: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """The shard ``path`` from its pieces' fragments (in piece order); the same bytes as one writer."""
    if fmt == "webdataset":
        return assemble_tar(path, fragments)
    return assemble_parquet(path, fragments)


SHARD_SUFFIX = {"webdataset": ".tar", "parquet": ".parquet"}
