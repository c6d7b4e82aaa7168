"""hive synthesize: every rule checked independently of the synthesizer's code, levels through the
renderer, split disjointness, determinism across workers, the CLI."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixing import packaged
from mixing.cli import main as hive
from mixing.corpora import DatasetPaths
from mixing.metadata_io import iter_records
from mixing.ontology import Ontology
from mixing.pool import PoolEntry, read_pool, write_pool
from mixing.render import Renderer
from mixing.synthesis.config import SynthesisConfig, SynthesisConfigError
from mixing.synthesis.splits import SplitLeakError, check_metadata_splits, check_pool_splits
from mixing.synthesis import SynthesisError, Synthesizer, run_synthesis, synthesize
from mixing.validation import check_mix_id

DATA = packaged.data_path("hive_ontology.json").parent
HIVE_ONTOLOGY = DATA / "hive_ontology.json"
SPLITS = ("train", "validation", "test")


# ---- an independent reading of the ontology file (no mixing.ontology) ---------------------------
def _ontology_maps(path: Path) -> tuple[dict[str, str], dict[str, set[str]]]:
    nodes = json.loads(path.read_text(encoding="utf-8"))
    name_to_id = {n["name"]: n["id"] for n in nodes}
    parents: dict[str, set[str]] = defaultdict(set)
    for n in nodes:
        for c in n.get("child_ids", []):
            parents[c].add(n["id"])
    return name_to_id, parents


def _ancestors(node: str, parents: dict[str, set[str]]) -> set[str]:
    out, stack = set(), [node]
    while stack:
        for p in parents.get(stack.pop(), ()):
            if p not in out:
                out.add(p)
                stack.append(p)
    return out


@pytest.fixture(scope="module")
def hive_ontology_file() -> Path:
    if not HIVE_ONTOLOGY.is_file():
        pytest.skip(f"{HIVE_ONTOLOGY} not present")
    return HIVE_ONTOLOGY


def _synthetic_pool(ontology_file: Path, seed: int = 0) -> list[PoolEntry]:
    """Every non-root class (all leaves and the internal nodes, so ancestor pairs are possible),
    1-9 original files each, files of 2-40 s cut into 10 s chunks, each file in one split."""
    nodes = json.loads(ontology_file.read_text(encoding="utf-8"))
    has_parent = {c for n in nodes for c in n.get("child_ids", [])}
    rng = np.random.default_rng(seed)
    pool = []
    prefixes = ("AudioSet", "FSD50K", "BBC_Sound_Effects", "FreeSound")
    for i, n in enumerate(x for x in nodes if x["id"] in has_parent):
        for f in range(int(rng.integers(1, 10))):
            path = f"{prefixes[(i + f) % 4]}/class{i:03d}/file{f}.wav"
            split = SPLITS[int(rng.choice(3, p=[0.6, 0.2, 0.2]))] if f > 0 else "train"
            dur = float(rng.choice([2.0, 3.5, 4.0, 6.25, 10.0, 23.0, 40.0]))
            start, k = 0.0, 0
            while True:
                end = min(start + 10.0, dur)
                pool.append(PoolEntry(f"c{i:03d}_{f}_{k}", path, start, end, n["name"], n["id"], 44100, 1 + k % 2, split))
                if end >= dur:
                    break
                start, k = start + 5.0, k + 1
    return pool


# ---- 10,000 mixtures: every rule ------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_run(hive_ontology_file, tmp_path_factory):
    pool = _synthetic_pool(hive_ontology_file)
    train_labels = sorted({e.label for e in pool if e.split == "train"})
    # a compatibility file forbidding every pair among the first 40 labels, and a few more
    rng = np.random.default_rng(1)
    forbidden = {frozenset(p) for p in combinations(train_labels[:40], 2)}
    for _ in range(300):
        a, b = rng.choice(len(train_labels), size=2, replace=False)
        forbidden.add(frozenset((train_labels[a], train_labels[b])))
    compat = tmp_path_factory.mktemp("compat") / "pairs.csv"
    with open(compat, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label_a", "label_b", "weight"])
        for pair in sorted(tuple(sorted(p)) for p in forbidden):
            w.writerow([pair[0], pair[1], 0])
    cfg = SynthesisConfig(split="train", num_mixtures=10_000, seed=3, compatibility=str(compat))
    synth = Synthesizer(pool, cfg, ontology=Ontology.from_json(hive_ontology_file))
    reasons: Counter = Counter()
    drafts = synth.sample_parameters(0, cfg.num_mixtures, reasons)
    return pool, drafts, forbidden, cfg


def test_10k_distinct_labels_and_no_ancestor_pairs(big_run, hive_ontology_file):
    pool, drafts, _, _ = big_run
    name_to_id, parents = _ontology_maps(hive_ontology_file)
    assert len(drafts) == 10_000
    ancestor_pairs_possible = 0
    labels = sorted({e.label for e in pool if e.split == "train"})
    for a, b in combinations(labels, 2):
        ia, ib = name_to_id[a], name_to_id[b]
        ancestor_pairs_possible += ia in _ancestors(ib, parents) or ib in _ancestors(ia, parents)
    assert ancestor_pairs_possible > 100  # the rule is not vacuous on this pool
    anc = {lab: _ancestors(name_to_id[lab], parents) for lab in labels}
    for rec in drafts:
        labs = rec.labels
        assert len(set(labs)) == len(labs), rec.mix_id
        for a, b in combinations(labs, 2):
            assert name_to_id[a] not in anc[b] and name_to_id[b] not in anc[a], (rec.mix_id, a, b)


def test_10k_forbidden_pairs_never_appear(big_run):
    _, drafts, forbidden, _ = big_run
    seen = Counter()
    for rec in drafts:
        for a, b in combinations(rec.labels, 2):
            assert frozenset((a, b)) not in forbidden, (rec.mix_id, a, b)
            seen[frozenset((a, b))] += 1
    # the first 40 labels are still used, each with others (forbidding did not remove them)
    labels = Counter(lab for rec in drafts for lab in rec.labels)
    first = sorted(labels)[:40]
    assert all(labels[lab] > 0 for lab in first)


def test_10k_source_count_uniform(big_run):
    _, drafts, _, _ = big_run
    counts = Counter(r.num_sources for r in drafts)
    assert set(counts) == {2, 3, 4, 5}
    expected = len(drafts) / 4
    chi2 = sum((counts[k] - expected) ** 2 / expected for k in (2, 3, 4, 5))
    assert chi2 < 16.27, counts  # 3 degrees of freedom, p = 0.001
    for r in drafts:
        assert r.num_sources == len(r.sources) and [s.source_id for s in r.sources] == [
            f"s{i + 1}" for i in range(r.num_sources)]


def test_10k_snr_range(big_run):
    _, drafts, _, _ = big_run
    others = []
    for rec in drafts:
        assert rec.sources[0].snr_db == 0.0
        for s in rec.sources[1:]:
            assert -5.0 <= s.snr_db <= 5.0
            others.append(s.snr_db)
    others = np.array(others)
    assert abs(others.mean()) < 0.15 and others.min() < -4.8 and others.max() > 4.8
    hist, _ = np.histogram(others, bins=10, range=(-5, 5))
    assert hist.min() > 0.8 * hist.mean()  # uniform, roughly


def test_10k_crops_inside_chunks(big_run):
    _, drafts, _, cfg = big_run
    D = cfg.target_duration
    rel = []
    padded = 0
    for rec in drafts:
        assert rec.target_duration == D == 4.0
        for s in rec.sources:
            span = s.chunk_end_second - s.chunk_start_second
            assert s.crop_start_second >= 0
            assert math.isclose(s.crop_end_second - s.crop_start_second, D, abs_tol=1e-6)
            if span >= D:
                assert s.crop_end_second <= span + 1e-6, (rec.mix_id, s)
                if span > D:
                    rel.append(s.crop_start_second / (span - D))
            else:  # shorter chunk: starts at 0, the renderer pads with zeros
                assert s.crop_start_second == 0.0
                padded += 1
            assert round(s.crop_start_second, 3) == s.crop_start_second
    assert padded > 100
    rel = np.array(rel)
    assert 0.45 < rel.mean() < 0.55 and rel.min() < 0.02 and rel.max() > 0.98


def test_10k_split_purity_and_pool_fidelity(big_run):
    pool, drafts, _, _ = big_run
    by_key = {(e.path, e.chunk_start_second, e.chunk_end_second): e for e in pool}
    split_of_file = defaultdict(set)
    for e in pool:
        split_of_file[e.path].add(e.split)
    for rec in drafts:
        assert rec.split == "train"
        files = [s.path for s in rec.sources]
        assert len(set(files)) == len(files)  # distinct original files
        for s in rec.sources:
            e = by_key[(s.path, s.chunk_start_second, s.chunk_end_second)]
            assert e.split == "train" and e.label == s.label
            assert split_of_file[s.path] == {"train"}
    assert check_metadata_splits(drafts, pool).ok


def test_10k_mix_ids_unique_valid(big_run):
    _, drafts, _, _ = big_run
    ids = [r.mix_id for r in drafts]
    assert len(set(ids)) == len(ids)
    for i in ids[:200] + ids[-200:]:
        check_mix_id(i)
    assert ids[:2] == ["hive_train_00000000", "hive_train_00000001"]


def test_uniform_label_sampling_counters_long_tail(hive_ontology_file):
    pool = _synthetic_pool(hive_ontology_file)
    onto = Ontology.from_json(hive_ontology_file)
    clips = Counter(e.label for e in pool if e.split == "train")
    out = {}
    for mode in ("uniform", "proportional"):
        cfg = SynthesisConfig(num_mixtures=3000, label_sampling=mode, min_sources=2, max_sources=2)
        drafts = Synthesizer(pool, cfg, ontology=onto).sample_parameters(0, 3000)
        used = Counter(lab for r in drafts for lab in r.labels)
        out[mode] = np.corrcoef([clips[k] for k in clips], [used[k] for k in clips])[0, 1]
    assert out["proportional"] > 0.6 and abs(out["uniform"]) < 0.2, out


def test_sibling_exclusion(hive_ontology_file):
    pool = _synthetic_pool(hive_ontology_file)
    name_to_id, parents = _ontology_maps(hive_ontology_file)
    cfg = SynthesisConfig(num_mixtures=2000, exclude_siblings=True)
    drafts = Synthesizer(pool, cfg, ontology=Ontology.from_json(hive_ontology_file)).sample_parameters(0, 2000)
    for rec in drafts:
        for a, b in combinations(rec.labels, 2):
            assert not (parents[name_to_id[a]] & parents[name_to_id[b]]), (rec.mix_id, a, b)


def _flat_pool(labels: list[str], split: str = "train") -> list[PoolEntry]:
    return [PoolEntry(f"{lab}_{k}", f"X/{lab}/{k}.wav", 0.0, 10.0, lab, "", 16000, 1, split)
            for lab in labels for k in range(3)]


def test_weighted_compatibility_biases_pairs(tmp_path):
    labels = list("ABCDEF")
    matrix = {a: {b: (8.0 if {a, b} == {"A", "B"} else 0.0 if {a, b} == {"C", "D"} else 1.0)
                  for b in labels} for a in labels}
    path = tmp_path / "compat.json"
    path.write_text(json.dumps(matrix))
    cfg = SynthesisConfig(num_mixtures=2000, min_sources=2, max_sources=2, exclude_ancestors=False,
                          compatibility=str(path))
    drafts = Synthesizer(_flat_pool(labels), cfg).sample_parameters(0, 2000)
    pairs = Counter(frozenset(r.labels) for r in drafts)
    assert pairs[frozenset("CD")] == 0
    others = [v for k, v in pairs.items() if k != frozenset("AB")]
    # sequential draw: P(AB) = 2 * 1/6 * 8/12 = 0.22; the largest other pair is 1/6 * (1/4 + 1/5) = 0.075
    assert pairs[frozenset("AB")] > 2 * max(others)
    assert pairs[frozenset("AB")] / 2000 == pytest.approx(2 / 9, abs=0.03)


def test_compatibility_csv_matrix_form(tmp_path):
    labels = list("ABCDE")
    path = tmp_path / "m.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([""] + labels)
        for a in labels:
            w.writerow([a] + [0 if {a, b} in ({"A", "B"}, {"B", "C"}) else 1 for b in labels])
    cfg = SynthesisConfig(num_mixtures=500, min_sources=2, max_sources=3, exclude_ancestors=False,
                          compatibility=str(path))
    for r in Synthesizer(_flat_pool(labels), cfg).sample_parameters(0, 500):
        assert not {"A", "B"} <= set(r.labels) and not {"B", "C"} <= set(r.labels)


def test_compatibility_default_zero_allows_listed_pairs_only(tmp_path):
    labels = [f"L{i}" for i in range(30)]
    allowed = {frozenset(("L0", "L1")), frozenset(("L1", "L2")), frozenset(("L0", "L2")), frozenset(("L7", "L9"))}
    path = tmp_path / "pairs.csv"
    path.write_text("label_a,label_b,weight\n" + "".join(f"{a},{b},1\n" for a, b in map(sorted, allowed)))
    cfg = SynthesisConfig(num_mixtures=400, min_sources=2, max_sources=3, exclude_ancestors=False,
                          compatibility=str(path), compatibility_default=0.0)
    reasons = Counter()
    drafts = Synthesizer(_flat_pool(labels), cfg).sample_parameters(0, 400, reasons)
    for r in drafts:
        for a, b in combinations(r.labels, 2):
            assert frozenset((a, b)) in allowed
    assert {frozenset(r.labels) for r in drafts if r.num_sources == 3} == {frozenset(("L0", "L1", "L2"))}
    assert reasons["redraw_no_compatible_label"] > 0  # dead ends are redrawn and counted


def test_config_errors_are_actionable(hive_ontology_file, tmp_path):
    pool = _flat_pool(list("ABCDEF"))
    with pytest.raises(SynthesisConfigError, match="max_sources"):
        SynthesisConfig(max_sources=6).validate()
    with pytest.raises(SynthesisError, match="no clip of split 'test'"):
        Synthesizer(pool, SynthesisConfig(split="test", exclude_ancestors=False))
    with pytest.raises(SynthesisError, match="not in the ontology"):
        Synthesizer(pool, SynthesisConfig(), ontology=Ontology.from_json(hive_ontology_file))
    s = Synthesizer(pool + _flat_pool(["Dog", "Rain", "Wind", "Piano", "Drum"]),
                    SynthesisConfig(unknown_labels="skip"), ontology=Ontology.from_json(hive_ontology_file))
    assert s.skipped_clips == 18 and set(s.rules.labels) == {"Dog", "Rain", "Wind", "Piano", "Drum"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_mixture: 3\n")
    with pytest.raises(SynthesisConfigError, match="unknown synthesis settings"):
        SynthesisConfig.from_yaml(bad)


# ---- audio: levels, silent redraws, determinism, splits, CLI --------------------------------
@pytest.fixture(scope="module")
def toy(toy_corpus, tmp_path_factory):
    """The session's toy corpus (read-only) and a small ontology over its classes."""
    from mixing.toy import write_toy_ontology

    return toy_corpus, write_toy_ontology(tmp_path_factory.mktemp("onto") / "toy_ontology.json")


def test_levels_reproduced_by_the_renderer(toy, tmp_path):
    corpus, ontology = toy
    records = []
    for split, n in (("train", 12), ("test", 8)):  # test: 10 s crops of shorter chunks (zero padding)
        cfg = SynthesisConfig(split=split, num_mixtures=n, seed=5)
        result, stats = run_synthesis(corpus.pool, cfg, tmp_path / "out", ontology=ontology,
                                      dataset_paths=corpus.dataset_paths)
        assert len(result.records) == n and not result.failures
        assert stats["num_mixtures"] == n
        records += list(iter_records(tmp_path / "out", split=split))
    assert [r.mix_id for r in records[:2]] == ["hive_train_00000000", "hive_train_00000001"]
    assert any(s.chunk_end_second - s.chunk_start_second < 10 for r in records if r.split == "test" for s in r.sources)
    renderer = Renderer(corpus.dataset_paths, stems="reference")
    for rec in records:
        out = renderer.render(rec)
        assert out.stem_scale == 1.0
        for s, stem in zip(rec.sources, out.stems):
            rms = float(np.sqrt(np.mean(stem.astype(np.float64) ** 2)))
            assert rms == pytest.approx(0.1 * 10 ** (s.snr_db / 20), rel=0.01), (rec.mix_id, s.source_id)
            assert s.applied_weight == pytest.approx(s.rms_gain * 10 ** (s.snr_db / 20), rel=1e-9)
        assert float(np.max(np.abs(out.mix))) == pytest.approx(0.95, abs=1e-6)
        assert rec.final_max_amplitude == 0.95


def test_silent_and_missing_sources_are_redrawn_and_counted(toy, tmp_path):
    corpus, ontology = toy
    pool = read_pool(corpus.pool)
    # a scratch corpus next to the (read-only) toy corpora: one silent file, one missing file
    roots = dict(DatasetPaths.from_json(corpus.dataset_paths).roots, Scratch=tmp_path)
    sf.write(str(tmp_path / "silence.wav"), np.zeros(44100 * 6), 44100)
    extra = []
    for lab in ("Wind", "Rain", "Dog"):
        for k in range(6):
            extra.append(PoolEntry(f"silent_{lab[0]}{k}", "Scratch/silence.wav", float(k) * 0.5,
                                   6.0, lab, "", 44100, 1, "train"))
    extra.append(PoolEntry("missing0", "Scratch/not_there.wav", 0.0, 5.0, "Piano", "", 44100, 1, "train"))
    # the same silent file under three labels is one original file: keep it in one split only
    cfg = SynthesisConfig(num_mixtures=30, seed=2)
    synth = Synthesizer(pool + extra, cfg, ontology=Ontology.from_json(ontology))
    result = synthesize(synth, roots)
    assert len(result.records) == 30 and not result.failures
    assert result.reasons["redraw_silent_source"] > 0
    assert result.reasons["redraw_missing_file"] > 0
    for rec in result.records:
        assert all(not s.path.startswith("Scratch/") for s in rec.sources)
    stats = result.stats()
    assert stats["reasons"]["redraw_silent_source"] == result.reasons["redraw_silent_source"]


@pytest.mark.slow  # end to end over the toy corpus
def test_determinism_one_vs_two_workers_byte_identical(toy, tmp_path):
    corpus, ontology = toy
    outs = []
    for workers in (1, 2):
        cfg = SynthesisConfig(num_mixtures=24, seed=11, num_workers=workers)
        run_synthesis(corpus.pool, cfg, tmp_path / f"w{workers}", ontology=ontology,
                      dataset_paths=corpus.dataset_paths)
        outs.append((tmp_path / f"w{workers}" / "data" / "train-00000-of-00001.parquet").read_bytes())
    assert outs[0] == outs[1]
    # and a different seed changes it
    cfg = SynthesisConfig(num_mixtures=24, seed=12)
    run_synthesis(corpus.pool, cfg, tmp_path / "other", ontology=ontology, dataset_paths=corpus.dataset_paths)
    assert (tmp_path / "other" / "data" / "train-00000-of-00001.parquet").read_bytes() != outs[0]


def test_parameter_sampling_independent_of_ranges(hive_ontology_file):
    pool = _synthetic_pool(hive_ontology_file)
    synth = Synthesizer(pool, SynthesisConfig(num_mixtures=300, seed=4), ontology=Ontology.from_json(hive_ontology_file))
    whole = synth.sample_parameters(0, 300)
    parts = synth.sample_parameters(200, 300) + synth.sample_parameters(0, 200)
    assert sorted(parts, key=lambda r: r.mix_id) == whole
    result = synthesize(synth, None, num_workers=1)  # parameters only
    assert result.records == whole


def test_split_disjointness(toy, tmp_path):
    corpus, ontology = toy
    pool = read_pool(corpus.pool)
    assert check_pool_splits(pool).ok
    records = {}
    for split in SPLITS:
        cfg = SynthesisConfig(split=split, num_mixtures=10, seed=1, max_sources=4)
        result, _ = run_synthesis(pool, cfg, tmp_path / "out", ontology=ontology, dataset_paths=corpus.dataset_paths)
        records[split] = list(result.records)  # written to disk and re-read
        pool_files = {e.path for e in pool if e.split == split}
        assert {s.path for r in result.records for s in r.sources} <= pool_files
    files = {k: {s.path for r in v for s in r.sources} for k, v in records.items()}
    for a, b in combinations(SPLITS, 2):
        assert not files[a] & files[b]
    everything = [r for v in records.values() for r in v]
    check = check_metadata_splits(everything, pool)
    assert check.ok and set(check.files_by_split) == set(SPLITS)
    # a leaky pool (one file in two splits) is refused; leaky metadata is detected
    e = next(x for x in pool if x.split == "train")
    leaky = pool + [PoolEntry("leak", e.path, e.chunk_start_second, e.chunk_end_second, e.label, e.label_id,
                              e.native_sample_rate, e.num_channels, "test")]
    assert not check_pool_splits(leaky).ok
    with pytest.raises(SplitLeakError):
        Synthesizer(leaky, SynthesisConfig(), ontology=Ontology.from_json(ontology))
    moved = records["test"][0].replace(split="train")
    bad = check_metadata_splits(records["train"] + [moved] + records["test"][1:])
    assert not bad.ok and bad.leaks


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        hive(["synthesize", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--pool", "--ontology", "--dataset-paths", "--output", "--split", "--num-mixtures",
                 "--duration", "--seed", "--config", "--num-workers", "--legacy-json"):
        assert flag in out


def test_cli_with_yaml_config_and_overrides(toy, tmp_path, capsys):
    corpus, ontology = toy
    cfg = tmp_path / "synth.yaml"
    cfg.write_text("num_mixtures: 9\nsnr_low: -2\nsnr_high: 2\nmax_sources: 3\nseed: 100\nmix_id_prefix: mine\n")
    out = tmp_path / "out"
    status = hive(["synthesize", "--pool", str(corpus.pool), "--ontology", str(ontology), "--dataset-paths",
                   str(corpus.dataset_paths), "--output", str(out), "--config", str(cfg), "--seed", "7",
                   "--split", "validation", "--legacy-json"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "split validation: 9/9 mixtures synthesized" in printed and "sources per mixture" in printed
    recs = list(iter_records(out))
    assert len(recs) == 9 and all(r.mix_id.startswith("mine_validation_") for r in recs)
    assert all(2 <= r.num_sources <= 3 and all(-2 <= s.snr_db <= 2 for s in r.sources) for r in recs)
    written = SynthesisConfig.from_yaml(out / "synthesis_config_validation.yaml")
    assert written.seed == 7 and written.num_mixtures == 9 and written.snr_high == 2
    stats = json.loads((out / "synthesis_stats_validation.json").read_text())
    assert stats["num_mixtures"] == 9 and sum(stats["source_count_histogram"].values()) == 9
    assert stats["split_check"]["ok"] and stats["corpus_hours"]
    assert sum(stats["label_histogram"].values()) == sum(r.num_sources for r in recs)
    assert sum(c for _, _, c in stats["label_pair_counts"]) == sum(math.comb(r.num_sources, 2) for r in recs)
    assert any((out / "legacy").rglob("*.json"))
    # dry run: stats only
    status = hive(["synthesize", "--pool", str(corpus.pool), "--ontology", str(ontology), "--dataset-paths",
                   str(corpus.dataset_paths), "--output", str(tmp_path / "dry"), "--num-mixtures", "50", "--dry-run"])
    assert status == 0 and not (tmp_path / "dry" / "data").exists()
    assert json.loads((tmp_path / "dry" / "synthesis_stats_train.json").read_text())["num_mixtures"] == 50


def test_cli_pool_from_labelled_csv(toy, tmp_path):
    corpus, ontology = toy
    pool_file = tmp_path / "pool.parquet"
    from mixing.synthesis.labelled import build_pool_from_labels

    built = build_pool_from_labels(corpus.labels_csv, corpus.dataset_paths)
    write_pool(built.entries, pool_file)
    for pool in (pool_file, corpus.labels_csv):
        status = hive(["synthesize", "--pool", str(pool), "--ontology", str(ontology), "--dataset-paths",
                       str(corpus.dataset_paths), "--output", str(tmp_path / pool.suffix[1:]),
                       "--num-mixtures", "6", "--split", "test"])
        assert status == 0
    a = list(iter_records(tmp_path / "parquet"))
    b = list(iter_records(tmp_path / "csv"))
    assert a == b and len(a) == 6
