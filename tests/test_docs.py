"""The README is the short page a user reads first; everything else is in docs/*.md, reachable
from it (issue 20): its length, every relative link (file and anchor), every docs page linked,
every section of the former long README still a heading of a linked page, and the two set-up
commands it shows are the ones the Makefile defines and .ci/run runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")

#: the sections of the README before issue 20 (598-822 lines): each is a heading of a docs page now
FORMER_SECTIONS = [
    "Set-up: the two commands", "Help, logging and exit status", "Metadata sources", "Corpora: `dataset_paths.json`",
    "Before a long render: `hive check`", "Offline: `HF_HUB_OFFLINE=1`", "Failure reasons",
    "Rendering: `hive render` and `hive verify`", "Listening and looking: `hive inspect`",
    "In training: the `datasets` builder in `hive.py`", "Train a separator: query examples, dynamic mixing, label subsets",
    "New mixtures: `hive synthesize`", "New single-event clips: `hive mine`", "Model failures",
    "Differences from the reference scripts", "Curation: `hive curate`",
    "Publishing a new revision: `hive card` and `hive publish`", "Evaluating a separator: `hive eval`", "Python API",
    "Development", "Benchmarks", "The source store: `hive store`",
]


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (links and headings there are not markdown)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def headings(text: str) -> list[str]:
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6}) (.+)$", prose(text), re.M)]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but ``-``/``_`` dropped, spaces -> ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 200, f"README.md has {n} lines; keep it <= 200 and move detail into docs/*.md"


def test_every_relative_link_resolves_to_a_file_and_anchor():
    assert len(pages()) >= 10, "docs/*.md are missing"
    broken = []
    checked = 0
    for page in pages():
        for target in links(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, frag = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            checked += 1
            if not dest.is_file():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no file {dest})")
            elif frag and dest.suffix == ".md" and frag not in {anchor(h) for h in headings(dest.read_text())}:
                broken.append(f"{page.relative_to(ROOT)}: {target} (no heading with anchor #{frag})")
    assert checked >= 30, f"only {checked} relative links found; the link pattern is wrong"
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README)}
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs pages not linked from README.md: {unlinked}"


def test_every_former_readme_section_is_a_heading_of_a_linked_page():
    text = {p: headings(p.read_text(encoding="utf-8")) for p in pages()}
    missing = [s for s in FORMER_SECTIONS if not any(s in hs for hs in text.values())]
    assert not missing, f"sections of the former README found in no page: {missing}"


def test_anchor_matches_githubs_rule():
    assert anchor("Corpora: `dataset_paths.json`") == "corpora-dataset_pathsjson"
    assert anchor("Before a long render: `hive check`") == "before-a-long-render-hive-check"


def test_the_two_setup_commands_are_the_makefiles_and_ci_runs_them():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Set-up"):]
    section = section[:section.index("\n## ", 5)]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].split() for line in block.splitlines() if line.strip()]
    assert commands == [["make", "demo"], ["make", "test"]], commands
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no target {target!r}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ran = re.findall(r'"\$make_bin" (\w[\w-]*)\)', ci)
    assert ran == ["demo", "test"], ran


def test_test_fast_leaves_out_only_the_slow_marker_and_make_test_runs_everything():
    import tomllib

    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("slow:") for m in markers), markers
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipes = {m.group(1): m.group(2) for m in re.finditer(r"^([\w-]+):[^\n]*\n((?:\t[^\n]*\n)+)", makefile, re.M)}
    assert '-m pytest -q -m "not slow"' in recipes["test-fast"]
    assert "-m pytest -q" in recipes["test"] and " -m " not in recipes["test"].split("pytest", 1)[1]
    assert "make test-fast" in README.read_text(encoding="utf-8")


def test_the_quickstart_commands_parse_with_the_real_cli(tmp_path):
    """Every `hive ...` line of the README's quickstart is accepted by the command's own parser
    (flags renamed or removed fail here), and the Python line names functions `hive` exports."""
    import shlex

    import hive
    from mixing.cli import build_parser

    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quickstart"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.startswith("hive ")]
    assert [line[1] for line in lines] == ["check", "store", "render"]
    for argv in lines:
        args = build_parser(argv[1]).parse_args(argv[1:])
        assert args.command == argv[1]
    python = re.search(r"from hive import (\w+)", block).group(1)
    assert callable(getattr(hive, python))
