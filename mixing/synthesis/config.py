"""The one configuration of ``hive synthesize``: a dataclass with documented defaults.

Precedence: the defaults below < a YAML file (``--config synth.yaml``, keys = field names) <
command-line flags given explicitly. Unknown YAML keys are an error (a typo must not silently fall
back to a default).

Defaults follow the Hive release: 44.1 kHz; 4 s mixtures for train/validation and 10 s for test;
2–5 sources, uniform; labels uniform (to counter the long tail); source 1 at 0 dB and sources
2..n at an SNR relative to it drawn uniformly from [-5, 5] dB; every source at RMS 0.1 before
the SNR; mixture peak 0.95; no label that is an ancestor (or descendant) of another label of the
mixture.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import numbers
from ..errors import HiveError
from ..validation import MAX_FRAMES

#: default mixture length per split (seconds); other split names use 4 s
DEFAULT_DURATION = {"train": 4.0, "validation": 4.0, "test": 10.0}
LABEL_SAMPLING = ("uniform", "proportional")
SNR_DISTRIBUTIONS = ("uniform", "normal", "choice")
UNKNOWN_LABELS = ("error", "skip", "allow")


class SynthesisConfigError(HiveError, ValueError):
    """A synthesis setting is out of range or unknown."""


_LEVEL = numbers.real(0.0, 1e3, lo_open=True, what="a positive level")
_WEIGHT = numbers.real(0.0, 1e12, what="a weight")
#: the numeric settings and their rule (checked and converted by ``validate``)
NUMBER_RULES: dict[str, numbers.Rule] = {
    "num_mixtures": numbers.MIXTURES,
    "duration": numbers.real(0.0, 3600.0, lo_open=True, what="a number of seconds"),
    "sample_rate": numbers.SAMPLE_RATE,
    "seed": numbers.SEED,
    "min_sources": numbers.NUM_SOURCES,
    "max_sources": numbers.NUM_SOURCES,
    "compatibility_default": numbers.real(0.0, 1e12, what="a pair weight"),
    "crop_decimals": numbers.integer(0, 9),
    "snr_low": numbers.DECIBELS,
    "snr_high": numbers.DECIBELS,
    "snr_mean": numbers.DECIBELS,
    "snr_std": numbers.real(0.0, numbers.MAX_DB, what="a standard deviation in dB"),
    "snr_decimals": numbers.integer(0, 9),
    "target_rms": _LEVEL,
    "final_max_amplitude": _LEVEL,
    "silence_rms": numbers.real(0.0, 1e3, what="an RMS"),
    "max_attempts": numbers.integer(1, 1_000_000, "a number of attempts"),
    "num_workers": numbers.WORKERS,
}


@dataclass
class SynthesisConfig:
    #: split to synthesize; only the pool's clips of this split are drawn
    split: str = "train"
    num_mixtures: int = 1000
    #: mixture length in seconds; None = 4 s (train/validation) or 10 s (test)
    duration: float | None = None
    sample_rate: int = 44100
    seed: int = 0
    #: mix_id = f"{mix_id_prefix}_{split}_{index:08d}"
    mix_id_prefix: str = "hive"
    # ---- number of sources --------------------------------------------------------------------
    min_sources: int = 2
    max_sources: int = 5
    #: relative weights of min_sources..max_sources (None = uniform)
    source_count_weights: list[float] | None = None
    # ---- labels ------------------------------------------------------------------------------
    #: "uniform" over the split's labels, or "proportional" to their number of clips
    label_sampling: str = "uniform"
    #: forbid a label together with one of its ontology ancestors / descendants
    exclude_ancestors: bool = True
    #: also forbid two labels that share an ontology parent
    exclude_siblings: bool = False
    #: CSV or JSON file of label x label weights (0 = forbidden pair; >0 biases the choice)
    compatibility: str | None = None
    #: weight of a pair the compatibility file does not mention
    compatibility_default: float = 1.0
    #: what to do with pool labels the ontology does not know: error, skip the clips, or allow
    #: them (only the distinct-label and compatibility rules then apply to them)
    unknown_labels: str = "error"
    #: two sources never come from the same original file
    distinct_files: bool = True
    #: a label subset (names or mids; see mixing.label_filter): only these labels (None: all) ...
    labels: list[str] | None = None
    #: ... and never these
    exclude_labels: list[str] | None = None
    #: a label also selects / excludes its ontology descendants
    include_descendants: bool = True
    #: "all": every source of a mixture has a selected label; "any": at least one has
    label_match: str = "all"
    # ---- crops and levels ----------------------------------------------------------------------
    #: crop starts are rounded down to this many decimals (ms)
    crop_decimals: int = 3
    #: "uniform" on [snr_low, snr_high], "normal" (snr_mean, snr_std, clipped to [low, high]) or
    #: "choice" among snr_values
    snr_distribution: str = "uniform"
    snr_low: float = -5.0
    snr_high: float = 5.0
    snr_mean: float = 0.0
    snr_std: float = 2.5
    snr_values: list[float] = field(default_factory=lambda: [-5.0, 0.0, 5.0])
    snr_decimals: int = 2
    target_rms: float = 0.1
    final_max_amplitude: float = 0.95
    #: a crop whose RMS is below this is rejected and redrawn (about -60 dBFS)
    silence_rms: float = 1e-3
    #: draws (including redraws of silent or unreadable sources) per mixture before giving up
    max_attempts: int = 100
    # ---- execution / outputs -----------------------------------------------------------------
    num_workers: int = 1
    legacy_json: bool = False

    # ---------------------------------------------------------------------------------------
    @property
    def target_duration(self) -> float:
        return float(self.duration if self.duration is not None else DEFAULT_DURATION.get(self.split, 4.0))

    @property
    def source_counts(self) -> list[int]:
        return list(range(self.min_sources, self.max_sources + 1))

    @property
    def count_probabilities(self) -> list[float]:
        w = self.source_count_weights or [1.0] * len(self.source_counts)
        s = float(sum(w))
        return [x / s for x in w]

    def validate(self) -> "SynthesisConfig":
        def bad(name: str, expected: str) -> SynthesisConfigError:
            return SynthesisConfigError(f"synthesis setting {name} = {getattr(self, name)!r}; expected {expected}")

        # every number first: a kind and a bounded range (the one checked-number rule)
        numbers.check_fields(self, NUMBER_RULES, where="synthesis setting", error=SynthesisConfigError)
        if self.target_duration * self.sample_rate > MAX_FRAMES:
            raise bad("sample_rate", f"at most {MAX_FRAMES} samples per mixture (duration x sample_rate; here "
                      f"{self.target_duration:g} s x {self.sample_rate} Hz): lower the rate or the duration")
        if not isinstance(self.max_sources, int) or not self.min_sources <= self.max_sources <= 5:
            raise bad("max_sources", f"an integer in {self.min_sources}..5 (Hive's schema allows 5 sources)")
        if self.source_count_weights is not None:
            w = self.source_count_weights
            if (not isinstance(w, (list, tuple)) or len(w) != len(self.source_counts)
                    or any(_WEIGHT.problem(x) for x in w) or sum(w) <= 0):
                raise bad("source_count_weights", f"{len(self.source_counts)} non-negative weights "
                          f"(for {self.min_sources}..{self.max_sources} sources) with a positive sum")
        if self.label_sampling not in LABEL_SAMPLING:
            raise bad("label_sampling", f"one of {LABEL_SAMPLING}")
        if self.unknown_labels not in UNKNOWN_LABELS:
            raise bad("unknown_labels", f"one of {UNKNOWN_LABELS}")
        if self.snr_distribution not in SNR_DISTRIBUTIONS:
            raise bad("snr_distribution", f"one of {SNR_DISTRIBUTIONS}")
        if not self.snr_low <= self.snr_high:
            raise bad("snr_low", f"<= snr_high ({self.snr_high})")
        if self.snr_distribution == "choice" and (not isinstance(self.snr_values, (list, tuple)) or not self.snr_values
                                                  or any(numbers.DECIBELS.problem(v) for v in self.snr_values)):
            raise bad("snr_values", f"a non-empty list of levels in dB in [{-numbers.MAX_DB:g}, {numbers.MAX_DB:g}]")
        if self.label_match not in ("all", "any"):
            raise bad("label_match", "'all' or 'any'")
        if not isinstance(self.include_descendants, bool):
            raise bad("include_descendants", "true or false")
        self.label_filter()
        return self

    def label_filter(self, ontology: str | None = None):
        """The settings' :class:`~mixing.label_filter.LabelFilter` (None: every label)."""
        from ..label_filter import LabelFilter

        return LabelFilter.make(self.labels, self.exclude_labels, include_descendants=self.include_descendants,
                                label_match=self.label_match, ontology=ontology)

    # ---- files ----------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def updated(self, changes: Mapping[str, Any], where: str = "settings") -> "SynthesisConfig":
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise SynthesisConfigError(f"{where}: unknown synthesis settings {unknown}; known: "
                                       f"{', '.join(self.field_names())}")
        return dataclasses.replace(self, **dict(changes))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, base: "SynthesisConfig | None" = None) -> "SynthesisConfig":
        from ..input_files import load_yaml_file

        path = Path(path)
        data = load_yaml_file(path, "synthesis config", "a mapping of setting -> value; fix the file",
                              SynthesisConfigError)
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise SynthesisConfigError(f"synthesis config {path} holds a {type(data).__name__}; "
                                       "expected a mapping of setting -> value")
        return (base or cls()).updated(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)
