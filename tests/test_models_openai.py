"""OpenAI-compatible judge against a real HTTP server on 127.0.0.1 that answers by script."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("httpx")

from curation.models import make_judge  # noqa: E402
from curation.models.openai_judge import OpenAIJudge  # noqa: E402
from tests.local_http import LocalHTTPServer, send_json  # noqa: E402

SLOW_S = 0.8


class ScriptedServer:
    """Chat-completions server whose reply depends on the prompt ("mode:...")."""

    def __init__(self):
        self.requests: list[dict] = []
        self.hits: Counter = Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"][1]["text"]
                audio = body["messages"][-1]["content"][0]["audio_url"]["url"]
                key = (self.path, prompt, audio)
                with outer.lock:
                    outer.requests.append({"path": self.path, "body": body,
                                           "auth": self.headers.get("Authorization")})
                    outer.hits[key] += 1
                    n = outer.hits[key]
                mode = prompt.split("mode:", 1)[1].split()[0] if "mode:" in prompt else "ok"
                try:
                    if mode == "slow":
                        time.sleep(SLOW_S)
                        return self._reply(200, "True")
                    if mode == "500once" and n == 1:
                        return self._send(500, b"internal error")
                    if mode == "429once" and n == 1:
                        return self._send(429, b"slow down")
                    if mode == "400":
                        return self._send(400, b'{"error": "bad request"}')
                    if mode == "badjson":
                        return self._send(200, b"not json at all")
                    if mode == "garbage":
                        return self._reply(200, "\u00af\\_(\u30c4)_/\u00af the sound is... purple")
                    # "ok": answer True for a loud clip, False for a quiet one
                    pcm, _ = sf.read(io.BytesIO(base64.b64decode(audio.split(",", 1)[1])))
                    return self._reply(200, " True." if np.abs(pcm).max() > 0.3 else "false")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

            def _reply(self, status, content):
                payload = {"id": "x", "object": "chat.completion", "model": "m",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": content}}]}
                self._send(status, json.dumps(payload).encode())

            def _send(self, status, data):
                send_json(self, status, data)

        self.server = LocalHTTPServer(Handler)
        self.url = self.server.url

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.close()

    def count(self, mode):
        return sum(1 for r in self.requests if f"mode:{mode}" in r["body"]["messages"][-1]["content"][1]["text"])


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


def _clip(amp, n=1600, sr=16000):
    t = np.arange(n) / sr
    return (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _judge(url, **kw):
    opts = dict(url=url, model="tiny-omni", timeout=0.3, concurrency=4, retries=2,
                backoff=0.01, api_key_env="HIVE_TEST_KEY")
    opts.update(kw)
    return OpenAIJudge(OpenAIJudge.Settings(**opts))


def test_correct_answers_in_order_and_request_body(server, monkeypatch):
    monkeypatch.setenv("HIVE_TEST_KEY", "sekret")
    clips = [(_clip(0.9), 16000), (_clip(0.01), 16000), (_clip(0.5, n=800, sr=8000), 8000)]
    with _judge(server.url) as judge:
        answers = judge.ask(clips, "Is this one sound? mode:ok")
    assert answers == [" True.", "false", " True."]
    assert len(server.requests) == 3
    for req in server.requests:
        assert req["path"] == "/v1/chat/completions"
        assert req["auth"] == "Bearer sekret"
        body = req["body"]
        assert body["model"] == "tiny-omni"
        assert body["temperature"] == 0 and body["max_tokens"] == 16
        audio_part, text_part = body["messages"][-1]["content"]
        assert text_part == {"type": "text", "text": "Is this one sound? mode:ok"}
        assert audio_part["type"] == "audio_url"
        assert audio_part["audio_url"]["url"].startswith("data:audio/wav;base64,")
    # the data URL decodes to the clip (16-bit WAV at the clip's own rate)
    decoded = []
    for req in server.requests:
        url = req["body"]["messages"][-1]["content"][0]["audio_url"]["url"]
        decoded.append(sf.read(io.BytesIO(base64.b64decode(url.split(",", 1)[1])), dtype="float32"))
    for y, sr in clips:
        assert any(got_sr == sr and len(pcm) == len(y)
                   and np.allclose(pcm, y, atol=1.0 / 32767 + 1e-6) for pcm, got_sr in decoded)


def test_float_wav_resample_and_system_prompt(server):
    y = _clip(0.7, n=4410, sr=44100)
    with _judge(server.url, wav="float", rate=16000, system="You are an audio judge.") as judge:
        assert judge.ask([(y, 44100)], "mode:ok") == [" True."]
    body = server.requests[0]["body"]
    assert body["messages"][0] == {"role": "system", "content": "You are an audio judge."}
    url = body["messages"][1]["content"][0]["audio_url"]["url"]
    info = sf.info(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert info.samplerate == 16000 and info.subtype == "FLOAT" and info.frames == 1600


def test_garbage_is_returned_raw(server):
    with _judge(server.url) as judge:
        answers = judge.ask([(_clip(0.9), 16000)] * 3, "mode:garbage")
    assert all(a is not None and "purple" in a for a in answers)
    assert server.count("garbage") == 3  # a 200 answer is never retried here


@pytest.mark.slow  # end to end over the toy corpus
def test_slow_answers_time_out_retry_then_none(server):
    with _judge(server.url, retries=1) as judge:
        t0 = time.monotonic()
        answers = judge.ask([(_clip(0.9), 16000), (_clip(0.8), 16000)], "mode:slow")
        elapsed = time.monotonic() - t0
    assert answers == [None, None]
    assert server.count("slow") == 4  # 2 items x (1 try + 1 retry)
    assert elapsed < 2 * SLOW_S + 0.5  # the client gave up at its timeout, not the server's pace


def test_http_500_then_success_is_retried(server):
    with _judge(server.url) as judge:
        answers = judge.ask([(_clip(0.9), 16000), (_clip(0.01), 16000)], "mode:500once")
    assert answers == [" True.", "false"]
    assert server.count("500once") == 4


def test_http_429_is_retried(server):
    with _judge(server.url) as judge:
        assert judge.ask([(_clip(0.9), 16000)], "mode:429once") == [" True."]
    assert server.count("429once") == 2


def test_http_400_is_not_retried(server):
    with _judge(server.url, retries=5) as judge:
        assert judge.ask([(_clip(0.9), 16000)], "mode:400") == [None]
    assert server.count("400") == 1


def test_malformed_body_retried_then_none(server):
    with _judge(server.url, retries=1) as judge:
        assert judge.ask([(_clip(0.9), 16000)], "mode:badjson") == [None]
    assert server.count("badjson") == 2


def test_connection_refused_gives_none_after_retries():
    with ScriptedServer() as srv:
        url = srv.url  # bound, then closed below: nothing listens there any more
    with _judge(url, retries=1) as judge:
        assert judge.ask([(_clip(0.9), 16000)], "mode:ok") == [None]


def test_concurrency_bounded_and_order_kept(server):
    clips = [(_clip(0.9 if i % 2 else 0.01), 16000) for i in range(10)]
    with _judge(server.url, concurrency=3) as judge:
        answers = judge.ask(clips, "mode:ok")
    assert answers == ["false" if i % 2 == 0 else " True." for i in range(10)]
    assert judge.ask([], "mode:ok") == []


def test_spec_string_builds_the_judge(server):
    judge = make_judge(f"openai:url={server.url},model=qwen,timeout=5,concurrency=2,retries=0")
    assert isinstance(judge, OpenAIJudge)
    assert (judge.timeout, judge.concurrency, judge.retries) == (5.0, 2, 0)
    assert judge.model_id == "openai:qwen" and judge.provenance["url"] == server.url
    assert judge._loaded is None  # lazy: no client before the first call
    assert judge.ask([(_clip(0.9), 16000)], "mode:ok") == [" True."]
    judge.close()


# ---- whole-request deadline and answer size cap (issue 11) ----------------------------------------
class HostileServer:
    """A server that answers every POST with a hostile body: ``dribble`` sends one byte every
    ``DRIBBLE_S`` seconds (each read is quick, the whole answer never ends), ``huge`` streams
    200 MB of chunked JSON-ish bytes lazily, ``huge-declared`` declares 200 MB up front. It counts
    the bytes it managed to send."""

    DRIBBLE_S = 0.05
    HUGE = 200 * 1024 * 1024

    def __init__(self, mode: str):
        self.sent = 0
        self.finished = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    if mode == "dribble-headers":  # the status line and headers, one byte at a time
                        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"a" * 4000
                        for i in range(len(head)):
                            self.wfile.write(head[i:i + 1])
                            self.wfile.flush()
                            outer.sent += 1
                            time.sleep(outer.DRIBBLE_S)
                    elif mode == "dribble":
                        body = b'{"choices": [{"message": {"content": "True"}}]}' + b" " * 4000
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        for i in range(len(body)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            outer.sent += 1
                            time.sleep(outer.DRIBBLE_S)
                    else:
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        if mode == "huge-declared":
                            self.send_header("Content-Length", str(outer.HUGE))
                        else:
                            self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        block = b'{"choices": [{"message": {"content": "' + b"x" * 65400
                        while outer.sent < outer.HUGE:
                            if mode == "huge-declared":
                                self.wfile.write(block)
                            else:
                                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                            outer.sent += len(block)
                        if mode != "huge-declared":
                            self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    pass  # the client stopped reading: what this server is for
                finally:
                    outer.finished.set()
                    self.close_connection = True

        self.server = LocalHTTPServer(Handler)
        self.url = self.server.url

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.close()


@pytest.mark.slow  # end to end over the toy corpus
def test_a_dribbling_server_is_cut_at_the_whole_request_deadline():
    # 4 kB at one byte per 50 ms would take 200 s; every single read is far below the timeout
    with HostileServer("dribble") as srv, _judge(srv.url, timeout=1.0, deadline=0.6, retries=0) as judge:
        t0 = time.monotonic()
        answers = judge.ask([(_clip(0.9), 16000)], "is it one sound?")
        elapsed = time.monotonic() - t0
    assert answers == [None]
    assert elapsed < 0.6 + 1.0 + 0.5, f"held for {elapsed:.1f} s"
    assert 0 < srv.sent < 100
    assert "deadline of 0.6 s" in judge.last_error and judge.failures == 1


@pytest.mark.slow  # end to end over the toy corpus
def test_a_server_dribbling_its_response_headers_is_cut_at_the_deadline():
    """Issue 19: the deadline used to start counting only at the body, so a server sending its
    headers one byte at a time held the request (and the whole run) for as long as it liked."""
    with HostileServer("dribble-headers") as srv, _judge(srv.url, timeout=1.0, deadline=0.6, retries=1,
                                                          backoff=0.0) as judge:
        t0 = time.monotonic()
        answers = judge.ask([(_clip(0.9), 16000)], "is it one sound?")
        elapsed = time.monotonic() - t0
    assert answers == [None]
    assert elapsed < 2 * (0.6 + 0.5), f"held for {elapsed:.1f} s (two attempts)"
    assert 0 < srv.sent < 100
    assert "deadline of 0.6 s" in judge.last_error and "receive response headers" in judge.last_error
    assert judge.failures == 1


def test_the_deadline_defaults_to_a_few_timeouts_and_is_checked():
    assert _judge("http://127.0.0.1:9/v1", timeout=2.0).deadline == 8.0
    with pytest.raises(ValueError, match="deadline"):
        _judge("http://127.0.0.1:9/v1", deadline=0)
    judge = make_judge("openai:url=http://127.0.0.1:9/v1,model=m,deadline=2.5,max_answer_bytes=4096")
    assert (judge.deadline, judge.max_answer_bytes) == (2.5, 4096)


@pytest.mark.parametrize("mode", ["huge", "huge-declared"])
def test_a_200_mb_answer_is_cut_at_max_answer_bytes(mode):
    import tracemalloc

    with HostileServer(mode) as srv, _judge(srv.url, timeout=2.0, retries=2) as judge:
        tracemalloc.start()
        t0 = time.monotonic()
        answers = judge.ask([(_clip(0.9), 16000)], "is it one sound?")
        elapsed = time.monotonic() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        srv.finished.wait(5)
    assert answers == [None]
    assert elapsed < 3.0
    assert peak < 16 * 1024 * 1024, f"peak Python memory {peak / 2**20:.1f} MiB"
    assert srv.sent < 40 * 1024 * 1024, f"the server got {srv.sent / 2**20:.0f} MiB out"  # socket buffers only
    assert "max_answer_bytes=1048576" in judge.last_error
    assert judge.failures == 1  # a too-large answer is not asked again
