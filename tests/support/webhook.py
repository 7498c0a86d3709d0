"""A webhook endpoint for the tests: a real HTTP server on 127.0.0.1 that records each request.

The path's first segment says how it answers, so one server plays every kind of endpoint:
``/ok/…`` 204, ``/fail/…`` 500, ``/busy/…`` 429, ``/gone/…`` 404, ``/moved/…`` a 307 to
``/ok/``, ``/hang/…`` reads the request and never answers, ``/trickle/…`` starts an answer
and sends one byte of a header every 0.2 s, forever (a socket timeout never fires on it).
``on_request`` runs as a request arrives, before the answer: what the test wants to know at
that moment (the workers' consumers).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: datetime  # when it arrived
    seen: Any = None  # what on_request returned

    @property
    def kind(self) -> str:
        return self.path.strip("/").split("/")[0]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Webhook:
    on_request: Callable[[], Any] | None = None
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.released = threading.Event()  # ends the hanging and trickling answers
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                seen = hook.on_request() if hook.on_request else None
                request = Received(
                    self.path, dict(self.headers.items()), body, datetime.now(UTC), seen
                )
                with hook.lock:
                    hook.received.append(request)
                hook.answer(self, request.kind)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads `received`, not a log

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path.lstrip('/')}"

    def answer(self, handler: BaseHTTPRequestHandler, kind: str) -> None:
        codes = {"ok": 204, "fail": 500, "busy": 429, "gone": 404}
        if kind in codes:
            handler.send_response(codes[kind])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif kind == "moved":
            handler.send_response(307)
            handler.send_header("Location", self.url("/ok/moved"))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif kind == "hang":
            self.released.wait()
        elif kind == "trickle":
            with contextlib.suppress(OSError):  # the client gives up and goes: that is the point
                handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not self.released.wait(0.2):
                    handler.wfile.write(b"a")
                    handler.wfile.flush()
        handler.close_connection = True

    def of_kind(self, kind: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.kind == kind]

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
