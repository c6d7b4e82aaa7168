"""hive eval: metric closed forms, oracle rows, separator callable, estimates folder, errors, CLI."""

from __future__ import annotations

import csv
import os
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixing.cli import main
from mixing.evaluate import EvalError, EvalOptions, evaluate
from mixing.evaluate.estimates import load_separator
from mixing.evaluate.metrics import MAX_DB, irm_estimates, sdr, sdr_available, si_sdr
from mixing.evaluate.rendered import iter_rendered

# end to end over a toy corpus (and renders of it) built for these tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
#: metrics without SDR, no plot, no progress bar: what most tests here need
QUIET = EvalOptions(with_sdr=False, plot=False, progress=False)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---- metrics -------------------------------------------------------------------------------------
def test_si_sdr_scaled_reference_is_capped_very_large():
    ref = np.random.default_rng(0).standard_normal(8000)
    assert si_sdr(3.7 * ref, ref) > 150.0
    assert si_sdr(-0.2 * ref, ref) > 150.0  # scale invariance includes the sign
    assert si_sdr(ref, ref) == MAX_DB


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 6.0, 20.0])
def test_si_sdr_known_orthogonal_noise(snr_db):
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(16000)
    noise = rng.standard_normal(16000)
    noise -= noise @ ref / (ref @ ref) * ref  # exactly orthogonal: SI-SDR = SNR in closed form
    noise *= np.sqrt((ref @ ref) / (noise @ noise) / 10 ** (snr_db / 10))
    assert si_sdr(ref + noise, ref) == pytest.approx(snr_db, abs=1e-9)
    # a scale on the estimate changes nothing
    assert si_sdr(5 * (ref + noise), ref) == pytest.approx(snr_db, abs=1e-9)


def test_si_sdr_undefined_and_degenerate():
    ref = np.random.default_rng(2).standard_normal(100)
    assert np.isnan(si_sdr(ref, np.zeros(100)))
    assert si_sdr(np.zeros(100), ref) == -MAX_DB
    with pytest.raises(ValueError, match="one length"):
        si_sdr(ref, ref[:50])


@pytest.mark.slow  # end to end over the toy corpus
@pytest.mark.skipif(not sdr_available(), reason="torchmetrics (extra 'eval') not installed")
def test_sdr_known_noise_and_filtered_reference():
    rng = np.random.default_rng(3)
    ref = rng.standard_normal(8000)
    noise = rng.standard_normal(8000)
    noise *= np.sqrt((ref @ ref) / (noise @ noise) / 10 ** (10 / 10))
    values = sdr(np.stack([ref + noise, 0.5 * ref, np.convolve(ref, [1.0, 0.5, 0.25])[:8000]]),
                 np.stack([ref, ref, ref]))
    assert values[0] == pytest.approx(10.0, abs=0.5)  # the 512-tap filter absorbs a little noise
    assert values[1] > 60 and values[2] > 40  # scaled / filtered reference: distortion-free
    assert np.isnan(sdr(ref[None], np.zeros((1, 8000)))[0])


def test_irm_recovers_disjoint_sources_and_beats_the_mixture():
    sr = 8000
    t = np.arange(sr) / sr
    refs = np.stack([np.sin(2 * np.pi * 300 * t), 0.5 * np.sin(2 * np.pi * 2500 * t)])
    mix = refs.sum(0)
    est = irm_estimates(mix, refs)
    assert est.shape == refs.shape
    for i in range(2):
        assert si_sdr(est[i], refs[i]) > 25.0 > si_sdr(mix, refs[i])


# ---- the loop on the toy render ------------------------------------------------------------------
@pytest.fixture(scope="module")
def validation_eval(toy_render, tmp_path_factory):
    """One oracle-only evaluation of the whole validation split (shared: the machine is small)."""
    out = tmp_path_factory.mktemp("eval") / "out"
    return evaluate(toy_render(), out, split="validation", options=QUIET)


@pytest.mark.slow  # end to end over the toy corpus
def test_oracle_rows_mixture_zero_and_irm_above(validation_eval):
    res = validation_eval
    out = res.output
    rows = _rows(out / "results.csv")
    mixture = [r for r in rows if r["system"] == "mixture"]
    irm = {(r["mix_id"], r["source_index"]): float(r["si_sdr"]) for r in rows if r["system"] == "irm"}
    assert len(mixture) == res.sources == len(irm) > 0
    assert {r["system"] for r in rows} == {"mixture", "irm"}
    for r in mixture:
        assert abs(float(r["si_sdri"])) <= 1e-6
        assert float(r["si_sdr"]) == pytest.approx(float(r["si_sdr_mix"]), abs=1e-6)
        assert irm[(r["mix_id"], r["source_index"])] > float(r["si_sdr"])
    assert res.summary.mean("mixture") == pytest.approx(0.0, abs=1e-6)
    assert res.summary.mean("irm") > res.summary.mean("mixture") + 5
    summary = _rows(out / "summary.csv")
    overall = {r["system"]: r for r in summary if r["label"] == "ALL" and r["num_sources"] == "ALL"}
    assert abs(float(overall["mixture"]["si_sdri_mean"])) <= 1e-6
    assert int(overall["mixture"]["count"]) == res.sources
    per_label_n = [r for r in summary if r["label"] != "ALL" and r["num_sources"] != "ALL"]
    assert sum(int(r["count"]) for r in per_label_n if r["system"] == "mixture") == res.sources
    per_label = {r["label"]: int(r["count"]) for r in summary
                 if r["label"] != "ALL" and r["num_sources"] == "ALL" and r["system"] == "mixture"}
    assert sum(per_label.values()) == res.sources  # per label over every number of sources
    for lab, count in per_label.items():
        assert count == sum(int(r["count"]) for r in per_label_n if r["label"] == lab and r["system"] == "mixture")


def test_rows_match_the_rendered_references(toy_render, validation_eval):
    """Every source of every rendered validation mixture gets one row per system, with its label."""
    samples = list(iter_rendered(toy_render(), "validation"))
    rows = _rows(validation_eval.output / "results.csv")
    want = {(s.mix_id, str(i + 1), lab) for s in samples for i, lab in enumerate(s.labels)}
    got = {(r["mix_id"], r["source_index"], r["label"]) for r in rows if r["system"] == "irm"}
    assert got == want


SEPARATOR_MODULE = '''
import numpy as np
CALLS = []

def separate(mix, sr, query_label):
    CALLS.append((mix.shape, sr, query_label))
    return np.asarray(mix) * 0.25  # a scaled mixture: SI-SDRi must be 0

def oracle_leak(mix, sr, query_label):
    return [0.0] * 3  # wrong length

def broken(mix, sr, query_label):
    raise RuntimeError("model not loaded")
'''


@pytest.mark.slow  # end to end over the toy corpus
def test_separator_callable_module_file(toy_render, tmp_path):
    mod = tmp_path / "my_sep.py"
    mod.write_text(SEPARATOR_MODULE)
    fn = load_separator(f"{mod}:separate")
    res = evaluate(toy_render(), tmp_path / "out", split="validation", separator=fn,
                   options=replace(QUIET, name="scaled", limit=3))
    calls = sys.modules["_hive_separator_my_sep"].CALLS
    samples = list(iter_rendered(toy_render(), "validation"))[:3]
    assert [c[2] for c in calls] == [lab for s in samples for lab in s.labels]
    assert all(c[1] == s.sample_rate for c, s in zip(calls, samples))
    rows = [r for r in _rows(tmp_path / "out" / "results.csv") if r["system"] == "scaled"]
    assert len(rows) == res.sources == sum(s.num_sources for s in samples)
    assert all(abs(float(r["si_sdri"])) <= 1e-6 for r in rows)
    with pytest.raises(EvalError, match=r"shape \(3,\), expected"):
        evaluate(toy_render(), tmp_path / "bad", split="validation", separator=f"{mod}:oracle_leak", options=QUIET)
    with pytest.raises(EvalError, match="separator raised RuntimeError: model not loaded") as info:
        evaluate(toy_render(), tmp_path / "bad", split="validation", separator=f"{mod}:broken", options=QUIET)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert not (tmp_path / "bad" / "results.csv").exists()  # no partial results left as if complete


@pytest.mark.slow  # end to end over the toy corpus
def test_estimates_folder(toy_render, tmp_path):
    root = tmp_path / "est"
    samples = list(iter_rendered(toy_render(), "validation"))[:4]
    rng = np.random.default_rng(0)
    for s in samples:
        for i, ref in enumerate(s.stems, 1):
            d = root / s.split / s.mix_id
            d.mkdir(parents=True, exist_ok=True)
            noise = rng.standard_normal(ref.shape[0])
            noise *= np.sqrt((ref.astype(np.float64) ** 2).sum() / (noise ** 2).sum() / 10)  # ~10 dB
            sf.write(d / f"s{i}.wav", (ref + noise).astype(np.float32), s.sample_rate, subtype="FLOAT")
    res = evaluate(toy_render(), tmp_path / "out", split="validation", estimates=root,
                   options=replace(QUIET, limit=4))
    rows = [r for r in _rows(tmp_path / "out" / "results.csv") if r["system"] == "estimates"]
    assert len(rows) == res.sources
    assert all(abs(float(r["si_sdr"]) - 10.0) < 0.5 for r in rows)
    # a folder that lacks the later mixtures: clear error, or skipped and counted with allow_missing
    with pytest.raises(EvalError, match="no estimate .*s1.wav.*--allow-missing"):
        evaluate(toy_render(), tmp_path / "o2", split="validation", estimates=root, options=QUIET)
    res = evaluate(toy_render(), tmp_path / "o3", split="validation", estimates=root,
                   options=replace(QUIET, allow_missing=True, limit=6))
    assert sum(res.missing.values()) == res.sources - len(rows)


def test_estimates_wrong_rate_or_length(toy_render, tmp_path):
    s = next(iter_rendered(toy_render(), "validation"))
    d = tmp_path / "est" / s.split / s.mix_id
    d.mkdir(parents=True)
    sf.write(d / "s1.wav", s.stems[0], 16000)
    with pytest.raises(EvalError, match=f"16000 Hz, expected {s.sample_rate} Hz"):
        evaluate(toy_render(), tmp_path / "o", split="validation", estimates=tmp_path / "est", options=QUIET)
    sf.write(d / "s1.wav", s.stems[0][:-7], s.sample_rate)
    with pytest.raises(EvalError, match=rf"shape \({s.mix.shape[0] - 7},\), expected \({s.mix.shape[0]},\)"):
        evaluate(toy_render(), tmp_path / "o", split="validation", estimates=tmp_path / "est", options=QUIET)


def test_bad_inputs(toy_render, tmp_path):
    with pytest.raises(EvalError, match="not a folder"):
        evaluate(tmp_path / "nope", tmp_path / "o")
    with pytest.raises(EvalError, match="no shards of split 'nosuch'"):
        evaluate(toy_render(), tmp_path / "o", split="nosuch")
    with pytest.raises(EvalError, match="MODULE:FUNCTION"):
        evaluate(toy_render(), tmp_path / "o", separator="no_colon")
    with pytest.raises(EvalError, match="cannot import"):
        evaluate(toy_render(), tmp_path / "o", separator="no_such_module_xyz:separate")
    with pytest.raises(EvalError, match="reserved"):
        evaluate(toy_render(), tmp_path / "o", separator=lambda m, sr, q: m, options=EvalOptions(name="irm"))
    with pytest.raises(EvalError, match="not both"):
        evaluate(toy_render(), tmp_path / "o", separator=lambda m, sr, q: m, estimates=tmp_path)


@pytest.mark.slow  # end to end over the toy corpus
def test_parquet_render_gives_the_same_rows(toy_render, tmp_path):
    a = evaluate(toy_render(), tmp_path / "a", split="validation", options=replace(QUIET, limit=4))
    b = evaluate(toy_render(format="parquet"), tmp_path / "b", split="validation", options=replace(QUIET, limit=4))
    key = lambda r: (r["system"], r["mix_id"], r["source_index"])  # noqa: E731
    ra = sorted(_rows(a.files["results"]), key=key)
    rb = sorted(_rows(b.files["results"]), key=key)
    assert ra == rb and len(ra) > 0


@pytest.mark.slow
def test_cli_subprocess_on_rendered_toy(toy_render, tmp_path):
    """The real ``hive eval`` in a subprocess, with a separator module on PYTHONPATH, SDR included."""
    (tmp_path / "sepmod.py").write_text(SEPARATOR_MODULE)
    out = tmp_path / "report"
    args = ["eval", "--rendered", str(toy_render()), "--output", str(out), "--split", "test",
            "--separator", "sepmod:separate", "--name", "quarter", "--limit", "2", "--no-progress"]
    if not sdr_available():
        args.append("--no-sdr")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "mixing", *args], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| mixture | ALL | ALL |" in proc.stdout and "| quarter | ALL | ALL |" in proc.stdout
    for name in ("results.csv", "summary.csv", "summary.md", "si_sdri.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "si_sdri.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _rows(out / "results.csv")
    assert {r["system"] for r in rows} == {"mixture", "irm", "quarter"}
    if sdr_available():
        assert all(abs(float(r["sdri"])) < 1e-6 for r in rows if r["system"] == "mixture")
        assert all(float(r["sdr"]) > float(r["sdr_mix"]) for r in rows if r["system"] == "irm")
    bad = subprocess.run([sys.executable, "-m", "mixing", "eval", "--rendered", str(tmp_path / "none"),
                          "--output", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("hive eval: error: --rendered") and "Traceback" not in bad.stderr


@pytest.mark.slow  # end to end over the toy corpus
def test_cli_in_process_estimates_missing_exit_1(toy_render, tmp_path, capsys):
    (tmp_path / "est").mkdir()
    rc = main(["eval", "--rendered", str(toy_render()), "--output", str(tmp_path / "o"), "--split",
               "validation", "--estimates", str(tmp_path / "est"), "--allow-missing", "--no-sdr", "--no-plot",
               "--no-progress", "--limit", "2"])
    assert rc == 1  # nothing but oracle rows were computed: not a success
    assert "missing estimates (skipped)" in capsys.readouterr().out
