# Over 400 lines: the one validator of untrusted metadata rows (slow and fast paths must agree, so they sit together).
"""Validation of untrusted metadata: any raw row (Hub struct-of-lists, list of dicts, legacy JSON)
into a typed :class:`~mixing.metadata.MixtureRecord`, or a typed :class:`InvalidRecordError`.

``parse_mixture`` never raises anything but ``InvalidRecordError`` whatever it is given.
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from .errors import MISSING, InvalidRecordError
from .metadata import (
    SOURCE_FIELDS, SOURCE_FLOAT_FIELDS, SOURCE_STRING_FIELDS, MixtureRecord, SourceRecord,
    normalise_split,
)

MAX_SOURCES = 5
#: longest mixture accepted, in samples (10 minutes at 48 kHz): bounds the renderer's memory
MAX_FRAMES = 28_800_000
#: highest rate a command accepts for --sample-rate (Hz): what audio interfaces record at most;
#: with MAX_FRAMES it keeps a render's memory bounded whatever the flags say
MAX_SAMPLE_RATE = 384_000
#: relative tolerance of the check applied_weight == rms_gain * 10 ** (snr_db / 20)
WEIGHT_RTOL = 1e-3

_BAD_KEY_CHARS = re.compile(r"[.\\/\s\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: a path that :func:`check_metadata_path` certainly accepts (the fast path's test; a path it does
#: not match goes through the full check, which raises the exact error)
_SAFE_PATH = re.compile(r"(?!\.\.?/)[^/\\:\x00-\x1f\x7f]+(?:/(?!\.\.?(?:/|$))[^/\\\x00-\x1f\x7f]+)+")
_STR_ONLY = {str}
_FLOAT_ONLY = {float}
#: the fast path builds SourceRecord positionally, in the order of SOURCE_FIELDS
_FAST_PATH = tuple(f.name for f in fields(SourceRecord)) == SOURCE_FIELDS
_MIXTURE_KNOWN = {"mix_id", "split", "sample_rate", "target_duration", "num_sources", "sources",
                  "global_normalization_factor", "final_max_amplitude", "dataset_info",
                  "mixing_params"}


@dataclass
class RecordWarning:
    mix_id: str
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"mix_id": self.mix_id, "field": self.field, "message": self.message}


@dataclass
class ValidationReport:
    """What a reader skipped or warned about. Counts are complete; examples are capped."""

    max_examples: int = 20
    valid: int = 0
    invalid: int = 0
    errors_by_field: Counter = field(default_factory=Counter)
    warnings_by_field: Counter = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    warning_examples: list[dict[str, Any]] = field(default_factory=list)
    #: called with every invalid record's error (e.g. to write a failure manifest)
    listener: Callable[[InvalidRecordError], None] | None = field(default=None, repr=False, compare=False)

    def add_error(self, err: InvalidRecordError) -> None:
        if self.listener is not None:
            self.listener(err)
        self.invalid += 1
        self.errors_by_field[err.field] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(err.to_dict())

    def add_warnings(self, warnings: list[RecordWarning]) -> None:
        for w in warnings:
            self.warnings_by_field[w.field] += 1
            if len(self.warning_examples) < self.max_examples:
                self.warning_examples.append(w.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid, "invalid": self.invalid,
            "errors_by_field": dict(self.errors_by_field),
            "warnings_by_field": dict(self.warnings_by_field),
            "examples": self.examples, "warning_examples": self.warning_examples,
        }


def check_mix_id(mix_id: Any) -> str:
    """A mix_id must be usable as a WebDataset key: no dots, slashes, whitespace or controls."""
    if isinstance(mix_id, bool) or not isinstance(mix_id, (str, int)):
        raise InvalidRecordError(mix_id, "mix_id", mix_id, "a string (or integer) id")
    try:
        key = str(mix_id)
    except ValueError:  # an integer beyond the int -> str conversion limit
        raise InvalidRecordError(mix_id, "mix_id", mix_id, "an id of at most 255 characters") from None
    if not key or _BAD_KEY_CHARS.search(key) or len(key) > 255:
        raise InvalidRecordError(
            mix_id, "mix_id", mix_id,
            "a non-empty WebDataset key of at most 255 characters without '.', '/', '\\', "
            "whitespace or control characters")
    return key


def check_metadata_path(path: Any, mix_id: Any = None, field_name: str = "path") -> str:
    """``<prefix>/<relative>``: relative, no ``..`` or ``.`` segment, no backslash, no controls."""
    expected = ("'<corpus prefix>/<relative path>' with '/' separators, no leading '/', "
                "no '.' or '..' segments, no backslashes and no control characters")
    if not isinstance(path, str):
        raise InvalidRecordError(mix_id, field_name, path, expected)
    if "\\" in path or _CONTROL.search(path) or path.startswith("/"):
        raise InvalidRecordError(mix_id, field_name, path, expected)
    parts = path.split("/")
    if len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
        raise InvalidRecordError(mix_id, field_name, path, expected)
    if ":" in parts[0]:  # a Windows drive ("C:") or a URL scheme is not a corpus prefix
        raise InvalidRecordError(mix_id, field_name, path, expected)
    return path


def _number(mix_id: Any, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRecordError(mix_id, name, value, "a finite number")
    try:
        v = float(value)
    except (OverflowError, ValueError):
        raise InvalidRecordError(mix_id, name, value, "a finite number") from None
    if not math.isfinite(v):
        raise InvalidRecordError(mix_id, name, value, "a finite number")
    return v


def _integer(mix_id: Any, name: str, value: Any) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecordError(mix_id, name, value, "an integer")
    return value


def _string(mix_id: Any, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or _CONTROL.search(value):
        raise InvalidRecordError(mix_id, name, value, "a non-empty string without control characters")
    return value


def _source_dicts(mix_id: Any, sources: Any) -> list[Mapping[str, Any]]:
    """Accept a list of dicts or a struct of lists (the Hub form); return a list of dicts."""
    if isinstance(sources, Mapping):
        lengths = set()
        for name in SOURCE_FIELDS:
            col = sources.get(name)
            if not isinstance(col, (list, tuple)):
                raise InvalidRecordError(mix_id, f"sources.{name}", col,
                                         "a list (sources stored as a struct of lists)")
            lengths.add(len(col))
        if len(lengths) != 1:
            raise InvalidRecordError(mix_id, "sources", {k: len(sources[k]) for k in SOURCE_FIELDS},
                                     "lists of one common length in the struct of lists")
        n = lengths.pop()
        return [{name: sources[name][i] for name in SOURCE_FIELDS} for i in range(n)]
    if isinstance(sources, (list, tuple)):
        for i, s in enumerate(sources):
            if not isinstance(s, Mapping):
                raise InvalidRecordError(mix_id, f"sources[{i}]", s, "an object with the source fields")
        return list(sources)
    raise InvalidRecordError(mix_id, "sources", sources, "a list of source objects or a struct of lists")


def _fast_struct_sources(sources: dict, max_sources: int) -> tuple[SourceRecord, ...] | None:
    """Sources of the Hub's struct-of-lists form when every rule plainly holds, else ``None``.

    Column-wise checks without per-source dicts; it never refuses anything itself: on the first
    doubt it returns ``None`` and :func:`parse_mixture` takes the full path, which raises the exact
    error. When it returns records, they equal what the full path builds.
    """
    cols = [sources.get(name) for name in SOURCE_FIELDS]
    sid, path, label, crop_start, crop_end, chunk_start, chunk_end, rms_gain, snr_db, weight = cols
    if type(sid) is not list:
        return None
    n = len(sid)
    if not 1 <= n <= max_sources:
        return None
    for col in cols:
        if type(col) is not list or len(col) != n:
            return None
    strings = sid + path + label  # non-empty str (no subclass), no control character
    if set(map(type, strings)) != _STR_ONLY or not all(strings) or _CONTROL.search("".join(strings)):
        return None
    if not all(map(_SAFE_PATH.fullmatch, path)):
        return None
    numbers = crop_start + crop_end + chunk_start + chunk_end + rms_gain + snr_db + weight
    # floats only (no int, no bool); a NaN or an infinity anywhere makes the sum non-finite
    if set(map(type, numbers)) != _FLOAT_ONLY or not math.isfinite(sum(numbers)):
        return None
    if min(chunk_start) < 0 or min(crop_start) < 0 or min(rms_gain) < 0:
        return None
    if not all(map(operator.lt, chunk_start, chunk_end)) or not all(map(operator.lt, crop_start, crop_end)):
        return None
    return tuple(map(SourceRecord, *cols))


def _parse_source(mix_id: Any, i: int, raw: Mapping[str, Any]) -> SourceRecord:
    vals: dict[str, Any] = {}
    for name in SOURCE_STRING_FIELDS:
        if name not in raw:
            raise InvalidRecordError(mix_id, f"sources[{i}].{name}", MISSING, "a required field")
        vals[name] = _string(mix_id, f"sources[{i}].{name}", raw[name])
    check_metadata_path(vals["path"], mix_id, f"sources[{i}].path")
    for name in SOURCE_FLOAT_FIELDS:
        if name not in raw:
            raise InvalidRecordError(mix_id, f"sources[{i}].{name}", MISSING, "a required field")
        vals[name] = _number(mix_id, f"sources[{i}].{name}", raw[name])
    if not 0 <= vals["chunk_start_second"] < vals["chunk_end_second"]:
        raise InvalidRecordError(
            mix_id, f"sources[{i}].chunk", (vals["chunk_start_second"], vals["chunk_end_second"]),
            "0 <= chunk_start_second < chunk_end_second")
    if not 0 <= vals["crop_start_second"] < vals["crop_end_second"]:
        raise InvalidRecordError(
            mix_id, f"sources[{i}].crop", (vals["crop_start_second"], vals["crop_end_second"]),
            "0 <= crop_start_second < crop_end_second")
    if vals["rms_gain"] < 0:
        raise InvalidRecordError(mix_id, f"sources[{i}].rms_gain", vals["rms_gain"], "a gain >= 0")
    return SourceRecord(**vals)


def parse_mixture(raw: Any, *, max_sources: int = MAX_SOURCES,
                  warnings: list[RecordWarning] | None = None) -> MixtureRecord:
    """Validate one raw row (any supported layout) into a :class:`MixtureRecord`.

    Raises :class:`InvalidRecordError` (and nothing else) on bad input. Soft problems (the
    weight formula) are appended to ``warnings`` when given.
    """
    if not isinstance(raw, Mapping):
        raise InvalidRecordError(None, "<record>", raw, "a JSON object / dict per mixture")
    mix_id = raw.get("mix_id")
    key = check_mix_id(mix_id)
    try:
        info = raw.get("dataset_info")
        mp = raw.get("mixing_params")
        if info is not None and not isinstance(info, Mapping):
            raise InvalidRecordError(key, "dataset_info", info, "an object")
        if mp is not None and not isinstance(mp, Mapping):
            raise InvalidRecordError(key, "mixing_params", mp, "an object")

        def pick(name: str, nest: Mapping[str, Any] | None) -> Any:
            if name in raw:
                return raw[name]
            if nest is not None and name in nest:
                return nest[name]
            raise InvalidRecordError(key, name, MISSING, "a required field")

        split = normalise_split(_string(key, "split", pick("split", info)))
        if not _SPLIT_NAME.fullmatch(split):
            raise InvalidRecordError(key, "split", split,
                                     "a split name of letters, digits, '_' or '-' (e.g. train, validation, test)")
        sample_rate = _integer(key, "sample_rate", pick("sample_rate", info))
        if not 0 < sample_rate <= 1_000_000:
            raise InvalidRecordError(key, "sample_rate", sample_rate, "a positive rate in Hz (<= 1 MHz)")
        duration = _number(key, "target_duration", pick("target_duration", info))
        if not 0 < duration <= 3600:
            raise InvalidRecordError(key, "target_duration", duration, "a positive duration in seconds (<= 3600)")
        if duration * sample_rate > MAX_FRAMES:  # a hostile row must not make the renderer allocate GBs
            raise InvalidRecordError(key, "target_duration", duration,
                                     f"at most {MAX_FRAMES} samples per mixture (target_duration x sample_rate; "
                                     f"here {duration} s x {sample_rate} Hz)")
        gnf = _number(key, "global_normalization_factor", pick("global_normalization_factor", mp))
        if gnf <= 0:
            raise InvalidRecordError(key, "global_normalization_factor", gnf, "a factor > 0")
        fma = _number(key, "final_max_amplitude", pick("final_max_amplitude", mp))
        if fma < 0:
            raise InvalidRecordError(key, "final_max_amplitude", fma, "an amplitude >= 0")
        if "sources" not in raw:
            raise InvalidRecordError(key, "sources", MISSING, "a required field")
        raw_sources = raw["sources"]
        fast = (_fast_struct_sources(raw_sources, max_sources)
                if _FAST_PATH and type(raw_sources) is dict else None)
        if fast is None:
            src_dicts = _source_dicts(key, raw_sources)
            n = len(src_dicts)
        else:
            n = len(fast)
        if "num_sources" in raw and raw["num_sources"] is not None:
            num_sources = _integer(key, "num_sources", raw["num_sources"])
            if num_sources != n:
                raise InvalidRecordError(key, "num_sources", num_sources,
                                         f"the number of sources listed ({n})")
        if not 1 <= n <= max_sources:
            raise InvalidRecordError(key, "sources", f"{n} sources", f"1..{max_sources} sources")
        sources = fast if fast is not None else tuple(
            _parse_source(key, i, s) for i, s in enumerate(src_dicts))
        if warnings is not None:
            for i, s in enumerate(sources):
                try:
                    expected = s.rms_gain * 10.0 ** (s.snr_db / 20.0)
                except OverflowError:  # absurd snr_db: a mismatch to warn about, not a bad record
                    expected = math.inf
                if not math.isclose(s.applied_weight, expected, rel_tol=WEIGHT_RTOL, abs_tol=1e-9):
                    warnings.append(RecordWarning(
                        key, f"sources[{i}].applied_weight",
                        f"applied_weight {s.applied_weight!r} != rms_gain*10^(snr_db/20) = {expected!r}; "
                        "the renderer uses applied_weight as given"))
        extra = {k: v for k, v in raw.items() if k not in _MIXTURE_KNOWN}
        return MixtureRecord(key, split, sample_rate, duration, n, sources, gnf, fma, extra)
    except InvalidRecordError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:  # defensive: odd containers (e.g. mappings that raise)
        raise InvalidRecordError(key, "<record>", type(exc).__name__ + ": " + str(exc),
                                 "a well-formed mixture record") from exc


# ---- columnar fast path (Arrow batches of the Hub schema) ----------------------------------------
#: ASCII-only mix_id that check_mix_id certainly accepts (printable, no '.', '/', '\\', no space)
_ARROW_SAFE_KEY = r"^[!-\x2d\x30-\x5b\x5d-\x7e]{1,255}$"
_ARROW_SAFE_PATH = r"^[^/\\:\x00-\x1f\x7f]+(/[^/\\\x00-\x1f\x7f]+)+$"
_ARROW_DOT_SEGMENT = r"(^|/)\.\.?(/|$)"
_ARROW_CONTROL = r"[\x00-\x1f\x7f]"
#: splits the fast path lets through: names normalise_split maps to themselves
_CANONICAL_SPLITS = tuple(s for s in ("train", "validation", "test") if normalise_split(s) == s)


def _is_list_of(t: Any, value_check: Callable[[Any], bool]) -> bool:
    import pyarrow as pa

    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and value_check(t.value_type)


def fast_valid_mask(batch: Any, max_sources: int = MAX_SOURCES) -> Any:
    """Rows of an Arrow batch (Hub schema) that :func:`parse_mixture` certainly accepts.

    Vectorised and conservative: ``True`` means the row parses, gives no warning and has a
    canonical split name (``train``/``validation``/``test``); ``False`` means *not sure*, and the
    row must go through :func:`parse_mixture`, which gives the exact error, warning or record.
    Returns ``None`` (every row takes the full path) when the batch's schema is not one the fast
    path handles. The rules mirror :func:`parse_mixture` and :func:`_parse_source`; weights get
    half the tolerance so that a float rounding difference can never hide a warning.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = batch.schema
    names = set(schema.names)
    if "dataset_info" in names or "mixing_params" in names:
        return None
    is_str = lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)  # noqa: E731
    is_num = lambda t: pa.types.is_floating(t) or pa.types.is_integer(t)  # noqa: E731
    is_int = lambda t: pa.types.is_integer(t) and t != pa.uint64()  # noqa: E731 (fits int64)
    want = {"mix_id": is_str, "split": is_str, "sample_rate": is_int,
            "target_duration": is_num, "global_normalization_factor": is_num,
            "final_max_amplitude": is_num, "sources": pa.types.is_struct}
    for name, ok in want.items():
        if name not in names or not ok(schema.field(name).type):
            return None
    if "num_sources" in names and not is_int(schema.field("num_sources").type):
        return None
    stype = schema.field("sources").type
    child = {stype.field(i).name: i for i in range(stype.num_fields)}
    for name in SOURCE_FIELDS:
        if name not in child:
            return None
        t = stype.field(child[name]).type
        if not _is_list_of(t, is_str if name in SOURCE_STRING_FIELDS else pa.types.is_floating):
            return None

    def np_bool(arr) -> np.ndarray:
        return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)

    def np_float(arr) -> np.ndarray:
        return pc.fill_null(pc.cast(arr, pa.float64(), safe=False), np.nan).to_numpy(zero_copy_only=False)

    col = batch.column
    ok = np_bool(pc.match_substring_regex(col("mix_id"), _ARROW_SAFE_KEY))
    ok &= np_bool(pc.is_in(col("split"), value_set=pa.array(_CANONICAL_SPLITS)))
    sr = pc.fill_null(pc.cast(col("sample_rate"), pa.int64()), 0).to_numpy(zero_copy_only=False)
    ok &= (sr > 0) & (sr <= 1_000_000)
    with np.errstate(invalid="ignore", over="ignore"):
        dur = np_float(col("target_duration"))
        ok &= (dur > 0) & (dur <= 3600) & (dur * sr <= MAX_FRAMES)  # NaN (null) fails all
        gnf = np_float(col("global_normalization_factor"))
        ok &= np.isfinite(gnf) & (gnf > 0)
        fma = np_float(col("final_max_amplitude"))
        ok &= np.isfinite(fma) & (fma >= 0)
    sources = col("sources")
    ok &= np_bool(sources.is_valid())
    children = sources.flatten()  # the struct's nulls merged into its children
    lengths = None
    for name in SOURCE_FIELDS:
        lst = children[child[name]]
        n = pc.fill_null(pc.list_value_length(lst), -1).to_numpy(zero_copy_only=False)
        if lengths is None:
            lengths = n
        else:
            ok &= n == lengths
    ok &= (lengths >= 1) & (lengths <= max_sources)
    if "num_sources" in names:
        ns = pc.fill_null(pc.cast(col("num_sources"), pa.int64()), -1).to_numpy(zero_copy_only=False)
        ok &= ns == lengths
    if not ok.any():
        return ok
    # per-source rules on the rows still standing (their lists now align across the fields)
    keep = np.flatnonzero(ok)
    sub = [children[child[name]].take(pa.array(keep)).flatten() for name in SOURCE_FIELDS]
    vals = dict(zip(SOURCE_FIELDS, sub))
    elem_ok = np.ones(len(sub[0]), dtype=bool)
    for name in SOURCE_STRING_FIELDS:
        v = vals[name]
        elem_ok &= np_bool(pc.greater(pc.binary_length(v), 0))
        elem_ok &= ~np_bool(pc.fill_null(pc.match_substring_regex(v, _ARROW_CONTROL), True))
    path = vals["path"]
    elem_ok &= np_bool(pc.match_substring_regex(path, _ARROW_SAFE_PATH))
    elem_ok &= ~np_bool(pc.fill_null(pc.match_substring_regex(path, _ARROW_DOT_SEGMENT), True))
    f = {name: np_float(vals[name]) for name in SOURCE_FLOAT_FIELDS}
    with np.errstate(invalid="ignore", over="ignore"):
        for name in SOURCE_FLOAT_FIELDS:
            elem_ok &= np.isfinite(f[name])
        elem_ok &= (f["chunk_start_second"] >= 0) & (f["chunk_start_second"] < f["chunk_end_second"])
        elem_ok &= (f["crop_start_second"] >= 0) & (f["crop_start_second"] < f["crop_end_second"])
        elem_ok &= f["rms_gain"] >= 0
        w = f["applied_weight"]
        expected = f["rms_gain"] * np.power(10.0, f["snr_db"] / 20.0)
        tol = np.maximum(WEIGHT_RTOL * np.maximum(np.abs(w), np.abs(expected)), 1e-9)
        elem_ok &= np.isfinite(expected) & (np.abs(w - expected) <= 0.5 * tol)
    row_of = np.repeat(np.arange(len(keep)), lengths[keep])
    bad = np.bincount(row_of[~elem_ok], minlength=len(keep)) > 0
    ok[keep[bad]] = False
    return ok
