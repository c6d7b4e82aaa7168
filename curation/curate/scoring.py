"""Scoring: one judge question per non-trivial source, one score per mixture.

Per source (``status``):

* ``scored``: the judge answered a readable choice; ``correct`` is whether it picked the true
  label (``0`` = "none matches" is a readable, wrong answer);
* ``trivial``: the label has no sibling, so there is nothing to confuse it with: scored 1, no
  judge call;
* ``unscored`` with a ``reason``: ``judge_failed`` (the backend gave up: timeout, HTTP error after
  its retries, or raised; a model failure, never cached, so the next run asks again),
  ``unparseable`` (answers that say no option, after ``answer_retries`` re-asks),
  ``label_not_in_ontology``, or ``audio_<reason>`` (the stems could not be rendered or read).
  Never counted as 0.

Per mixture: ``score`` = mean of ``correct`` over its scored and trivial sources; a mixture with
none is ``unscored`` (score ``None``) and the keep policy decides what happens to it.

Audio is produced only for mixtures with at least one source whose answer is not cached, so a
rerun over a full cache renders nothing and asks nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from curation.models.registry import AudioJudge
from mixing.errors import HiveError
from mixing.metadata import MixtureRecord
from mixing.ontology import UnknownNodeError

from .audio import StemSource
from .cache import AnswerCache, cache_key
from .pools import PoolBuilder
from .prompt import PromptConfig, parse_choice

log = logging.getLogger(__name__)

SCORED, TRIVIAL, UNSCORED = "scored", "trivial", "unscored"


class JudgeProtocolError(HiveError, TypeError):
    """A judge backend broke the ``ask`` contract."""


@dataclass
class SourceScore:
    mix_id: str
    source_id: str
    label: str
    pool: tuple[str, ...]  # canonical: true label first, then siblings in ontology order
    options: tuple[str, ...]  # as shown to the judge (numbered from 1)
    true_option: int | None
    answer: str | None = None
    choice: int | None = None  # 0 = none matches, 1..len(options)
    chosen_label: str | None = None
    correct: bool | None = None
    status: str = UNSCORED
    reason: str | None = None
    attempts: int = 0

    @property
    def counted(self) -> bool:
        return self.status in (SCORED, TRIVIAL)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pool"], d["options"] = list(self.pool), list(self.options)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SourceScore":
        return cls(**{**d, "pool": tuple(d["pool"]), "options": tuple(d["options"])})


@dataclass
class MixtureScore:
    mix_id: str
    split: str
    num_sources: int
    sources: list[SourceScore] = field(default_factory=list)

    @property
    def counted(self) -> list[SourceScore]:
        return [s for s in self.sources if s.counted]

    @property
    def score(self) -> float | None:
        counted = self.counted
        return sum(1.0 for s in counted if s.correct) / len(counted) if counted else None

    @property
    def status(self) -> str:
        return SCORED if self.counted else UNSCORED

    def count(self, status: str) -> int:
        return sum(1 for s in self.sources if s.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {"mix_id": self.mix_id, "split": self.split, "num_sources": self.num_sources,
                "score": self.score, "status": self.status,
                "sources": [s.to_dict() for s in self.sources]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MixtureScore":
        return cls(d["mix_id"], d["split"], int(d["num_sources"]),
                   [SourceScore.from_dict(s) for s in d["sources"]])


@dataclass
class _Question:
    score: SourceScore
    index: int  # position of the source in the mixture (row of the stems array)
    prompt: str
    key: str


def _finish(s: SourceScore, answer: str | None, attempts: int) -> None:
    s.answer, s.attempts = answer, attempts
    if answer is None:
        s.status, s.reason = UNSCORED, "judge_failed"
        return
    choice = parse_choice(answer, s.options)
    if choice is None:
        s.status, s.reason = UNSCORED, "unparseable"
        return
    s.choice = choice
    s.chosen_label = s.options[choice - 1] if choice else None
    s.correct = s.chosen_label == s.label
    s.status, s.reason = SCORED, None


class Scorer:
    """Scores mixtures with a judge, through the answer cache.

    ``answer_retries``: how many times a readable-but-unparseable answer is asked again.
    ``concurrency``: judge calls in flight at once (threads; only for thread-safe backends such
    as HTTP clients). Mixtures are processed in chunks of ``chunk`` so that calls of several
    mixtures can overlap; output order is input order.
    """

    def __init__(self, pools: PoolBuilder, judge: AudioJudge, cache: AnswerCache, audio: StemSource, *,
                 answer_retries: int = 1, concurrency: int = 1, chunk: int | None = None,
                 prompt: PromptConfig | None = None):
        if answer_retries < 0 or concurrency < 1:
            raise ValueError(f"answer_retries={answer_retries}, concurrency={concurrency}; expected >= 0 and >= 1")
        self.pools = pools
        self.prompt = prompt if prompt is not None else PromptConfig()
        self.judge = judge
        self.model_id = str(judge.model_id)
        self.cache = cache
        self.audio = audio
        self.answer_retries = answer_retries
        self.concurrency = concurrency
        self.chunk = chunk or max(8, 4 * concurrency)
        self.stats: Counter = Counter()
        #: the backend's account of the first call that failed for good (``last_error`` of HTTP judges)
        self.first_error: str | None = None

    # ---- planning ----------------------------------------------------------------------------
    def _plan(self, rec: MixtureRecord) -> tuple[MixtureScore, list[_Question]]:
        ms = MixtureScore(rec.mix_id, rec.split, rec.num_sources)
        questions = []
        for i, src in enumerate(rec.sources):
            try:
                pool = self.pools.pool(rec.mix_id, src.source_id, src.label)
            except UnknownNodeError:
                ms.sources.append(SourceScore(rec.mix_id, src.source_id, src.label, (src.label,), (), None,
                                              reason="label_not_in_ontology"))
                continue
            s = SourceScore(rec.mix_id, src.source_id, pool.label, pool.labels, pool.options, pool.true_option)
            ms.sources.append(s)
            if pool.trivial:
                s.status, s.correct, s.chosen_label = TRIVIAL, True, pool.label
                continue
            prompt = self.prompt.build(pool.options)
            key = cache_key(rec.mix_id, src.source_id, pool.labels, self.model_id,
                            self.prompt.request_sha256(prompt))
            hit = self.cache.get(key)
            if hit is not None:
                self.stats["cache_hits"] += 1
                _finish(s, hit.get("answer"), int(hit.get("attempts", 1)))
            else:
                questions.append(_Question(s, i, prompt, key))
        return ms, questions

    # ---- judging -----------------------------------------------------------------------------
    def _ask(self, group: tuple[str, list[tuple[np.ndarray, int]]]) -> list[str | None]:
        prompt, items = group
        try:
            answers = self.judge.ask(items, prompt)
        except Exception as exc:  # noqa: BLE001 - a backend error: these items failed, counted as such
            log.warning("judge %s failed for a call of %d items: %s: %s", self.model_id, len(items),
                        type(exc).__name__, exc)
            if self.first_error is None:
                self.first_error = f"{type(exc).__name__}: {exc}"[:300]
            return [None] * len(items)
        if not isinstance(answers, (list, tuple)) or len(answers) != len(items):
            raise JudgeProtocolError(
                f"judge {self.model_id!r} returned {type(answers).__name__} of length "
                f"{len(answers) if hasattr(answers, '__len__') else '?'} for {len(items)} items; expected "
                "a list with one answer string (or None) per item")
        bad = [a for a in answers if a is not None and not isinstance(a, str)]
        if bad:
            raise JudgeProtocolError(f"judge {self.model_id!r} returned {type(bad[0]).__name__} answers; "
                                     "expected str or None per item")
        return list(answers)

    def _run_round(self, pending: list[tuple[_Question, np.ndarray, int]], pool
                   ) -> Iterator[tuple[list[tuple[_Question, np.ndarray, int]], list[str | None]]]:
        """Ask every pending question once (one call per distinct prompt); yield each call's
        questions and answers as soon as it returns, so answers reach the cache early."""
        groups: dict[str, list[tuple[_Question, np.ndarray, int]]] = {}
        for item in pending:
            groups.setdefault(item[0].prompt, []).append(item)
        calls = [(prompt, [(stem, sr) for _, stem, sr in members]) for prompt, members in groups.items()]
        self.stats["judge_calls"] += len(calls)
        self.stats["judge_items"] += len(pending)
        results = pool.map(self._ask, calls) if pool is not None else map(self._ask, calls)
        yield from zip(groups.values(), results)

    def _judge(self, pending: list[tuple[_Question, np.ndarray, int]], pool) -> None:
        attempts = 0
        while pending:
            attempts += 1
            retry = []
            for members, answers in self._run_round(pending, pool):
                for (q, stem, sr), answer in zip(members, answers):
                    _finish(q.score, answer, attempts)
                    if q.score.reason == "unparseable" and attempts <= self.answer_retries:
                        retry.append((q, stem, sr))
                        continue
                    self.stats["judge_sources_asked"] += 1
                    if answer is None:  # a model failure: never cached, so the next run asks again
                        self.stats["judge_sources_failed"] += 1
                        if self.first_error is None:
                            cause = getattr(self.judge, "last_error", None)
                            self.first_error = str(cause) if cause else "the judge gave no answer"
                    else:
                        self.cache.put(q.key, {"mix_id": q.score.mix_id, "source_id": q.score.source_id,
                                               "pool": list(q.score.pool), "model_id": self.model_id,
                                               "prompt_sha256": self.prompt.request_sha256(q.prompt), "answer": answer,
                                               "attempts": attempts})
            pending = retry

    def _audio(self, rec: MixtureRecord, questions: list[_Question]) -> tuple[np.ndarray, int] | None:
        try:
            stems, sr = self.audio.stems(rec)
            self.stats["audio_loaded"] += 1
            return stems, sr
        except (HiveError, OSError, ValueError, RuntimeError) as exc:
            from mixing.failures import reason_of

            reason = "audio_" + ("not_rendered" if type(exc).__name__ == "NotRenderedError" else reason_of(exc))
            log.warning("mixture %s: no audio (%s): %s", rec.mix_id, reason, exc)
            self.stats[reason] += 1
            for q in questions:
                q.score.status, q.score.reason = UNSCORED, reason
            return None

    def _score_chunk(self, records: Sequence[MixtureRecord], pool) -> list[MixtureScore]:
        planned = [self._plan(rec) for rec in records]
        pending: list[tuple[_Question, np.ndarray, int]] = []
        for rec, (_, questions) in zip(records, planned):
            if not questions:
                continue
            audio = self._audio(rec, questions)
            if audio is None:
                continue
            stems, sr = audio
            pending.extend((q, np.ascontiguousarray(stems[q.index], dtype=np.float32), sr) for q in questions)
        self._judge(pending, pool)
        return [ms for ms, _ in planned]

    def score(self, records: Iterable[MixtureRecord]) -> Iterator[MixtureScore]:
        pool = ThreadPoolExecutor(self.concurrency) if self.concurrency > 1 else None
        try:
            buf: list[MixtureRecord] = []
            for rec in records:
                buf.append(rec)
                if len(buf) >= self.chunk:
                    yield from self._score_chunk(buf, pool)
                    buf = []
            if buf:
                yield from self._score_chunk(buf, pool)
        finally:
            if pool is not None:
                pool.shutdown()
