"""The Python API (mixing.api, dataset_card.api): each function on the toy corpus, against the CLI
or an independent count."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

import mixing
from dataset_card.api import card
from dataset_card.card import CardError
from mixing import api
from mixing.cli import main
from mixing.errors import HiveError
from mixing.metadata_io import iter_records
from mixing.render_estimate import InsufficientSpaceError, check_space
from mixing.synthesis.config import SynthesisConfig
from mixing.toy import write_toy_ontology


def _shards(root: Path, split: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / split).rglob("tar_*.tar"))}


def test_api_is_reachable_from_the_package_and_documented():
    assert mixing.api is api
    for fn in (api.check, api.render, api.verify, api.synthesize, api.evaluate, card):
        assert fn.__doc__ and len(fn.__doc__) > 80, fn.__name__


@pytest.mark.slow  # end to end over the toy corpus
def test_check(toy_corpus):
    report = api.check(toy_corpus.parquet_dir, toy_corpus.dataset_paths, split="validation", progress=False)
    assert report.total_mixtures == toy_corpus.num_mixtures["validation"]
    everything = api.check(toy_corpus.parquet_dir, toy_corpus.dataset_paths, progress=False, jobs=2)
    assert everything.total_mixtures == sum(toy_corpus.num_mixtures.values())
    with pytest.raises(HiveError, match=r"jobs is 0; expected a number of workers in 1..1024"):
        api.check(toy_corpus.parquet_dir, toy_corpus.dataset_paths, jobs=0)


@pytest.mark.slow  # end to end over the toy corpus
def test_render_estimate_progress_and_bytes_equal_the_cli(toy_corpus, toy_render, tmp_path, capsys):
    seen = []
    out = tmp_path / "r"
    summary = api.render(toy_corpus.parquet_dir, toy_corpus.dataset_paths, out, split="validation",
                         options=api.RenderOptions(shard_size=8, progress=True, on_estimate=seen.append))
    est = seen[0]
    n = toy_corpus.num_mixtures["validation"]
    assert est.mixtures == n and summary.mixtures_rendered + summary.num_failures == n
    err = capsys.readouterr().err
    assert f"{n}/{n}" in err  # the bar knew its total
    written = sum(len(b) for b in _shards(out, "validation").values())
    assert abs(written - est.bytes) / est.bytes < 0.01  # the estimate is the audio payload
    # the API writes what the CLI writes (the CLI render of every split, same shard size)
    assert _shards(out, "validation") == _shards(toy_render(), "validation")
    # rerun: the estimate counts the shards already there, nothing is rendered again
    again = api.render(toy_corpus.parquet_dir, api.RenderRecipe.make(toy_corpus.dataset_paths), out, split="validation",
                       options=api.RenderOptions(shard_size=8, progress=False, on_estimate=seen.append))
    assert again.shards_rendered == 0 and seen[1].needed_bytes < 0.01 * est.bytes


def test_render_refuses_when_the_estimate_exceeds_free_space(toy_corpus, tmp_path, monkeypatch, capsys):
    from mixing import render_estimate

    est = render_estimate.estimate_render(toy_corpus.parquet_dir, tmp_path, split="test")
    with pytest.raises(InsufficientSpaceError, match="--force"):
        check_space(dataclasses.replace(est, free_bytes=est.bytes // 2), tmp_path)
    check_space(dataclasses.replace(est, free_bytes=est.bytes // 2), tmp_path, force=True)
    # the CLI, with a filesystem reported as nearly full
    monkeypatch.setattr(render_estimate, "free_space", lambda path: 1000)
    argv = ["render", "--metadata", str(toy_corpus.parquet_dir), "--dataset-paths", str(toy_corpus.dataset_paths),
            "--output", str(tmp_path / "out"), "--split", "test", "--num-sources", "2", "--no-progress"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("hive render: error: the render needs about") and "has 1.0 kB free" in captured.err
    assert not list((tmp_path / "out").rglob("*.tar"))
    assert main([*argv, "--force", "--allow-failures"]) == 0
    assert "render estimate:" in capsys.readouterr().out
    assert list((tmp_path / "out").rglob("*.tar"))


@pytest.mark.slow  # end to end over the toy corpus
def test_verify(toy_corpus, toy_render):
    report = api.verify(toy_render(), metadata=toy_corpus.parquet_dir, progress=False)
    assert report.samples > 0
    assert report.clean, report.summary()


@pytest.mark.slow  # end to end over the toy corpus
def test_verify_finds_a_damaged_shard(toy_render, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(toy_render(), copy)
    shard = sorted((copy / "validation").rglob("tar_*.tar"))[0]
    shard.write_bytes(shard.read_bytes()[:5000])
    assert not api.verify(copy, progress=False).clean


def test_synthesize_settings_precedence(toy_corpus, tmp_path):
    ontology = write_toy_ontology(tmp_path / "onto.json")
    cfg_file = tmp_path / "synth.yaml"
    cfg_file.write_text(yaml.safe_dump({"num_mixtures": 3, "seed": 4, "split": "train"}))
    result, stats = api.synthesize(toy_corpus.pool, tmp_path / "a", cfg_file, ontology=ontology,
                                   dataset_paths=toy_corpus.dataset_paths)
    assert len(result.records) == 3 and stats["num_mixtures"] == 3
    assert len(list(iter_records(tmp_path / "a", split="train"))) == 3
    merged = api.synthesis_config(SynthesisConfig(num_mixtures=9, seed=4), num_mixtures=2, max_sources=2)
    assert (merged.num_mixtures, merged.seed, merged.max_sources) == (2, 4, 2)  # defaults < config < settings
    result, _ = api.synthesize(toy_corpus.pool, tmp_path / "b", merged, ontology=ontology,
                               dataset_paths=toy_corpus.dataset_paths)
    assert len(result.records) == 2 and all(r.num_sources == 2 for r in result.records)
    with pytest.raises(HiveError):
        api.synthesize(toy_corpus.pool, tmp_path / "c", SynthesisConfig(num_mixtures=2, min_sources=4, max_sources=2),
                       ontology=ontology, dataset_paths=toy_corpus.dataset_paths)
    assert not (tmp_path / "c").exists()


@pytest.mark.slow  # end to end over the toy corpus
def test_card(toy_corpus, tmp_path):
    result = card(toy_corpus.parquet_dir, tmp_path / "card", provenance={"seed": 7}, top_labels=5)
    assert result.stats.num_mixtures == sum(toy_corpus.num_mixtures.values())
    readme = (tmp_path / "card" / "README.md").read_text()
    assert readme.startswith("---") and '"seed": 7' in readme  # provenance shown in the card
    assert all(Path(p).is_file() for p in result.plots.values())
    with pytest.raises(CardError, match="expected a dict"):
        card(toy_corpus.parquet_dir, tmp_path / "bad", provenance=json.dumps({"seed": 7}))
    with pytest.raises(CardError, match="rows_per_file is 0"):
        card(toy_corpus.parquet_dir, tmp_path / "bad", rows_per_file=0)


@pytest.mark.slow  # end to end over the toy corpus
def test_evaluate(toy_render, tmp_path):
    result = api.evaluate(toy_render(), tmp_path, split="validation", separator=lambda mix, sr, q: mix,
                          options=api.EvalOptions(with_sdr=False, plot=False, limit=1, progress=False))
    assert result.mixtures == 1 and result.summary.mean("separator") == pytest.approx(0.0, abs=1e-6)


def test_moved_keywords_are_refused_naming_their_new_place(toy_corpus, tmp_path):
    """Issue 20 moved options into config objects; an old call gets one line saying where each went,
    before any work, and the signatures (what help() and an IDE show) are the new ones."""
    import inspect

    from mixing.moved_arguments import MovedArgumentError

    meta, paths, out = toy_corpus.parquet_dir, toy_corpus.dataset_paths, tmp_path / "o"
    cases = [
        (lambda: api.render(meta, paths, out, num_workers=2, store="s/"),
         r"num_workers= moved to options=RenderOptions\(\.\.\.\); store= moved to recipe=RenderRecipe\.make"),
        (lambda: api.synthesize(toy_corpus.pool, out, num_mixtures=3), r"num_mixtures= moved to config=api\.synthesis_config"),
        (lambda: api.evaluate(out, out, with_sdr=False), r"with_sdr= moved to options=EvalOptions"),
        (lambda: api.evaluate(None, out, metadata=meta, store="s/"), r"store= moved to recipe=RenderRecipe\.make"),
    ]
    for call, message in cases:
        with pytest.raises(MovedArgumentError, match=message) as info:
            call()
        assert "\n" not in str(info.value) and "docs/python-api.md" in str(info.value)
        assert isinstance(info.value, (HiveError, TypeError))
    assert not out.exists()
    assert list(inspect.signature(api.render).parameters) == ["metadata", "recipe", "output", "split", "revision",
                                                             "options"]
    assert list(inspect.signature(api.synthesize).parameters) == ["pool", "output", "config", "ontology",
                                                                 "dataset_paths", "dry_run"]


def test_render_options_and_recipe_are_checked_when_made(toy_corpus):
    from mixing.numbers import NumberError

    with pytest.raises(HiveError, match=r"rank is 2 but world_size is 2; expected a rank in 0\.\.1"):
        api.RenderOptions(rank=2, world_size=2)
    with pytest.raises(HiveError, match=r"format is 'zip'; expected one of \('webdataset', 'parquet'\)"):
        api.RenderOptions(format="zip")
    with pytest.raises(NumberError, match="render option shard_size is 0"):
        api.RenderOptions(shard_size=0)
    with pytest.raises(NumberError, match="render option num_workers is None"):
        api.RenderOptions(num_workers=None)
    opts = api.RenderOptions(labels=["Dog"], num_sources=2.0)
    assert isinstance(opts.labels, api.LabelFilter) and opts.num_sources == 2 and isinstance(opts.num_sources, int)
    recipe = api.RenderRecipe.make(toy_corpus.dataset_paths, stems="reference")
    assert api.RenderRecipe.coerce(recipe) is recipe
    assert api.RenderRecipe.coerce(str(toy_corpus.dataset_paths)) == api.RenderRecipe.make(toy_corpus.dataset_paths)
    with pytest.raises(HiveError, match="recipe is a int; expected a RenderRecipe"):
        api.RenderRecipe.coerce(42)
    with pytest.raises(HiveError, match="expected a RenderOptions"):
        api.render(toy_corpus.parquet_dir, recipe, "unused", options={"num_workers": 2})
    with pytest.raises(HiveError, match="recipe goes with metadata"):
        api.evaluate("rendered", "unused", recipe=recipe)
