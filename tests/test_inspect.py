"""`hive inspect`: pages from rendered folders (WebDataset, Parquet) and from metadata rendered on
the fly; deterministic selection; untrusted metadata escaped; clear errors; and a real headless
Chromium that loads every page over http (and file://) and plays every audio element."""

from __future__ import annotations

import functools
import http.server
import json
import random
import re
import subprocess
import sys
import threading
from importlib.metadata import version as dist_version
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dataset_card.inspect.media import write_wav
from dataset_card.inspect.select import choose, sample_key
from mixing.cli import main
from mixing.metadata_io import iter_records, write_parquet
from mixing.render import Renderer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chromium_cdp import LINK_CHECK_JS, MEDIA_CHECK_JS, Chromium, find_chromium  # noqa: E402

pytest.importorskip("matplotlib")
HOSTILE_LABEL = '<script>document.title="pwned"</script>&amp;"\'$\\frac{$'
HOSTILE_ID = 'x"><img_src=y_onerror=alert(1)>'


def _summary(out: Path) -> dict:
    return json.loads((out / "_inspect.json").read_text())


def _run(argv, capsys) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# ---- selection ---------------------------------------------------------------------------------
def test_sample_is_a_function_of_the_id_set_and_seed():
    ids = [f"mix_{i:04d}" for i in range(500)]
    first = choose(ids, sample=7, seed=3)
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    assert choose(shuffled + ids[:50], sample=7, seed=3) == first  # order and repeats do not matter
    assert len(first) == len(set(first)) == 7 and set(first) <= set(ids)
    assert choose(ids, sample=7, seed=4) != first
    assert choose(ids, sample=1000, seed=3) == sorted(ids, key=lambda m: sample_key(m, 3))
    assert first == sorted(ids, key=lambda m: sample_key(m, 3))[:7]
    assert choose(ids, ids=["mix_0009", "nope", "mix_0002"]) == ["mix_0009", "mix_0002"]


# ---- rendered folders ----------------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
def test_inspect_rendered_folder_writes_pages_audio_and_statistics(fmt, toy_render, toy_corpus, tmp_path, capsys):
    rendered = toy_render(fmt)
    out = tmp_path / "page"
    rc, stdout, _ = _run(["inspect", str(rendered), "--output", str(out), "--sample", "3", "--seed", "5",
                          "--no-progress"], capsys)
    assert rc == 0, stdout
    assert str(out / "index.html") in stdout
    s = _summary(out)
    records = {r.mix_id: r for r in iter_records(toy_corpus.parquet_dir)}
    assert s["chosen"] == choose(records, sample=3, seed=5)
    assert s["stats"]["num_mixtures"] == len(records) == 80
    # disk size of the rendered folder: every file under it
    assert s["stats"]["disk_bytes"] == sum(p.stat().st_size for p in rendered.rglob("*") if p.is_file())
    index = (out / "index.html").read_text()
    assert "disk size of the rendered folder" in index
    for link, mid in zip(s["pages"], s["chosen"]):
        rec = records[mid]
        html_text = (out / link).read_text()
        assert rec.mix_id in html_text and f'href="../{link}"' not in html_text
        for src in rec.sources:
            assert src.path in html_text and src.label.split(",")[0] in html_text
            assert f"{src.snr_db:.2f}" in html_text and f"{src.applied_weight:.6g}" in html_text
        media = out / "media" / Path(link).stem
        assert sorted(p.name for p in media.glob("*.wav")) == ["mix.wav"] + [f"s{i}.wav" for i in
                                                                             range(1, rec.num_sources + 1)]
        assert len(list(media.glob("*.png"))) == rec.num_sources + 1
        mix, sr = sf.read(media / "mix.wav", dtype="float32")
        assert sf.info(str(media / "mix.wav")).subtype == "PCM_16" and sr == rec.sample_rate
        assert len(mix) == rec.num_frames
        # the page plays what was rendered (16-bit rounding only)
        expected = Renderer(toy_corpus.dataset_paths).render(rec).mix
        assert np.max(np.abs(mix - expected)) <= 1.0 / 32768 + 1e-6
        assert f'href="../{link.split("/")[0]}' not in html_text  # links are relative to the page
        assert re.search(r'(src|href)="(/|[a-z]+:)', html_text) is None  # no absolute URL anywhere
    counts = s["stats"]["mixtures"]
    assert sum(counts.values()) == 80 and counts["train/2mix"] == 12


@pytest.mark.slow  # end to end over the toy corpus
def test_inspect_by_mix_id_keeps_the_given_order(toy_render, tmp_path, capsys):
    rendered = toy_render("parquet")
    out = tmp_path / "page"
    ids = ["hive_toy_test_00003", "hive_toy_train_00000"]
    rc, _, _ = _run(["inspect", str(rendered), "--output", str(out), "--mix-id", ids[0], "--mix-id", ids[1],
                     "--no-progress"], capsys)
    assert rc == 0
    s = _summary(out)
    assert s["chosen"] == ids and len(s["pages"]) == 2
    assert s["pages"][0].endswith("0001_hive_toy_test_00003.html")
    # a second run replaces its own earlier output
    rc, _, _ = _run(["inspect", str(rendered), "--output", str(out), "--mix-id", ids[1], "--no-progress"], capsys)
    assert rc == 0 and _summary(out)["chosen"] == [ids[1]]
    assert len(list((out / "mixtures").glob("*.html"))) == 1


@pytest.mark.slow  # end to end over the toy corpus
def test_split_and_source_count_narrow_a_rendered_folder(toy_render, tmp_path, capsys):
    out = tmp_path / "page"
    rc, _, _ = _run(["inspect", str(toy_render()), "--output", str(out), "--split", "validation",
                     "--num-sources", "2", "--sample", "1", "--no-progress"], capsys)
    assert rc == 0
    s = _summary(out)
    assert s["stats"]["mixtures"] == {"validation/2mix": 4}
    assert len(s["chosen"]) == 1 and s["chosen"][0].startswith("hive_toy_validation_")
    rc, _, err = _run(["inspect", str(toy_render()), "--output", str(tmp_path / "none"), "--split", "test",
                       "--num-sources", "7", "--no-progress"], capsys)
    assert rc == 2 and "holds no mixture of split 'test' with 7 sources" in err


def test_unknown_mix_id_is_a_one_line_error_and_writes_nothing(toy_render, tmp_path, capsys):
    out = tmp_path / "page"
    rc, _, err = _run(["inspect", str(toy_render()), "--output", str(out), "--mix-id", "hive_toy_train_00000",
                       "--mix-id", "no_such_mix", "--no-progress"], capsys)
    assert rc == 2
    assert err.startswith("hive inspect: error: 1 of the --mix-id values are not in") and "'no_such_mix'" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_refuses_an_output_folder_that_is_not_its_own(toy_render, tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    rc, _, err = _run(["inspect", str(toy_render()), "--output", str(out), "--sample", "1", "--no-progress"], capsys)
    assert rc == 2 and "not an earlier `hive inspect` output" in err
    assert (out / "notes.txt").read_text() == "keep me"
    rc, _, err = _run(["inspect", str(toy_render()), "--output", str(toy_render() / "page"), "--no-progress"], capsys)
    assert rc == 2 and "inside the input" in err


# ---- metadata rendered on the fly ------------------------------------------------------------------
@pytest.mark.slow  # end to end over the toy corpus
def test_inspect_metadata_renders_the_chosen_mixtures(toy_corpus, tmp_path, capsys):
    out = tmp_path / "page"
    rc, _, _ = _run(["inspect", str(toy_corpus.parquet_dir), "--dataset-paths", str(toy_corpus.dataset_paths),
                     "--output", str(out), "--sample", "2", "--split", "test", "--num-sources", "3",
                     "--no-progress"], capsys)
    assert rc == 0
    s = _summary(out)
    assert s["kind"] == "metadata" and "disk_bytes" not in s["stats"]
    test3 = {r.mix_id: r for r in iter_records(toy_corpus.parquet_dir, split="test", num_sources=3)}
    assert s["stats"]["num_mixtures"] == len(test3) and set(s["chosen"]) <= set(test3)
    rec = test3[s["chosen"][0]]
    page = (out / s["pages"][0]).read_text()
    local = str(Renderer(toy_corpus.dataset_paths).paths.resolve(rec.sources[0].path))
    assert local in page  # the resolved local file is shown next to the metadata path
    stem, sr = sf.read(out / "media" / Path(s["pages"][0]).stem / "s1.wav", dtype="float32")
    expected = Renderer(toy_corpus.dataset_paths).render(rec).stems[0]
    assert sr == rec.sample_rate and np.max(np.abs(stem - expected)) <= 1.0 / 32768 + 1e-6


def test_metadata_without_dataset_paths_says_what_to_pass(toy_corpus, tmp_path, capsys):
    rc, _, err = _run(["inspect", str(toy_corpus.parquet_dir), "--output", str(tmp_path / "p")], capsys)
    assert rc == 2 and "--dataset-paths" in err and err.startswith("hive inspect: error:")
    rc, _, err = _run(["inspect", str(tmp_path / "nowhere"), "--output", str(tmp_path / "p")], capsys)
    assert rc == 2 and "neither an existing file or folder" in err and "--dataset-paths" not in err


def _hostile_metadata(toy_corpus, folder: Path) -> Path:
    recs = list(iter_records(toy_corpus.parquet_dir, split="train", num_sources=2))[:2]
    bad = recs[0].replace(mix_id=HOSTILE_ID,
                          sources=(recs[0].sources[0].replace(label=HOSTILE_LABEL),) + recs[0].sources[1:])
    missing = recs[1].replace(mix_id="missing_audio",
                              sources=(recs[1].sources[0].replace(path=recs[1].sources[0].prefix + "/gone.wav"),)
                              + recs[1].sources[1:])
    path = folder / "hostile.parquet"
    write_parquet([bad, missing], path)
    return path


@pytest.mark.slow  # end to end over the toy corpus
def test_untrusted_metadata_is_escaped_and_missing_audio_is_reported(toy_corpus, tmp_path, capsys):
    meta = _hostile_metadata(toy_corpus, tmp_path)
    out = tmp_path / "page"
    rc, stdout, _ = _run(["inspect", str(meta), "--dataset-paths", str(toy_corpus.dataset_paths), "--output",
                          str(out), "--sample", "2", "--no-progress"], capsys)
    assert rc == 1 and "1 mixture(s) have no audio" in stdout and "missing_audio" in stdout
    s = _summary(out)
    assert s["failed"] == ["missing_audio"]
    pages = {mid: (out / link).read_text() for mid, link in zip(s["chosen"], s["pages"])}
    hostile = pages[HOSTILE_ID]
    assert "<script" not in hostile and "<img_src" not in hostile and "&lt;img_src=y" in hostile
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;&amp;amp;&quot;&#x27;" in hostile
    index = (out / "index.html").read_text()
    assert "<script" not in index and "&lt;script&gt;" in index
    assert "gone.wav" in pages["missing_audio"] and "No audio:" in pages["missing_audio"]
    assert not (out / "media" / Path(s["pages"][s["chosen"].index("missing_audio")]).stem).exists()


# ---- media ---------------------------------------------------------------------------------------
def test_wav_is_16_bit_pcm_unless_it_would_clip(tmp_path):
    t = np.arange(8000) / 8000
    quiet = 0.5 * np.sin(2 * np.pi * 440 * t)
    info = write_wav(quiet, 8000, tmp_path / "q.wav")
    assert info.encoding == "PCM_16" and sf.info(str(tmp_path / "q.wav")).subtype == "PCM_16"
    assert abs(info.peak - 0.5) < 1e-3
    loud = 1.5 * np.sin(2 * np.pi * 440 * t)
    info = write_wav(loud, 8000, tmp_path / "l.wav")
    back, _ = sf.read(tmp_path / "l.wav", dtype="float32")
    assert info.encoding == "FLOAT" and np.array_equal(back, loud.astype(np.float32))  # lossless, no clipping
    first = (tmp_path / "l.wav").read_bytes()
    write_wav(loud, 8000, tmp_path / "l.wav")
    assert (tmp_path / "l.wav").read_bytes() == first


# ---- the CLI -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"hive {dist_version('hive-uss')}"
    proc = subprocess.run([sys.executable, "-m", "mixing", "--version"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert proc.returncode == 0 and re.fullmatch(r"hive \d+\.\d+\.\d+\S*\n", proc.stdout)


# ---- a real browser ------------------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(root: Path) -> str:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _assert_media_ok(result: dict, where: str, duration: float | None = None) -> None:
    assert result["audio"] or duration is None, f"{where}: no audio element"
    for a in result["audio"]:
        assert a["error"] is None and a["readyState"] >= 1 and a["duration"] > 0, (where, a)
        if duration is not None:
            assert abs(a["duration"] - duration) < 0.01, (where, a)
    assert result["images"], f"{where}: no image"
    for img in result["images"]:
        assert img["naturalWidth"] > 0, (where, img)


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium; "
                    "`make system-packages` does it)")
def test_pages_load_and_every_audio_element_plays_in_headless_chromium(toy_render, toy_corpus, tmp_path, serve,
                                                                      capsys):
    out = tmp_path / "page"
    assert main(["inspect", str(toy_render()), "--output", str(out), "--sample", "3", "--no-progress"]) == 0
    hostile_out = tmp_path / "hostile"
    meta = _hostile_metadata(toy_corpus, tmp_path)
    assert main(["inspect", str(meta), "--dataset-paths", str(toy_corpus.dataset_paths), "--output",
                 str(hostile_out), "--mix-id", HOSTILE_ID, "--no-progress"]) == 0
    # a float WAV (what a signal above full scale is written as) must play too
    float_dir = tmp_path / "float"
    float_dir.mkdir()
    write_wav(1.5 * np.sin(np.linspace(0, 2000, 22050)), 22050, float_dir / "loud.wav")
    (float_dir / "index.html").write_text('<!DOCTYPE html><audio preload="metadata" src="loud.wav"></audio>'
                                          '<img src="x.png">')
    (float_dir / "x.png").write_bytes((out / "assets" / "snr.png").read_bytes())
    s = _summary(out)
    records = {r.mix_id: r for r in iter_records(toy_corpus.parquet_dir)}
    base = serve(out)
    with Chromium() as browser:
        browser.open(f"{base}/index.html")
        index = browser.evaluate(MEDIA_CHECK_JS)
        _assert_media_ok(index, "index.html")
        assert index["scripts"] == 0 and index["title"] == "hive inspect"
        pages = [link for link in index["links"] if "/mixtures/" in link]
        assert [p.removeprefix(base + "/") for p in pages] == s["pages"]
        statuses = browser.evaluate(LINK_CHECK_JS)
        assert statuses and all(v == 200 for v in statuses.values()), statuses
        for url, mid in zip(pages, s["chosen"]):
            browser.open(url)
            result = browser.evaluate(MEDIA_CHECK_JS)
            _assert_media_ok(result, url, records[mid].target_duration)
            assert len(result["audio"]) == len(result["images"]) == 1 + records[mid].num_sources
            links = browser.evaluate(LINK_CHECK_JS)
            assert all(v == 200 for v in links.values()), links
        # the same page straight from disk (file://): relative links only
        browser.open((out / s["pages"][0]).as_uri())
        _assert_media_ok(browser.evaluate(MEDIA_CHECK_JS), "file://", records[s["chosen"][0]].target_duration)
        # hostile metadata renders as text: no script runs, the label shows literally
        browser.open((hostile_out / _summary(hostile_out)["pages"][0]).as_uri())
        hostile = browser.evaluate(MEDIA_CHECK_JS)
        assert hostile["scripts"] == 0 and hostile["title"] != "pwned"
        assert HOSTILE_LABEL in hostile["text"] and HOSTILE_ID in hostile["text"]
        _assert_media_ok(hostile, "hostile page")
        browser.open(f"{serve(float_dir)}/index.html")
        _assert_media_ok(browser.evaluate(MEDIA_CHECK_JS), "float WAV", 1.0)
