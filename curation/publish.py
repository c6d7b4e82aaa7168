# Over 400 lines: one publish transaction (plan, diff, commit, refusals) that must read top to bottom.
"""Publish a Hub-layout folder (``hive card`` output) as a new revision of a Hub data set.

The commit is built from explicit operations, never by re-uploading a folder:

1. resolve the target: a branch (created from ``main`` if missing), a pull request, or ``main``
   itself, which needs ``--revision main --yes``; refusals happen before any request;
2. read the target's head commit (``list_repo_refs``);
3. list the remote files at that commit (``list_repo_tree``) and compare them with the local
   files: LFS files by sha256, regular files by git blob sha1 (computed locally);
4. build ``CommitOperationAdd`` for new and changed files, ``CommitOperationDelete`` for remote
   files under the managed paths (``data/``, ``assets/``, ``README.md``) that no longer exist
   locally — anything else in the repository is left alone;
5. ``create_commit(..., parent_commit=head)``: if the branch moved since step 2 the Hub refuses
   the commit, so a concurrent change fails loudly instead of being overwritten;
6. optionally ``create_tag`` on the new commit.

``dry_run`` stops after step 4 and only reads. The token comes from ``$HF_TOKEN`` (or another
variable) or the user's login; it is never printed or logged, and every error message that
leaves this module is masked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from mixing.errors import HiveError
from mixing.memory_estimate import size_text

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"
DEFAULT_BRANCH = "main"
MANAGED_DIRS = ("data/", "assets/")
MANAGED_FILES = ("README.md",)
DEFAULT_TOKEN_ENV = "HF_TOKEN"
_CHUNK = 1 << 20
_HF_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")
T = TypeVar("T")


class PublishError(HiveError):
    """Publishing failed or cannot start; the message never contains the token."""


class PublishRefusedError(PublishError):
    """The options ask for something unsafe (e.g. writing ``main`` without ``--yes``)."""


class ConcurrentUpdateError(PublishError):
    """The target branch moved between reading its head and committing."""


# ---- options and plan --------------------------------------------------------------------------
@dataclass
class PublishConfig:
    folder: str | os.PathLike
    repo_id: str
    revision: str | None = None
    create_pr: bool = False
    tag: str | None = None
    message: str | None = None
    dry_run: bool = False
    yes: bool = False
    token_env: str = DEFAULT_TOKEN_ENV
    endpoint: str | None = None


@dataclass(frozen=True)
class FileChange:
    path: str  # path in the repository
    size: int
    status: str  # "new" | "changed" | "unchanged" | "deleted"


@dataclass
class PublishPlan:
    repo_id: str
    #: branch the commit goes to (for a PR: the branch the PR targets)
    branch: str
    create_pr: bool
    branch_exists: bool
    #: commit the new commit will have as parent (head of ``branch``, or of main for a new branch)
    parent_commit: str
    added: list[FileChange] = field(default_factory=list)  # new and changed
    deleted: list[FileChange] = field(default_factory=list)
    unchanged: list[FileChange] = field(default_factory=list)
    tag: str | None = None

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.deleted)

    def target_description(self) -> str:
        if self.create_pr:
            return f"a pull request against branch {self.branch!r}"
        if not self.branch_exists:
            return f"branch {self.branch!r} (new: created from {DEFAULT_BRANCH!r} at {self.parent_commit})"
        return f"branch {self.branch!r}"

    def describe(self) -> str:
        lines = [f"publish plan for dataset {self.repo_id}",
                 f"  target revision: {self.target_description()}",
                 f"  parent commit:   {self.parent_commit}"]
        for title, items, verb in (("added / changed", self.added, None), ("deleted", self.deleted, "delete"),
                                   ("unchanged", self.unchanged, "keep")):
            total = sum(c.size for c in items)
            lines.append(f"  {title}: {len(items)} files, {_human(total)}")
            for c in items:
                lines.append(f"    {verb or ('add' if c.status == 'new' else 'update'):<7} {c.path}  "
                             f"({_human(c.size)})")
        if self.tag:
            lines.append(f"  tag: {self.tag!r} on the new commit" if self.has_changes
                         else f"  tag: {self.tag!r} on {self.parent_commit}")
        if not self.has_changes:
            lines.append("  nothing to commit: the remote files already match")
        return "\n".join(lines)


@dataclass
class PublishResult:
    plan: PublishPlan
    committed: bool = False
    commit_oid: str | None = None
    commit_url: str | None = None
    pr_url: str | None = None
    tagged: str | None = None
    branch_created: bool = False


def _human(n: int) -> str:
    return size_text(n, binary=False)


# ---- token handling ------------------------------------------------------------------------------
def resolve_token(token_env: str = DEFAULT_TOKEN_ENV) -> str | None:
    """The token from ``$token_env``, else the user's login (``hf auth login``), else None."""
    value = os.environ.get(token_env, "").strip() if token_env else ""
    if value:
        return value
    if token_env and token_env != DEFAULT_TOKEN_ENV:
        raise PublishError(f"--token-env {token_env}: the variable is not set or empty; export it, or leave "
                           f"--token-env out to use ${DEFAULT_TOKEN_ENV} or your `hf auth login` token")
    from huggingface_hub import get_token

    return get_token()


def mask(text: str, token: str | None) -> str:
    """``text`` with the token (and anything shaped like a Hub token) replaced by ``***``."""
    if token and len(token) >= 4:
        text = text.replace(token, "***")
    return _HF_TOKEN_RE.sub("hf_***", text)


def _translate(exc: BaseException, token: str | None, action: str) -> PublishError | None:
    """A :class:`PublishError` with a masked message for a Hub / transport error, else None."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    msg = mask(str(exc), token)
    if isinstance(exc, RepositoryNotFoundError):
        return PublishError(f"{action}: repository not found or not accessible with this token ({msg}). Create "
                            "it with `hf repo create ORG/NAME --repo-type dataset`, or check --repo and the "
                            "token's permissions")
    if isinstance(exc, RevisionNotFoundError):
        return PublishError(f"{action}: revision not found ({msg})")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if action.startswith("commit") and status in (409, 412):
            return ConcurrentUpdateError(
                f"{action}: the branch moved since its head was read (HTTP {status}: {msg}); nothing was "
                "overwritten. Run `hive publish` again to plan against the new head")
        if status in (401, 403):
            return PublishError(f"{action}: not authorised (HTTP {status}: {msg}); use a token with write access "
                                f"(${DEFAULT_TOKEN_ENV}, --token-env VAR, or `hf auth login`)")
        return PublishError(f"{action}: the Hub answered HTTP {status}: {msg}")
    if isinstance(exc, (OSError, ValueError)) or type(exc).__module__.split(".")[0] in (
            "httpx", "httpx2", "huggingface_hub"):  # local files, rejected arguments, transport errors
        return PublishError(f"{action}: {type(exc).__name__}: {msg}")
    if isinstance(exc, (TypeError, KeyError, AttributeError, IndexError, RecursionError)):
        # Hub replies are untrusted: a list or a string where an object belongs, a missing field, JSON
        # nested without end (from a proxy, a captive portal or another server at --endpoint)
        return PublishError(f"{action}: the Hub's reply is not what the Hub API returns ({type(exc).__name__}: "
                            f"{msg[:200]}); check --endpoint / $HF_ENDPOINT and retry")
    return None


def _hub_call(token: str | None, action: str, fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)``; Hub / transport errors come out as :class:`PublishError` with a
    masked message and *no* chained exception (the original's message, traceback and request
    objects could carry the token)."""
    try:
        return fn(*args, **kwargs)
    except PublishError:
        raise
    except Exception as exc:  # noqa: BLE001 - translated below or re-raised unchanged
        err = _translate(exc, token, action)
        if err is None:
            raise
    raise err  # outside the except clause: no __context__ pointing at the original


# ---- local and remote files --------------------------------------------------------------------
def is_managed(path_in_repo: str) -> bool:
    return path_in_repo in MANAGED_FILES or path_in_repo.startswith(MANAGED_DIRS)


def local_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Managed files of the folder: ``README.md`` and everything under ``data/`` and ``assets/``
    (hidden files and temporary parts excluded), path in repo -> local path, sorted."""
    folder = Path(folder)
    out: dict[str, Path] = {}
    for name in MANAGED_FILES:
        if (folder / name).is_file():
            out[name] = folder / name
    for d in MANAGED_DIRS:
        base = folder / d
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            rel = p.relative_to(folder)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                out[rel.as_posix()] = p
    return dict(sorted(out.items()))


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The git object id of a file's content (what the Hub reports as ``oid`` of a regular file)."""
    h = hashlib.sha1()
    h.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    blob_id: str
    lfs_sha256: str | None

    def matches(self, local: Path) -> bool:
        if local.stat().st_size != self.size:
            return False
        if self.lfs_sha256:
            return sha256_file(local) == self.lfs_sha256
        return git_blob_sha1(local) == self.blob_id


def remote_files(api, repo_id: str, commit: str) -> dict[str, RemoteFile]:
    """Managed files of the repository at ``commit``."""
    out: dict[str, RemoteFile] = {}
    for entry in api.list_repo_tree(repo_id, recursive=True, revision=commit, repo_type=REPO_TYPE):
        if getattr(entry, "blob_id", None) is None or not is_managed(entry.path):
            continue  # folders, and files this tool does not manage
        lfs = getattr(entry, "lfs", None)
        out[entry.path] = RemoteFile(entry.path, int(entry.size), entry.blob_id, lfs.sha256 if lfs else None)
    return out


def diff_files(local: dict[str, Path], remote: dict[str, RemoteFile]) -> tuple[list[FileChange], ...]:
    added, unchanged, deleted = [], [], []
    for path, lp in local.items():
        size = lp.stat().st_size
        rf = remote.get(path)
        if rf is None:
            added.append(FileChange(path, size, "new"))
        elif rf.matches(lp):
            unchanged.append(FileChange(path, size, "unchanged"))
        else:
            added.append(FileChange(path, size, "changed"))
    for path, rf in sorted(remote.items()):
        if path not in local:
            deleted.append(FileChange(path, rf.size, "deleted"))
    return added, deleted, unchanged


# ---- the steps -------------------------------------------------------------------------------
def check_target(options: PublishConfig) -> str:
    """The branch to write (or the PR's target branch); refuses unsafe targets. No network."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", options.repo_id or ""):
        raise PublishRefusedError(f"--repo is {options.repo_id!r}; expected ORG/NAME")
    if options.create_pr:
        if options.tag:
            raise PublishRefusedError("--tag with --create-pr: a PR commit is not a release; merge the PR, then "
                                      "tag it (`hive publish ... --revision BRANCH --tag TAG` or `hf` CLI)")
        return options.revision or DEFAULT_BRANCH
    if options.revision is None:
        raise PublishRefusedError(
            "no target revision: give --revision BRANCH (created from main if missing), --create-pr (a pull "
            "request against main), or --revision main --yes to write main directly")
    if options.revision == DEFAULT_BRANCH and not options.yes:
        raise PublishRefusedError(
            "refusing to write 'main' without --yes: publish to a branch (--revision BRANCH) or open a pull "
            "request (--create-pr), or confirm with --revision main --yes")
    if options.revision.startswith("refs/") or re.fullmatch(r"[0-9a-f]{40}", options.revision):
        raise PublishRefusedError(f"--revision {options.revision!r}: expected a branch name")
    return options.revision


def check_folder(folder: str | os.PathLike) -> dict[str, Path]:
    """The folder must be a Hub layout with a card whose YAML parses (offline)."""
    from huggingface_hub import DatasetCard

    folder = Path(folder)
    files = local_files(folder)
    if "README.md" not in files or not any(p.startswith("data/") and p.endswith(".parquet") for p in files):
        raise PublishError(f"{folder} is not a Hub-layout folder (README.md and data/**/*.parquet expected); "
                           "write one with `hive card METADATA --output DIR`")
    try:
        card = DatasetCard.load(files["README.md"], ignore_metadata_errors=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is reported the same way
        raise PublishError(f"{folder}/README.md: the card does not parse ({exc}); regenerate it with "
                           "`hive card`") from None
    if not card.data.to_dict().get("configs"):
        raise PublishError(f"{folder}/README.md declares no `configs`; regenerate it with `hive card`")
    return files


def _read_head(api, repo_id: str, branch: str, create_pr: bool) -> tuple[str, bool]:
    """(commit the new commit builds on, whether ``branch`` exists)."""
    refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    branches = {b.name: b.target_commit for b in refs.branches}
    if branch in branches:
        return branches[branch], True
    if branch in {t.name for t in refs.tags}:
        raise PublishRefusedError(f"--revision {branch!r} is a tag of {repo_id}; publish to a branch, and tag "
                                  "the result with --tag")
    if create_pr:
        raise PublishError(f"--create-pr against branch {branch!r}: no such branch in {repo_id} (branches: "
                           f"{sorted(branches)}); create it first or leave --revision out to target main")
    if DEFAULT_BRANCH not in branches:
        raise PublishError(f"{repo_id} has no {DEFAULT_BRANCH!r} branch to start {branch!r} from")
    return branches[DEFAULT_BRANCH], False


def make_plan(api, options: PublishConfig, *, token: str | None = None) -> PublishPlan:
    """Read the target's head and the remote listing; compare with the folder. Read-only."""
    branch = check_target(options)
    local = check_folder(options.folder)
    head, exists = _hub_call(token, "reading the target branch", _read_head, api, options.repo_id, branch,
                             options.create_pr)
    remote = _hub_call(token, "listing the remote files", remote_files, api, options.repo_id, head)
    added, deleted, unchanged = diff_files(local, remote)
    return PublishPlan(options.repo_id, branch, options.create_pr, exists, head, added, deleted, unchanged,
                       options.tag)


def build_operations(plan: PublishPlan, folder: str | os.PathLike) -> list:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    folder = Path(folder)
    ops: list = [CommitOperationAdd(path_in_repo=c.path, path_or_fileobj=str(folder / c.path)) for c in plan.added]
    ops += [CommitOperationDelete(path_in_repo=c.path, is_folder=False) for c in plan.deleted]
    return ops


def _default_message(plan: PublishPlan) -> str:
    import mixing

    return (f"Publish Hive metadata: {len(plan.added)} added/changed, {len(plan.deleted)} deleted "
            f"(hive {mixing.__version__})")


def publish(options: PublishConfig, api=None) -> PublishResult:
    """Plan, and unless ``dry_run``: create the branch if missing, commit, tag."""
    check_target(options)  # refusals come before any token lookup or request
    token = resolve_token(options.token_env)
    if token is None and not options.dry_run:
        raise PublishError(f"no Hugging Face token: set ${options.token_env or DEFAULT_TOKEN_ENV} or run "
                           "`hf auth login` (a dry run works without one on public repositories)")
    if api is None:
        import mixing
        from huggingface_hub import HfApi

        api = HfApi(endpoint=options.endpoint, token=token if token else False,
                    library_name="hive-uss", library_version=mixing.__version__)
    plan = make_plan(api, options, token=token)
    result = PublishResult(plan)
    if options.dry_run:
        return result
    repo = options.repo_id
    if not plan.has_changes:
        logger.info("nothing to commit to %s@%s", repo, plan.branch)
        if plan.tag:
            _hub_call(token, f"tagging {plan.parent_commit} as {plan.tag!r}", api.create_tag, repo,
                      tag=plan.tag, revision=plan.parent_commit, tag_message=options.message, repo_type=REPO_TYPE)
            result.tagged = plan.tag
        return result
    if not plan.branch_exists:
        _hub_call(token, f"creating branch {plan.branch!r}", api.create_branch, repo, branch=plan.branch,
                  revision=plan.parent_commit, repo_type=REPO_TYPE)
        result.branch_created = True
    operations = build_operations(plan, options.folder)
    message = options.message or _default_message(plan)
    info = _hub_call(token, f"commit to {repo}@{plan.branch}", api.create_commit, repo, operations,
                     commit_message=message, repo_type=REPO_TYPE, revision=plan.branch,
                     parent_commit=plan.parent_commit, create_pr=plan.create_pr)
    result.committed = True
    result.commit_oid = info.oid
    result.commit_url = str(info.commit_url) if info.commit_url else None
    result.pr_url = str(info.pr_url) if info.pr_url else None
    if plan.tag:
        _hub_call(token, f"tagging {info.oid} as {plan.tag!r}", api.create_tag, repo, tag=plan.tag,
                  revision=info.oid, tag_message=options.message, repo_type=REPO_TYPE)
        result.tagged = plan.tag
    return result
