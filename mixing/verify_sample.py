"""``hive verify``: the checks of one rendered sample (its JSON, provenance and audio members)."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import open_sound_file
from .errors import InputFileError, InvalidRecordError
from .input_files import (
    parse_json_bytes,
)
from .metadata import MixtureRecord
from .recipe import STEM_MODES
from .validation import parse_mixture
from .verify_report import ShardReport

#: absolute tolerance of the stems-sum check (on top of the encoding's own rounding)
DEFAULT_ATOL = 1e-5
AUDIO_EXTS = ("wav", "flac")
#: ``hive_render.audio_format`` values: the member extension and the subtype it implies
#: (``pcm16``: 16-bit PCM ``.wav`` members, as the reference wrote)
AUDIO_FORMATS = {"wav": ("wav", None), "flac": ("flac", None), "pcm16": ("wav", "PCM_16")}
_GROUP_DIR = re.compile(r"(\d+)mix")
STEM_NAME = re.compile(r"s([1-9]\d*)")
#: WebDataset's key / suffix split: the key is everything before the first dot of the basename
WDS_NAME = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")
#: exact float32 / PCM step used to size the rounding allowance of the sum check
_FLOAT32_EPS = 2.0 ** -24
_PCM_STEP = {"PCM_16": 2.0 ** -15, "PCM_24": 2.0 ** -23, "PCM_32": 2.0 ** -31, "PCM_U8": 2.0 ** -7,
             "PCM_S8": 2.0 ** -7}

def record_digest(rec: MixtureRecord) -> str:
    """Digest of every schema field of a record (``extra`` excluded); equal records, equal digest."""
    key = (rec.mix_id, rec.split, rec.sample_rate, rec.target_duration, rec.num_sources,
           tuple(tuple(s.to_dict().items()) for s in rec.sources),
           rec.global_normalization_factor, rec.final_max_amplitude)
    return hashlib.blake2b(repr(key).encode("utf-8"), digest_size=16).hexdigest()


def record_differences(a: MixtureRecord, b: MixtureRecord) -> list[str]:
    """Names of the fields in which two records differ."""
    out = [name for name in ("mix_id", "split", "sample_rate", "target_duration", "num_sources",
                             "global_normalization_factor", "final_max_amplitude")
           if getattr(a, name) != getattr(b, name)]
    if len(a.sources) != len(b.sources):
        out.append("sources")
    else:
        for i, (sa, sb) in enumerate(zip(a.sources, b.sources)):
            out.extend(f"sources[{i}].{k}" for k, v in sa.to_dict().items() if getattr(sb, k) != v)
    return out


# ---- one sample ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardGroup:
    split: str | None
    num_sources: int | None


def group_of(rel: Path) -> ShardGroup:
    """``{split}/{n}mix/<shard>`` -> the group the shard's samples must belong to."""
    parts = rel.parts
    if len(parts) >= 3 and (m := _GROUP_DIR.fullmatch(parts[-2])):
        return ShardGroup(parts[-3], int(m.group(1)))
    return ShardGroup(None, None)


def _decode(data: bytes) -> tuple[np.ndarray, tuple[int, int, str, str, int]]:
    with open_sound_file(io.BytesIO(data)) as f:
        info = (f.samplerate, f.channels, f.format, f.subtype, f.frames)
        x = f.read(dtype="float64", always_2d=True)
    return x, info


class SampleChecker:
    """Checks one sample given its JSON bytes and its audio members."""

    def __init__(self, report: ShardReport, group: ShardGroup, atol: float, config: dict | None = None):
        self.report = report
        self.group = group
        self.atol = atol
        #: the folder's ``_render_config.json`` (stems, audio_format, sample_rate), when present
        self.config = config

    def parse_json(self, key: str, raw: bytes | str | None) -> tuple[MixtureRecord | None, dict | None]:
        rep = self.report
        if raw is None:
            rep.add("missing_member", "no JSON member", key, f"{key}.json")
            return None, None
        try:
            obj = parse_json_bytes(raw, f"{key}.json", "a mixture record (a JSON object)")
        except InputFileError as exc:
            rep.add("bad_json", f"the JSON does not parse ({exc})", key, f"{key}.json")
            return None, None
        try:
            rec = parse_mixture(obj)
        except InvalidRecordError as exc:
            rep.add("invalid_record", f"the JSON is not a valid mixture record: {exc}", key, f"{key}.json")
            return None, obj if isinstance(obj, dict) else None
        if rec.mix_id != key:
            rep.add("key_mismatch", f"JSON mix_id {rec.mix_id!r} differs from the member key {key!r}", key)
        g = self.group
        if g.split is not None and (rec.split != g.split or rec.num_sources != g.num_sources):
            rep.add("wrong_group", f"record is {rec.split}/{rec.num_sources}mix but lies in the shard of "
                    f"{g.split}/{g.num_sources}mix", key)
        rep.records.append((key, record_digest(rec)))
        return rec, obj

    def provenance(self, key: str, rec: MixtureRecord, obj: dict) -> dict | None:
        prov = obj.get("hive_render")
        rep = self.report
        if not isinstance(prov, dict):
            rep.add("bad_provenance", "the JSON has no 'hive_render' provenance object", key, f"{key}.json")
            return None
        sr, mode, fmt = prov.get("sample_rate"), prov.get("stem_mode"), prov.get("audio_format")
        if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
            rep.add("bad_provenance", f"hive_render.sample_rate is {sr!r}; expected a positive integer", key)
            return None
        if mode not in STEM_MODES:
            rep.add("bad_provenance", f"hive_render.stem_mode is {mode!r}; expected one of {STEM_MODES}", key)
            return None
        if fmt not in AUDIO_FORMATS:
            rep.add("bad_provenance", f"hive_render.audio_format is {fmt!r}; expected one of "
                    f"{tuple(AUDIO_FORMATS)}", key)
            return None
        cfg = self.config
        if cfg is not None:
            want_sr = cfg.get("sample_rate") or rec.sample_rate
            for what, have, want in (("stem_mode", mode, cfg.get("stems")),
                                     ("audio_format", fmt, cfg.get("audio_format")),
                                     ("sample_rate", sr, want_sr)):
                if want is not None and have != want:
                    rep.add("config_mismatch", f"hive_render.{what} is {have!r}; _render_config.json "
                            f"means {want!r}", key)
        expected_scale = rec.global_normalization_factor if mode == "consistent" else 1.0
        scale = prov.get("stem_scale")
        if not isinstance(scale, (int, float)) or not np.isclose(scale, expected_scale, rtol=1e-12, atol=0):
            rep.add("bad_provenance", f"hive_render.stem_scale is {scale!r}; {mode} mode means "
                    f"{expected_scale!r}", key)
        frames = int(rec.target_duration * sr)
        if prov.get("num_frames") != frames:
            rep.add("bad_provenance", f"hive_render.num_frames is {prov.get('num_frames')!r}; "
                    f"int(target_duration * sample_rate) = {frames}", key)
        return prov

    def audio(self, key: str, rec: MixtureRecord | None, prov: dict | None,
              members: dict[str, bytes | None], ext: str | None) -> None:
        """``members``: suffix (``mix``, ``s1``...) -> encoded bytes (``None`` when absent)."""
        rep = self.report
        n = rec.num_sources if rec is not None else None
        expected = ["mix"] + [f"s{i}" for i in range(1, (n or 0) + 1)] if n is not None else None
        if expected is not None:
            for name in expected:
                if members.get(name) is None:
                    rep.add("missing_member", f"member {name} is missing ({n} sources expected)", key,
                            f"{key}.{name}.{ext or '*'}")
            for name in members:
                if name not in expected:
                    rep.add("stray_member", f"member {name} is not part of a {n}-source sample", key,
                            f"{key}.{name}.{ext or '*'}")
        if prov is not None and ext is not None and ext != AUDIO_FORMATS[prov["audio_format"]][0]:
            rep.add("wrong_format", f"audio members are .{ext}; hive_render.audio_format is "
                    f"{prov['audio_format']!r}", key)
        if rec is None or prov is None or expected is None:
            return  # nothing to measure against
        sr = prov["sample_rate"]
        frames = int(rec.target_duration * sr)
        decoded: dict[str, np.ndarray] = {}
        steps: list[float] = []
        for name in expected:
            data = members.get(name)
            if data is None:
                continue
            member = f"{key}.{name}.{ext}"
            try:
                x, (file_sr, channels, _fmt, subtype, _) = _decode(data)
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
                rep.add("unreadable_audio", f"cannot be decoded ({exc})", key, member)
                continue
            want_subtype = AUDIO_FORMATS[prov["audio_format"]][1]
            if want_subtype is not None and subtype != want_subtype:
                rep.add("wrong_format", f"{subtype} samples; hive_render.audio_format "
                        f"{prov['audio_format']!r} means {want_subtype}", key, member)
            if file_sr != sr:
                rep.add("wrong_sample_rate", f"{file_sr} Hz; hive_render.sample_rate is {sr}", key, member)
            if channels != 1:
                rep.add("wrong_channels", f"{channels} channels; expected mono", key, member)
            if x.shape[0] != frames:
                rep.add("wrong_length", f"{x.shape[0]} frames; expected int({rec.target_duration} * {sr}) = "
                        f"{frames}", key, member)
            y = x.mean(axis=1) if x.shape[1] > 0 else np.zeros(x.shape[0])
            peak = float(np.max(np.abs(y))) if y.size else 0.0
            step = _PCM_STEP.get(subtype)
            # reference-mode stems lack the global factor by design: they clip if they exceed 1
            # once the factor is applied
            unscaled = name != "mix" and prov["stem_mode"] == "reference"
            level = peak * rec.global_normalization_factor if unscaled else peak
            # float members hold values above 1 without loss: only the mix (whose peak the
            # metadata fixes at final_max_amplitude) and PCM members can clip
            if level > 1.0 and (step is not None or name == "mix"):
                rep.add("clipping", f"peak {peak:.6f}" + (f" x global factor = {level:.6f}" if unscaled else "")
                        + " > 1.0", key, member)
            elif step is not None and peak >= 1.0 - step:
                rep.add("clipping", f"{subtype} samples at full scale (peak {peak:.6f}): clipped when encoded",
                        key, member)
            if name != "mix" and y.size and peak == 0.0:
                weight = rec.sources[int(name[1:]) - 1].applied_weight
                if weight != 0.0:  # an all-zero stem of a weighted source: nothing of it was rendered
                    rep.add("silent_stem", f"all samples are zero although applied_weight is {weight!r}: its "
                            "crop lies beyond its chunk (crop_beyond_chunk, refused by 'hive render' since) or "
                            "its audio is silent; run 'hive check' on the metadata and re-render", key, member)
            steps.append(step if step is not None else 0.0)
            decoded[name] = y
        stems = [decoded.get(f"s{i}") for i in range(1, n + 1)]
        mix = decoded.get("mix")
        if mix is None or any(s is None for s in stems) or any(len(s) != len(mix) for s in stems):
            return  # already reported
        total = np.sum(stems, axis=0) if stems else np.zeros_like(mix)
        gnf = rec.global_normalization_factor
        target = mix if prov["stem_mode"] == "consistent" else mix / gnf
        # rounding allowance: each stored signal carries float32 (or PCM) rounding
        mix_div = 1.0 if prov["stem_mode"] == "consistent" else gnf
        eps = [max(s, _FLOAT32_EPS) for s in steps] or [_FLOAT32_EPS]
        stem_abs = np.sum(np.abs(stems), axis=0) if stems else np.zeros_like(mix)
        scale = max(float(np.max(stem_abs)) if stem_abs.size else 0.0, float(np.max(np.abs(target))) if target.size else 0.0)
        tol = self.atol + max(eps) * ((n + 1) * scale + 1.0 / mix_div)
        if len(steps) == n + 1 and any(steps):
            # PCM members carry an absolute rounding error of up to one step each (the mix's
            # divided by the factor in reference mode); 16-bit steps exceed atol
            tol += sum(steps[1:]) + steps[0] / mix_div
        err = float(np.max(np.abs(total - target))) if total.size else 0.0
        if not err <= tol:
            what = "mix" if prov["stem_mode"] == "consistent" else "mix / global_normalization_factor"
            rep.add("stems_mismatch", f"{prov['stem_mode']} stems: max |sum(stems) - {what}| = {err:.3g} > "
                    f"{tol:.3g}", key)


# ---- WebDataset shards -----------------------------------------------------------------------
