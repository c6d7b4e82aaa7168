"""A memory estimate for every request, refused over a cap with one line (issue 19):
``render --sample-rate 384000`` of a valid 1-hour record asked for tens of GiB and ``eval`` of
one 10-minute 48 kHz mixture peaked at 11.4 GB. The estimate (durations x rates x sources) is
checked before anything is allocated or written, by render, the stream, inspect, eval and
synthesize; the cap is 80% of the available memory unless ``--max-memory`` / ``$HIVE_MAX_MEMORY``
says otherwise. Peak memory itself is measured by ``benchmarks/bench_memory.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mixing.cli import main
from mixing.metadata_io import iter_records, write_jsonl

from cli_output import one_error_line as _one_error_line

ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module")
def long_records(toy_corpus, tmp_path_factory):
    """A valid 1-hour record at 8 kHz (28.8 M frames, the most a record may have) and a
    10-minute 48 kHz one, two sources each."""
    rec = next(r for r in iter_records(toy_corpus.parquet_dir, split="test", num_sources=2))
    hour = rec.replace(mix_id="hour", sample_rate=8000, target_duration=3600.0,
                       sources=tuple(s.replace(crop_start_second=0.0, crop_end_second=4.0) for s in rec.sources))
    ten = rec.replace(mix_id="ten", sample_rate=48000, target_duration=600.0,
                      sources=tuple(s.replace(crop_start_second=0.0, crop_end_second=4.0) for s in rec.sources))
    folder = tmp_path_factory.mktemp("memory")
    write_jsonl([hour], folder / "hour.jsonl")
    write_jsonl([ten], folder / "ten.jsonl")
    return folder / "hour.jsonl", folder / "ten.jsonl"


def test_render_at_384_khz_of_a_one_hour_record_is_refused_before_anything_is_written(
        toy_corpus, long_records, tmp_path, capsys):
    hour, _ = long_records
    out = tmp_path / "out"
    assert main(["render", "--metadata", str(hour), "--dataset-paths", str(toy_corpus.dataset_paths),
                 "--output", str(out), "--sample-rate", "384000", "--max-memory", "8G", "--no-progress"]) == 2
    line = _one_error_line(capsys, "render")
    assert "rendering the largest mixture ('hour': 3600 s at 384000 Hz (1382400000 frames) x 2 sources)" in line
    assert "over the cap of 8.0 GiB" in line and "--max-memory SIZE" in line
    assert not out.exists()


def test_the_default_cap_is_a_fraction_of_the_available_memory(toy_corpus, long_records, tmp_path, capsys,
                                                               monkeypatch):
    from mixing.memory_estimate import available_memory, mixture_bytes

    hour, _ = long_records
    monkeypatch.delenv("HIVE_MAX_MEMORY", raising=False)
    avail = available_memory()
    need = mixture_bytes("render", 3600 * 384000, 2)
    if avail is None or avail * 0.8 >= need:
        pytest.skip("this machine could render it")
    assert main(["render", "--metadata", str(hour), "--dataset-paths", str(toy_corpus.dataset_paths),
                 "--output", str(tmp_path / "out"), "--sample-rate", "384000", "--no-progress"]) == 2
    line = _one_error_line(capsys, "render")
    assert "over the cap of" in line and "(80% of the" in line and "available)" in line


@pytest.mark.slow  # end to end over the toy corpus
def test_a_cap_that_allows_it_renders_and_the_flag_does_not_outlive_the_command(
        toy_corpus, long_records, tmp_path, monkeypatch):
    _, ten = long_records
    monkeypatch.delenv("HIVE_MAX_MEMORY", raising=False)
    assert main(["render", "--metadata", str(ten), "--dataset-paths", str(toy_corpus.dataset_paths),
                 "--output", str(tmp_path / "out"), "--max-memory", "none", "--no-progress"]) == 0
    assert "HIVE_MAX_MEMORY" not in os.environ


@pytest.fixture(scope="module")
def ten_minute_render(toy_corpus, long_records, tmp_path_factory):
    _, ten = long_records
    out = tmp_path_factory.mktemp("memory-render") / "rendered"
    assert main(["render", "--metadata", str(ten), "--dataset-paths", str(toy_corpus.dataset_paths),
                 "--output", str(out), "--max-memory", "none", "--no-progress"]) == 0
    return out


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("extra,expected", [
    ([], "mixture 'ten' (28800000 frames x 2 sources) needs about"),
    (["--no-sdr"], "mixture 'ten' (28800000 frames x 2 sources) needs about"),
])
def test_eval_of_a_ten_minute_mixture_is_refused_before_decoding_under_a_small_cap(
        ten_minute_render, tmp_path, capsys, extra, expected):
    assert main(["eval", "--rendered", str(ten_minute_render), "--output", str(tmp_path / "eval"),
                 "--max-memory", "1G", "--no-progress", *extra]) == 2
    line = _one_error_line(capsys, "eval")
    assert expected in line and "over the cap of 1.0 GiB" in line
    assert not (tmp_path / "eval" / "results.csv").exists()


@pytest.mark.slow  # end to end over the toy corpus
def test_eval_estimate_counts_sdr(ten_minute_render, tmp_path, capsys):
    """Between the two estimates: without SDR it runs, with SDR it is refused."""
    from mixing.memory_estimate import BASE_BYTES, mixture_bytes

    frames = 600 * 48000
    cap = (mixture_bytes("eval", frames, 2) + mixture_bytes("eval", frames, 2, sdr=True)) // 2 + BASE_BYTES
    argv = ["eval", "--rendered", str(ten_minute_render), "--output", str(tmp_path / "eval"),
            "--max-memory", str(cap), "--no-progress", "--no-plot"]
    assert main([*argv, "--no-sdr"]) == 0
    capsys.readouterr()
    assert main(argv) == 2
    assert "needs about" in _one_error_line(capsys, "eval")


@pytest.mark.slow  # end to end over the toy corpus
def test_inspect_refuses_over_the_cap(ten_minute_render, toy_corpus, long_records, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _, ten = long_records
    for source in ([str(ten_minute_render)], [str(ten), "--dataset-paths", str(toy_corpus.dataset_paths)]):
        assert main(["inspect", *source, "--output", str(tmp_path / "pages"), "--max-memory", "1G",
                     "--no-progress"]) == 2
        assert "mixture 'ten' (600 s at 48000 Hz" in _one_error_line(capsys, "inspect")
        assert not (tmp_path / "pages").exists()


def test_synthesize_refuses_levels_over_the_cap(toy_corpus, tmp_path, capsys):
    assert main(["synthesize", "--pool", str(toy_corpus.pool), "--dataset-paths", str(toy_corpus.dataset_paths),
                 "--output", str(tmp_path / "out"), "--duration", "3600", "--sample-rate", "8000",
                 "--num-workers", "4", "--max-memory", "2G"]) == 2
    line = _one_error_line(capsys, "synthesize")
    assert "3600 s at 8000 Hz (28800000 frames) x 5 sources" in line and "4 workers x" in line


def test_the_stream_counts_a_mixture_over_the_cap(toy_corpus, long_records, monkeypatch):
    import hive

    hour, _ = long_records
    monkeypatch.setenv("HIVE_MAX_MEMORY", "1G")
    report = hive.StreamReport()
    got = list(hive.iter_mixtures(str(hour), str(toy_corpus.dataset_paths), split="test", sample_rate=384000,
                                  report=report))
    assert got == [] and report.failures == Counter({"over_memory_cap": 1})


@pytest.mark.slow
def test_a_bad_cap_is_one_line(toy_corpus, tmp_path, capsys):
    from mixing.memory_estimate import parse_size

    assert parse_size("8G") == 8 * 2**30 and parse_size("512MiB") == 512 * 2**20
    assert parse_size("90%") == 0.9 and parse_size("none") is None
    for bad in ("8X", "nan", "1e9", "-5G", "0", "150%", "10k"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert main(["render", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths",
                 str(toy_corpus.dataset_paths), "--output", str(tmp_path / "o"), "--max-memory", "lots"]) == 2
    assert "--max-memory: 'lots' is not a memory size" in _one_error_line(capsys, "render")
    proc = subprocess.run([sys.executable, "-m", "mixing", "render", "--metadata", str(toy_corpus.parquet_dir),
                           "--dataset-paths", str(toy_corpus.dataset_paths), "--output", str(tmp_path / "o"),
                           "--no-progress"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HIVE_MAX_MEMORY": "plenty"})
    assert proc.returncode == 2, proc.stderr
    assert "environment variable HIVE_MAX_MEMORY: 'plenty' is not a memory size" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_available_memory_is_read_at_most_once_a_second_per_process(monkeypatch):
    """The stream checks the cap for every mixture; reading /proc and the cgroup files each time
    cost a fifth of its time, so a reading is reused for AVAILABLE_TTL_S seconds."""
    from mixing import memory_estimate as me

    reads = []
    monkeypatch.setattr(me, "_last_reading", None)
    monkeypatch.setattr(me, "_read_available_memory", lambda: reads.append(1) or 1000 * len(reads))
    assert [me.available_memory() for _ in range(100)] == [1000] * 100 and len(reads) == 1
    assert me.available_memory(max_age=0) == 2000 and len(reads) == 2  # a fresh reading when asked
    clock = [me.time.monotonic() + me.AVAILABLE_TTL_S + 0.01]
    monkeypatch.setattr(me.time, "monotonic", lambda: clock[0])
    assert me.available_memory() == 3000 and len(reads) == 3  # an old reading is replaced
