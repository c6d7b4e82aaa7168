"""Audio-LLM judge over an OpenAI-compatible chat-completions server (e.g. vLLM).

Each clip is sent as its own request: ``POST {url}/chat/completions`` whose user message holds
the clip as ``{"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64,..."}}`` followed
by the prompt text, with temperature 0 and a short ``max_tokens``. Requests run concurrently in a
thread pool; timeouts, connection errors, HTTP 5xx and 429 are retried with exponential backoff,
other 4xx are not. A request that still fails yields ``None`` for its item; its cause is kept in
:attr:`OpenAIJudge.last_error` (and counted in :attr:`OpenAIJudge.failures`).

``timeout`` bounds each socket read, so on its own a server sending one byte a second would hold
a request for as long as it likes. Each attempt therefore also has a whole-request ``deadline``
(default ``4 * timeout``) that covers everything after the connection is made: sending the
request, the response headers and the body. A watchdog timer shuts the attempt's socket down when
the deadline passes (each request has its own connection, found through httpcore's ``trace``
extension, so the watchdog cuts exactly that request), which ends any blocked read at once; the
body loop also checks the deadline after each chunk. As a backstop each attempt runs on a daemon
thread that is abandoned shortly after the deadline. The answer may be at most
``max_answer_bytes`` long (default 1 MiB): a longer one is cut off after that many bytes (never
read further, never held in memory) and counts as a failed call, not retried. The answer is
parsed by :mod:`mixing.input_files` (depth cap, an object expected).

Serve a model with e.g. ``vllm serve Qwen/Qwen3-Omni-30B-A3B-Instruct --port 8000`` and use the
spec ``openai:url=http://127.0.0.1:8000/v1,model=Qwen/Qwen3-Omni-30B-A3B-Instruct``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from curation.models.audio_io import to_rate, wav_data_url
from curation.models.lazy import LazyModel
from curation.models.registry import BackendSpecError
from mixing import numbers
from mixing.errors import HiveError, InputFileError
from mixing.input_files import parse_json

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 425, 429})


class RequestFailed(HiveError):
    """One attempt failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


class _DeadlineWatchdog:
    """Shuts down one request's socket when its whole-request deadline passes. The socket comes
    from httpcore's ``trace`` callback (``connection.connect_tcp.complete``); a request made on a
    fresh connection (keep-alive is off) always reports it. The deadline therefore also bounds
    a server that dribbles its response headers, which no per-read timeout can."""

    def __init__(self, deadline: float):
        self._lock = threading.Lock()
        self._sockets: list[Any] = []
        self.expired = False
        self.phase = "connecting"
        self._timer = threading.Timer(deadline, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(".started") and not self.expired:
            self.phase = event.rsplit(".", 1)[0].split(".", 1)[-1].replace("_", " ")
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with self._lock:
                    self._sockets.append(sock)
                    if self.expired:
                        self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: Any) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass

    def _expire(self) -> None:
        with self._lock:
            self.expired = True  # self.phase now stays what the request was doing
            for sock in self._sockets:
                self._shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


_SECONDS_BACKOFF = numbers.real(0.0, 3600.0, what="a number of seconds")


@dataclass(frozen=True)
class OpenAIJudgeSettings:
    """The options of :class:`OpenAIJudge` (the spec keys), checked when made.

    ``url`` (base URL ending in ``/v1``), ``model`` (served model name), ``timeout`` (seconds per
    read), ``concurrency`` (parallel requests), ``retries`` (extra attempts after the first),
    ``backoff`` (first wait in seconds, doubled each retry, capped at ``max_backoff``),
    ``max_tokens``, ``rate`` (resample clips to this rate before sending; 0 keeps the clip's rate),
    ``wav`` (``pcm16`` or ``float``), ``system`` (optional system prompt), ``api_key_env``
    (environment variable holding a bearer token; unset → no header), ``deadline`` (seconds one
    attempt may take in all; None: ``4 * timeout``), ``max_answer_bytes`` (largest answer body
    read; default 1 MiB)."""

    url: str
    model: str
    timeout: float = 60.0
    concurrency: int = 4
    retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_tokens: int = 16
    rate: int = 0
    wav: str = "pcm16"
    system: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    deadline: float | None = None
    max_answer_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise BackendSpecError(f"openai judge: url {self.url!r} is not an http(s) URL; "
                                   "expected e.g. http://127.0.0.1:8000/v1")
        if not isinstance(self.wav, str) or self.wav.lower() not in ("pcm16", "float"):
            raise BackendSpecError(f"openai judge: wav={self.wav!r}; expected 'pcm16' or 'float'")
        rules = {"timeout": numbers.SECONDS, "concurrency": numbers.WORKERS,
                 "max_answer_bytes": numbers.integer(1, 1 << 30, "a number of bytes"),
                 "retries": numbers.RETRIES, "backoff": _SECONDS_BACKOFF, "max_backoff": _SECONDS_BACKOFF,
                 "max_tokens": numbers.integer(1, 1_000_000, "a number of tokens"),
                 "rate": numbers.integer(0, numbers.MAX_SAMPLE_RATE, "a sample rate in Hz (0: keep)")}
        numbers.check_fields(self, rules, where="openai judge: option", error=BackendSpecError, optional=False)
        numbers.check_fields(self, {"deadline": numbers.SECONDS}, where="openai judge: option",
                             error=BackendSpecError)  # None: 4 x timeout


class OpenAIJudge(LazyModel):
    """``AudioJudge`` backed by an OpenAI-compatible ``/chat/completions`` endpoint, built from
    its :class:`OpenAIJudgeSettings` (``OpenAIJudge.Settings``; the spec keys, e.g.
    ``openai:url=http://127.0.0.1:8000/v1,model=qwen,timeout=60``)."""

    backend = "openai judge"
    requires = {"httpx": "httpx"}
    Settings = OpenAIJudgeSettings

    def __init__(self, settings: OpenAIJudgeSettings):
        if not isinstance(settings, OpenAIJudgeSettings):
            raise BackendSpecError(f"openai judge: settings is a {type(settings).__name__}; expected "
                                   "OpenAIJudge.Settings(url=..., model=..., ...) or build it from a spec with "
                                   "curation.models.registry.make_judge('openai:url=...,model=...')")
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self.model_name = settings.model
        self.timeout = float(settings.timeout)
        self.deadline = float(settings.deadline) if settings.deadline is not None else 4.0 * self.timeout
        self.max_answer_bytes = int(settings.max_answer_bytes)
        #: the cause of the last request that failed for good (None: none failed yet)
        self.last_error: str | None = None
        self.failures = 0
        self.concurrency = int(settings.concurrency)
        self.retries = int(settings.retries)
        self.backoff = float(settings.backoff)
        self.max_backoff = float(settings.max_backoff)
        self.max_tokens = int(settings.max_tokens)
        self.rate = int(settings.rate)
        self.wav_subtype = "FLOAT" if settings.wav.lower() == "float" else "PCM_16"
        self.system = settings.system
        #: sampling temperature sent with each request; None sends none (the server's default)
        self.temperature: float | None = 0.0
        self.api_key_env = settings.api_key_env
        # the served model, not the server address: restarting a server elsewhere keeps the
        # answer caches valid (the URL is in the provenance)
        self.model_id = f"openai:{settings.model}"
        self._lock = threading.Lock()

    @property
    def provenance(self) -> dict[str, Any]:
        return {"backend": "openai", "model": self.model_name, "url": self.url,
                "max_tokens": self.max_tokens, "temperature": self.temperature, "rate": self.rate,
                "wav": self.wav_subtype}

    def load(self, httpx) -> dict[str, Any]:
        """The shared HTTP client as ``model`` (httpx clients are thread-safe)."""
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        # no keep-alive: each request opens its own connection, whose socket the deadline
        # watchdog of that request (and only that request) may shut down
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=0)
        client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=headers, limits=limits)
        return {"model": client, "httpx": httpx}

    def close(self) -> None:
        loaded = self.unload()
        if loaded is not None:
            loaded["model"].close()

    # -- requests -----------------------------------------------------------------------------
    def request_body(self, y: np.ndarray, sr: int, prompt: str) -> dict[str, Any]:
        if self.rate:
            y, sr = to_rate(y, sr, self.rate), self.rate
        content = [
            {"type": "audio_url", "audio_url": {"url": wav_data_url(y, sr, self.wav_subtype)}},
            {"type": "text", "text": prompt},
        ]
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {"model": self.model_name, "messages": messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        body["max_tokens"] = self.max_tokens
        return body

    def _read_body(self, response: Any, started: float) -> bytes:
        """The answer body, streamed: cut at the deadline and at ``max_answer_bytes``."""
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_answer_bytes:
            raise RequestFailed(f"answer of {int(length)} bytes (Content-Length) is larger than "
                                f"max_answer_bytes={self.max_answer_bytes}; not read", False)
        parts, size = [], 0
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise RequestFailed(f"answer larger than max_answer_bytes={self.max_answer_bytes}; "
                                    "cut off there (raise max_answer_bytes if the server is right)", False)
            parts.append(chunk)
            if time.monotonic() - started > self.deadline:
                raise RequestFailed(f"no complete answer within the deadline of {self.deadline:g} s "
                                    f"({size} bytes received)", True)
        return b"".join(parts)

    def _attempt(self, body: dict[str, Any]) -> str | None:
        """One request, abandoned at the deadline whatever phase it is in (headers included)."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = self._exchange(body)
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc

        worker = threading.Thread(target=run, name="hive-judge-request", daemon=True)
        worker.start()
        worker.join(self.deadline + 1.0)
        if worker.is_alive():
            raise RequestFailed(f"no complete answer within the deadline of {self.deadline:g} s from {self.url} "
                                "(the server is too slow or sends its response a byte at a time)", True)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    def _exchange(self, body: dict[str, Any]) -> str | None:
        st = self.state()
        httpx = st["httpx"]
        started = time.monotonic()
        watchdog = _DeadlineWatchdog(self.deadline)
        try:
            with st["model"].stream("POST", f"{self.url}/chat/completions", json=body,
                                    extensions={"trace": watchdog.trace}) as response:
                status = response.status_code
                data = self._read_body(response, started)
        except httpx.TransportError as exc:
            if watchdog.expired:
                raise RequestFailed(f"no complete answer within the deadline of {self.deadline:g} s "
                                    f"(cut while {watchdog.phase}) at {self.url}", True)
            if isinstance(exc, httpx.TimeoutException):
                raise RequestFailed(f"timed out after {self.timeout:g} s ({type(exc).__name__}) "
                                    f"at {self.url}", True)
            raise RequestFailed(f"connection error to {self.url}: {type(exc).__name__}: {exc}", True)
        finally:
            watchdog.cancel()
        text = data.decode("utf-8", errors="replace")
        if status >= 500 or status in _RETRY_STATUS:
            raise RequestFailed(f"HTTP {status} from {self.url}: {text[:200]!r}", True)
        if status >= 400:
            raise RequestFailed(f"HTTP {status} from {self.url} (not retried): {text[:300]!r}", False)
        try:
            payload = parse_json(text, f"answer from {self.url}", "a chat completion (a JSON object)",
                                 expect=dict)
            content = payload["choices"][0]["message"]["content"]
        except InputFileError as exc:
            raise RequestFailed(f"malformed response: {str(exc)[:300]}", True)
        except (KeyError, IndexError, TypeError) as exc:
            raise RequestFailed(f"malformed response from {self.url} ({type(exc).__name__}): "
                                f"{text[:200]!r}", True)
        if content is None:
            return None
        if isinstance(content, list):  # content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return str(content)

    def ask_one(self, y: np.ndarray, sr: int, prompt: str) -> str | None:
        body = self.request_body(y, sr, prompt)
        for attempt in range(self.retries + 1):
            try:
                return self._attempt(body)
            except RequestFailed as exc:
                last = attempt == self.retries or not exc.retry
                log.warning("judge request to %s failed (attempt %d/%d): %s%s", self.url,
                            attempt + 1, self.retries + 1, exc, "" if last else "; retrying")
                if last:
                    with self._lock:
                        self.last_error, self.failures = str(exc), self.failures + 1
                    return None
                time.sleep(min(self.max_backoff, self.backoff * (2 ** attempt)))
        return None  # pragma: no cover

    def ask(self, items: list[tuple[np.ndarray, int]], prompt: str) -> list[str | None]:
        """One raw answer per ``(clip, rate)`` item, in order; ``None`` where the call failed."""
        if not items:
            return []
        workers = min(self.concurrency, len(items))
        if workers == 1:
            return [self.ask_one(y, sr, prompt) for y, sr in items]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hive-judge") as pool:
            return list(pool.map(lambda item: self.ask_one(item[0], item[1], prompt), items))

