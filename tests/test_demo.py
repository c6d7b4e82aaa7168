"""`hive demo`'s Hub layout without matplotlib (the core install of `make demo`): the same
data/{config}/{split}-*.parquet files and a README.md whose configs `load_dataset` follows."""

from __future__ import annotations

import datasets
import pytest

from mixing.cli.demo import write_hub_layout_without_plots
from mixing.metadata_io import iter_records


@pytest.mark.slow  # end to end over the toy corpus
def test_hub_layout_without_plots_loads_per_config(toy_corpus, tmp_path):
    out = tmp_path / "hub"
    write_hub_layout_without_plots(toy_corpus.parquet_dir, out)
    assert not (out / "assets").exists()
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
