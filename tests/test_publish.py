"""``hive publish`` against a fake Hub: HTTP captured at huggingface_hub's client level.

``huggingface_hub.set_client_factory`` makes every request of the library go through an
``httpx2.Client`` with a ``MockTransport`` that serves a small in-memory repository (refs, tree,
preupload, validate-yaml, LFS batch + storage PUT, commit, branch, tag). Xet uploads run in Rust
outside that client, so the tests turn Xet off and the library takes its LFS path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
from pathlib import Path

import httpx2
import pytest

import huggingface_hub
from huggingface_hub import _commit_api

from curation.publish import (
    ConcurrentUpdateError, PublishError, PublishConfig, PublishRefusedError, git_blob_sha1, publish,
)
from mixing.cli import main as hive

TOKEN = "hf_FakeSecretToken0123456789abcdef"
REPO = "hive-test/hive-meta"
ENDPOINT = "https://hub.test"
# huggingface_hub's own LFS PUT passes data=<file> to httpx2, which warns; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
STORAGE = "https://storage.test"


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class FakeHub:
    """An in-memory Hub dataset repository speaking the JSON of the endpoints publish uses."""

    def __init__(self, files: dict[str, bytes] | None = None, lfs_suffixes=(".parquet", ".png")):
        self.lfs_suffixes = lfs_suffixes
        self.requests: list[httpx2.Request] = []
        self.commits: list[dict] = []  # parsed ndjson of each commit
        self.uploads: dict[str, bytes] = {}  # sha256 -> content PUT to storage
        self.branch_events: list[tuple[str, dict]] = []
        self.tag_events: list[tuple[str, dict]] = []
        self.fail: dict[str, tuple[int, dict]] = {}  # endpoint key -> (status, json)
        self.head = _sha("initial")
        self.branches: dict[str, str] = {"main": self.head}
        self.tags: dict[str, str] = {}
        #: commit -> {path: bytes}
        self.trees: dict[str, dict[str, bytes]] = {self.head: {".gitattributes": b"*.parquet filter=lfs\n",
                                                                **(files or {})}}

    # ---- helpers ---------------------------------------------------------------------------
    def is_lfs(self, path: str) -> bool:
        return path.endswith(self.lfs_suffixes)

    def entry(self, path: str, content: bytes) -> dict:
        e = {"type": "file", "path": path, "size": len(content),
             "oid": hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()}
        if self.is_lfs(path):
            e["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 130}
        return e

    @property
    def write_requests(self) -> list[httpx2.Request]:
        reads = ("/preupload/", "/validate-yaml", "/paths-info/")
        return [r for r in self.requests if r.method != "GET" and not any(s in r.url.path for s in reads)]

    def _json(self, status: int = 200, data=None) -> httpx2.Response:
        return httpx2.Response(status, json=data if data is not None else {})

    # ---- routing ---------------------------------------------------------------------------
    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        path = request.url.path
        prefix = f"/api/datasets/{REPO}"
        if request.url.host == "storage.test" and request.method == "PUT":
            self.uploads[path.rsplit("/", 1)[-1]] = request.read()
            return httpx2.Response(200)
        for key, (status, body) in self.fail.items():
            if key in path:
                return self._json(status, body)
        if path == f"{prefix}/refs" and request.method == "GET":
            return self._json(200, {
                "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in self.branches.items()],
                "converts": [], "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c}
                                         for n, c in self.tags.items()]})
        if path.startswith(f"{prefix}/tree/") and request.method == "GET":
            rev = path[len(f"{prefix}/tree/"):]
            tree = self.trees.get(self.branches.get(rev, rev))
            if tree is None:
                return self._json(404, {"error": "Revision not found"})
            return self._json(200, [self.entry(p, c) for p, c in sorted(tree.items())])
        if path == "/api/validate-yaml":
            return self._json(200, {"errors": [], "warnings": []})
        if path.startswith(f"{prefix}/preupload/"):
            files = json.loads(request.read())["files"]
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "lfs" if self.is_lfs(f["path"])
                                               else "regular", "shouldIgnore": False} for f in files]})
        if path == f"/datasets/{REPO}.git/info/lfs/objects/batch":
            objects = json.loads(request.read())["objects"]
            return self._json(200, {"transfer": "basic", "objects": [
                {"oid": o["oid"], "size": o["size"],
                 "actions": {"upload": {"href": f"{STORAGE}/upload/{o['oid']}"}}} for o in objects]})
        if path.startswith(f"{prefix}/commit/"):
            return self._commit(request, path[len(f"{prefix}/commit/"):])
        if path.startswith(f"{prefix}/branch/"):
            name = path[len(f"{prefix}/branch/"):]
            body = json.loads(request.read() or b"{}")
            self.branch_events.append((name, body))
            if name in self.branches:
                return self._json(409, {"error": "Branch already exists"})
            self.branches[name] = body.get("startingPoint", self.branches["main"])
            return self._json(200, {})
        if path.startswith(f"{prefix}/tag/"):
            rev = path[len(f"{prefix}/tag/"):]
            body = json.loads(request.read())
            self.tag_events.append((rev, body))
            self.tags[body["tag"]] = self.branches.get(rev, rev)
            return self._json(200, {})
        return self._json(404, {"error": f"fake hub: no route for {request.method} {path}"})

    def _commit(self, request: httpx2.Request, rev: str) -> httpx2.Response:
        lines = [json.loads(line) for line in request.read().splitlines() if line.strip()]
        self.commits.append({"revision": rev, "params": dict(request.url.params), "lines": lines})
        header = lines[0]["value"]
        create_pr = request.url.params.get("create_pr") == "1"
        if rev not in self.branches:
            return self._json(404, {"error": "Invalid rev id"})
        if header.get("parentCommit") not in (None, self.branches[rev]):
            return self._json(412, {"error": "A commit has happened since. Please refresh and try again."})
        tree = dict(self.trees[self.branches[rev]])
        for item in lines[1:]:
            v = item["value"]
            if item["key"] == "file":
                tree[v["path"]] = base64.b64decode(v["content"])
            elif item["key"] == "lfsFile":
                tree[v["path"]] = self.uploads[v["oid"]]
            elif item["key"] == "deletedFile":
                tree.pop(v["path"])
        oid = _sha(f"commit{len(self.commits)}")
        self.trees[oid] = tree
        if not create_pr:
            self.branches[rev] = oid
        return self._json(200, {"commitUrl": f"{ENDPOINT}/datasets/{REPO}/commit/{oid}", "commitOid": oid,
                                "pullRequestUrl": f"{ENDPOINT}/datasets/{REPO}/discussions/1" if create_pr else None})

    def files_at(self, rev: str) -> dict[str, bytes]:
        return self.trees[self.branches.get(rev, rev)]


# ---- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path) -> Path:
    """A small Hub-layout folder (what `hive card` writes; the card tests cover its content)."""
    d = tmp_path / "card"
    (d / "data" / "all").mkdir(parents=True)
    (d / "data" / "2mix").mkdir(parents=True)
    (d / "assets").mkdir()
    (d / "README.md").write_text(
        "---\nlicense: other\nconfigs:\n- config_name: all\n  data_files:\n  - split: train\n"
        "    path: data/all/train-*\n  default: true\n---\n\n# Hive\n")
    (d / "data" / "all" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 all train v1 PAR1")
    (d / "data" / "2mix" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 2mix train v1 PAR1")
    (d / "assets" / "snr_histogram.png").write_bytes(b"\x89PNG\r\n\x1a\n snr v1")
    (d / "data" / "all" / ".part-train-00000.parquet").write_bytes(b"leftover of a killed run")
    return d


def _remote_copy(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


@pytest.fixture
def hub(monkeypatch):
    """Install a FakeHub behind huggingface_hub's client; yields a function making one."""
    state: dict[str, FakeHub] = {}

    def install(files=None) -> FakeHub:
        fake = FakeHub(files)
        huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(fake)))
        state["hub"] = fake
        return fake

    monkeypatch.setattr(_commit_api, "is_xet_available", lambda: False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield install
    huggingface_hub.set_client_factory(huggingface_hub.utils._http.default_client_factory)


def _run(capsys, *argv: str) -> tuple[int, str]:
    rc = hive(["publish", *argv, "--endpoint", ENDPOINT])
    out, err = capsys.readouterr()
    return rc, out + err


def _no_token_anywhere(fake: FakeHub, text: str, caplog) -> None:
    assert TOKEN not in text
    assert all(TOKEN not in r.getMessage() and TOKEN not in str(r.args) for r in caplog.records)
    # ...but it was sent where it belongs: the Authorization header of Hub API requests
    api_requests = [r for r in fake.requests if r.url.host == "hub.test"]
    assert api_requests and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in api_requests)


# ---- tests ---------------------------------------------------------------------------------------
def test_new_branch_commit_tag_sends_expected_requests(folder, hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    fake = hub()
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "curated-v2", "--tag", "v2.0",
                   "-m", "Curated metadata v2")
    assert rc == 0, out
    initial = fake.branches["main"]
    # branch created from main's head, commit on it with parent_commit = that head
    assert fake.branch_events == [("curated-v2", {"startingPoint": initial})]
    (commit,) = fake.commits
    assert commit["revision"] == "curated-v2"
    header = commit["lines"][0]
    assert header["key"] == "header"
    assert header["value"]["parentCommit"] == initial
    assert header["value"]["summary"] == "Curated metadata v2"
    ops = {(line["key"], line["value"]["path"]) for line in commit["lines"][1:]}
    assert ops == {("file", "README.md"), ("lfsFile", "data/all/train-00000-of-00001.parquet"),
                   ("lfsFile", "data/2mix/train-00000-of-00001.parquet"), ("lfsFile", "assets/snr_histogram.png")}
    # LFS content went to storage; the hidden part file was never considered
    assert len(fake.uploads) == 3
    assert all("part-" not in r.url.path for r in fake.requests)
    assert fake.files_at("curated-v2") == {**fake.files_at(initial), **_remote_copy(folder)}
    # tag on the new commit; main untouched
    new_head = fake.branches["curated-v2"]
    assert fake.tag_events == [(new_head, {"tag": "v2.0", "message": "Curated metadata v2"})]
    assert fake.branches["main"] == initial
    assert "curated-v2" in out and new_head in out and "v2.0" in out
    _no_token_anywhere(fake, out, caplog)


def test_only_changed_files_are_uploaded_and_stale_ones_deleted(folder, hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    remote = _remote_copy(folder)
    remote["data/all/train-00001-of-00002.parquet"] = b"PAR1 stale shard PAR1"  # gone locally -> delete
    remote["data/5mix/test-00000-of-00001.parquet"] = b"PAR1 stale config PAR1"  # gone locally -> delete
    remote["notes/keep-me.txt"] = b"not managed by hive publish"  # outside managed paths -> kept
    fake = hub(remote)
    fake.branches["release"] = fake.branches["main"]
    head = fake.branches["release"]
    (folder / "data" / "2mix" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 2mix train v2 PAR1")
    (folder / "README.md").write_text((folder / "README.md").read_text() + "\nUpdated.\n")

    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "release")
    assert rc == 0, out
    assert fake.branch_events == []  # the branch exists
    (commit,) = fake.commits
    assert commit["revision"] == "release"
    assert commit["lines"][0]["value"]["parentCommit"] == head
    ops = sorted((line["key"], line["value"]["path"]) for line in commit["lines"][1:])
    assert ops == [("deletedFile", "data/5mix/test-00000-of-00001.parquet"),
                   ("deletedFile", "data/all/train-00001-of-00002.parquet"),
                   ("file", "README.md"),
                   ("lfsFile", "data/2mix/train-00000-of-00001.parquet")]
    # unchanged files: neither announced to preupload nor uploaded
    preuploaded = [f["path"] for r in fake.requests if "/preupload/" in r.url.path
                   for f in json.loads(r.read())["files"]]
    assert sorted(preuploaded) == ["README.md", "data/2mix/train-00000-of-00001.parquet"]
    assert list(fake.uploads.values()) == [b"PAR1 2mix train v2 PAR1"]
    after = fake.files_at("release")
    assert after["notes/keep-me.txt"] == b"not managed by hive publish"
    assert {p for p in after if p.startswith("data/")} == {"data/all/train-00000-of-00001.parquet",
                                                           "data/2mix/train-00000-of-00001.parquet"}
    _no_token_anywhere(fake, out, caplog)

    # publishing the same folder again: nothing to commit, no write request
    before = len(fake.write_requests)
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "release")
    assert rc == 0 and "nothing to commit" in out
    assert len(fake.write_requests) == before


def test_dry_run_prints_plan_and_sends_no_write(folder, hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    remote = _remote_copy(folder)
    remote["data/all/old-00000-of-00001.parquet"] = b"stale"
    fake = hub(remote)
    (folder / "assets" / "snr_histogram.png").write_bytes(b"\x89PNG\r\n\x1a\n snr v2")
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "new-branch", "--tag", "v9", "--dry-run")
    assert rc == 0, out
    assert fake.write_requests == []
    assert {r.method for r in fake.requests} == {"GET"}
    head = fake.branches["main"]
    assert "new-branch" not in fake.branches and fake.tags == {}
    assert f"branch 'new-branch' (new: created from 'main' at {head})" in out
    assert f"parent commit:   {head}" in out
    assert "update  assets/snr_histogram.png" in out
    assert "delete  data/all/old-00000-of-00001.parquet  (5 B)" in out
    assert "keep    data/all/train-00000-of-00001.parquet  (22 B)" in out
    assert "unchanged: 3 files" in out and "dry run: nothing was sent" in out
    _no_token_anywhere(fake, out, caplog)


def test_writing_main_needs_yes_and_sends_nothing(folder, hub, capsys):
    fake = hub()
    for argv in ([], ["--revision", "main"], ["--yes"]):
        rc, out = _run(capsys, str(folder), "--repo", REPO, *argv)
        assert rc == 2 and "--revision main --yes" in out
    assert fake.requests == []
    with pytest.raises(PublishRefusedError):
        publish(PublishConfig(folder, REPO, revision="main", endpoint=ENDPOINT))
    assert fake.requests == []

    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "main", "--yes")
    assert rc == 0, out
    (commit,) = fake.commits
    assert commit["revision"] == "main" and fake.branch_events == []


def test_pull_request_commits_from_head_without_touching_main(folder, hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    fake = hub()
    head = fake.branches["main"]
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--create-pr", "-m", "Curation round 3")
    assert rc == 0, out
    (commit,) = fake.commits
    assert commit["revision"] == "main" and commit["params"].get("create_pr") == "1"
    assert commit["lines"][0]["value"]["parentCommit"] == head
    assert fake.branches["main"] == head and fake.branch_events == []
    assert "pull request:" in out and "discussions/1" in out
    _no_token_anywhere(fake, out, caplog)


def test_concurrent_change_fails_loudly(folder, hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    fake = hub()
    fake.branches["release"] = fake.branches["main"]
    original_route = fake._commit
    others = []

    def moved_then_commit(request, rev):  # someone commits between our read and our commit
        others.append(_sha(f"someone else {len(others)}"))
        fake.branches["release"] = others[-1]
        fake.trees[others[-1]] = {}
        return original_route(request, rev)

    fake._commit = moved_then_commit
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "release")
    assert rc == 2
    assert "branch moved" in out and "412" in out
    assert fake.branches["release"] == others[-1] and fake.files_at("release") == {}  # nothing overwritten
    _no_token_anywhere(fake, out, caplog)
    with pytest.raises(ConcurrentUpdateError):
        publish(PublishConfig(folder, REPO, revision="release", endpoint=ENDPOINT))


def test_token_is_masked_in_errors(folder, hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    fake = hub()
    # a server that echoes the credential back in its error message
    fake.fail["/refs"] = (401, {"error": f"Invalid credentials in Authorization header: Bearer {TOKEN}"})
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "x")
    assert rc == 2
    assert "not accessible with this token" in out and "Bearer ***" in out
    _no_token_anywhere(fake, out, caplog)
    with pytest.raises(PublishError) as info:
        publish(PublishConfig(folder, REPO, revision="x", endpoint=ENDPOINT))
    # nothing chained: the original error (its message, request, response) is not kept
    assert TOKEN not in str(info.value) and info.value.__cause__ is None and info.value.__context__ is None

    # 403 on branch creation
    fake.fail.clear()
    fake.fail["/branch/"] = (403, {"error": f"token {TOKEN} has read access only"})
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "x")
    assert rc == 2 and "not authorised (HTTP 403" in out
    _no_token_anywhere(fake, out, caplog)

    # a commit error echoing the token
    fake.fail.clear()
    fake.fail["/commit/"] = (500, {"error": f"internal error for token {TOKEN}"})
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "x")
    assert rc == 2 and "500" in out
    _no_token_anywhere(fake, out, caplog)


def test_token_env_and_missing_token(folder, hub, capsys, monkeypatch):
    fake = hub()
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HIVE_PUBLISH_TOKEN", TOKEN)
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "b", "--token-env", "HIVE_PUBLISH_TOKEN")
    assert rc == 0, out
    assert TOKEN not in out
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "b", "--token-env", "UNSET_VAR_FOR_TEST")
    assert rc == 2 and "UNSET_VAR_FOR_TEST" in out


def test_refuses_non_layout_folder_and_tag_revision(tmp_path, folder, hub, capsys):
    fake = hub()
    rc, out = _run(capsys, str(tmp_path / "nothing"), "--repo", REPO, "--revision", "b")
    assert rc == 2 and "hive card" in out
    fake.tags["v1"] = fake.branches["main"]
    rc, out = _run(capsys, str(folder), "--repo", REPO, "--revision", "v1")
    assert rc == 2 and "is a tag" in out
    assert fake.write_requests == []


def test_git_blob_sha1_matches_git(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"hello\n")
    assert git_blob_sha1(p) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`
    shutil.copy(p, tmp_path / "g")
    assert git_blob_sha1(tmp_path / "g") == git_blob_sha1(p)


@pytest.mark.slow  # end to end over the toy corpus
def test_card_then_publish_a_curated_revision(tmp_path, hub, capsys):
    """The loop's end: publish a card folder, curate (drop mixtures), republish: only what changed moves."""
    from dataset_card.card import CardConfig, write_card_folder
    from mixing.metadata_io import iter_records
    from mixing.toy import build_toy_corpus

    toy = build_toy_corpus(tmp_path / "toy")
    records = list(iter_records(toy.parquet_dir))
    out = tmp_path / "card"
    write_card_folder(iter(records), out, CardConfig(repo_id=REPO))
    fake = hub()
    rc, text = _run(capsys, str(out), "--repo", REPO, "--revision", "main", "--yes", "--tag", "v1.0")
    assert rc == 0, text
    v1 = fake.tags["v1.0"]
    assert fake.files_at(v1)["README.md"] == (out / "README.md").read_bytes()

    # curation drops two 4-source training mixtures
    dropped = [r.mix_id for r in records if r.split == "train" and r.num_sources == 4][:2]
    write_card_folder((r for r in records if r.mix_id not in dropped), out,
                      CardConfig(repo_id=REPO, parent_revision="v1.0", provenance={"curation": {"dropped": 2}}))
    rc, text = _run(capsys, str(out), "--repo", REPO, "--revision", "curated", "--tag", "v1.1", "--dry-run")
    assert rc == 0
    changed = {line.split()[1] for line in text.splitlines() if line.strip().startswith("update ")}
    assert {"README.md", "data/all/train-00000-of-00001.parquet", "data/4mix/train-00000-of-00001.parquet"} <= changed
    assert not any(p.startswith(("data/2mix/", "data/3mix/", "data/5mix/")) or "validation" in p or "test-" in p
                   for p in changed)
    rc, text = _run(capsys, str(out), "--repo", REPO, "--revision", "curated", "--tag", "v1.1")
    assert rc == 0, text
    (first, second) = fake.commits
    second_paths = {line["value"]["path"] for line in second["lines"][1:]}
    assert second_paths == changed and second["lines"][0]["value"]["parentCommit"] == v1
    assert fake.tags["v1.1"] == fake.branches["curated"] != v1
    assert fake.branches["main"] == v1  # the release on main is untouched
