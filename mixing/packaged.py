"""Data files shipped inside the package (see ``mixing/data/NOTICE.md`` for origin and licences).

* the Hive ontology (the pruned AudioSet ontology of Hive's pipeline), reduced to structure;
* the AudioSet ontology v1, reduced to structure;
* the AudioSet label index (``index, mid, display_name``) that AudioSet taggers output.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

HIVE_ONTOLOGY = "hive_ontology.json"
AUDIOSET_ONTOLOGY = "audioset_ontology.json"
AUDIOSET_LABELS = "audioset_class_labels_indices.csv"


def data_path(name: str) -> Path:
    """The file ``name`` of the package data, as a filesystem path."""
    path = Path(str(resources.files("mixing") / "data" / name))
    if not path.is_file():
        raise FileNotFoundError(f"package data file {name!r} is missing at {path}; "
                                f"expected it in the installed package; reinstall hive-uss.")
    return path


def hive_ontology_path() -> Path:
    return data_path(HIVE_ONTOLOGY)


def audioset_ontology_path() -> Path:
    return data_path(AUDIOSET_ONTOLOGY)


def audioset_labels_path() -> Path:
    return data_path(AUDIOSET_LABELS)


@lru_cache(maxsize=None)
def hive_ontology():
    """The shipped Hive ontology (loaded once per process)."""
    from mixing.ontology import Ontology
    return Ontology.from_json(hive_ontology_path())


@lru_cache(maxsize=None)
def audioset_ontology():
    """The shipped AudioSet ontology (loaded once per process)."""
    from mixing.ontology import Ontology
    return Ontology.from_json(audioset_ontology_path())
