"""A minimal headless-Chromium driver for tests: the DevTools protocol over
``--remote-debugging-pipe`` (JSON messages separated by NUL on fds 3 and 4), so no websocket
library is needed. Enough to open a page, wait for its load event and evaluate a script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--mute-audio", "--autoplay-policy=no-user-gesture-required")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _high(fd: int) -> int:
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


class CDPError(RuntimeError):
    pass


class Chromium:
    """``with Chromium() as b: b.open(url); b.evaluate("...")``."""

    def __init__(self, binary: str | None = None, timeout: float = 60.0):
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
        self.timeout = timeout
        self._next_id = 0
        self._buf = b""
        self._events: list[dict] = []
        self.session: str | None = None

    def __enter__(self) -> "Chromium":
        self._profile = tempfile.mkdtemp(prefix="hive-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # the child's ends move above fd 9 so the redirections below cannot clobber fds 3 and 4
        to_child_r, from_child_w = (_high(to_child_r), _high(from_child_w))
        # the child must read commands on fd 3 and write replies on fd 4
        script = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w} {to_child_r}<&- {from_child_w}>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", script, self.binary, *FLAGS, "--remote-debugging-pipe",
             f"--user-data-dir={self._profile}", "about:blank"],
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        shutil.rmtree(self._profile, ignore_errors=True)

    # ---- protocol ------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise CDPError(f"Chromium closed the pipe (exit status {self.proc.poll()})")
                self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, *, session: bool = False,
             timeout: float | None = None) -> dict:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_event(self, method: str, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, ev in enumerate(self._events):
                if ev.get("method") == method:
                    return self._events.pop(i)
            self._events.append(self._read_message(deadline))

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self._events = [e for e in self._events if e.get("method") != "Page.loadEventFired"]
        result = self.call("Page.navigate", {"url": url}, session=True)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page (awaiting a promise) and return its JSON value."""
        res = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                              "returnByValue": True}, session=True)
        if "exceptionDetails" in res:
            raise CDPError(f"script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: str) -> None:
        import base64

        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                         session=True)["data"]
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))


#: per <audio>: wait (up to 15 s) until metadata loaded or an error; per <img>: decoded size
MEDIA_CHECK_JS = r"""
(async () => {
  const wait = (a) => new Promise((resolve) => {
    if (a.readyState >= 1 || a.error) return resolve();
    const done = () => resolve();
    a.addEventListener('loadedmetadata', done, {once: true});
    a.addEventListener('error', done, {once: true});
    setTimeout(done, 15000);
    if (a.networkState === HTMLMediaElement.NETWORK_EMPTY) a.load();
  });
  const audios = Array.from(document.querySelectorAll('audio'));
  await Promise.all(audios.map(wait));
  const images = Array.from(document.querySelectorAll('img'));
  await Promise.all(images.map((i) => i.complete ? null : new Promise((r) => {
    i.addEventListener('load', r, {once: true}); i.addEventListener('error', r, {once: true});
    setTimeout(r, 15000); })));
  return {
    title: document.title,
    scripts: document.scripts.length,
    text: document.body.innerText,
    audio: audios.map((a) => ({src: a.currentSrc, readyState: a.readyState, duration: a.duration,
                               error: a.error ? a.error.code : null})),
    images: images.map((i) => ({src: i.currentSrc, naturalWidth: i.naturalWidth})),
    links: Array.from(document.querySelectorAll('a[href]')).map((a) => a.href),
  };
})()
"""

#: fetch every link of the page (same origin) and report its HTTP status
LINK_CHECK_JS = r"""
(async () => {
  const out = {};
  for (const a of document.querySelectorAll('a[href]')) {
    try { const r = await fetch(a.href, {method: 'GET'}); out[a.href] = r.status; }
    catch (e) { out[a.href] = String(e); }
  }
  return out;
})()
"""
