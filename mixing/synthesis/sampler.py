"""Parameter sampling of one mixture: labels, clips, crops and SNRs — no audio.

Everything one mixture draws comes from its own generator
``np.random.default_rng([seed, split_id, index])``, read as a stream of uniforms
(:func:`uniforms`), so a mixture's parameters depend on nothing but the pool, the config, the
seed and its index — never on the number of workers or on what other mixtures drew.

Per mixture: the number of sources from the configured distribution; labels one after the other
from the base distribution (uniform over labels, or proportional to their clip counts) restricted
to labels compatible with every label chosen so far (rejection first, then an exact masked draw;
with weighted compatibility the draw is ∝ base · Π pair weight); per label a clip uniformly among
its clips (another original file than the other sources' when ``distinct_files``); a crop start
uniform in ``[0, max(0, chunk length − duration)]`` rounded down to ``crop_decimals`` (a chunk
shorter than the duration starts at 0 and is zero-padded by the renderer); source 1 at 0 dB and
sources 2..n at an SNR from the configured distribution.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Iterator, Sequence

import numpy as np

from ..errors import HiveError
from ..metadata import MixtureRecord, SourceRecord
from ..pool import PoolEntry
from .config import SynthesisConfig
from .rules import LabelRules

_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
#: rejection tries per label position before the exact masked draw
_REJECTION_TRIES = 12
#: clip redraws (another file) per source before the mixture is drawn again
_CLIP_TRIES = 8
#: whole-mixture restarts inside one draw before giving up
_MAX_RESTARTS = 100
_BLOCK = 64
_STD_NORMAL = NormalDist()


class NoValidDraw(HiveError, RuntimeError):
    """No mixture satisfying the rules could be drawn (the reasons are counted)."""


def split_id(split: str) -> int:
    """A stable integer for a split name (0, 1, 2 for train, validation, test)."""
    if split in _SPLIT_IDS:
        return _SPLIT_IDS[split]
    return int.from_bytes(hashlib.blake2b(split.encode(), digest_size=4).digest(), "big") + 3


def mixture_rng(seed: int, split: str, index: int, epoch: int | None = None) -> np.random.Generator:
    """Mixture ``index``'s own generator; ``epoch`` (dynamic mixing) gives each epoch other draws
    (None: the generator of ``hive synthesize``)."""
    key = [int(seed), split_id(split), int(index)]
    return np.random.default_rng(key if epoch is None else key + [int(epoch)])


#: a stream of uniforms: call it for the next number
Uniforms = Callable[[], float]


def _stream(rng: np.random.Generator) -> Iterator[float]:
    while True:
        yield from rng.random(_BLOCK).tolist()


def uniforms(rng: np.random.Generator) -> Callable[[], float]:
    """A stream of uniforms in [0, 1) read from ``rng`` in blocks (one numpy call per block);
    call the result for the next number."""
    return _stream(rng).__next__


@dataclass(slots=True)
class MixtureDraw:
    """The sampled parameters of one mixture (indices into the sampler's label and clip lists)."""

    index: int
    labels: list[int]
    clips: list[int]
    crop_starts: list[float]
    snrs: list[float]

    @property
    def num_sources(self) -> int:
        return len(self.labels)


class ParameterSampler:
    """Draws :class:`MixtureDraw` s from one split's clips under :class:`LabelRules`."""

    def __init__(self, entries: Sequence[PoolEntry], rules: LabelRules, config: SynthesisConfig,
                 required: frozenset[int] | None = None):
        #: label indices of which every mixture must hold at least one (a label filter's "any")
        self.required = required
        self.entries = list(entries)
        self.rules = rules
        self.config = config
        self.split = config.split
        self.duration = config.target_duration
        index = {lab: i for i, lab in enumerate(rules.labels)}
        self.clips_by_label: list[list[int]] = [[] for _ in rules.labels]
        files: dict[str, int] = {}
        self.clip_file: list[int] = []
        self.clip_span: list[float] = []
        for ci, e in enumerate(self.entries):
            self.clips_by_label[index[e.label]].append(ci)
            self.clip_file.append(files.setdefault(e.original_file, len(files)))
            self.clip_span.append(e.chunk_end_second - e.chunk_start_second)
        empty = [rules.labels[i] for i, c in enumerate(self.clips_by_label) if not c]
        if empty:
            raise ValueError(f"labels without clips in split {self.split!r}: {empty[:5]}")
        L = len(rules.labels)
        if config.label_sampling == "uniform":
            base = np.ones(L)
        else:
            base = np.array([len(c) for c in self.clips_by_label], dtype=float)
        self.base = base / base.sum()
        self._base_cum = np.cumsum(self.base).tolist()
        self._uniform_labels = config.label_sampling == "uniform"
        self.counts = config.source_counts
        self._count_cum = np.cumsum(config.count_probabilities).tolist()
        self._scale = 10.0 ** config.crop_decimals
        self._forbidden = rules.forbidden
        self._weights = rules.weights
        self._L = L

    # ---- pieces ------------------------------------------------------------------------------
    def _pick(self, cum: list[float], u: float) -> int:
        i = bisect_right(cum, u * cum[-1])
        return min(i, len(cum) - 1)

    def _exact_label(self, chosen: list[int], u: Uniforms) -> int | None:
        p = self.base.copy()
        if self._weights is not None:
            for c in chosen:
                p *= self._weights[c]
        allowed = self.rules.allowed
        for c in chosen:
            p *= allowed[c]
        cum = np.cumsum(p)
        if not cum[-1] > 0:
            return None
        return int(min(np.searchsorted(cum, u() * cum[-1], side="right"), self._L - 1))

    def _next_label(self, chosen: list[int], u: Uniforms) -> int | None:
        if self._weights is not None:
            return self._exact_label(chosen, u)
        forbidden = self._forbidden
        for _ in range(_REJECTION_TRIES):
            x = u()
            lab = int(x * self._L) if self._uniform_labels else self._pick(self._base_cum, x)
            for c in chosen:
                if lab in forbidden[c]:
                    break
            else:
                return lab
        return self._exact_label(chosen, u)

    def _clip(self, label: int, used_files: set[int], u: Uniforms) -> int | None:
        clips = self.clips_by_label[label]
        for _ in range(_CLIP_TRIES):
            c = clips[int(u() * len(clips))]
            if self.clip_file[c] not in used_files:
                return c
        return None

    def _crop(self, clip: int, u: Uniforms) -> float:
        room = self.clip_span[clip] - self.duration
        if room <= 0:
            return 0.0
        return math.floor(u() * room * self._scale) / self._scale

    def _snr(self, u: Uniforms) -> float:
        cfg = self.config
        if cfg.snr_distribution == "uniform":
            v = cfg.snr_low + u() * (cfg.snr_high - cfg.snr_low)
        elif cfg.snr_distribution == "normal":
            x = min(max(u(), 1e-12), 1 - 1e-12)
            v = min(max(cfg.snr_mean + cfg.snr_std * _STD_NORMAL.inv_cdf(x), cfg.snr_low), cfg.snr_high)
        else:
            v = float(cfg.snr_values[int(u() * len(cfg.snr_values))])
        return round(v, cfg.snr_decimals)

    # ---- one mixture -------------------------------------------------------------------------
    def draw(self, index: int, u: Uniforms | None = None, reasons: Counter | None = None) -> MixtureDraw:
        """Parameters of mixture ``index`` (reads ``u``, a stream of the mixture's own generator)."""
        if u is None:
            u = uniforms(mixture_rng(self.config.seed, self.split, index))
        distinct = self.config.distinct_files
        for _ in range(_MAX_RESTARTS):
            n = self.counts[self._pick(self._count_cum, u())]
            labels: list[int] = []
            for _k in range(n):
                lab = self._next_label(labels, u)
                if lab is None:
                    break
                labels.append(lab)
            if len(labels) < n:
                if reasons is not None:
                    reasons["redraw_no_compatible_label"] += 1
                continue
            if self.required is not None and self.required.isdisjoint(labels):
                if reasons is not None:
                    reasons["redraw_label_filter"] += 1
                continue
            clips: list[int] = []
            used: set[int] = set()
            for lab in labels:
                c = self._clip(lab, used, u) if distinct else self.clips_by_label[lab][int(u() * len(self.clips_by_label[lab]))]
                if c is None:
                    break
                clips.append(c)
                used.add(self.clip_file[c])
            if len(clips) < n:
                if reasons is not None:
                    reasons["redraw_same_file"] += 1
                continue
            crops = [self._crop(c, u) for c in clips]
            snrs = [0.0] + [self._snr(u) for _ in range(n - 1)]
            return MixtureDraw(index, labels, clips, crops, snrs)
        raise NoValidDraw(f"mixture {index}: no draw satisfied the rules in {_MAX_RESTARTS} tries")

    def redraw_source(self, draw: MixtureDraw, i: int, u: Uniforms) -> bool:
        """Draw another clip and crop (same label, another file) for source ``i``; False if none."""
        used = {self.clip_file[c] for k, c in enumerate(draw.clips) if k != i}
        if self.config.distinct_files:
            c = self._clip(draw.labels[i], used, u)
            if c is None:
                return False
        else:
            clips = self.clips_by_label[draw.labels[i]]
            c = clips[int(u() * len(clips))]
        draw.clips[i] = c
        draw.crop_starts[i] = self._crop(c, u)
        return True

    # ---- records -----------------------------------------------------------------------------
    def mix_id(self, index: int) -> str:
        return f"{self.config.mix_id_prefix}_{self.split}_{index:08d}"

    def to_record(self, draw: MixtureDraw) -> MixtureRecord:
        """An *unlevelled* draft: ``rms_gain`` 1, ``applied_weight`` 10^(snr/20), global factor 1.

        :func:`mixing.levels.apply_levels` turns it into a final record.
        """
        D = self.duration
        sources = []
        for k, (c, cs, snr) in enumerate(zip(draw.clips, draw.crop_starts, draw.snrs)):
            e = self.entries[c]
            sources.append(SourceRecord(f"s{k + 1}", e.path, e.label, cs, round(cs + D, 6),
                                        e.chunk_start_second, e.chunk_end_second, 1.0, snr,
                                        10.0 ** (snr / 20.0)))
        return MixtureRecord(self.mix_id(draw.index), self.split, self.config.sample_rate, D,
                             len(sources), tuple(sources), 1.0, self.config.final_max_amplitude)
