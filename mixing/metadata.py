"""The data model: typed mixture and source records, exactly the Hub's Parquet schema.

One source of truth for field names and types. A Hub row stores ``sources`` as a *struct of
lists* (what the Hub card's ``sequence`` of fields means in ``datasets``); legacy JSON stores a
list of dicts and nests ``split/sample_rate/target_duration`` in ``dataset_info`` and the two
factors in ``mixing_params``. :mod:`mixing.validation` turns any of those raw forms into the
records below; this module turns records back into each form.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import pyarrow as pa

Seconds = float
Decibels = float

SPLITS = ("train", "validation", "test")
#: legacy folder / split names -> Hub split names
SPLIT_ALIASES = {"train": "train", "val": "validation", "valid": "validation",
                 "validation": "validation", "dev": "validation", "test": "test"}
#: Hub split name -> legacy folder name
LEGACY_SPLIT_DIR = {"train": "train", "validation": "val", "test": "test"}

SOURCE_STRING_FIELDS = ("source_id", "path", "label")
SOURCE_FLOAT_FIELDS = (
    "crop_start_second", "crop_end_second", "chunk_start_second", "chunk_end_second",
    "rms_gain", "snr_db", "applied_weight",
)
SOURCE_FIELDS = SOURCE_STRING_FIELDS + SOURCE_FLOAT_FIELDS
MIXTURE_FIELDS = (
    "mix_id", "split", "sample_rate", "target_duration", "num_sources", "sources",
    "global_normalization_factor", "final_max_amplitude",
)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One source of a mixture: which chunk of which file, where to crop it and how loud."""

    source_id: str
    path: str  # "<corpus prefix>/<relative path>"
    label: str
    crop_start_second: Seconds
    crop_end_second: Seconds
    chunk_start_second: Seconds
    chunk_end_second: Seconds
    rms_gain: float
    snr_db: Decibels
    applied_weight: float

    @property
    def prefix(self) -> str:
        return self.path.split("/", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SOURCE_FIELDS}

    def replace(self, **changes: Any) -> "SourceRecord":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class MixtureRecord:
    """One mixture row of the Hub's metadata."""

    mix_id: str
    split: str
    sample_rate: int
    target_duration: Seconds
    num_sources: int
    sources: tuple[SourceRecord, ...]
    global_normalization_factor: float
    final_max_amplitude: float
    #: additive optional fields found in the input (kept, never renamed)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.sources]

    @property
    def num_frames(self) -> int:
        """Length of the rendered mixture in samples: ``int(target_duration * sample_rate)``."""
        return int(self.target_duration * self.sample_rate)

    @property
    def config_name(self) -> str:
        return f"{self.num_sources}mix"

    def replace(self, **changes: Any) -> "MixtureRecord":
        return dataclasses.replace(self, **changes)

    # ---- serialisation -------------------------------------------------------------------
    def to_hub_row(self) -> dict[str, Any]:
        """The flat Hub row, ``sources`` as a struct of lists."""
        return {
            "mix_id": self.mix_id,
            "split": self.split,
            "sample_rate": self.sample_rate,
            "target_duration": self.target_duration,
            "num_sources": self.num_sources,
            "sources": {name: [getattr(s, name) for s in self.sources] for name in SOURCE_FIELDS},
            "global_normalization_factor": self.global_normalization_factor,
            "final_max_amplitude": self.final_max_amplitude,
        }

    def to_flat_dict(self) -> dict[str, Any]:
        """The flat row with ``sources`` as a list of dicts (JSON sidecars, reports)."""
        row = self.to_hub_row()
        row["sources"] = [s.to_dict() for s in self.sources]
        row.update({k: v for k, v in self.extra.items() if k not in row})
        return row

    def to_legacy_dict(self, legacy_split_name: bool = True) -> dict[str, Any]:
        """The reference release's JSON layout (``dataset_info`` / ``mixing_params``)."""
        out: dict[str, Any] = {
            "mix_id": self.mix_id,
            "dataset_info": {
                "split": LEGACY_SPLIT_DIR.get(self.split, self.split) if legacy_split_name else self.split,
                "sample_rate": self.sample_rate,
                "target_duration": self.target_duration,
            },
            "num_sources": self.num_sources,
            "sources": [s.to_dict() for s in self.sources],
            "mixing_params": {
                "global_normalization_factor": self.global_normalization_factor,
                "final_max_amplitude": self.final_max_amplitude,
            },
        }
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


# ---- Arrow / datasets schema -----------------------------------------------------------------
SOURCES_ARROW_TYPE = pa.struct(
    [pa.field(name, pa.list_(pa.string())) for name in SOURCE_STRING_FIELDS]
    + [pa.field(name, pa.list_(pa.float64())) for name in SOURCE_FLOAT_FIELDS]
)

HUB_ARROW_SCHEMA = pa.schema([
    pa.field("mix_id", pa.string()),
    pa.field("split", pa.string()),
    pa.field("sample_rate", pa.int32()),
    pa.field("target_duration", pa.float64()),
    pa.field("num_sources", pa.int32()),
    pa.field("sources", SOURCES_ARROW_TYPE),
    pa.field("global_normalization_factor", pa.float64()),
    pa.field("final_max_amplitude", pa.float64()),
])


def hub_features():
    """The ``datasets.Features`` the Hub card declares (``sources`` = sequence of fields)."""
    import datasets

    src = {name: datasets.Sequence(datasets.Value("string")) for name in SOURCE_STRING_FIELDS}
    src.update({name: datasets.Sequence(datasets.Value("float64")) for name in SOURCE_FLOAT_FIELDS})
    return datasets.Features({
        "mix_id": datasets.Value("string"),
        "split": datasets.Value("string"),
        "sample_rate": datasets.Value("int32"),
        "target_duration": datasets.Value("float64"),
        "num_sources": datasets.Value("int32"),
        "sources": src,
        "global_normalization_factor": datasets.Value("float64"),
        "final_max_amplitude": datasets.Value("float64"),
    })


def records_to_arrow(records: list[MixtureRecord]) -> pa.Table:
    """Records -> Arrow table with the exact Hub schema (columnar build, no per-row dicts)."""
    cols: dict[str, list[Any]] = {name: [] for name in MIXTURE_FIELDS if name != "sources"}
    src_cols: dict[str, list[list[Any]]] = {name: [] for name in SOURCE_FIELDS}
    for rec in records:
        cols["mix_id"].append(rec.mix_id)
        cols["split"].append(rec.split)
        cols["sample_rate"].append(rec.sample_rate)
        cols["target_duration"].append(rec.target_duration)
        cols["num_sources"].append(rec.num_sources)
        cols["global_normalization_factor"].append(rec.global_normalization_factor)
        cols["final_max_amplitude"].append(rec.final_max_amplitude)
        for name in SOURCE_FIELDS:
            src_cols[name].append([getattr(s, name) for s in rec.sources])
    arrays = []
    for f in HUB_ARROW_SCHEMA:
        if f.name == "sources":
            children = [pa.array(src_cols[c.name], type=c.type) for c in SOURCES_ARROW_TYPE]
            arrays.append(pa.StructArray.from_arrays(children, fields=list(SOURCES_ARROW_TYPE)))
        else:
            arrays.append(pa.array(cols[f.name], type=f.type))
    return pa.Table.from_arrays(arrays, schema=HUB_ARROW_SCHEMA)


def normalise_split(name: str) -> str:
    """Map legacy split names (``val``) to the Hub's (``validation``); unknown names unchanged."""
    return SPLIT_ALIASES.get(name.lower(), name) if isinstance(name, str) else name
