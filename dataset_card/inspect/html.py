"""Static HTML of ``hive inspect``: an index page and one page per mixture.

Everything that comes from metadata (ids, labels, paths, errors) is untrusted and goes through
:func:`html.escape`; links are relative and percent-encoded, so the folder works from
``file://`` and from any web server. The pages hold no script.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from .stats import InspectStats, human_bytes

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;font-size:.9em;vertical-align:top}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:.85em;word-break:break-all} .err{color:#a00;font-weight:bold}
section.stem{border-top:1px solid #ddd;margin-top:1em;padding-top:.5em}
img{max-width:100%;height:auto;display:block} audio{width:100%;max-width:640px}
""".strip()


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def href(path: str) -> str:
    """A relative URL of a POSIX relative path, percent-encoded and attribute-escaped."""
    return esc(quote(path, safe="/"))


def num(x: float | None, fmt: str = ".3f") -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and not math.isfinite(x):
        return esc(x)
    return esc(format(x, fmt))


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """``rows`` cells are already HTML (escape them with :func:`esc` / :func:`num`)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>\n" for r in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


@dataclass
class Media:
    """One signal of a mixture page: audio file, spectrogram and measured levels."""

    name: str  # "mix", "s1", ...
    wav: str  # relative to the page
    png: str
    encoding: str
    peak: float
    rms_dbfs: float


@dataclass
class MixturePage:
    record: Any  # MixtureRecord
    origin: str
    sample_rate: int
    media: list[Media] = field(default_factory=list)
    local_paths: list[str] = field(default_factory=list)
    provenance: dict[str, Any] | None = None
    error: str | None = None


def _player(m: Media, what: str) -> str:
    note = "16-bit PCM WAV" if m.encoding == "PCM_16" else f"32-bit float WAV (peak {m.peak:.3f} > 1 would clip in PCM)"
    return (f'<p><audio controls preload="metadata" src="{href(m.wav)}"></audio><br>'
            f'<small>{esc(what)}: {esc(note)}; peak {num(m.peak)}, RMS {num(m.rms_dbfs, ".1f")} dBFS; '
            f'<a href="{href(m.wav)}">download</a></small></p>\n'
            f'<img src="{href(m.png)}" alt="{esc(what)} spectrogram">')


def mixture_html(p: MixturePage, index_href: str, prev_href: str | None, next_href: str | None) -> str:
    rec = p.record
    nav = [f'<a href="{href(index_href)}">index</a>']
    if prev_href:
        nav.append(f'<a href="{href(prev_href)}">previous</a>')
    if next_href:
        nav.append(f'<a href="{href(next_href)}">next</a>')
    parts = [f"<nav>{' · '.join(nav)}</nav>", f"<h1>{esc(rec.mix_id)}</h1>"]
    facts = [("split", esc(rec.split)), ("sources", esc(rec.num_sources)),
             ("labels", esc(", ".join(rec.labels))),
             ("target duration", f"{num(rec.target_duration, 'g')} s"),
             ("sample rate (record)", f"{esc(rec.sample_rate)} Hz"),
             ("sample rate (audio here)", f"{esc(p.sample_rate)} Hz" if p.sample_rate else "–"),
             ("global_normalization_factor", num(rec.global_normalization_factor, ".6g")),
             ("final_max_amplitude", num(rec.final_max_amplitude, ".6g")),
             ("audio from", f"<code>{esc(p.origin)}</code>")]
    if p.provenance:
        facts.append(("render", esc(", ".join(f"{k}={v}" for k, v in p.provenance.items()))))
    parts.append(table(["field", "value"], facts))
    src_rows = []
    for i, s in enumerate(rec.sources):
        local = p.local_paths[i] if i < len(p.local_paths) else None
        path_cell = f"<code>{esc(s.path)}</code>" + (f"<br><small>local: <code>{esc(local)}</code></small>" if local else "")
        src_rows.append([esc(s.source_id), esc(s.label), num(s.snr_db, ".2f"), num(s.rms_gain, ".6g"),
                         num(s.applied_weight, ".6g"),
                         f"{num(s.crop_start_second)}–{num(s.crop_end_second)}",
                         f"{num(s.chunk_start_second)}–{num(s.chunk_end_second)}",
                         num(s.chunk_end_second - s.chunk_start_second), path_cell])
    parts.append("<h2>Sources</h2>")
    parts.append(table(["source", "label", "snr_db (dB)", "rms_gain", "applied_weight", "crop (s)", "chunk (s)",
                        "chunk length (s)", "path"], src_rows, numeric=(2, 3, 4, 7)))
    if p.error:
        parts.append(f'<p class="err">No audio: {esc(p.error)}</p>')
    by_name = {m.name: m for m in p.media}
    if "mix" in by_name:
        parts.append('<section class="stem"><h2>Mixture</h2>' + _player(by_name["mix"], "mix") + "</section>")
    for i, s in enumerate(rec.sources, 1):
        m = by_name.get(f"s{i}")
        if m is not None:
            parts.append(f'<section class="stem"><h2>s{i}: {esc(s.label)}</h2>'
                         f"<p>snr_db {num(s.snr_db, '.2f')} dB · applied_weight {num(s.applied_weight, '.6g')}</p>"
                         + _player(m, f"s{i} ({s.label})") + "</section>")
    return page(f"{rec.mix_id} · hive inspect", "\n".join(parts))


def _counter_rows(items: Iterable[tuple[Any, int]], total: int) -> list[list[str]]:
    return [[esc(k), esc(f"{v:,}"), esc(f"{100.0 * v / total:.1f} %" if total else "–")] for k, v in items]


def index_html(title: str, input_desc: str, stats: InspectStats, pages: Sequence[tuple[str, MixturePage]],
               plots: dict[str, str], selection: str) -> str:
    card = stats.card
    n = card.num_mixtures
    parts = [f"<h1>{esc(title)}</h1>", f"<p>Input: <code>{esc(input_desc)}</code><br>{esc(selection)}</p>"]
    summary = [("mixtures", esc(f"{n:,}")), ("hours", esc(f"{card.hours:.3f}")),
               ("sources", esc(f"{card.num_sources_total:,}")), ("labels", esc(f"{len(card.labels):,}"))]
    if stats.disk_bytes is not None:
        summary.append(("disk size of the rendered folder",
                        esc(f"{human_bytes(stats.disk_bytes)} ({stats.disk_bytes:,} bytes in {stats.disk_files:,} files)")))
    parts.append(table(["", ""], summary))
    if stats.disk_by_split:
        parts.append("<h2>Disk size by folder</h2>")
        parts.append(table(["folder", "bytes", "size"], [[esc(k), esc(f"{v:,}"), esc(human_bytes(v))]
                                                          for k, v in stats.disk_by_split.items()], numeric=(1,)))
    parts.append("<h2>Mixtures shown</h2>")
    rows = []
    for link, p in pages:
        rec = p.record
        state = f'<span class="err">{esc(p.error)}</span>' if p.error else "ok"
        rows.append([f'<a href="{href(link)}">{esc(rec.mix_id)}</a>', esc(rec.split), esc(rec.num_sources),
                     esc(", ".join(rec.labels)), num(rec.target_duration, "g"), state])
    parts.append(table(["mix_id", "split", "sources", "labels", "duration (s)", "audio"], rows, numeric=(2, 4)))
    parts.append("<h2>Mixtures per number of sources</h2>")
    per_n = sorted(((f"{k}", v) for k, v in _sum_by(card.mixtures, 1).items()), key=lambda kv: int(kv[0]))
    parts.append(table(["sources", "mixtures", "share"], _counter_rows(per_n, n), numeric=(1, 2)))
    parts.append(table(["split", "sources", "mixtures"], [[esc(s), esc(k), esc(f"{v:,}")]
                                                          for (s, k), v in sorted(card.mixtures.items())], numeric=(2,)))
    if "source_counts" in plots:
        parts.append(f'<img src="{href(plots["source_counts"])}" alt="source-count distribution">')
    parts.append("<h2>Durations</h2>")
    parts.append(table(["split", "target duration (s)", "mixtures"],
                       [[esc(s), num(d, "g"), esc(f"{c:,}")] for (s, d), c in sorted(card.durations.items())],
                       numeric=(1, 2)))
    if stats.num_chunks:
        parts.append(f"<p>Source chunk durations: min {num(stats.chunk_min, '.2f')} s, "
                     f"mean {num(stats.chunk_sum / stats.num_chunks, '.2f')} s, max {num(stats.chunk_max, '.2f')} s "
                     f"over {esc(f'{stats.num_chunks:,}')} sources.</p>")
    if "chunks" in plots:
        parts.append(f'<img src="{href(plots["chunks"])}" alt="chunk-duration histogram">')
    parts.append("<h2>SNR</h2>")
    if card.num_snr:
        parts.append(f"<p>snr_db over {esc(f'{card.num_snr:,}')} sources: min {num(card.snr_min, '.2f')} dB, "
                     f"mean {num(card.snr_sum / card.num_snr, '.2f')} dB, max {num(card.snr_max, '.2f')} dB.</p>")
        parts.append(table(["snr_db bin (dB)", "sources"], [[esc(k), esc(f"{v:,}")] for k, v in card.snr_table()],
                           numeric=(1,)))
    if "snr" in plots:
        parts.append(f'<img src="{href(plots["snr"])}" alt="SNR histogram">')
    parts.append("<h2>Labels</h2>")
    parts.append(table(["label", "sources", "share"], _counter_rows(card.top_labels(len(card.labels)),
                                                                    card.num_sources_total), numeric=(1, 2)))
    if "labels" in plots:
        parts.append(f'<img src="{href(plots["labels"])}" alt="label distribution">')
    return page(title, "\n".join(parts))


def _sum_by(counter, position: int) -> dict:
    out: dict = {}
    for key, v in counter.items():
        out[key[position]] = out.get(key[position], 0) + v
    return out
