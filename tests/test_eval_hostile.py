"""Hostile input of ``hive eval`` and the plots (issue 19): a separator that returns bfloat16, calls
``sys.exit(0)`` (eval used to exit 0 having evaluated nothing) or does not parse; ``--name``
without a separator; mixtures of 0.0001 s; NaN, infinite or huge samples in shards and estimates
(eval used to exit 0 with NaN rows); a label ``$\\foo$`` (matplotlib mathtext crashed ``card``,
``eval`` and ``inspect``). Real renders of the toy corpus, the real CLI, exit status and one line."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixing.cli import main
from mixing.metadata_io import iter_records, write_jsonl

from cli_output import one_error_line as _one_error_line

ROOT = Path(__file__).resolve().parents[1]
DOLLAR = r"$\foo$"



def _records(toy_corpus, n: int = 2, **changes):
    recs = list(iter_records(toy_corpus.parquet_dir, split="test", num_sources=2))[:n]
    return [r.replace(**changes) if changes else r for r in recs]


@pytest.fixture(scope="module")
def small_render(toy_corpus, tmp_path_factory):
    """Two test mixtures whose labels are ``$\\foo$`` (mathtext that does not parse)."""
    recs = [r.replace(sources=tuple(s.replace(label=DOLLAR) for s in r.sources)) for r in _records(toy_corpus)]
    folder = tmp_path_factory.mktemp("eval-hostile")
    write_jsonl(recs, folder / "metadata.jsonl")
    out = folder / "rendered"
    assert main(["render", "--metadata", str(folder / "metadata.jsonl"), "--dataset-paths",
                 str(toy_corpus.dataset_paths), "--output", str(out), "--no-progress"]) == 0
    return out, folder / "metadata.jsonl"


def _separator(tmp_path: Path, body: str) -> str:
    path = tmp_path / "hostile_sep.py"
    path.write_text(textwrap.dedent(body))
    return f"{path}:separate"


def _eval(rendered: Path, out: Path, *extra: str) -> int:
    return main(["eval", "--rendered", str(rendered), "--output", str(out), "--no-sdr", "--no-progress", *extra])


@pytest.mark.slow  # end to end over the toy corpus
def test_a_bfloat16_separator_is_evaluated(small_render, tmp_path):
    pytest.importorskip("torch")
    rendered, _ = small_render
    sep = _separator(tmp_path, """
        import torch
        def separate(mix, sr, label):
            return torch.from_numpy(mix).to(torch.bfloat16) * 0.5
    """)
    assert _eval(rendered, tmp_path / "out", "--separator", sep, "--name", DOLLAR) == 0
    text = (tmp_path / "out" / "results.csv").read_text()
    assert text.count(f"{DOLLAR},test,") == 4  # every source of the named system (plotted too)
    assert (tmp_path / "out" / "si_sdri.png").stat().st_size > 0


@pytest.mark.parametrize("body,expected", [
    ("import sys\ndef separate(mix, sr, label):\n    sys.exit(0)\n", "the separator called sys.exit(0)"),
    ("import sys\nsys.exit(0)\ndef separate(mix, sr, label):\n    return mix\n", "called sys.exit(0)"),
    ("def separate(mix, sr, label)\n    return mix\n", "SyntaxError at line 1"),
    ("def separate(mix, sr, label):\n    return None\n", "shape (), expected (441000,)"),
    ("def separate(mix, sr, label):\n    return mix * float('nan')\n", "are NaN or infinite"),
    ("def separate(mix, sr, label):\n    return mix.astype('float64') * 1e300\n", "expected audio within ±1e+06"),
])
def test_a_hostile_separator_is_refused_in_one_line(small_render, tmp_path, capsys, body, expected):
    rendered, _ = small_render
    sep = _separator(tmp_path, body)
    assert _eval(rendered, tmp_path / "out", "--separator", sep) == 2
    assert expected in _one_error_line(capsys, "eval")
    assert not (tmp_path / "out" / "results.csv").exists()


@pytest.mark.slow
def test_a_separator_calling_sys_exit_does_not_end_hive_with_status_0(small_render, tmp_path):
    rendered, _ = small_render
    sep = _separator(tmp_path, "import sys\ndef separate(mix, sr, label):\n    sys.exit(0)\n")
    proc = subprocess.run([sys.executable, "-m", "mixing", "eval", "--rendered", str(rendered), "--output",
                           str(tmp_path / "out"), "--separator", sep, "--no-sdr", "--no-progress"],
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)


def test_name_without_a_separator_is_refused(small_render, tmp_path, capsys):
    rendered, _ = small_render
    assert _eval(rendered, tmp_path / "out", "--name", "mine") == 2
    assert "--name 'mine' names the evaluated system, but none is given" in _one_error_line(capsys, "eval")


def test_mixtures_of_a_tenth_of_a_millisecond_are_rendered_verified_and_evaluated(toy_corpus, tmp_path, capsys):
    # 4 samples at 44.1 kHz, 1 s into each chunk; mixtures whose 4 samples are digital silence in a
    # source (the toy clock ticks) are skipped: verify rightly flags a weighted source rendered silent
    from mixing.render import Renderer

    renderer, recs = Renderer(str(toy_corpus.dataset_paths)), []
    for r in iter_records(toy_corpus.parquet_dir):
        tiny = r.replace(target_duration=0.0001,
                         sources=tuple(s.replace(crop_start_second=1.0, crop_end_second=1.0001) for s in r.sources))
        if np.all(np.any(renderer.render(tiny).stems != 0, axis=1)):
            recs.append(tiny)
        if len(recs) == 2:
            break
    write_jsonl(recs, tmp_path / "tiny.jsonl")
    out = tmp_path / "rendered"
    assert main(["render", "--metadata", str(tmp_path / "tiny.jsonl"), "--dataset-paths",
                 str(toy_corpus.dataset_paths), "--output", str(out), "--no-progress"]) == 0
    assert main(["verify", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", "--rendered", str(out), "--output", str(tmp_path / "eval"), "--no-progress"]) == 0
    with open(tmp_path / "eval" / "results.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * sum(r.num_sources for r in recs)  # mixture and irm rows of every source
    assert all(row["si_sdr"] != "" for row in rows)
    assert all(row["sdr"] == "" for row in rows)  # SDR: undefined for 4 samples (the filter is 512)


def _write_shard(toy_corpus, rendered: Path, transform) -> None:
    """A shard as an older or damaged render left it: ``transform(stems)`` -> stems (mix = their sum)."""
    from mixing.render import Renderer
    from mixing.shards import make_writer

    rec = _records(toy_corpus, 1)[0]
    r = Renderer(str(toy_corpus.dataset_paths)).render(rec)
    r.stems = transform(r.stems.copy())
    with np.errstate(invalid="ignore", over="ignore"):
        r.mix = r.stems.sum(axis=0).astype(np.float32)
    writer = make_writer("webdataset", rendered / "test" / "2mix" / "tar_000000.tar", "wav")
    writer.add(r)
    writer.close()


def _with_nan(stems):
    stems[1, 10] = np.nan
    return stems


@pytest.mark.parametrize("transform,expected", [
    (_with_nan, "mix: 1 of 441000 samples are NaN or infinite"),
    (lambda s: s * np.float32(1e30), "expected audio within ±1e+06"),
])
def test_shards_with_nan_or_huge_samples_are_refused(toy_corpus, tmp_path, capsys, transform, expected):
    rendered = tmp_path / "rendered"
    _write_shard(toy_corpus, rendered, transform)
    assert _eval(rendered, tmp_path / "out") == 2
    line = _one_error_line(capsys, "eval")
    assert expected in line and "re-render it" in line


@pytest.mark.parametrize("value,expected", [(np.inf, "NaN or infinite"), (3e10, "expected audio within")])
def test_estimates_with_infinite_or_huge_samples_are_refused(small_render, tmp_path, capsys, value, expected):
    from mixing.evaluate.rendered import iter_rendered

    rendered, _ = small_render
    for sample in iter_rendered(rendered):
        for i, stem in enumerate(sample.stems, 1):
            est = stem.astype(np.float32)
            est[5] = value
            path = tmp_path / "est" / sample.split / sample.mix_id / f"s{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, est, sample.sample_rate, subtype="FLOAT")
    assert _eval(rendered, tmp_path / "out", "--estimates", str(tmp_path / "est")) == 2
    assert expected in _one_error_line(capsys, "eval")


@pytest.mark.slow  # end to end over the toy corpus
def test_card_and_inspect_draw_a_mathtext_label_literally(small_render, toy_corpus, tmp_path):
    pytest.importorskip("matplotlib")
    rendered, metadata = small_render
    assert main(["card", str(metadata), "--output", str(tmp_path / "card")]) == 0
    assert (tmp_path / "card" / "assets" / "label_distribution.png").stat().st_size > 0
    assert main(["inspect", str(metadata), "--dataset-paths", str(toy_corpus.dataset_paths), "--output",
                 str(tmp_path / "pages"), "--sample", "2", "--no-progress"]) == 0
    assert main(["inspect", str(rendered), "--output", str(tmp_path / "pages2"), "--no-progress"]) == 0


@pytest.mark.slow  # end to end over the toy corpus
def test_every_plotting_function_draws_text_literally():
    """One rule for every plot: each function that builds a figure is decorated with
    mixing.plotting.literal_text (a new plot cannot forget it)."""
    import ast

    missing = []
    for room in ("mixing", "dataset_card", "curation"):
        for path in sorted((ROOT / room).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef):
                    continue
                calls = {c.func.attr for c in ast.walk(node) if isinstance(c, ast.Call)
                         and isinstance(c.func, ast.Attribute)}
                if not calls & {"add_subplot", "subplots", "savefig"}:
                    continue
                names = {d.id if isinstance(d, ast.Name) else getattr(d, "attr", "") for d in node.decorator_list}
                if "literal_text" not in names:
                    missing.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert not missing, "plots that may parse labels as mathtext: " + ", ".join(missing)
