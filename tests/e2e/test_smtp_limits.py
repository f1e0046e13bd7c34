"""Idle timeout and connection limits, against the real server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from support.server import RunningServer, make_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = make_server(tmp_path_factory.mktemp("limits"),
                      smtp_extra="idle_timeout = 1.0\nmax_connections_per_ip = 3\n"
                                 "max_connections = 5\n")
    srv.start()
    yield srv
    srv.stop()


def read_reply(s: socket.socket) -> bytes:
    s.settimeout(10)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_idle_connection_gets_421_and_is_closed(server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", server.plain)) as s:
        assert read_reply(s).startswith(b"220 postroom.test ESMTP")
        start = time.monotonic()
        assert read_reply(s) == b"421 4.4.2 Idle timeout, closing connection\r\n"
        assert s.recv(10) == b""
        assert 0.5 < time.monotonic() - start < 5


def test_connection_limits_per_ip_and_total(server: RunningServer) -> None:
    held = [socket.create_connection(("127.0.0.1", server.plain)) for _ in range(3)]
    for s in held:
        assert read_reply(s).startswith(b"220 ")
    with socket.create_connection(("127.0.0.1", server.plain)) as extra:
        assert read_reply(extra) == b"421 4.7.0 Too many connections, try again later\r\n"
    others = [socket.create_connection(("127.0.0.1", server.plain), source_address=(f"127.0.0.{i}", 0))
              for i in (2, 3)]
    for s in others:
        assert read_reply(s).startswith(b"220 ")
    with socket.create_connection(("127.0.0.1", server.plain), source_address=("127.0.0.9", 0)) as s:
        assert read_reply(s) == b"421 4.7.0 Too many connections, try again later\r\n"
    for s in held + others:
        s.close()
    time.sleep(0.2)
    with socket.create_connection(("127.0.0.1", server.plain)) as s:
        assert read_reply(s).startswith(b"220 ")
