"""The embedded toy corpus: a deterministic miniature of the real situation, built in seconds.

* corpus folders named like the real prefixes' corpora (the folder names differ from the
  prefixes on purpose, and ``DCASE_real``/``DCASE_synth`` share one root, as in the reference's
  ``dataset_paths.json``);
* 16 classes with real AudioSet names and ids, procedurally synthesised (:mod:`toy_sounds`);
* native rates 16k / 22.05k / 32k / 44.1k / 48k, mono and stereo, WAV (PCM and float) and FLAC;
* two long files (≥ 60 s) whose 10 s chunks sit at offsets, and a clip whose chunk ends a few
  frames past the end of its file (inside the reference's 10-frame tolerance);
* compressed recordings whose seek is not sample-exact: Ogg Vorbis, Ogg Opus and (where
  libsndfile writes it, ≥ 1.1) MP3, 16 or 21 s long, cut like the long files (10 s every 5 s,
  the last chunk 6 s), so mixtures crop compressed chunks that start mid-file, near their ends
  and (in the 10 s test split) past them;
* a single-event pool (``pool.jsonl``), a labelled list (``labels.csv``), ``dataset_paths.json``;
* mixture metadata for train/validation (4 s) and test (10 s), 2–5 sources, levels computed
  with Hive's formulas by the renderer, written as a Hub-layout Parquet folder and as legacy JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .corpora import DatasetPaths
from .csv_output import CsvWriter
from .levels import apply_levels
from .metadata import MixtureRecord, SourceRecord
from .metadata_io import write_hub_folder, write_legacy_json
from .recipe import RenderRecipe
from .toy_sounds import TOY_CLASSES

#: prefix -> folder name under corpora/ (deliberately not equal to the prefix)
TOY_CORPORA = {
    "AudioSet": "audioset_wav",
    "BBC_Sound_Effects": "bbc_sound_effects",
    "VGGSound": "vggsound_clips",
    "FreeSound": "freesound_data",
    "ESC50": "ESC-50-master",
    "FSD50K": "FSD50K",
    "DCASE_real": "DCASE2024_T9",
    "DCASE_synth": "DCASE2024_T9",
}
_CLIP_PREFIXES = ("AudioSet", "VGGSound", "FreeSound", "ESC50", "FSD50K", "DCASE_real", "DCASE_synth")
_RATES = (16000, 22050, 32000, 44100, 48000)
_FORMATS = (("WAV", "PCM_16", ".wav"), ("FLAC", "PCM_16", ".flac"), ("WAV", "FLOAT", ".wav"), ("FLAC", "PCM_24", ".flac"))
_DURATIONS = (4.5, 6.0, 3.0, 7.25, 5.0)
_CLIP_SPLITS = ("train", "train", "validation", "test")
#: compressed recordings: (class index, rate, channels, (format, subtype, ext), seconds, split)
_COMPRESSED = (
    (3, 22050, 2, ("OGG", "VORBIS", ".ogg"), 21.0, "train"),
    (0, 44100, 2, ("MP3", "MPEG_LAYER_III", ".mp3"), 16.0, "train"),
    (8, 32000, 2, ("OGG", "VORBIS", ".ogg"), 16.0, "train"),
    (6, 16000, 1, ("MP3", "MPEG_LAYER_III", ".mp3"), 21.0, "validation"),
    (13, 48000, 1, ("OGG", "OPUS", ".opus"), 16.0, "train"),
    (1, 32000, 1, ("OGG", "VORBIS", ".ogg"), 16.0, "test"),
)
SPLIT_SIZES = {"train": 48, "validation": 16, "test": 16}
SPLIT_DURATION = {"train": 4.0, "validation": 4.0, "test": 10.0}
SAMPLE_RATE = 44100


@dataclass
class ToyCorpus:
    root: Path
    dataset_paths: Path
    parquet_dir: Path
    legacy_dir: Path
    pool: Path
    labels_csv: Path
    num_files: int
    num_chunks: int
    num_mixtures: dict[str, int]

    def summary(self) -> str:
        size = sum(f.stat().st_size for f in (self.root / "corpora").rglob("*") if f.is_file())
        return (f"toy corpus in {self.root}: {self.num_files} audio files ({size / 1e6:.1f} MB), "
                f"{self.num_chunks} single-event chunks, mixtures {self.num_mixtures}")


def _write(path: Path, y: np.ndarray, sr: int, channels: int, fmt: tuple[str, str, str], rng) -> None:
    if channels == 2:
        pan = rng.uniform(0.3, 0.7)
        y = np.stack([y * pan * 2, y * (1 - pan) * 2], axis=1) * 0.5
        y[:, 1] = np.roll(y[:, 1], 7)  # channels differ, so the downmix matters
    path.parent.mkdir(parents=True, exist_ok=True)
    # in blocks: one big write of a long Ogg Vorbis file crashes libsndfile 1.2
    with sf.SoundFile(str(path), "w", sr, channels, fmt[1], format=fmt[0]) as f:
        for i in range(0, len(y), 1 << 15):
            f.write(y[i:i + (1 << 15)])


def _pool_entry(clip_id, path, cs, ce, label, label_id, sr, ch, split):
    return {"clip_id": clip_id, "path": path, "chunk_start_second": cs, "chunk_end_second": ce,
            "label": label, "label_id": label_id, "native_sample_rate": sr, "num_channels": ch,
            "split": split}


def compressed_formats() -> list[tuple[str, str, str]]:
    """The compressed (format, subtype, ext) this libsndfile can write (MP3 needs >= 1.1)."""
    have = sf.available_formats()
    out = []
    for fmt in sorted({c[3] for c in _COMPRESSED}):
        if fmt[0] in have and fmt[1] in sf.available_subtypes(fmt[0]):
            out.append(fmt)
    return out


def _chunk_long(pool: list[dict], path: str, dur: float, label: str, label_id: str, sr: int, ch: int,
                split: str, hop: float = 5.0, length: float = 10.0) -> None:
    """``length`` s chunks every ``hop`` seconds (the last one may be shorter), as virtual pool
    entries; none shorter than 5 s."""
    start = 0.0
    while start + 5.0 <= dur:
        end = min(start + length, dur)
        pool.append(_pool_entry(f"toy{len(pool):04d}", path, start, end, label, label_id, sr, ch, split))
        start += hop


def build_files(root: Path, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Write the audio files; return (pool entries, labelled-list rows)."""
    corpora = root / "corpora"
    pool: list[dict] = []
    listing: list[dict] = []
    k = 0
    for ci, (label, label_id, gen) in enumerate(TOY_CLASSES):
        for j, split in enumerate(_CLIP_SPLITS):
            rng = np.random.default_rng([seed, ci, j])
            prefix = _CLIP_PREFIXES[k % len(_CLIP_PREFIXES)]
            sr = _RATES[k % len(_RATES)]
            ch = 2 if k % 3 == 1 else 1
            fmt = _FORMATS[k % len(_FORMATS)]
            dur = _DURATIONS[k % len(_DURATIONS)]
            k += 1
            sub = {"ESC50": "audio", "FSD50K": "FSD50K.dev_audio", "DCASE_real": "real",
                   "DCASE_synth": "synth"}.get(prefix, "clips")
            rel = f"{sub}/{label.split(',')[0].lower().replace(' ', '_')}_{j}{fmt[2]}"
            y = gen(rng, sr, dur)
            chunk_end = round(dur, 3)
            if ci == 3 and j == 0:  # chunk ends 5 frames past EOF (tolerated, clamped)
                y = y[: int(chunk_end * sr) - 5]
            _write(corpora / TOY_CORPORA[prefix] / rel, y, sr, ch, fmt, rng)
            path = f"{prefix}/{rel}"
            pool.append(_pool_entry(f"toy{len(pool):04d}", path, 0.0, chunk_end, label, label_id, sr, ch, split))
            listing.append({"audio_path": path, "text_label": label, "split": split})
    # two long files whose 10 s chunks (5 s hop) sit at offsets
    for (ci, sr, ch, fmt, dur, split) in ((2, 48000, 2, _FORMATS[1], 64.0, "train"),
                                           (12, 32000, 1, _FORMATS[0], 61.5, "test")):
        label, label_id, gen = TOY_CLASSES[ci]
        rng = np.random.default_rng([seed, 1000 + ci])
        rel = f"long/{label.lower()}_recording{fmt[2]}"
        _write(corpora / TOY_CORPORA["BBC_Sound_Effects"] / rel, gen(rng, sr, dur), sr, ch, fmt, rng)
        path = f"BBC_Sound_Effects/{rel}"
        listing.append({"audio_path": path, "text_label": label, "split": split})
        _chunk_long(pool, path, dur, label, label_id, sr, ch, split)
    # compressed recordings (seek not sample-exact): chunks at offsets, crops near chunk ends
    writable = compressed_formats()
    for k, (ci, sr, ch, fmt, dur, split) in enumerate(_COMPRESSED):
        if fmt not in writable:
            continue
        label, label_id, gen = TOY_CLASSES[ci]
        rng = np.random.default_rng([seed, 2000 + k])
        rel = f"compressed/{label.split(',')[0].lower().replace(' ', '_')}_{k}{fmt[2]}"
        _write(corpora / TOY_CORPORA["FreeSound"] / rel, gen(rng, sr, dur), sr, ch, fmt, rng)
        path = f"FreeSound/{rel}"
        listing.append({"audio_path": path, "text_label": label, "split": split})
        # 10 s chunks every 5 s as mining cuts them; the last one is 6 s long (durations 16/21 s)
        _chunk_long(pool, path, dur, label, label_id, sr, ch, split)
    return pool, listing


def _draw_record(rng: np.random.Generator, split: str, i: int, pool: list[dict]) -> tuple[MixtureRecord, list[float]]:
    by_label: dict[str, list[dict]] = {}
    for e in pool:
        if e["split"] == split:
            by_label.setdefault(e["label"], []).append(e)
    labels = sorted(by_label)
    n = 2 + i % 4
    chosen = [labels[j] for j in rng.choice(len(labels), size=n, replace=False)]
    dur = SPLIT_DURATION[split]
    sources, snrs = [], []
    for s, lab in enumerate(chosen):
        entries = by_label[lab]
        e = entries[int(rng.integers(len(entries)))]
        span = e["chunk_end_second"] - e["chunk_start_second"]
        crop_start = round(float(rng.uniform(0.0, max(0.0, span - dur))), 3)
        snr = 0.0 if s == 0 else round(float(rng.uniform(-5.0, 5.0)), 2)
        snrs.append(snr)
        sources.append(SourceRecord(
            source_id=f"s{s + 1}", path=e["path"], label=lab, crop_start_second=crop_start,
            crop_end_second=round(crop_start + dur, 3), chunk_start_second=e["chunk_start_second"],
            chunk_end_second=e["chunk_end_second"], rms_gain=1.0, snr_db=snr, applied_weight=1.0))
    rec = MixtureRecord(f"hive_toy_{split}_{i:05d}", split, SAMPLE_RATE, dur, n, tuple(sources), 1.0, 0.95)
    return rec, snrs


def build_mixtures(pool: list[dict], paths: DatasetPaths, seed: int = 0,
                   sizes: dict[str, int] | None = None) -> list[MixtureRecord]:
    renderer = RenderRecipe.make(paths).fresh_renderer()
    records = []
    for si, (split, count) in enumerate((sizes or SPLIT_SIZES).items()):
        for i in range(count):
            for attempt in range(100):
                rng = np.random.default_rng([seed, 7, si, i, attempt])
                draft, snrs = _draw_record(rng, split, i, pool)
                res = apply_levels(draft, snrs, renderer)
                if res.record is not None:
                    records.append(res.record)
                    break
            else:  # pragma: no cover - the toy sounds are never silent
                raise RuntimeError(f"could not draw a non-silent toy mixture for {split} #{i}")
    return records


def build_toy_corpus(root: str | Path, seed: int = 0, sizes: dict[str, int] | None = None) -> ToyCorpus:
    """Build (or rebuild) the toy corpus under ``root``. Deterministic for a given seed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pool, listing = build_files(root, seed)
    mapping = {prefix: f"corpora/{folder}" for prefix, folder in TOY_CORPORA.items()}
    dp_file = root / "dataset_paths.json"
    dp_file.write_text(json.dumps(mapping, indent=2) + "\n")
    paths = DatasetPaths.from_json(dp_file)
    pool_file = root / "pool.jsonl"
    pool_file.write_text("".join(json.dumps(e) + "\n" for e in pool))
    labels_csv = root / "labels.csv"
    with open(labels_csv, "w", newline="") as fh:
        w = CsvWriter(fh, ["audio_path", "text_label", "split"])
        w.writeheader()
        w.writerows(listing)
    records = build_mixtures(pool, paths, seed, sizes)
    parquet_dir = root / "metadata" / "parquet"
    legacy_dir = root / "metadata" / "legacy"
    counts = write_hub_folder(records, parquet_dir)
    write_legacy_json(records, legacy_dir, records_per_file=10)
    files = {e["path"] for e in pool}
    return ToyCorpus(root, dp_file, parquet_dir, legacy_dir, pool_file, labels_csv, len(files), len(pool), counts)




#: parents of the toy classes in the Hive ontology (AudioSet names and ids)
_TOY_PARENTS = {
    "Domestic animals, pets": ("/m/068hy", ["Dog"]),
    "Bell": ("/m/0395lw", ["Church bell"]),
    "Water": ("/m/0838f", ["Rain"]),
    "Wild animals": ("/m/01280g", ["Bird", "Cricket"]),
    "Musical instrument": ("/m/04szw", ["Piano", "Violin, fiddle", "Drum", "Flute"]),
    "Domestic sounds, home sounds": ("/t/dd00071", ["Water tap, faucet", "Doorbell"]),
    "Sounds of things": ("/t/dd00041", ["Clock", "Engine", "Hammer", "Bell"]),
    "Human sounds": ("/m/0dgw9r", ["Cough"]),
    "Natural sounds": ("/m/059j3w", ["Wind", "Water"]),
}


def write_toy_ontology(path: str | Path) -> Path:
    """A small AudioSet-format ontology over the toy classes (for offline demos and tests)."""
    nodes = {}
    for parent, (pid, kids) in _TOY_PARENTS.items():
        nodes[parent] = {"id": pid, "name": parent, "child_ids": [], "restrictions": []}
    for name, cid, _ in TOY_CLASSES:
        nodes.setdefault(name, {"id": cid, "name": name, "child_ids": [], "restrictions": []})
    for parent, (_, kids) in _TOY_PARENTS.items():
        nodes[parent]["child_ids"] = [nodes[k]["id"] for k in kids]
    path = Path(path)
    path.write_text(json.dumps(list(nodes.values()), indent=1) + "\n")
    return path
