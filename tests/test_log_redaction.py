"""Secrets are filtered from every logger (issue 19): under ``-vv`` httpcore logs raw response
headers, and a server that echoes the ``Authorization`` header put the judge's token on the
user's terminal. A real OpenAI-compatible server on 127.0.0.1 echoes the header back; the real
``hive mine single-event -vv`` runs against it in a subprocess; the token must not be in stderr."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

pytest.importorskip("httpx")

from tests.local_http import LocalHTTPServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class EchoServer:
    """Answers every chat completion with "True" and echoes the request's Authorization header
    (as ``Authorization``, as ``X-Echo`` without the scheme, and inside the JSON body)."""

    def __init__(self):
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                auth = self.headers.get("Authorization") or ""
                outer.auth.append(auth)
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "True"}}],
                                   "echo": auth}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Authorization", auth)
                self.send_header("X-Echo", auth.split(" ", 1)[-1])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = LocalHTTPServer(Handler).start()
        self.url = self.server.url

    def close(self):
        self.server.close()


@pytest.fixture
def echo():
    srv = EchoServer()
    yield srv
    srv.close()


@pytest.mark.slow
@pytest.mark.parametrize("env_name,token", [
    ("HIVE_JUDGE_VALUE", "hf_EchoedBackSecret0123456789"),  # a Hugging Face token shape, any variable name
    ("MY_JUDGE_TOKEN", "plain-secret-value-42"),  # no known shape: found as a secret variable's value
])
def test_a_token_echoed_by_the_judge_server_never_reaches_stderr_under_vv(toy_corpus, echo, tmp_path, env_name,
                                                                           token):
    spec = f"openai:url={echo.url},model=m,api_key_env={env_name},retries=0,timeout=10,concurrency=1"
    env = {**os.environ, "PYTHONPATH": str(ROOT), env_name: token}
    proc = subprocess.run(
        [sys.executable, "-m", "mixing", "-vv", "mine", "single-event", "--input", str(toy_corpus.pool),
         "--output", str(tmp_path / "out"), "--dataset-paths", str(toy_corpus.dataset_paths), "--judge", spec,
         "--retries", "0", "--no-progress", "--batch-size", "8"],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert echo.auth and all(a == f"Bearer {token}" for a in echo.auth)  # the secret was really sent and echoed
    assert "receive_response_headers" in proc.stderr  # httpcore's header log was on
    assert token not in proc.stderr and token not in proc.stdout
    assert "***" in proc.stderr


def test_the_filter_covers_arguments_tracebacks_and_every_handler(monkeypatch):
    from mixing.log_redaction import SecretFilter, install, redact

    monkeypatch.setenv("SOME_API_KEY", "zzzzzz-not-a-known-shape")
    assert redact("key is zzzzzz-not-a-known-shape!") == "key is ***!"
    assert redact("Authorization: Bearer abc.def-ghi") == "Authorization: ***"
    assert redact("[(b'x-api-key', b'k-123456')]") == "[(b'x-api-key', b'***')]"
    assert redact("max_tokens=16, prompt tokens: 5") == "max_tokens=16, prompt tokens: 5"

    logger = logging.getLogger("hive-test-redaction")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        flt = install(logger)
        assert install(logger) is flt and handler.filters == [flt]  # idempotent
        logger.warning("sent %s to %s", "Bearer hf_abcdefghijkl", "server")
        try:
            raise RuntimeError("token=supersecret123 rejected")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert "hf_abcdefghijkl" not in records[0] and "Bearer ***" in records[0]
    assert "supersecret123" not in records[1] and "RuntimeError: token=***" in records[1]
    assert isinstance(flt, SecretFilter)
