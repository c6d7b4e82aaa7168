"""A real HTTP server on 127.0.0.1 for tests of the network clients (judges)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def send_json(handler: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
    """Answer ``data`` (bytes of a JSON body, or anything else a hostile server sends) with ``status``."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class LocalHTTPServer:
    """``handler`` served by a threading server on a free port of 127.0.0.1, in a daemon thread.
    ``url`` ends in ``path`` (an OpenAI-compatible base URL by default)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, path: str = "/v1"):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> "LocalHTTPServer":
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
