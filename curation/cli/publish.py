"""``hive publish``: a Hub-layout folder -> a new revision (branch, pull request, tag) of a Hub data set."""

from __future__ import annotations

import argparse


HELP = "publish a Hub-layout folder as a new revision"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", metavar="DIR", help="Hub-layout folder written by `hive card` (README.md, data/, assets/)")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="the Hub dataset repository")
    p.add_argument("--revision", metavar="BRANCH",
                   help="branch to commit to (created from main if missing); 'main' needs --yes")
    p.add_argument("--create-pr", action="store_true",
                   help="open a pull request (against --revision, default main) instead of committing to a branch")
    p.add_argument("--tag", help="tag the new commit (e.g. v1.1) so users can load it by revision")
    p.add_argument("--message", "-m", help="commit (and tag) message")
    p.add_argument("--dry-run", action="store_true", help="print the plan; send no write request")
    p.add_argument("--yes", action="store_true", help="confirm writing main (with --revision main)")
    p.add_argument("--token-env", default="HF_TOKEN", metavar="VAR",
                   help="environment variable holding the token (default HF_TOKEN; else your `hf auth login`)")
    p.add_argument("--endpoint", help="Hub endpoint (default: huggingface_hub's, i.e. $HF_ENDPOINT or huggingface.co)")


def io(args: argparse.Namespace):
    """What ``hive publish`` reads (the output-folder rule, :mod:`mixing.output_folder`): it writes
    nothing locally (no staging folder: files are sent from DIR as they are)."""
    from mixing.output_folder import CommandIO

    return CommandIO([("DIR", args.folder)], [])


def run(args: argparse.Namespace) -> int:
    from curation.publish import PublishConfig, publish

    options = PublishConfig(folder=args.folder, repo_id=args.repo, revision=args.revision,
                             create_pr=args.create_pr, tag=args.tag, message=args.message,
                             dry_run=args.dry_run, yes=args.yes, token_env=args.token_env, endpoint=args.endpoint)
    result = publish(options)
    plan = result.plan
    print(plan.describe())
    if args.dry_run:
        print("dry run: nothing was sent")
        return 0
    if result.branch_created:
        print(f"created branch {plan.branch!r} from main at {plan.parent_commit}")
    if result.committed:
        print(f"committed {result.commit_oid} to {plan.target_description()}")
        if result.pr_url:
            print(f"pull request: {result.pr_url}")
        elif result.commit_url:
            print(f"commit: {result.commit_url}")
    else:
        print(f"nothing committed; {plan.branch!r} stays at {plan.parent_commit}")
    if result.tagged:
        print(f"tagged {result.tagged!r}; load it with load_dataset({plan.repo_id!r}, 'all', split='train', "
              f"revision={result.tagged!r})")
    return 0
