"""The `hive` command: every subcommand has --help, verbosity works anywhere, and a real
`accelerate launch` of the render entry point splits shards over ranks like --rank/--world-size."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixing.cli import SUBCOMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: hive {name}")
    assert "--verbose" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_verbosity_before_or_after_the_subcommand():
    base = ["check", "--metadata", "m", "--dataset-paths", "d"]
    assert build_parser("check").parse_args(base).verbose == 0
    assert build_parser("check").parse_args(["-v", *base]).verbose == 1
    assert build_parser("check").parse_args([*base, "-vv"]).verbose == 2


@pytest.mark.slow
def test_console_script_runs_as_a_module():
    r = subprocess.run([sys.executable, "-m", "mixing", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "usage: hive" in r.stdout


def test_project_errors_become_a_message_and_status_2(tmp_path, capsys):
    status = main(["check", "--metadata", str(tmp_path / "none.parquet"), "--dataset-paths", str(tmp_path / "d.json")])
    assert status == 2
    err = capsys.readouterr().err
    assert "hive check: error:" in err and "d.json does not exist" in err and "Traceback" not in err


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "_ranks" not in p.parts and p.name != "_render_config.json"}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate not installed")
def test_accelerate_launch_render_equals_one_process(toy_corpus, tmp_path):
    common = ["--metadata", str(toy_corpus.parquet_dir), "--dataset-paths", str(toy_corpus.dataset_paths),
              "--shard-size", "5", "--no-progress"]
    single = tmp_path / "single"
    assert main(["render", *common, "--output", str(single)]) == 0
    launched = tmp_path / "launched"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", "0", str(ROOT / "scripts" / "render.py"), *common, "--output", str(launched)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    ranks = sorted(p.name for p in (launched / "_ranks").iterdir())
    assert ranks == ["rank-00000-of-00002.json", "rank-00001-of-00002.json"]
    # both ranks rendered something: the shards were split, not duplicated
    import json

    rendered = [json.loads((launched / "_ranks" / n).read_text())["rendered"] for n in ranks]
    assert all(n > 0 for n in rendered)
    assert _tree(launched) == _tree(single)


@pytest.mark.slow  # end to end over the toy corpus
def test_demo_runs_the_whole_loop_offline(tmp_path, capsys):
    work = tmp_path / "demo"
    assert main(["demo", "--workdir", str(work), "--num-workers", "1"]) == 0
    out = capsys.readouterr().out
    for step in ("1. build", "2. hive check", "3. hive render", "4. hive verify", "5. load", "6. hive synthesize",
                 "7. render and verify", "8. hive mine"):
        assert step in out, step
    assert "All done" in out
    import json

    assert json.loads((work / "rendered" / "_summary.json").read_text())["mixtures"] == 80
    assert json.loads((work / "synthesized_rendered" / "_summary.json").read_text())["failures"] == 0
    assert (work / "mined" / "superres" / "output.jsonl").stat().st_size > 0
    # the demo's metadata is in the Hub layout: load_dataset picks configs from its README.md
    import datasets

    hub = work / "metadata" / "hub"
    cache = str(tmp_path / "hf")
    two = datasets.load_dataset(str(hub), "2mix", split="train", cache_dir=cache)
    assert len(two) == 12 and set(two["num_sources"]) == {2}
    assert {s: len(d) for s, d in datasets.load_dataset(str(hub), cache_dir=cache).items()} == \
        {"train": 48, "validation": 16, "test": 16}
    # and it ends with `hive inspect` of two rendered mixtures
    index = work / "inspect" / "index.html"
    assert "9. hive inspect" in out and f"open {index}" in out
    assert len(json.loads((work / "inspect" / "_inspect.json").read_text())["chosen"]) == 2
    # what it writes is what docs/setup.md says (MB, rounded as stated; the audio is deterministic)
    from test_readme_numbers import folder_mb, readme_demo_sizes

    stated = readme_demo_sizes()
    measured = {"audio": folder_mb(work / "corpora"), "total": folder_mb(work), "render": folder_mb(work / "rendered"),
                "mined": folder_mb(work / "mined_audio"), "synthesized": folder_mb(work / "synthesized_rendered")}
    assert {k: round(v) for k, v in measured.items()} == stated, measured
