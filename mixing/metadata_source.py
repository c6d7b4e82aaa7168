"""Where mixture metadata is and which files, configs and splits it has — resolved in one place.

A metadata location is one of (:func:`classify_location`):

* ``hub``        – a Hub dataset id (``ORG/NAME``) with no local file or folder of that name;
* ``configs``    – a local folder in the Hub layout whose ``README.md`` YAML header declares
  ``configs`` (read exactly as the Hub reads that repository: each config lists its data files
  per split);
* ``parquet``    – a ``.parquet`` file, or a folder of Parquet files without README configs;
* ``json``       – a legacy JSON file (a list of records) or a legacy folder
  ``{train,val,test}/{2..5}mix/*.json`` (``.jsonl`` files in it are read as JSON Lines);
* ``jsonl``      – a JSON Lines file.

The README YAML header is read once (:func:`readme_configs`); config names are listed by
:func:`config_names` and one config is picked by :func:`choose_config` with one rule for local
folders and Hub ids alike. :func:`local_files` and :func:`hub_split_files` turn a location and a
config into :class:`MetadataFile` objects (one file, or one whole Hub split, each). Nothing here
reads a metadata row; :mod:`mixing.metadata_io` reads them, :mod:`mixing.streaming` plans work on them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from .errors import MetadataSourceError
from .input_files import check_regular_file, parse_yaml, read_text
from .metadata import SPLIT_ALIASES, SPLITS, normalise_split

LocationKind = Literal["hub", "configs", "parquet", "json", "jsonl"]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_KINDS = {".parquet": "parquet", ".json": "json", ".jsonl": "jsonl"}
_YAML_HEADER = re.compile(r"^---\s*\n(.*?)\n---\s*(\n|$)", re.S)


@dataclass(frozen=True)
class MetadataFile:
    """One metadata file: what can be read independently (a local or Hub Parquet/JSON/JSONL file, a
    whole Hub split that ``datasets`` streams, or an in-memory table). Not a *work unit* (what
    the stream renders in one process: :class:`mixing.work_units.WorkUnit`) nor an *output shard*
    (a tar or Parquet file ``hive render`` writes)."""

    kind: str  # "parquet" | "json" | "jsonl" | "hub" | "memory"
    location: str
    split: str | None = None  # known from the file layout, else None (rows carry it)
    revision: str | None = None
    config: str | None = None
    #: the rows themselves for kind "memory" (:mod:`mixing.metadata_memory`)
    data: Any = field(default=None, compare=False, hash=False, repr=False)

    def __str__(self) -> str:
        return self.location


#: the name before issue 20 ("shard" now means only an output shard of ``hive render``)
MetadataShard = MetadataFile


@dataclass(frozen=True)
class ConfigSpec:
    """One entry of a README ``configs`` list: its name, whether it is the default, and its data
    files as ``(split or None, glob pattern)`` pairs (None: a plain pattern without a split)."""

    name: str
    default: bool
    data_files: tuple[tuple[str | None, str], ...]


@dataclass(frozen=True)
class Location:
    """A classified metadata location (see the module docstring for the kinds)."""

    kind: LocationKind
    location: str
    path: Path | None = None  # the local file or folder; None for a Hub id
    configs: tuple[ConfigSpec, ...] = ()  # kind "configs" only


# ---- the README YAML header ------------------------------------------------------------------
def _data_files(readme: Path, name: str, value: Any) -> tuple[tuple[str | None, str], ...]:
    def bad(what: Any) -> MetadataSourceError:
        return MetadataSourceError(
            f"{readme}: config {name!r} has data_files {what!r}; expected a glob pattern, a list of "
            "patterns, or a list of {split: NAME, path: PATTERN(S)} entries; fix the YAML header")

    entries = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(entries, list):
        raise bad(value)
    out: list[tuple[str | None, str]] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append((None, entry))
            continue
        if not isinstance(entry, dict):
            raise bad(entry)
        split = normalise_split(str(entry.get("split", "train")))
        patterns = entry.get("path", [])
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise bad(entry)
        out.extend((split, p) for p in patterns)
    return tuple(out)


def readme_configs(folder: str | os.PathLike) -> tuple[ConfigSpec, ...] | None:
    """The ``configs`` that ``folder/README.md`` declares in its YAML header; None when there is no
    README, no header, or no ``configs`` list. A header that does not parse, or a malformed config
    entry, is a :class:`MetadataSourceError` (the Hub would reject that card too)."""
    readme = Path(folder) / "README.md"
    if not os.path.lexists(readme):
        return None
    m = _YAML_HEADER.match(read_text(readme, "dataset card", MetadataSourceError, max_bytes=64 << 20))
    if not m:
        return None
    header = parse_yaml(m.group(1), f"{readme}: the YAML header", "a mapping (the card's metadata); fix or "
                        "remove it", MetadataSourceError) or {}
    configs = header.get("configs") if isinstance(header, dict) else None
    if not isinstance(configs, list) or not configs:
        return None
    out = []
    for i, c in enumerate(configs):
        if not isinstance(c, dict):
            raise MetadataSourceError(f"{readme}: configs[{i}] is {c!r}; expected a mapping with config_name "
                                      "and data_files; fix the YAML header")
        name = str(c.get("config_name", "default"))
        out.append(ConfigSpec(name, bool(c.get("default", False)), _data_files(readme, name, c.get("data_files", []))))
    return tuple(out)


# ---- classifying a location ------------------------------------------------------------------
def looks_like_hub_id(location: str) -> bool:
    return bool(HUB_ID.match(location)) and not location.startswith((".", "~"))


def classify_location(source: str | os.PathLike) -> Location:
    """What kind of metadata location ``source`` is (a local file or folder wins over a Hub id of
    the same name). Reads at most the folder's README header and file names, never a row."""
    location = os.fspath(source)
    path = Path(location).expanduser()
    if os.path.exists(path) and not path.is_dir():
        check_regular_file(path, "metadata file", MetadataSourceError)  # a FIFO or device: refused unopened
    if path.is_file():
        suffix = path.suffix.lower()
        kind = _FILE_KINDS.get(suffix)
        if kind is None:
            raise MetadataSourceError(
                f"metadata file {path} has suffix {suffix!r}; expected .parquet, .json (legacy list "
                "of records) or .jsonl")
        return Location(kind, str(path), path)  # type: ignore[arg-type]
    if path.is_dir():
        configs = readme_configs(path)
        if configs:
            return Location("configs", str(path), path, configs)
        if any(p.is_file() for p in path.rglob("*.parquet")):
            return Location("parquet", str(path), path)
        if _legacy_files(path):
            return Location("json", str(path), path)
        raise MetadataSourceError(
            f"metadata folder {path} holds no .parquet, .json or .jsonl file; expected the Hub layout "
            "(data/*.parquet) or the legacy layout (metadata/{train,val,test}/{2..5}mix/*.json)")
    if location.lower().endswith(tuple(_FILE_KINDS)):
        raise MetadataSourceError(
            f"metadata source {location!r} is neither an existing file or folder nor a Hub dataset id "
            "('ORG/NAME'): the file does not exist; check the path")
    if looks_like_hub_id(location):
        return Location("hub", location)
    raise MetadataSourceError(
        f"metadata source {location!r} is neither an existing file or folder nor a Hub dataset id "
        "('ORG/NAME'); check the path, or give the Hub id such as 'ShandaAI/Hive'")


# ---- configs -----------------------------------------------------------------------------------
def _hub_config_names(location: str, revision: str | None) -> tuple[list[str], str | None]:
    import datasets

    try:
        names = list(datasets.get_dataset_config_names(location, revision=revision))
        default = datasets.get_dataset_default_config_name(location, revision=revision)
    except Exception as exc:  # noqa: BLE001 - any resolution failure is reported the same way
        raise MetadataSourceError(f"{location}: cannot list the dataset's configs ({exc}); check the "
                                  "Hub id / revision, or your network and token") from exc
    return names, default


def config_names(loc: Location, revision: str | None = None) -> list[str]:
    """Config names of a ``configs`` folder (from its README) or a Hub id (asks the Hub); ``[]``
    for the other kinds, which have no configs."""
    if loc.kind == "configs":
        return [c.name for c in loc.configs]
    if loc.kind == "hub":
        return _hub_config_names(loc.location, revision)[0]
    return []


def choose_config(where: str, names: Sequence[str], requested: str | None, *, default: str | None = None,
                  num_sources: int | None = None) -> str | None:
    """The config to read: ``requested`` (which must be one of ``names``), else ``{n}mix`` when
    ``num_sources`` is given and exists, else the declared ``default``, else ``all``, else the first.
    None only when ``names`` is empty and nothing was requested."""
    if requested is not None:
        if names and requested not in names:
            raise MetadataSourceError(f"{where}: config {requested!r} not found; the metadata declares "
                                      f"{list(names)}; pass one of these")
        return requested
    if num_sources is not None and f"{num_sources}mix" in names:
        return f"{num_sources}mix"
    if default is not None and default in names:
        return default
    if "all" in names:
        return "all"
    return names[0] if names else None


# ---- files of a config / a location ----------------------------------------------------------
def split_from_path(rel: Path) -> str | None:
    """The split a file's relative path names (a folder ``train``/``val``/…, or a name prefix)."""
    for part in rel.parts[:-1]:
        s = SPLIT_ALIASES.get(part.lower())
        if s:
            return s
    token = re.split(r"[-_.\s]", rel.name, maxsplit=1)[0].lower()
    return SPLIT_ALIASES.get(token)


def _legacy_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json*") if p.is_file() and p.suffix.lower() in (".json", ".jsonl")
                  and p.name != "dataset_paths.json" and not p.name.startswith("_"))


def _legacy_order(root: Path, files: list[Path]) -> list[Path]:
    """Split order train, validation, test; then by number of sources; then by name."""
    order = {s: i for i, s in enumerate(SPLITS)}

    def key(p: Path):
        rel = p.relative_to(root)
        split = split_from_path(rel)
        nmix = next((int(m.group(1)) for part in rel.parts if (m := re.fullmatch(r"(\d+)mix", part))), 0)
        return (order.get(split, len(order)), nmix, str(rel))

    return sorted(files, key=key)


def _file_kind(path: Path, where: str) -> str:
    kind = _FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise MetadataSourceError(f"{where}: data file {path} has suffix {path.suffix!r}; expected .parquet, "
                                  ".json or .jsonl")
    return kind


def _glob_files(folder: Path, pattern: str, where: str) -> list[Path]:
    """Files under ``folder`` matching a README ``data_files`` pattern (relative, inside the folder)."""
    if not pattern or Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise MetadataSourceError(f"{where}: data_files pattern {pattern!r} is not a relative path inside "
                                  f"{folder}; expected e.g. 'data/train-*.parquet'; fix the YAML header")
    return sorted(f for f in folder.glob(pattern) if f.is_file())


def _config_files(loc: Location, config: str | None, num_sources: int | None) -> list[MetadataFile]:
    folder = loc.path
    if folder is None:
        raise MetadataSourceError(f"{loc.location}: not a local folder")
    readme = folder / "README.md"
    default = next((c.name for c in loc.configs if c.default), None)
    name = choose_config(str(readme), [c.name for c in loc.configs], config, default=default,
                         num_sources=num_sources)
    chosen = next(c for c in loc.configs if c.name == name)
    files: list[MetadataFile] = []
    for split, pattern in chosen.data_files:
        for f in _glob_files(folder, pattern, str(readme)):
            files.append(MetadataFile(_file_kind(f, str(readme)), str(f),
                                        split or split_from_path(f.relative_to(folder)), config=chosen.name))
    if not files:
        raise MetadataSourceError(f"{folder}: config {chosen.name!r} matches no data file (README.md lists "
                                  f"{[p for _, p in chosen.data_files]}); check the patterns or the files")
    return files


def local_files(loc: Location, *, config: str | None = None, num_sources: int | None = None) -> list[MetadataFile]:
    """The files of a local location, in a deterministic order (configs folder: the chosen config's
    files in README order; Parquet folder: by path; legacy folder: split, sources, name)."""
    path = loc.path
    if path is None or loc.kind == "hub":
        raise MetadataSourceError(f"{loc.location}: a Hub id has no local files; use hub_split_files")
    if loc.kind == "configs":
        return _config_files(loc, config, num_sources)
    if path.is_file():
        return [MetadataFile(loc.kind, str(path), split_from_path(Path(path.name)))]
    if loc.kind == "parquet":
        return [MetadataFile("parquet", str(p), split_from_path(p.relative_to(path)))
                for p in sorted(p for p in path.rglob("*.parquet") if p.is_file())]
    return [MetadataFile(p.suffix.lower().lstrip("."), str(p), split_from_path(p.relative_to(path)))
            for p in _legacy_order(path, _legacy_files(path))]


def hub_split_files(location: str, *, revision: str | None = None, config: str | None = None,
                    num_sources: int | None = None) -> dict[str, list[MetadataFile]]:
    """``{split: files}`` of one config of a Hub dataset, resolved the way ``datasets`` resolves it
    (``load_dataset_builder(...).config.data_files``): Parquet files become one file each (read
    with range requests); other data files one ``hub`` file per split (streamed by ``datasets``)."""
    import datasets

    names, default = _hub_config_names(location, revision)
    config = choose_config(location, names, config, default=default, num_sources=num_sources)
    try:
        builder = datasets.load_dataset_builder(location, config, revision=revision)
    except Exception as exc:  # noqa: BLE001
        raise MetadataSourceError(f"{location}: cannot resolve config {config!r} ({exc}); check the "
                                  "Hub id, revision and config name") from exc
    out: dict[str, list[MetadataFile]] = {}
    for split_name, files in (builder.config.data_files or {}).items():
        split = normalise_split(str(split_name))
        files = [str(f) for f in files]
        if files and all(f.lower().endswith(".parquet") for f in files):
            out[split] = [MetadataFile("parquet", f, split, revision, config) for f in files]
        else:
            out[split] = [MetadataFile("hub", location, split, revision, config)]
    if not out:
        raise MetadataSourceError(f"{location}: config {config!r} has no data files")
    return out


def location_files(loc: Location) -> list[Path]:
    """Every local file that reading ``loc`` may depend on, sorted: the file itself; a folder's
    README.md and the data files of all its configs (or all its Parquet / legacy JSON files).
    ``[]`` for a Hub id. What a cache key of the metadata should cover."""
    path = loc.path
    if path is None:
        return []
    if path.is_file():
        return [path]
    files: set[Path] = set()
    if (path / "README.md").is_file():
        files.add(path / "README.md")
    if loc.kind == "configs":
        files.update(f for c in loc.configs for _, pattern in c.data_files
                     for f in _glob_files(path, pattern, str(path / "README.md")))
    elif loc.kind == "parquet":
        files.update(p for p in path.rglob("*.parquet") if p.is_file())
    else:
        files.update(_legacy_files(path))
    return sorted(files)
