"""A real HTTP receiver on 127.0.0.1 (ephemeral port) for webhook tests and the benchmark.

    with HttpReceiver(replies=[500, 500]) as hook:   # 500 twice, then 200
        ... hook.url ...
        [req] = hook.wait_for(1)
        req.headers["postroom-signature"], req.json()

Every request is recorded with its headers (lowercased names), body and answer. `replies` are
answered in turn, then `default` for ever; `delay` holds each answer back (a slow receiver).
HTTP/1.1 with keep-alive, one thread per connection (the standard library's server).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    def __init__(self, replies: list[int] | None = None, *, default: int = 200,
                 delay: float = 0.0, record_bodies: bool = True) -> None:
        self.replies = list(replies or [])
        self.default, self.delay, self.record_bodies = default, delay, record_bodies
        self.requests: list[Request] = []
        self.count = 0
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = receiver._next()
                if receiver.delay:
                    time.sleep(receiver.delay)
                receiver._record(Request("POST", self.path,
                                         {k.lower(): v for k, v in self.headers.items()},
                                         body if receiver.record_bodies else b"", status,
                                         time.time()))
                reply = b"ok" if status < 300 else b"nope"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _next(self) -> int:
        with self._lock:
            return self.replies.pop(0) if self.replies else self.default

    def _record(self, request: Request) -> None:
        with self._lock:
            self.count += 1
            if self.record_bodies:
                self.requests.append(request)
            self._lock.notify_all()

    def accepted(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def wait_for(self, count: int, timeout: float = 10.0, *, accepted: bool = True
                 ) -> list[Request]:
        """Wait until `count` requests (answered 2xx unless accepted=False) have arrived."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = [r for r in self.requests if not accepted or r.status < 300]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(got)} of {count} webhook requests arrived")
                self._lock.wait(left)

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
