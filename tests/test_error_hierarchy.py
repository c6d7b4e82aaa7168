"""Every exception class the project defines derives from :class:`mixing.errors.HiveError`, so a
caller (and the CLI's one-line error handler) can catch all of Hive's deliberate errors at once.

The test imports every module of ``mixing``, ``curation`` and ``dataset_card`` and ``hive.py`` (not
``__main__`` modules, which would run a command) and inspects the classes each defines."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from mixing.errors import HiveError

PACKAGES = ("mixing", "curation", "dataset_card")


def project_modules() -> list[str]:
    names = ["hive"]
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                names.append(info.name)
    return sorted(names)


def exception_classes(module) -> list[type]:
    return [obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__]


def test_the_walk_finds_the_modules_and_their_errors():
    names = project_modules()
    # a walk that found nothing would let the test below pass vacuously
    for expected in ("hive", "mixing.errors", "mixing.metadata_source", "curation.publish",
                     "curation.models.openai_judge", "dataset_card.card", "mixing.synthesis.sampler"):
        assert expected in names
    found = {cls.__name__ for name in names for cls in exception_classes(importlib.import_module(name))}
    assert {"HiveError", "MetadataSourceError", "PublishError", "RequestFailed", "NoValidDraw",
            "UnparseableAnswer", "PromptError"} <= found


@pytest.mark.parametrize("name", project_modules())
def test_every_project_exception_derives_from_hive_error(name):
    module = importlib.import_module(name)
    outside = [f"{cls.__module__}.{cls.__qualname__}{tuple(b.__name__ for b in cls.__bases__)}"
               for cls in exception_classes(module) if not issubclass(cls, HiveError)]
    assert not outside, f"exception classes not derived from mixing.errors.HiveError: {outside}"


def test_hive_errors_keep_their_standard_bases():
    """Callers that catch ValueError / OSError / ImportError keep working."""
    from curation.curate.prompt import PromptError
    from curation.models.openai_judge import RequestFailed
    from curation.stages.base import InvalidAnswer, UnparseableAnswer
    from mixing.errors import MetadataSourceError, MissingSourceAudioError
    from mixing.synthesis.sampler import NoValidDraw

    assert issubclass(PromptError, ValueError) and issubclass(UnparseableAnswer, ValueError)
    assert issubclass(InvalidAnswer, ValueError) and issubclass(NoValidDraw, RuntimeError)
    assert issubclass(MetadataSourceError, ValueError) and issubclass(MissingSourceAudioError, FileNotFoundError)
    assert RequestFailed("boom", True).retry is True
