"""The HTTP app served as `postroom serve` serves it (API plus dashboard, uvicorn configured by
`postroom.api.serving`) on a free loopback port, for tests that need real connections: proxy
headers, bodies that the client streams, connections the server closes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from postroom.api.app import create_app
from postroom.api.serving import uvicorn_config
from postroom.config.settings import Settings
from postroom.web import with_dashboard
from support.smtp_sinks import free_port


@contextmanager
def serving(settings: Settings, store: Any) -> Iterator[int]:
    """Serve the app until the block ends; yields the port."""
    app = with_dashboard(create_app(settings, store), settings, store)
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, settings, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, closed): one response read off `sock`; `closed` when the server
    closed the connection after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        rest += chunk
    try:
        closed = sock.recv(1) == b""
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        closed = False
    return status, headers, rest[:length], closed
