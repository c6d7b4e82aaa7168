"""The source store on disk: one folder, one manifest, segments and their index parts.

::

    STORE/
      store.json                      manifest: format, version, sample rate, sample type
      segments/{plan}-{unit:05d}.f32  float32 little-endian mono samples, chunks back to back
      index/{plan}-{unit:05d}.parquet one index part per segment (its ledger entry: written after
                                      the segment is complete, so a part always describes a
                                      whole segment)
      index.parquet                   every part merged (written when a build completes)
      plans/{plan}.json               the units of a build plan (so completion can be checked)
      _failures.jsonl                 chunks the last build could not add, with named reasons
      _locks/rank-{r:05d}.lock        per-rank build locks (gone after a clean exit)

A segment is a raw array: ``numpy.memmap(path, dtype="<f4", mode="r")`` maps it, and the index
gives each chunk's ``offset`` and ``length`` in samples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import StoreFormatError, StoreRateError
from ..input_files import load_json_file
from ..output_folder import MARKER as OUTPUT_MARKER
from ..resume import atomic_write_json

FORMAT = "hive-source-store"
VERSION = 1
DTYPE = "<f4"
MANIFEST = "store.json"
SEGMENTS = "segments"
INDEX_PARTS = "index"
INDEX = "index.parquet"
PLANS = "plans"
FAILURES = "_failures.jsonl"
SEGMENT_SUFFIX = ".f32"


def manifest_path(root: str | os.PathLike) -> Path:
    return Path(root) / MANIFEST


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the store at ``root``; :class:`StoreFormatError` when ``root`` is not a store."""
    root = Path(root)
    path = manifest_path(root)
    if not root.is_dir():
        raise StoreFormatError(f"source store {root} does not exist (or is not a folder); build one with "
                               f"`hive store build --output {root} ...`")
    if not path.is_file():
        raise StoreFormatError(f"{root} is not a source store (it has no {MANIFEST}); give the --output "
                               "folder of `hive store build`")
    data = load_json_file(path, "source store manifest", "a JSON object", StoreFormatError)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StoreFormatError(f"{path} is not a Hive source store manifest (format is "
                               f"{data.get('format') if isinstance(data, dict) else type(data).__name__!r}, "
                               f"expected {FORMAT!r}); give the --output folder of `hive store build`")
    if data.get("version") != VERSION:
        raise StoreFormatError(f"{path}: store format version {data.get('version')!r}; this hive reads version "
                               f"{VERSION}: rebuild the store with this version")
    rate = data.get("sample_rate")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0 or data.get("dtype") != DTYPE:
        raise StoreFormatError(f"{path}: sample_rate {rate!r} / dtype {data.get('dtype')!r}; expected a positive "
                               f"integer and {DTYPE!r}: the manifest is damaged, rebuild the store")
    return data


def check_rate(root: str | os.PathLike, store_rate: int, asked: int | None, what: str = "asked for") -> None:
    """Refuse a store whose rate is not the rate asked for (one line, with the way out)."""
    if asked is not None and int(asked) != int(store_rate):
        raise StoreRateError(
            f"source store {root} holds audio at {store_rate} Hz, but {asked} Hz is {what}; pass "
            f"--sample-rate {store_rate} (or sample_rate={store_rate}), or build a store at {asked} Hz "
            "into another folder")


def create_or_check(root: str | os.PathLike, sample_rate: int, tool_version: str) -> dict[str, Any]:
    """Make ``root`` a store at ``sample_rate`` (a new or empty folder), or check that it is one
    at that rate. A non-empty folder that is not a store is refused, never written into."""
    root = Path(root)
    if manifest_path(root).is_file():
        data = read_manifest(root)
        check_rate(root, data["sample_rate"], sample_rate, "asked for by this build")
        return data
    if root.exists():
        if not root.is_dir():
            raise StoreFormatError(f"--output {root} is a file; expected a folder for the source store")
        leftovers = [p.name for p in root.iterdir() if p.name != OUTPUT_MARKER]  # hive's own output marker
        if leftovers:
            raise StoreFormatError(
                f"--output {root} is a non-empty folder that is not a source store (it holds "
                f"{', '.join(sorted(leftovers)[:5])}{', ...' if len(leftovers) > 5 else ''}); choose a new "
                "or empty folder")
    root.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "version": VERSION, "sample_rate": int(sample_rate), "dtype": DTYPE,
            "created_by": f"hive-uss {tool_version}"}
    atomic_write_json(manifest_path(root), data)
    return data
