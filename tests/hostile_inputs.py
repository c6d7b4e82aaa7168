"""The catalogue of hostile inputs of the hostile-input harness (``tests/test_hostile.py``).

:func:`build_world` makes the shared, read-only material once (a small toy corpus, renders of it
in both formats, a render of 0.1 ms mixtures, a render whose label is ``$\\foo$``, an ontology).
:func:`catalogue` then writes, for every case, the hostile files into the case's own folder
(deep / invalid / non-UTF-8 JSON, wrong JSON types, corrupt and wrong-column Parquet, FIFOs,
huge CSV fields, NUL bytes, non-UTF-8 file names, tar keys that differ from their ``mix_id``,
separators that do not parse, return bfloat16 or call ``sys.exit``, hostile Hub and judge
servers, outputs that contain or lie inside an input, foreign output folders ...) and returns a
:class:`Case`: the ``hive`` command line, the paths the command may write (everything else must
be byte-identical afterwards), the exit statuses that are right, and a deadline.

Nothing here runs a ``hive`` command; the harness does, as a subprocess per case.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

#: nesting of the "deeply nested" documents (far beyond any parser's recursion limit)
DEEP = 100_000
BAD_UTF8 = b"\xff\xfe\xc3\x28"
#: over the csv module's default field limit (131,072 characters)
HUGE_FIELD = 200_000
ANY_STATUS = frozenset({0, 1, 2})
REFUSED = frozenset({2})
FAILED = frozenset({1, 2})


@dataclass
class Case:
    """One run of one ``hive`` subcommand on hostile input."""

    id: str
    command: str  # the subcommand (coverage is checked per subcommand)
    argv: list[str]  # after ``python -m mixing``
    cwd: Path  # the case's folder; the command runs here
    outputs: list[Path] = field(default_factory=list)  # what the command may write (files or folders)
    expect: frozenset[int] = ANY_STATUS  # exit statuses that are right for this input
    timeout: float = 40.0
    env: dict[str, str] = field(default_factory=dict)
    xfail: str | None = None  # the helper/issue that owns the remaining defect


@dataclass
class World:
    """Shared material, built once, never written by a case."""

    root: Path
    dataset_paths: Path
    metadata: Path  # Hub-layout Parquet folder
    pool: Path
    labels_csv: Path
    ontology: Path
    render_wds: Path
    render_pq: Path
    render_tiny: Path  # mixtures of 0.0001 s
    render_label: Path  # a source labelled $\foo$
    metadata_label: Path  # metadata whose label is $\foo$
    store: Path  # a source store of the toy metadata
    hub_url: str = ""  # hostile Hub server (variant = first path segment)
    judge_url: str = ""  # a judge that dribbles its response headers


# ---- building blocks --------------------------------------------------------------------------
def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def mkfifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def first_shard(render: Path, pattern: str) -> Path:
    return sorted(render.glob(f"train/*mix/{pattern}"))[0]


def rewrite_tar(path: Path, change: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]) -> None:
    """Replace the members of a tar shard by ``change(members)`` (names may hold surrogates:
    they are written back as the raw bytes they escape)."""
    with tarfile.open(path, encoding="utf-8", errors="surrogateescape") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for name, data in change(members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


def replace_json_members(path: Path, new: Callable[[bytes], bytes]) -> None:
    rewrite_tar(path, lambda ms: [(n, new(d) if n.endswith(".json") else d) for n, d in ms])


def write_parquet_table(path: Path, columns: dict[str, list]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def hub_folder_with_readme(folder: Path, metadata: Path, readme: bytes) -> Path:
    copy_tree(metadata, folder)
    (folder / "README.md").write_bytes(readme)
    return folder


# ---- hostile servers ------------------------------------------------------------------------------
_REFS_OK = {"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": "a" * 40}],
            "converts": [], "tags": []}
_HUB_REPLIES: dict[str, Callable[[str], bytes]] = {
    # variant -> reply to a request path (after the variant segment)
    "refs-list": lambda p: b"[]" if p.endswith("/refs") else b"[]",
    "refs-str": lambda p: b'"refs"',
    "refs-deep": lambda p: deep_json().encode(),
    "refs-badutf8": lambda p: b'{"branches": "' + BAD_UTF8 + b'"}',
    "refs-not-json": lambda p: b"<html>proxy error</html>",
    "branches-str": lambda p: json.dumps({"branches": "main", "converts": [], "tags": []}).encode(),
    "tree-strs": lambda p: json.dumps(_REFS_OK).encode() if p.endswith("/refs") else b'["a", "b"]',
    "tree-obj": lambda p: json.dumps(_REFS_OK).encode() if p.endswith("/refs") else b'{"path": 1}',
}


class _HubHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self) -> None:
        variant, _, rest = self.path.lstrip("/").partition("/")
        reply = _HUB_REPLIES.get(variant, lambda p: b'{"error": "no such variant"}')("/" + rest.split("?")[0])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_HEAD = _answer


class _DribbleHandler(BaseHTTPRequestHandler):
    """Answers the status line, then one header byte every 0.3 s for a minute."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self.wfile.flush()
            for _ in range(200):
                time.sleep(0.3)
                self.wfile.write(b"a")
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    do_GET = do_POST


class Servers:
    """The hostile HTTP servers on 127.0.0.1, in daemon threads."""

    def __init__(self) -> None:
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (_HubHandler, _DribbleHandler)]
        for s in self._servers:
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def judge_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}/v1"

    def close(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()


# ---- the shared world ---------------------------------------------------------------------------
def _render(metadata: Path, dataset_paths: Path, out: Path, *extra: str) -> Path:
    from mixing.cli import main

    rc = main(["render", "--metadata", str(metadata), "--dataset-paths", str(dataset_paths), "--output", str(out),
               "--shard-size", "4", "--sample-rate", "8000", "--no-progress", "--allow-failures", *extra])
    if rc != 0:
        raise RuntimeError(f"rendering the harness material into {out} failed ({rc})")
    return out


def _variant_metadata(toy, out: Path, change) -> Path:
    from mixing.metadata_io import iter_records, write_hub_folder

    records = [change(r) for r in iter_records(toy.parquet_dir)]
    write_hub_folder(records, out)
    return out


def build_world(root: Path) -> World:
    import dataclasses

    from mixing.toy import build_toy_corpus, write_toy_ontology

    toy = build_toy_corpus(root / "toy", sizes={"train": 3, "validation": 1, "test": 1})
    ontology = write_toy_ontology(root / "toy_ontology.json")

    def tiny(rec):
        sources = [dataclasses.replace(s, crop_start_second=0.0, crop_end_second=0.0001) for s in rec.sources]
        return dataclasses.replace(rec, target_duration=0.0001, sources=sources)

    def label(rec):
        first = dataclasses.replace(rec.sources[0], label="$\\foo$")
        return dataclasses.replace(rec, sources=[first, *rec.sources[1:]])

    from mixing.cli import main

    store = root / "store"
    if main(["store", "build", "--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths),
             "--output", str(store), "--sample-rate", "8000", "--no-progress", "--allow-failures"]) != 0:
        raise RuntimeError(f"building the harness's source store in {store} failed")
    tiny_meta = _variant_metadata(toy, root / "metadata-tiny", tiny)
    label_meta = _variant_metadata(toy, root / "metadata-label", label)
    return World(
        root=root, dataset_paths=toy.dataset_paths, metadata=toy.parquet_dir, pool=toy.pool,
        labels_csv=toy.labels_csv, ontology=ontology,
        render_wds=_render(toy.parquet_dir, toy.dataset_paths, root / "render-wds"),
        render_pq=_render(toy.parquet_dir, toy.dataset_paths, root / "render-pq", "--format", "parquet"),
        render_tiny=_render(tiny_meta, toy.dataset_paths, root / "render-tiny"),
        render_label=_render(label_meta, toy.dataset_paths, root / "render-label"),
        metadata_label=label_meta, store=store)


# ---- the catalogue ----------------------------------------------------------------------------------
def _hostile_renders(w: World, d: Path) -> dict[str, Path]:
    """name -> a render folder (copied into ``d``) with one hostile alteration."""
    out: dict[str, Path] = {}

    def wds(name: str) -> tuple[Path, Path]:
        folder = copy_tree(w.render_wds, d / f"render-{name}")
        out[name] = folder
        return folder, first_shard(folder, "tar_*.tar")

    def pq_(name: str) -> tuple[Path, Path]:
        folder = copy_tree(w.render_pq, d / f"render-{name}")
        out[name] = folder
        return folder, first_shard(folder, "part_*.parquet")

    _, shard = wds("json-deep")
    replace_json_members(shard, lambda _: deep_json().encode())
    _, shard = wds("json-invalid")
    replace_json_members(shard, lambda b: b[: len(b) // 2])
    _, shard = wds("json-badutf8")
    replace_json_members(shard, lambda b: b.replace(b'"label": "', b'"label": "' + BAD_UTF8, 1))
    _, shard = wds("json-list")
    replace_json_members(shard, lambda _: b"[1, 2, 3]")
    _, shard = wds("json-str")
    replace_json_members(shard, lambda _: b'"a string"')
    _, shard = wds("json-provenance-list")
    replace_json_members(shard, lambda b: json.dumps({**json.loads(b), "hive_render": [1]}).encode())
    _, shard = wds("key-mismatch")
    replace_json_members(shard, lambda b: json.dumps({**json.loads(b), "mix_id": "someone_else"}).encode())
    _, shard = wds("member-name-badutf8")
    rewrite_tar(shard, lambda ms: [(os.fsdecode(b"\xff\xfe" + os.fsencode(n)), b) for n, b in ms])
    folder, shard = wds("file-name-badutf8")
    shutil.copy(shard, os.fsencode(shard.parent) + b"/tar_\xff\xfe.tar")
    folder, shard = wds("shard-fifo")
    mkfifo(shard.parent / "tar_99999.tar")
    folder, _ = wds("summary-fifo")
    (folder / "_summary.json").unlink()
    mkfifo(folder / "_summary.json")
    folder, _ = wds("render-config-fifo")
    (folder / "_render_config.json").unlink()
    mkfifo(folder / "_render_config.json")
    _, shard = pq_("parquet-corrupt")
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2] + b"\0" * 64 + data[-64:])
    _, shard = pq_("parquet-wrong-columns")
    shard.unlink()
    write_parquet_table(shard, {"a": [1, 2], "b": ["x", "y"]})
    _, shard = pq_("parquet-json-list")
    import pyarrow.parquet as pq

    table = pq.read_table(shard)
    idx = table.schema.get_field_index("render_json")
    import pyarrow as pa

    table = table.set_column(idx, "render_json", pa.array(["[1, 2]"] * table.num_rows))
    pq.write_table(table, shard)
    return out


def catalogue(w: World, base: Path) -> list[Case]:
    """Every case, its hostile files written under ``base/<case id>``."""
    cases: list[Case] = []

    def new(case_id: str) -> Path:
        d = base / case_id
        d.mkdir(parents=True)
        return d

    def add(case_id: str, command: str, argv: list, *, outputs=(), expect=ANY_STATUS, **kw) -> None:
        cases.append(Case(case_id, command, [str(a) for a in argv], base / case_id,
                          [Path(o) for o in outputs], frozenset(expect), **kw))

    dp, meta = w.dataset_paths, w.metadata

    # -- hostile rendered folders: verify, eval, inspect each read them ----------------------------
    d = new("renders")
    for name, folder in _hostile_renders(w, d).items():
        cid = f"verify-{name}"
        new(cid)
        add(cid, "verify", ["verify", folder, "--no-progress"], expect=FAILED)
        cid = f"eval-{name}"
        out = new(cid) / "eval"
        lenient = name in ("summary-fifo", "render-config-fifo", "file-name-badutf8")
        add(cid, "eval", ["eval", "--rendered", folder, "--output", out, "--no-sdr", "--no-plot", "--no-progress"],
            outputs=[out], expect=ANY_STATUS if lenient else FAILED)
        cid = f"inspect-{name}"
        out = new(cid) / "pages"
        add(cid, "inspect", ["inspect", folder, "--output", out, "--sample", "1", "--no-progress"],
            outputs=[out], expect=ANY_STATUS)

    # -- mixtures of 0.0001 s and a label $\foo$: they render; the readers must cope ----------------
    for cid, folder, extra in (("eval-tiny", w.render_tiny, ["--no-plot"]), ("eval-label-mathtext", w.render_label, [])):
        out = new(cid) / "eval"
        add(cid, "eval", ["eval", "--rendered", folder, "--output", out, "--no-sdr", "--no-progress", *extra],
            outputs=[out], expect={0, 2} if cid == "eval-tiny" else {0})
    cid = "verify-tiny"
    new(cid)
    add(cid, "verify", ["verify", w.render_tiny, "--no-progress"], expect={0})
    cid = "inspect-label-mathtext"
    out = new(cid) / "pages"
    add(cid, "inspect", ["inspect", w.render_label, "--output", out, "--sample", "2", "--no-progress"],
        outputs=[out], expect={0})
    cid = "card-label-mathtext"
    out = new(cid) / "card"
    add(cid, "card", ["card", w.metadata_label, "--output", out], outputs=[out], expect={0})

    # -- separators that misbehave ---------------------------------------------------------------
    seps = {
        "syntax-error": "def separate(mix, sr, label):\n    return mix +\n",
        "bf16": ("import torch\n\ndef separate(mix, sr, label):\n"
                 "    return torch.from_numpy(mix).to(torch.bfloat16)\n"),
        "exit-at-import": "import sys\nsys.exit(0)\n",
        "exit-in-call": "import sys\n\ndef separate(mix, sr, label):\n    sys.exit(0)\n",
        "returns-str": "def separate(mix, sr, label):\n    return 'estimate'\n",
    }
    expect_sep = {"syntax-error": REFUSED, "bf16": {0}, "exit-at-import": REFUSED, "exit-in-call": FAILED,
                  "returns-str": FAILED}
    for name, code in seps.items():
        cid = f"eval-separator-{name}"
        d = new(cid)
        sep = write(d / "sep.py", code)
        add(cid, "eval", ["eval", "--rendered", w.render_wds, "--output", d / "eval", "--separator",
                          f"{sep}:separate", "--no-sdr", "--no-plot", "--no-progress"],
            outputs=[d / "eval"], expect=expect_sep[name])
    cid = "eval-name-without-separator"
    d = new(cid)
    add(cid, "eval", ["eval", "--rendered", w.render_wds, "--output", d / "eval", "--name", "mine", "--no-sdr",
                      "--no-plot", "--no-progress"], outputs=[d / "eval"], expect=REFUSED)

    # -- hostile dataset_paths.json: every command that takes one ----------------------------------
    dp_variants = {
        "fifo": lambda p: mkfifo(p),
        "nul": lambda p: write(p, json.dumps({k: v + "\u0000x" for k, v in json.loads(dp.read_text()).items()})),
        "deep": lambda p: write(p, deep_json()),
        "badutf8": lambda p: write(p, b'{"AudioSet": "' + BAD_UTF8 + b'"}'),
        "list": lambda p: write(p, "[1, 2]"),
        "value-list": lambda p: write(p, '{"AudioSet": [1]}'),
    }
    for name, make in dp_variants.items():
        for command in ("check", "render", "synthesize", "inspect", "mine", "curate"):
            cid = f"{command}-dataset-paths-{name}"
            d = new(cid)
            bad = d / "dataset_paths.json"
            make(bad)
            out = d / "out"
            argv = {
                "check": ["check", "--metadata", meta, "--dataset-paths", bad, "--no-progress"],
                "render": ["render", "--metadata", meta, "--dataset-paths", bad, "--output", out, "--no-progress"],
                "synthesize": ["synthesize", "--pool", w.pool, "--ontology", w.ontology, "--dataset-paths", bad,
                               "--output", out, "--num-mixtures", "2"],
                "inspect": ["inspect", meta, "--dataset-paths", bad, "--output", out, "--sample", "1",
                            "--no-progress"],
                "mine": ["mine", "chunk", "--input", w.labels_csv, "--dataset-paths", bad, "--output", out,
                         "--no-progress"],
                "curate": ["curate", "--metadata", meta, "--dataset-paths", bad, "--ontology", w.ontology,
                           "--judge", "openai:url=http://127.0.0.1:9/v1,model=m,timeout=2,retries=0",
                           "--output", out, "--no-progress"],
            }[command]
            add(cid, command, argv, outputs=[out], expect=REFUSED if name != "value-list" else FAILED, timeout=40)

    # -- hostile metadata: check, render, verify --metadata, card, inspect, curate -------------------
    def meta_variant(name: str, d: Path) -> Path:
        if name == "parquet-fifo":
            return mkfifo(d / "meta" / "train-00000-of-00001.parquet").parent
        if name == "parquet-corrupt":
            return write(d / "meta.parquet", b"PAR1" + os.urandom(300) + b"PAR1")
        if name == "parquet-wrong-columns":
            return write_parquet_table(d / "meta.parquet", {"a": [1], "b": ["x"]})
        if name == "parquet-sources-str":
            return write_parquet_table(d / "meta.parquet", {
                "mix_id": ["m1"], "split": ["train"], "sample_rate": [44100], "target_duration": [4.0],
                "num_sources": [2], "sources": ["not a struct"], "global_normalization_factor": [1.0],
                "final_max_amplitude": [0.5]})
        if name == "jsonl-mixed":
            good = next(iter(json.loads(json.dumps(_first_record(meta)))))
            lines = [deep_json(), "[1, 2]", '"str"', "{\"mix_id\": \"\u0000\"}", json.dumps(good)]
            return write(d / "meta.jsonl", b"\n".join([ln.encode() for ln in lines] + [BAD_UTF8]) + b"\n")
        if name == "json-deep":
            return write(d / "meta.json", deep_json())
        if name == "json-str":
            return write(d / "meta.json", '"records"')
        if name == "readme-yaml-deep":
            return hub_folder_with_readme(d / "meta", meta, b"---\nconfigs: " + b"[" * DEEP + b"]" * DEEP + b"\n---\n")
        if name == "readme-yaml-badutf8":
            return hub_folder_with_readme(d / "meta", meta, b"---\nconfigs:\n- config_name: " + BAD_UTF8
                                          + b"\n  data_files: data/*.parquet\n---\n")
        if name == "readme-yaml-aliases":
            bomb = b"a: &a [" + b"x," * 9 + b"x]\n" + b"".join(
                b"%s: &%s [" % (chr(98 + i).encode(), chr(98 + i).encode()) + b",".join([b"*" + chr(97 + i).encode()] * 9)
                + b"]\n" for i in range(9))
            return hub_folder_with_readme(d / "meta", meta, b"---\n" + bomb + b"configs: *j\n---\n")
        if name == "readme-fifo":
            folder = copy_tree(meta, d / "meta")
            (folder / "README.md").unlink(missing_ok=True)
            mkfifo(folder / "README.md")
            return folder
        raise KeyError(name)

    meta_names = ("parquet-fifo", "parquet-corrupt", "parquet-wrong-columns", "parquet-sources-str", "jsonl-mixed",
                  "json-deep", "json-str", "readme-yaml-deep", "readme-yaml-badutf8", "readme-yaml-aliases",
                  "readme-fifo")
    for name in meta_names:
        for command in ("check", "render", "verify", "card", "inspect", "curate"):
            cid = f"{command}-metadata-{name}"
            d = new(cid)
            m = meta_variant(name, d)
            out = d / "out"
            argv = {
                "check": ["check", "--metadata", m, "--dataset-paths", dp, "--no-progress"],
                "render": ["render", "--metadata", m, "--dataset-paths", dp, "--output", out, "--no-progress"],
                "verify": ["verify", w.render_wds, "--metadata", m, "--no-progress"],
                "card": ["card", m, "--output", out],
                "inspect": ["inspect", m, "--dataset-paths", dp, "--output", out, "--sample", "1", "--no-progress"],
                "curate": ["curate", "--metadata", m, "--dataset-paths", dp, "--ontology", w.ontology,
                           "--judge", "openai:url=http://127.0.0.1:9/v1,model=m,timeout=2,retries=0",
                           "--output", out, "--no-progress"],
            }[command]
            add(cid, command, argv, outputs=[] if command in ("check", "verify") else [out],
                expect=FAILED if name != "jsonl-mixed" or command in ("verify", "curate", "render")
                else ANY_STATUS)

    # -- hostile ontology: synthesize, curate, mine single-label -------------------------------------
    onto_variants = {
        "fifo": lambda p: mkfifo(p),
        "deep": lambda p: write(p, deep_json()),
        "badutf8": lambda p: write(p, b'[{"id": "' + BAD_UTF8 + b'"}]'),
        "str": lambda p: write(p, '"ontology"'),
        "nodes-str": lambda p: write(p, '["a", "b"]'),
    }
    for name, make in onto_variants.items():
        for command in ("synthesize", "curate"):
            cid = f"{command}-ontology-{name}"
            d = new(cid)
            bad = make(d / "ontology.json")
            out = d / "out"
            argv = (["synthesize", "--pool", w.pool, "--ontology", bad, "--dataset-paths", dp, "--output", out,
                     "--num-mixtures", "2"] if command == "synthesize" else
                    ["curate", "--metadata", meta, "--dataset-paths", dp, "--ontology", bad, "--judge",
                     "openai:url=http://127.0.0.1:9/v1,model=m,timeout=2,retries=0", "--output", out,
                     "--no-progress"])
            add(cid, command, argv, outputs=[out], expect=REFUSED)

    # -- hostile pools and labelled lists: synthesize --pool, mine chunk --input -----------------------
    header = "audio_path,text_label,split\n"
    row = next(csv.DictReader(w.labels_csv.open(encoding="utf-8")))
    good_row = f"{row['audio_path']},{row['text_label']},{row['split']}\n"
    list_variants = {
        "csv-fifo": lambda p: mkfifo(p),
        "csv-badutf8": lambda p: write(p, header.encode() + good_row.encode() + b"x/a.wav," + BAD_UTF8 + b",train\n"),
        "csv-huge-field": lambda p: write(p, header + good_row + f"x/a.wav,\"{'y' * HUGE_FIELD}\",train\n"),
        "csv-nul": lambda p: write(p, header + good_row + "x/a.wav,dog\u0000,train\n"),
        "csv-header-only": lambda p: write(p, header),
    }
    for name, make in list_variants.items():
        for command in ("synthesize", "mine"):
            cid = f"{command}-labels-{name}"
            d = new(cid)
            bad = make(d / "labels.csv")
            out = d / "out"
            argv = (["synthesize", "--pool", bad, "--ontology", w.ontology, "--dataset-paths", dp, "--output", out,
                     "--num-mixtures", "2"] if command == "synthesize" else
                    ["mine", "chunk", "--input", bad, "--dataset-paths", dp, "--output", out, "--no-progress"])
            lenient = name == "csv-nul" or (command == "mine" and name == "csv-header-only")
            add(cid, command, argv, outputs=[out], expect=ANY_STATUS if lenient else FAILED)
    pool_variants = {
        "jsonl-fifo": ("pool.jsonl", lambda p: mkfifo(p)),
        "jsonl-deep": ("pool.jsonl", lambda p: write(p, deep_json() + "\n")),
        "jsonl-badutf8": ("pool.jsonl", lambda p: write(p, b'{"clip_id": "' + BAD_UTF8 + b'"}\n')),
        "json-str": ("pool.json", lambda p: write(p, '"pool"')),
        "parquet-corrupt": ("pool.parquet", lambda p: write(p, b"PAR1" + b"\0" * 100 + b"PAR1")),
        "parquet-wrong-columns": ("pool.parquet", lambda p: write_parquet_table(p, {"a": [1]})),
    }
    for name, (fname, make) in pool_variants.items():
        for command in ("synthesize", "mine"):
            cid = f"{command}-pool-{name}"
            d = new(cid)
            bad = make(d / fname)
            out = d / "out"
            argv = (["synthesize", "--pool", bad, "--ontology", w.ontology, "--dataset-paths", dp, "--output", out,
                     "--num-mixtures", "2"] if command == "synthesize" else
                    ["mine", "single-label", "--input", bad, "--dataset-paths", dp, "--ontology", w.ontology,
                     "--output", out, "--no-progress"])
            add(cid, command, argv, outputs=[out], expect=FAILED)

    # -- hostile synthesis config / compatibility files ------------------------------------------------
    cfg_variants = {
        "yaml-fifo": ("--config", "cfg.yaml", lambda p: mkfifo(p)),
        "yaml-deep": ("--config", "cfg.yaml", lambda p: write(p, "a: " + "[" * DEEP + "]" * DEEP + "\n")),
        "yaml-badutf8": ("--config", "cfg.yaml", lambda p: write(p, b"split: " + BAD_UTF8 + b"\n")),
        "yaml-list": ("--config", "cfg.yaml", lambda p: write(p, "- 1\n- 2\n")),
        "compat-fifo": ("--compatibility", "compat.csv", lambda p: mkfifo(p)),
        "compat-deep": ("--compatibility", "compat.json", lambda p: write(p, deep_json())),
        "compat-huge-field": ("--compatibility", "compat.csv", lambda p: write(p, f"a,\"{'b' * HUGE_FIELD}\",1\n")),
    }
    for name, (flag, fname, make) in cfg_variants.items():
        cid = f"synthesize-{name}"
        d = new(cid)
        bad = make(d / fname)
        out = d / "out"
        add(cid, "synthesize", ["synthesize", "--pool", w.pool, "--ontology", w.ontology, "--dataset-paths", dp,
                                "--output", out, "--num-mixtures", "2", flag, bad], outputs=[out], expect=REFUSED)

    # -- card --provenance, curate --prompt @FILE ------------------------------------------------------
    for name, make in (("fifo", mkfifo), ("deep", lambda p: write(p, deep_json())),
                       ("badutf8", lambda p: write(p, b'{"a": "' + BAD_UTF8 + b'"}'))):
        cid = f"card-provenance-{name}"
        d = new(cid)
        bad = make(d / "prov.json")
        add(cid, "card", ["card", meta, "--output", d / "out", "--provenance", bad], outputs=[d / "out"],
            expect=REFUSED)
    for name, make in (("fifo", mkfifo), ("badutf8", lambda p: write(p, b"labels: " + BAD_UTF8 + b" {options}"))):
        cid = f"curate-prompt-{name}"
        d = new(cid)
        bad = make(d / "prompt.txt")
        add(cid, "curate", ["curate", "--metadata", meta, "--dataset-paths", dp, "--ontology", w.ontology,
                            "--judge", "openai:url=http://127.0.0.1:9/v1,model=m,timeout=2,retries=0",
                            "--prompt", f"@{bad}", "--output", d / "out", "--no-progress"],
            outputs=[d / "out"], expect=REFUSED)

    # -- a judge that dribbles its response headers (must not hang) --------------------------------------
    cid = "curate-judge-dribbles-headers"
    d = new(cid)
    add(cid, "curate", ["curate", "--metadata", meta, "--dataset-paths", dp, "--ontology", w.ontology, "--judge",
                        f"openai:url={w.judge_url},model=m,timeout=1,retries=0", "--split", "validation",
                        "--output", d / "out", "--no-progress"], outputs=[d / "out"], expect=FAILED, timeout=40)

    # -- publish: hostile folders and hostile Hub replies ----------------------------------------------------
    def card_folder(d: Path) -> Path:
        f = d / "card"
        (f / "data" / "all").mkdir(parents=True)
        write(f / "README.md", "---\nconfigs:\n- config_name: all\n  data_files:\n  - split: train\n"
              "    path: data/all/train-*\n---\n\n# Hive\n")
        shutil.copy(sorted(meta.rglob("*.parquet"))[0], f / "data" / "all" / "train-00000-of-00001.parquet")
        return f

    for variant in _HUB_REPLIES:
        cid = f"publish-hub-{variant}"
        d = new(cid)
        folder = card_folder(d)
        add(cid, "publish", ["publish", folder, "--repo", "org/name", "--revision", "b", "--dry-run", "--endpoint",
                             f"{w.hub_url}/{variant}"],
            expect=REFUSED, env={"HF_TOKEN": "hf_harness_not_a_token", "HF_HUB_OFFLINE": "0",
                                 "HF_HUB_DISABLE_XET": "1", "HF_HUB_ETAG_TIMEOUT": "5",
                                 "HF_HUB_DOWNLOAD_TIMEOUT": "5"})
    for name, readme in (("readme-fifo", None), ("readme-badutf8", b"---\nlicense: " + BAD_UTF8 + b"\n---\n"),
                         ("readme-yaml-deep", b"---\nconfigs: " + b"[" * DEEP + b"]" * DEEP + b"\n---\n")):
        cid = f"publish-{name}"
        d = new(cid)
        folder = card_folder(d)
        (folder / "README.md").unlink()
        if readme is None:
            mkfifo(folder / "README.md")
        else:
            write(folder / "README.md", readme)
        add(cid, "publish", ["publish", folder, "--repo", "org/name", "--revision", "b", "--dry-run",
                             "--endpoint", f"{w.hub_url}/refs-list"], expect=REFUSED,
            env={"HF_TOKEN": "hf_harness_not_a_token", "HF_HUB_OFFLINE": "0"})

    # -- the output-folder rule ------------------------------------------------------------------------------
    # inspect RENDER --output DIR with RENDER inside an earlier inspect folder DIR (lost the render)
    cid = "inspect-render-inside-earlier-pages"
    d = new(cid)
    pages = d / "pages"
    _earlier_inspect(pages)
    render = copy_tree(w.render_wds, pages / "render")
    add(cid, "inspect", ["inspect", render, "--output", pages, "--sample", "1", "--no-progress"], expect=REFUSED)
    # curate --metadata X/metadata --output X with a failing judge (lost the metadata)
    cid = "curate-metadata-inside-earlier-output"
    d = new(cid)
    x = d / "x"
    copy_tree(meta, x / "metadata")
    add(cid, "curate", ["curate", "--metadata", x / "metadata", "--output", x, "--dataset-paths", dp, "--ontology",
                        w.ontology, "--judge", "openai:url=http://127.0.0.1:9/v1,model=m,timeout=2,retries=0",
                        "--no-progress"], expect=REFUSED)
    # an output inside an input, an output that is an input, a foreign non-empty output
    for command in ("render", "synthesize", "card", "inspect", "eval", "mine", "curate", "demo"):
        for kind in ("inside-input", "contains-input", "foreign"):
            if command == "demo" and kind != "foreign":
                continue
            cid = f"{command}-output-{kind}"
            d = new(cid)
            src = copy_tree(w.render_wds if command in ("eval", "inspect") else meta, d / "input")
            if command == "mine":  # an earlier stage's output folder is the input
                shutil.copy(w.pool, src / "output.jsonl")
            foreign = write(d / "theirs" / "notes.txt", "not written by hive\n").parent
            out = {"inside-input": src / "out", "contains-input": d, "foreign": foreign}[kind]
            argv = {
                "render": ["render", "--metadata", src, "--dataset-paths", dp, "--output", out, "--no-progress"],
                "synthesize": ["synthesize", "--pool", src, "--ontology", w.ontology, "--dataset-paths", dp,
                               "--output", out, "--num-mixtures", "2"],
                "card": ["card", src, "--output", out],
                "inspect": ["inspect", src, "--output", out, "--sample", "1", "--no-progress"],
                "eval": ["eval", "--rendered", src, "--output", out, "--no-sdr", "--no-plot", "--no-progress"],
                "mine": ["mine", "single-label", "--input", src, "--dataset-paths", dp, "--ontology", w.ontology,
                         "--output", out, "--no-progress"],
                "curate": ["curate", "--metadata", src, "--dataset-paths", dp, "--ontology", w.ontology, "--judge",
                           "openai:url=http://127.0.0.1:9/v1,model=m,timeout=2,retries=0", "--output", out,
                           "--no-progress"],
                "demo": ["demo", "--workdir", out],
            }[command]
            add(cid, command, argv, expect=REFUSED)
    # report files that are, or lie inside, an input
    cid = "check-report-is-input"
    d = new(cid)
    own_dp = shutil.copy(dp, d / "dataset_paths.json")
    add(cid, "check", ["check", "--metadata", meta, "--dataset-paths", own_dp, "--report", own_dp, "--no-progress"],
        expect=REFUSED)
    cid = "check-report-inside-input"
    d = new(cid)
    src = copy_tree(meta, d / "meta")
    add(cid, "check", ["check", "--metadata", src, "--dataset-paths", dp, "--report", src / "report.json",
                       "--no-progress"], expect=REFUSED)
    cid = "verify-report-inside-input"
    d = new(cid)
    render = copy_tree(w.render_wds, d / "render")
    add(cid, "verify", ["verify", render, "--report", render / "report.json", "--no-progress"], expect=REFUSED)
    cid = "verify-report-is-input"
    d = new(cid)
    render = copy_tree(w.render_wds, d / "render")
    add(cid, "verify", ["verify", render, "--report", render / "_summary.json", "--no-progress"], expect=REFUSED)
    # superres writes audio under --output-root: never inside a corpus root named by --dataset-paths
    cid = "superres-output-root-inside-corpus"
    d = new(cid)
    corpus = write(d / "corpus" / "README.txt", "their corpus\n").parent
    own_dp = write(d / "dataset_paths.json", json.dumps({**json.loads(dp.read_text()), "Theirs": str(corpus)}))
    add(cid, "mine", ["mine", "superres", "--input", w.pool, "--dataset-paths", own_dp, "--backend", "resample",
                      "--output", d / "out", "--output-root", corpus / "audio", "--prefix", "X",
                      "--no-progress"], outputs=[d / "out"], expect=REFUSED)
    cid = "publish-folder-is-a-file"
    d = new(cid)
    add(cid, "publish", ["publish", write(d / "f.txt", "x"), "--repo", "org/name", "--revision", "b", "--dry-run",
                         "--endpoint", f"{w.hub_url}/refs-list"], expect=REFUSED)

    # -- numbers (owned by helper B2; tracked here so the harness sees them) -----------------------------------
    for cid, extra in (("synthesize-seed-negative", ["--seed", "-1"]),
                       ("synthesize-snr-huge", ["--snr-high", "1e308"]),
                       ("synthesize-num-mixtures-huge-dry-run", ["--num-mixtures", "1e20", "--dry-run"])):
        d = new(cid)
        argv = ["synthesize", "--pool", w.pool, "--ontology", w.ontology, "--dataset-paths", dp, "--output",
                d / "out", *(["--num-mixtures", "2"] if "--num-mixtures" not in extra else []), *extra]
        add(cid, "synthesize", argv, outputs=[d / "out"], xfail="B2: checked numbers")
    cid = "render-world-size-huge"
    d = new(cid)
    add(cid, "render", ["render", "--metadata", meta, "--dataset-paths", dp, "--output", d / "out", "--world-size",
                        "100000000000000000000", "--no-progress"], outputs=[d / "out"], expect=REFUSED,
        xfail="B2: checked numbers", timeout=10)
    cid = "curate-judge-deadline-nan"
    d = new(cid)
    add(cid, "curate", ["curate", "--metadata", meta, "--dataset-paths", dp, "--ontology", w.ontology, "--judge",
                        "openai:url=http://127.0.0.1:9/v1,model=m,timeout=nan,retries=0", "--output", d / "out",
                        "--no-progress"], outputs=[d / "out"], expect=FAILED, xfail="B2: checked numbers")

    # -- hive store: hostile stores, inputs and outputs ------------------------------------------------------
    def store_variant(name: str, d: Path) -> Path:
        st = copy_tree(w.store, d / "store")
        manifest = st / "store.json"
        if name == "manifest-fifo":
            manifest.unlink()
            mkfifo(manifest)
        elif name == "manifest-deep":
            write(manifest, deep_json())
        elif name == "manifest-list":
            write(manifest, "[1, 2]")
        elif name == "manifest-badutf8":
            write(manifest, b'{"format": "' + BAD_UTF8 + b'"}')
        elif name == "index-corrupt":
            for p in st.rglob("*.parquet"):
                p.write_bytes(p.read_bytes()[: max(8, p.stat().st_size // 2)])
        elif name == "index-wrong-columns":
            for p in st.rglob("*.parquet"):
                p.unlink()
                write_parquet_table(p, {"a": [1]})
        elif name == "segment-fifo":
            seg = sorted(st.rglob("*.f32"))[0]
            seg.unlink()
            mkfifo(seg)
        return st

    for name in ("manifest-fifo", "manifest-deep", "manifest-list", "manifest-badutf8", "index-corrupt",
                 "index-wrong-columns", "segment-fifo"):
        for action in ("info", "verify", "render"):
            cid = f"store-{action}-{name}"
            d = new(cid)
            st = store_variant(name, d)
            if action == "render":  # a consumer of the store
                add(cid, "render", ["render", "--metadata", meta, "--store", st, "--store-only", "--output",
                                    d / "out", "--no-progress"], outputs=[d / "out"], expect=FAILED)
            else:  # info describes a store from its index; a broken segment is verify's to find
                add(cid, "store", ["store", action, st],
                    expect=ANY_STATUS if (action, name) == ("info", "segment-fifo") else FAILED)
    for cid, make_argv in (
            ("store-build-output-inside-input", lambda d, src: ["--metadata", src, "--output", src / "store"]),
            ("store-build-output-contains-input", lambda d, src: ["--metadata", src, "--output", d]),
            ("store-build-output-foreign", lambda d, src: ["--metadata", src, "--output",
                                                            write(d / "theirs" / "notes.txt", "x").parent]),
            ("store-build-output-is-a-render", lambda d, src: ["--metadata", src, "--output",
                                                                copy_tree(w.render_wds, d / "render")])):
        d = new(cid)
        src = copy_tree(meta, d / "input")
        add(cid, "store", ["store", "build", "--dataset-paths", dp, "--no-progress", *make_argv(d, src)],
            expect=REFUSED)
    for name, make in (("fifo", mkfifo), ("nul", dp_variants["nul"]), ("deep", dp_variants["deep"])):
        cid = f"store-build-dataset-paths-{name}"
        d = new(cid)
        bad = make(d / "dataset_paths.json")
        add(cid, "store", ["store", "build", "--metadata", meta, "--dataset-paths", bad, "--output", d / "out",
                           "--no-progress"], outputs=[d / "out"], expect=REFUSED)
    cid = "store-build-metadata-parquet-corrupt"
    d = new(cid)
    bad = meta_variant("parquet-corrupt", d)
    add(cid, "store", ["store", "build", "--metadata", bad, "--dataset-paths", dp, "--output", d / "out",
                       "--no-progress"], outputs=[d / "out"], expect=FAILED)
    for cid, target in (("store-info-json-inside-store", lambda st: st / "info.json"),
                        ("store-verify-json-is-manifest", lambda st: st / "store.json")):
        d = new(cid)
        st = copy_tree(w.store, d / "store")
        action = "info" if "info" in cid else "verify"
        add(cid, "store", ["store", action, st, "--json", target(st)], expect=REFUSED)

    # -- mine merge on a folder that no stage wrote ------------------------------------------------------------
    cid = "mine-merge-foreign"
    d = new(cid)
    foreign = write(d / "theirs" / "notes.txt", "not written by hive\n").parent
    add(cid, "mine", ["mine", "merge", "--output", foreign], expect=REFUSED)
    return cases


def _first_record(meta: Path) -> list[dict]:
    from mixing.metadata_io import iter_records

    return [next(iter(iter_records(meta))).to_flat_dict()]


def _earlier_inspect(pages: Path) -> None:
    """An earlier ``hive inspect`` output folder (what a user would have), with a note of theirs."""
    pages.mkdir(parents=True)
    write(pages / "_inspect.json", json.dumps({"input": "earlier", "chosen": [], "pages": []}))
    write(pages / "index.html", "<html>earlier</html>\n")
    write(pages / "my-notes.txt", "the user's own notes\n")
