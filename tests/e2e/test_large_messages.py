"""Large messages: streamed to a spool file, stored in chunks, returned byte for byte."""

from __future__ import annotations

import os
import smtplib
from collections.abc import Iterator

import pytest

from support.server import RunningServer, make_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = make_server(tmp_path_factory.mktemp("large"), smtp_extra="max_message_size = 6000000\n")
    srv.create_account("big", "--sender-domain", "big.example", "--trusted-network", "127.0.0.0/8")
    srv.start()
    yield srv
    srv.stop()


def body(size: int) -> bytes:
    line = os.urandom(38).hex().encode() + b"\r\n"  # 78 bytes per line
    head = (b"From: a@big.example\r\nMessage-ID: <big@big.example>\r\nDate: Sun, 22 Nov 2026 "
            b"10:00:00 +0000\r\nSubject: big\r\n\r\n")
    return head + line * (size // len(line))


def test_five_megabytes_round_trip(server: RunningServer) -> None:
    from postroom.store.api import Store

    msg = body(5_000_000)
    with smtplib.SMTP("127.0.0.1", server.plain, timeout=30) as c:
        c.ehlo("x")
        c.mail("a@big.example")
        c.rcpt("r@example.org")
        code, text = c.data(msg)
    assert code == 250
    mid = text.decode().split("<")[1].rstrip(">")
    store = Store(server.storage_url)
    try:
        assert store.get_raw(mid) == msg
        assert store.get_message(mid).size == len(msg)
    finally:
        store.close()


def test_oversized_is_read_to_the_end_then_refused(server: RunningServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.plain, timeout=30) as c:
        c.ehlo("x")
        c.mail("a@big.example")
        c.rcpt("r@example.org")
        code, text = c.data(body(7_000_000))
        assert (code, text) == (552, b"5.3.4 Message size exceeds fixed maximum message size")
        assert c.noop()[0] == 250  # the session goes on
