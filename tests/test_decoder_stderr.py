"""libmpg123 (libsndfile's MP3 decoder) prints ``[src/libmpg123/layer3.c:...] error: part2_3_length
...`` on fd 2 when a chunk starts mid-file, on reads that succeed. Every decode goes through
mixing.audio's capture: the user's terminal never shows those lines, ``-vv`` logs them, and other
stderr output written meanwhile (other threads) still reaches the terminal, once."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def hive(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mixing", *args], capture_output=True, text=True, cwd=cwd,
                          env=ENV, timeout=600)


def decoder_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "part2_3_length" in ln or ln.startswith("[src/")
            or " error:" in ln and "hive " not in ln]


FINDER = """
import sys, soundfile as sf
for path in sys.argv[1:]:
    with sf.SoundFile(path) as f:
        sr, frames = f.samplerate, f.frames
    for start in range(0, frames // sr - 1):
        print(f"@@ {path} {start}", file=sys.stderr, flush=True)
        with sf.SoundFile(path) as f:  # the reference's read: open, seek to the chunk start, read
            f.seek(start * sr)
            f.read(min(frames - start * sr, 4 * sr))
"""


@pytest.fixture(scope="module")
def noisy_chunks(toy_corpus) -> list[tuple[Path, float]]:
    """(MP3 file, chunk start in s) of the toy corpus whose plain soundfile read (open, seek, read
    4 s) makes libmpg123 print: found by reading every whole-second start."""
    mp3s = sorted((toy_corpus.root / "corpora").rglob("*.mp3"))
    assert mp3s, "the toy corpus has no MP3 file"
    done = subprocess.run([sys.executable, "-c", FINDER, *map(str, mp3s)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found, current = [], None
    for line in done.stderr.splitlines():
        if line.startswith("@@ "):
            path, start = line[3:].rsplit(" ", 1)
            current = (Path(path), float(start))
        elif "part2_3_length" in line and current and current not in found:
            found.append(current)
    assert found, "no toy MP3 chunk makes libmpg123 print; the tests below would prove nothing"
    return found


@pytest.fixture(scope="module")
def noisy_metadata(toy_corpus, noisy_chunks, tmp_path_factory) -> Path:
    """The toy metadata's first mixture with an MP3 source, once per noisy chunk, that source
    moved to start there (JSON Lines metadata)."""
    from mixing.metadata_io import iter_records, write_jsonl

    root = (toy_corpus.root / "corpora").resolve()
    records = list(iter_records(toy_corpus.parquet_dir))
    base = next(r for r in records if any(s.path.endswith(".mp3") for s in r.sources))
    i = next(k for k, s in enumerate(base.sources) if s.path.endswith(".mp3"))
    prefix_of = {}
    for r in records:
        for s in r.sources:
            prefix_of.setdefault(s.path.rsplit("/", 1)[-1], s.path)
    out = []
    for n, (path, start) in enumerate(noisy_chunks):
        src = base.sources[i]
        length = src.chunk_end_second - src.chunk_start_second
        meta_path = prefix_of[path.name]
        assert (root / Path(path).resolve().relative_to(root)).exists()
        sources = list(base.sources)
        sources[i] = src.replace(path=meta_path, chunk_start_second=start, chunk_end_second=start + min(length, 4.0))
        out.append(dataclasses.replace(base, mix_id=f"{base.mix_id}_noisy{n}", sources=tuple(sources)))
    target = tmp_path_factory.mktemp("noisy") / "noisy.jsonl"
    write_jsonl(out, target)
    return target


@pytest.mark.slow
def test_libmpg123_really_prints_on_these_chunks(noisy_chunks):
    """The premise, checked by the fixture: a plain soundfile read of these chunks prints."""
    assert all(p.suffix == ".mp3" for p, _ in noisy_chunks)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["check", "render", "store build"])
def test_check_render_and_store_keep_the_decoder_off_stderr_and_log_it_with_vv(toy_corpus, noisy_metadata, tmp_path,
                                                                                command):
    args = [*command.split(), "--metadata", str(noisy_metadata), "--dataset-paths", str(toy_corpus.dataset_paths)]
    if command != "check":
        args += ["--no-progress", "--num-workers", "2"]
    writes = command != "check"
    quiet = hive([*args, *(["--output", str(tmp_path / "quiet")] if writes else [])], tmp_path)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert decoder_lines(quiet.stderr) == [], quiet.stderr[-3000:]
    loud = hive(["-vv", *args, *(["--output", str(tmp_path / "loud")] if writes else [])], tmp_path)
    assert loud.returncode == 0, loud.stderr[-3000:]
    logged = [ln for ln in loud.stderr.splitlines() if "DEBUG mixing.audio: decoder messages on stderr" in ln]
    assert logged and all(".mp3" in ln and "[src/libmpg123/" in ln for ln in logged), loud.stderr[-3000:]
    assert "part2_3_length" in "".join(logged)
    # every decoder line is inside a debug record, none on its own
    assert [ln for ln in loud.stderr.splitlines() if ln.startswith("[src/")] == []


@pytest.mark.slow
def test_mine_chunk_keeps_the_decoder_off_stderr(toy_corpus, tmp_path):
    done = hive(["mine", "chunk", "--input", str(toy_corpus.labels_csv), "--output", str(tmp_path / "m"),
                 "--dataset-paths", str(toy_corpus.dataset_paths), "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert decoder_lines(done.stderr) == [], done.stderr[-3000:]


@pytest.mark.slow
def test_threads_share_one_capture_and_lose_no_other_stderr_output(noisy_chunks, tmp_path):
    """8 threads decode the noisy MP3 chunks (each read captured) while another thread writes
    numbered lines to stderr, through Python and straight to fd 2: every numbered line arrives
    exactly once, no decoder line does, and fd 2 is the real stderr again afterwards."""
    jobs = [(str(p), int(s)) for p, s in noisy_chunks] * 8
    code = textwrap.dedent(f"""
        import os, sys, threading
        from concurrent.futures import ThreadPoolExecutor
        from mixing.audio import decode_tail, probe, read_frames
        stop = threading.Event()
        def chatter():
            i = 0
            while not stop.is_set() or i < 200:
                if i % 2:
                    os.write(2, f"fd-line {{i}}\\n".encode())
                else:  # one write of a whole line (print() writes the text and the newline apart)
                    sys.stderr.write(f"py-line {{i}}\\n")
                i += 1
            print(f"chatter wrote {{i}}", flush=True)
        t = threading.Thread(target=chatter)
        t.start()
        def decode(job):
            path, start = job
            info = probe(path)
            decode_tail(path, info)
            a = start * info.samplerate
            return read_frames(path, a, min(info.frames, a + 4 * info.samplerate))[0].shape[0]
        with ThreadPoolExecutor(8) as pool:
            n = sum(pool.map(decode, {jobs!r}))
        stop.set()
        t.join()
        os.write(2, b"after the capture\\n")
        print("frames", n)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    wrote = int(done.stdout.split("chatter wrote ")[1].split()[0])
    lines = done.stderr.splitlines()
    assert decoder_lines(done.stderr) == []
    want = [f"{'fd' if i % 2 else 'py'}-line {i}" for i in range(wrote)]
    got = [ln for ln in lines if "-line " in ln]
    assert sorted(got) == sorted(want)  # each exactly once (order may differ across the capture)
    assert lines[-1] == "after the capture"
    assert int(done.stdout.split("frames ")[1]) > 0
