"""No public function or method of the project takes more than 10 parameters (issue 20).

Options go into the checked config objects (``RenderRecipe``, ``RenderOptions``, ``EvalOptions``,
``SynthesisConfig``, the backends' ``Settings`` ...), not into ever longer argument lists. The scan
reads the source (AST) of every module of ``mixing/``, ``curation/``, ``dataset_card/`` and
``hive.py``: a function is public when its name and the names of the classes around it do not start
with ``_`` (``__init__`` of a public class is public); functions nested in functions are not.
``self``/``cls`` do not count; ``*args`` and ``**kwargs`` count as one each.

No exemption. Generated ``__init__`` methods of dataclasses (the config objects themselves) are
not written in the source and so not scanned: a config object holds many options by design; it is
what keeps the functions' lists short.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 10


def _count(fn: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> int:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    n = len(positional) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)
    if in_class and not is_static and positional and positional[0].arg in ("self", "cls"):
        n -= 1
    return n


def too_long(source: str, where: str) -> list[str]:
    """``where:line name (n parameters)`` for each public function of ``source`` over the limit."""
    found: list[str] = []

    def visit(node: ast.AST, public: bool, in_class: bool, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, public and not child.name.startswith("_"), True, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name_public = not child.name.startswith("_") or child.name == "__init__"
                n = _count(child, in_class)
                if public and name_public and n > LIMIT:
                    found.append(f"{where}:{child.lineno} {prefix}{child.name} ({n} parameters)")
            elif isinstance(child, (ast.If, ast.Try, ast.With)):  # definitions under `if TYPE_CHECKING:` etc.
                visit(child, public, in_class, prefix)

    visit(ast.parse(source), True, False, "")
    return found


def project_modules() -> list[Path]:
    files = [ROOT / "hive.py"]
    for package in ("mixing", "curation", "dataset_card"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def test_no_public_function_takes_more_than_ten_parameters():
    files = project_modules()
    assert len(files) > 50, f"found only {len(files)} modules under {ROOT}; the scan looks in the wrong place"
    found = [hit for f in files for hit in too_long(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))]
    assert not found, ("public functions over 10 parameters (fold options into a checked config object):\n"
                       + "\n".join(found))


def test_the_scan_counts_as_documented():
    src = '''
def eleven(a, b, c, d, e, f, g, h, i, j, k): ...
def ten(a, b, c, d, e, f, g, h, i, j): ...
def starred(a, b, c, d, e, f, g, h, i, *args, **kwargs): ...
def _private(a, b, c, d, e, f, g, h, i, j, k): ...
class Public:
    def __init__(self, a, b, c, d, e, f, g, h, i, j): ...
    def method(self, a, b, c, d, e, f, g, h, i, j, *, k=1): ...
    @staticmethod
    def static(self, a, b, c, d, e, f, g, h, i, j): ...
    def _hidden(self, a, b, c, d, e, f, g, h, i, j, k): ...
class _Private:
    def __init__(self, a, b, c, d, e, f, g, h, i, j, k): ...
def outer():
    def nested(a, b, c, d, e, f, g, h, i, j, k): ...
'''
    got = too_long(src, "m.py")
    assert got == ["m.py:2 eleven (11 parameters)", "m.py:4 starred (11 parameters)",
                   "m.py:8 Public.method (11 parameters)", "m.py:10 Public.static (11 parameters)"]


def test_moved_keywords_are_refused_naming_the_new_place(tmp_path):
    """The public functions whose options moved into a config object refuse the old keywords in one
    line naming the new place, before any work (nothing is written)."""
    import pytest

    from dataset_card.inspect.run import inspect
    from mixing.check import check_corpora
    from mixing.evaluate import evaluate
    from mixing.moved_arguments import MovedArgumentError
    from mixing.synthesis.labelled import build_pool_from_labels

    out = tmp_path / "out"
    calls = [
        (lambda: inspect(tmp_path / "nothing", out, sample=3), r"inspect: sample= moved to choice=InspectChoice\(sample="),
        (lambda: check_corpora(tmp_path / "m", {}, revision="v1"),
         r"check_corpora: revision= moved to source=open_metadata\(location, revision=\.\.\.\)"),
        (lambda: evaluate(tmp_path, out, with_sdr=False), r"evaluate: with_sdr= moved to options=EvalOptions"),
        (lambda: build_pool_from_labels(tmp_path / "l.csv", {}, prefix="ESC50", chunk_seconds=5),
         r"prefix= moved to config=LabelledListConfig\(\.\.\.\); chunk_seconds= moved to config=LabelledListConfig"),
    ]
    for call, message in calls:
        with pytest.raises(MovedArgumentError, match=message) as info:
            call()
        assert "\n" not in str(info.value) and "docs/python-api.md" in str(info.value)
    assert not out.exists()
