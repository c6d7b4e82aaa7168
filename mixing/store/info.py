"""``hive store info``: what a source store holds (chunks, hours, bytes, rate, per corpus)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .layout import SEGMENTS
from .reader import SourceStore

_ITEM = 4


@dataclass
class StoreInfo:
    root: str
    sample_rate: int
    chunks: int
    files: int
    samples: int
    segments: int
    segment_bytes: int
    unmerged_parts: int
    per_corpus: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        return self.samples / self.sample_rate / 3600 if self.sample_rate else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "sample_rate": self.sample_rate, "chunks": self.chunks, "files": self.files,
                "hours": round(self.hours, 6), "samples": self.samples, "segments": self.segments,
                "bytes": self.segment_bytes, "unmerged_parts": self.unmerged_parts,
                "per_corpus": self.per_corpus}

    def format(self) -> str:
        lines = [f"source store {self.root}: {self.sample_rate} Hz float32 mono",
                 f"  {self.chunks} chunks of {self.files} source files, {self.hours:.3f} h of audio, "
                 f"{self.segment_bytes / 1e9:.3f} GB in {self.segments} segment file(s) "
                 f"({self.segment_bytes / max(self.hours, 1e-12) / 1e9:.2f} GB per hour)"]
        if self.unmerged_parts:
            lines.append(f"  {self.unmerged_parts} index part(s) not merged: a build stopped before its end "
                         "(they are used; run the build again to finish it)")
        lines.append(f"  {'corpus':<24}{'chunks':>9}{'files':>8}{'hours':>10}{'GB':>9}")
        for prefix, d in sorted(self.per_corpus.items()):
            lines.append(f"  {prefix:<24}{d['chunks']:>9}{d['files']:>8}{d['hours']:>10.3f}{d['bytes'] / 1e9:>9.3f}")
        return "\n".join(lines)


def store_info(root: str | os.PathLike) -> StoreInfo:
    store = SourceStore(root)
    idx = store.index
    table = idx.table
    per: dict[str, dict[str, Any]] = {}
    if idx.num_chunks:
        paths = table.column("path").to_pylist()
        prefixes = np.array([p.split("/", 1)[0] for p in paths])
        for prefix in sorted(set(prefixes.tolist())):
            sel = prefixes == prefix
            samples = int(idx.length[sel].sum())
            files = len({paths[i] for i in np.flatnonzero(sel)})
            per[prefix] = {"chunks": int(sel.sum()), "files": files, "samples": samples,
                           "hours": samples / store.sample_rate / 3600, "bytes": samples * _ITEM}
    seg_dir = Path(store.root) / SEGMENTS
    seg_files = [p for p in seg_dir.glob("*.f32")] if seg_dir.is_dir() else []
    return StoreInfo(str(store.root), store.sample_rate, idx.num_chunks, len(idx.files), int(idx.length.sum()),
                     len(seg_files), sum(p.stat().st_size for p in seg_files), store.unmerged_parts, per)
