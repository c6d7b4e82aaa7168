"""How to cite Hive: the paper that describes the data set (one source for the builder's
``citation`` and the dataset card)."""

from __future__ import annotations

AUTHORS = ("Kai Li", "Jintao Cheng", "Chang Zeng", "Zijun Yan", "Helin Wang", "Zixiong Su", "Bo Zheng",
           "Xiaolin Hu")
TITLE = "A Semantically Consistent Dataset for Data-Efficient Query-Based Universal Sound Separation"
ARXIV_ID = "2601.22599"
YEAR = 2026


def _bibtex_author(name: str) -> str:
    first, last = name.rsplit(" ", 1)
    return f"{last}, {first}"


#: BibTeX entry of the paper
CITATION = f"""\
@article{{li2026hive,
  title         = {{{TITLE}}},
  author        = {{{' and '.join(_bibtex_author(a) for a in AUTHORS)}}},
  journal       = {{arXiv preprint arXiv:{ARXIV_ID}}},
  eprint        = {{{ARXIV_ID}}},
  archivePrefix = {{arXiv}},
  year          = {{{YEAR}}},
  url           = {{https://arxiv.org/abs/{ARXIV_ID}}},
}}
"""

#: the same reference as one plain-text line
REFERENCE = f"{', '.join(AUTHORS)}. \"{TITLE}\". arXiv:{ARXIV_ID}, {YEAR}."
