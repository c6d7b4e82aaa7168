"""The rank executor (issue 20): every command that splits its work across ranks (render, store
build, mine, curate, the stream) checks its ranks in one place, :mod:`mixing.ranks`, and takes its
share, its lock, its completion marker and its merge from :class:`mixing.ranks.RankRun`.

The refusals run the real commands (``main`` in-process) and the real library entry points; a spy
on :func:`mixing.ranks.world.checked` shows that each one reached the executor's check."""

from __future__ import annotations

import argparse
import threading

import pytest

from mixing.cli import argtypes as at
from mixing.cli import build_parser, main
from mixing.errors import HiveError
from mixing.numbers import NumberError
from mixing.ranks import RankRun, Ranks, Wait, failure_record, world, write_manifest
from mixing.cli.rank_options import add_rank_options
from mixing.resume import RankMarkers

JUDGE = "openai:url=http://127.0.0.1:9/v1,model=x"


@pytest.fixture
def spy(monkeypatch):
    """Records every call of the executor's rank check (and lets it run)."""
    calls: list[tuple] = []
    real = world.checked

    def recording(rank, world_size, *args, **kw):
        calls.append((rank, world_size, *args))
        return real(rank, world_size, *args, **kw)

    monkeypatch.setattr(world, "checked", recording)
    return calls


# ---- the check itself -----------------------------------------------------------------------------
@pytest.mark.parametrize("rank,world_size,expected", [
    ("abc", 1, "rank is 'abc'; expected a rank"),
    (0, "1e20", "world_size is '1e20'; expected a number of ranks"),
    (0, 10**20, "world_size is 100000000000000000000; expected a number of ranks"),
    (0, 0, "world_size is 0; expected a number of ranks in 1..65536"),
    (-1, 2, "rank is -1; expected a rank in 0..65535"),
    (2, 2, "rank is 2 but world_size is 2; expected a rank in 0..1: give each process its own rank"),
    (True, 2, "rank is True"),
])
def test_bad_ranks_are_refused_in_one_line(rank, world_size, expected):
    with pytest.raises(NumberError) as info:
        Ranks.of(rank, world_size)
    message = str(info.value)
    assert expected in message and "\n" not in message


def test_shares_cover_the_work_once_and_keep_its_order():
    items = [f"x{i:03d}" for i in range(103)]
    shares = [Ranks(r, 4).share(items) for r in range(4)]
    assert sorted(x for s in shares for x in s) == items
    assert [len(s) for s in shares] == [26, 26, 26, 25]
    assert all(s == sorted(s) for s in shares)
    for r in range(4):
        assert [i for i in range(103) if Ranks(r, 4).owns(i)] == list(Ranks(r, 4).indices(103))
        assert [items[i] for i in Ranks(r, 4).indices(103)] == shares[r]
    assert Ranks.of("3", "4") == Ranks(3, 4)  # text from the environment is converted once


def test_ranks_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert Ranks.from_env() == Ranks(1, 3)
    monkeypatch.setenv("RANK", "abc")
    with pytest.raises(NumberError, match="environment variable RANK is 'abc'; expected a rank"):
        Ranks.from_env()
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(NumberError, match=r"\$RANK is 3 but \$WORLD_SIZE is 3"):
        Ranks.from_env()


# ---- every command refuses bad ranks through the executor ----------------------------------------
def _commands(toy, ontology, out):
    common = ["--metadata", str(toy.parquet_dir), "--dataset-paths", str(toy.dataset_paths), "--output", str(out)]
    return {
        "render": ["render", *common, "--no-progress"],
        "store build": ["store", "build", *common, "--no-progress"],
        "mine chunk": ["mine", "chunk", "--input", str(toy.labels_csv), "--output", str(out)],
        "curate": ["curate", *common, "--ontology", str(ontology), "--judge", JUDGE, "--no-progress"],
    }


@pytest.fixture
def ontology(tmp_path):
    from mixing.toy import write_toy_ontology

    return write_toy_ontology(tmp_path / "ontology.json")


def _refusal(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    # "hive store build: error: ..." (a bad number) or "hive store: error: ..." (a bad pair)
    assert len(lines) == 1 and lines[0].startswith(f"hive {command.split()[0]}") and ": error: " in lines[0], err
    return lines[0]


COMMANDS = ["render", "store build", "mine chunk", "curate"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("extra,env,expected", [
    ([], {"RANK": "abc"}, "environment variable RANK=abc is not a rank in 0..65535; fix or unset RANK"),
    ([], {"WORLD_SIZE": "1e20"}, "environment variable WORLD_SIZE=1e20 is not a number of ranks in 1..65536"),
    (["--world-size", "1e20"], {}, "--world-size: 1e20 is not a number of ranks in 1..65536"),
    (["--world-size", "0"], {}, "--world-size: 0 is not a number of ranks in 1..65536"),
    (["--rank", "2", "--world-size", "2"], {},
     ("--rank is 2 but --world-size is 2; expected a rank in 0..1: give each process its own rank below the "
      "number of ranks")),
])
def test_every_command_refuses_bad_ranks_in_one_line_before_any_work(toy_corpus, ontology, tmp_path, capsys,
                                                                      monkeypatch, spy, command, extra, env,
                                                                      expected):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    argv = _commands(toy_corpus, ontology, out)[command]
    assert main([*argv, *extra]) == 2
    line = _refusal(capsys, command)
    assert expected in line, line
    assert not out.exists()  # refused before any work
    if "--rank" in extra:  # the pair: checked by the executor, under the command line's names
        assert any(call[:3] == (2, 2, ("--rank", "--world-size")) for call in spy), spy


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_its_rank_options_from_the_executor(command):
    """The same options everywhere: made by :func:`mixing.cli.rank_options.add_rank_options`."""
    reference = argparse.ArgumentParser()
    add_rank_options(reference)
    want = {a.dest: a for a in reference._actions if a.dest in ("rank", "world_size")}
    parser = build_parser(command.split()[0])
    sub = parser
    for word in command.split():
        subparsers = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction))
        sub = subparsers.choices[word]
    got = {a.dest: a for a in sub._actions if a.dest in ("rank", "world_size")}
    assert set(got) == {"rank", "world_size"}
    for dest, action in got.items():
        assert action.type is want[dest].type and action.help == want[dest].help
    assert got["rank"].type is at.rank and got["world_size"].type is at.world_size


# ---- the library entry points go through the same check -------------------------------------------
def _entry_points(toy, ontology, out):
    from curation.curate.job import CurateConfig, run_curate
    from curation.runner import RunConfig
    from hive import iter_mixtures
    from mixing.dynamic import DynamicSpec  # noqa: F401 - the stream's dynamic side imports the executor
    from mixing.recipe import RenderRecipe
    from mixing import api
    from mixing.render_options import RenderOptions
    from mixing.store.build import StoreBuildConfig

    def render(rank, world):
        api.render(str(toy.parquet_dir), RenderRecipe.make(toy.dataset_paths), str(out),
                   options=RenderOptions(rank=rank, world_size=world))

    def curate(rank, world):
        run_curate(CurateConfig(metadata=str(toy.parquet_dir), ontology=str(ontology), judge=JUDGE,
                                output=str(out), dataset_paths=str(toy.dataset_paths)), rank=rank, world_size=world)

    return {
        "render": render,
        "store build": lambda rank, world: StoreBuildConfig(output=str(out), rank=rank, world_size=world),
        "mine": lambda rank, world: RunConfig(str(toy.labels_csv), str(out), rank=rank, world_size=world),
        "curate": curate,
        "stream": lambda rank, world: next(iter_mixtures(str(toy.parquet_dir), str(toy.dataset_paths),
                                                         options={"rank": rank, "world_size": world})),
    }


@pytest.mark.parametrize("entry", ["render", "store build", "mine", "curate", "stream"])
@pytest.mark.parametrize("rank,world_size,expected", [
    ("abc", 1, "rank is 'abc'"), (0, 10**20, "world_size is 100000000000000000000"),
    (0, 0, "world_size is 0"), (3, 2, "rank is 3 but world_size is 2"),
])
def test_every_entry_point_refuses_bad_ranks_through_the_executor(toy_corpus, ontology, tmp_path, spy, entry,
                                                                   rank, world_size, expected):
    out = tmp_path / "out"
    call = _entry_points(toy_corpus, ontology, out)[entry]
    with pytest.raises(HiveError) as info:
        call(rank, world_size)
    assert expected in str(info.value)
    assert spy and spy[0][:2] == (rank, world_size)
    assert not out.exists()


# ---- RankRun: lock, markers, the merge once --------------------------------------------------------
def _markers(out, world_size):
    return RankMarkers(out / "_ranks", "rank-{rank:05d}-of-{world:05d}.json", world_size)


def test_only_the_last_rank_to_finish_merges(tmp_path):
    merges = []
    for r in range(3):
        with RankRun(tmp_path, Ranks(r, 3), markers=_markers(tmp_path, 3)) as run:
            run.mark_done({"rank": r})
            done = run.merge_once(lambda r=r: merges.append(r) or "merged")
        assert done.merged == (r == 2)
    assert merges == [2] and done.result == "merged"
    assert not (tmp_path / "_locks").exists()  # a finished run leaves no lock behind


def test_a_second_process_of_one_rank_is_refused(tmp_path):
    from mixing.locks import FolderLockedError

    with RankRun(tmp_path, Ranks(0, 2)):
        with pytest.raises(FolderLockedError, match="is being mined by process"):
            RankRun(tmp_path, Ranks(0, 2), activity="mined").__enter__()
        with pytest.raises(FolderLockedError, match="different world sizes"):
            RankRun(tmp_path, Ranks(1, 3)).__enter__()
        with RankRun(tmp_path, Ranks(1, 2)):  # the other rank of the same run is welcome
            pass


def test_with_a_barrier_rank_zero_merges_after_every_rank(tmp_path):
    barrier = threading.Barrier(2)
    merged, errors = [], []

    def rank(r):
        try:
            with RankRun(tmp_path, Ranks(r, 2), markers=_markers(tmp_path, 2)) as run:
                run.mark_done({"rank": r})
                merged.append((r, run.merge_once(lambda: sorted(p.name for p in (tmp_path / "_ranks").iterdir()),
                                                 barrier=barrier.wait)))
        except HiveError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    by_rank = dict(merged)
    assert not by_rank[1].merged and by_rank[0].merged
    assert by_rank[0].result == ["rank-00000-of-00002.json", "rank-00001-of-00002.json"]


def test_waiting_rank_zero_times_out_with_what_to_do(tmp_path):
    with RankRun(tmp_path, Ranks(0, 2), markers=_markers(tmp_path, 2)) as run:
        run.mark_done({"rank": 0})
        with pytest.raises(HiveError, match=r"ranks \[1\] of 2 have not finished after 0 s; rerun them"):
            run.merge_once(lambda: "never", wait=Wait(timeout=0.2, poll=0.05))


def test_markers_of_another_run_do_not_count(tmp_path):
    with RankRun(tmp_path, Ranks(0, 1), markers=_markers(tmp_path, 1)) as run:
        run.mark_done({"config": "old"})
        assert not run.merge_once(lambda: "x", expect={"config": "new"}).merged
        assert run.merge_once(lambda: "x", expect={"config": "old"}).merged
        run.clear_done()
        assert run.done() is None


def test_failure_records_have_one_shape(tmp_path):
    from mixing.errors import MissingSourceAudioError

    rec = failure_record(MissingSourceAudioError("a.wav:\n  not there"), path="a.wav")
    assert rec == {"path": "a.wav", "reason": "missing_file", "message": "a.wav: not there"}
    assert failure_record("judge_failed", "x" * 900, mix_id="m")["message"] == "x" * 500
    write_manifest(tmp_path / "f.jsonl", [rec, {"b": 1, "a": "é"}])
    assert (tmp_path / "f.jsonl").read_text(encoding="utf-8").splitlines() == [
        '{"message": "a.wav: not there", "path": "a.wav", "reason": "missing_file"}', '{"a": "é", "b": 1}']
