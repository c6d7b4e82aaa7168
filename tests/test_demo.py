"""`hive demo`'s Hub layout without matplotlib (the core install of `make demo`): written by the one
card writer of `hive card` with plots=False, the same data/{config}/{split}-*.parquet files and a
README.md whose configs `load_dataset` follows; and the demo's on-the-fly step."""

from __future__ import annotations

import datasets
import pytest

from dataset_card.card import CardConfig, write_card_folder
from dataset_card.demo import describe_first_example, write_hub_metadata
from mixing import optional
from mixing.metadata_io import iter_records


@pytest.mark.slow  # end to end over the toy corpus
def test_card_without_plots_loads_per_config(toy_corpus, tmp_path):
    out = tmp_path / "hub"
    result = write_card_folder(toy_corpus.parquet_dir, out, CardConfig(repo_id="local/hive-toy", plots=False))
    assert result.plots == {} and not (out / "assets").exists()
    readme = (out / "README.md").read_text()
    # the same card as `hive card` (statistics, licences, citation), without the image links
    assert "assets/" not in readme and "## Source corpora and licences" in readme and "| 2 sources |" in readme
    records = list(iter_records(toy_corpus.parquet_dir))
    cache = str(tmp_path / "hf")
    for n in (2, 5):
        ds = datasets.load_dataset(str(out), f"{n}mix", split="test", cache_dir=cache)
        want = sorted(r.mix_id for r in records if r.split == "test" and r.num_sources == n)
        assert sorted(ds["mix_id"]) == want and len(want) == 4
    full = datasets.load_dataset(str(out), cache_dir=cache)
    assert sum(len(d) for d in full.values()) == len(records) == 80
    # what the other commands read: the default config only, no mixture twice
    assert sorted(r.mix_id for r in iter_records(out)) == sorted(r.mix_id for r in records)


def test_card_with_plots_links_the_plots_it_drew(toy_corpus, tmp_path):
    if not optional.available("matplotlib"):
        import pytest

        pytest.skip("matplotlib is not installed (the card extra)")
    out = tmp_path / "hub"
    how = write_hub_metadata(toy_corpus.parquet_dir, out)
    readme = (out / "README.md").read_text()
    assert "plots" in how and "local/hive-toy" in readme
    for png in sorted((out / "assets").glob("*.png")):
        assert f"(assets/{png.name})" in readme
    assert len(list((out / "assets").glob("*.png"))) == 3


def test_demo_mixes_the_first_example_on_the_fly(toy_corpus, tmp_path):
    out = tmp_path / "hub"
    write_card_folder(toy_corpus.parquet_dir, out, CardConfig(plots=False))
    text = describe_first_example(out, toy_corpus.dataset_paths)
    first = next(r for r in iter_records(out) if r.split == "train")
    two = sum(1 for r in iter_records(toy_corpus.parquet_dir) if r.split == "train" and r.num_sources == 2)
    assert f": {two} rows of metadata" in text
    assert f"first example {first.mix_id}" in text
    assert f"sources ({first.num_sources}, 176400) float32" in text and "mix     (176400,) float32 at 44100 Hz" in text
    # consistent stems sum to the mix (float32 rounding only)
    assert float(text.rsplit("=", 1)[1]) < 1e-5
