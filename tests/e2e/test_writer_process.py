"""The writer process behind `postroom serve`: killed, it is replaced, and every 250 stands."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from support.server import make_server, submit

pytestmark = pytest.mark.slow

MSG = b"From: a@wp.example\r\nSubject: wp\r\n\r\nhello\r\n"
READY = re.compile(r" (\d+): writer process ready")


def send(port: int) -> tuple[int, bytes]:
    return submit(port, "a@wp.example", "r@example.org", MSG)


def test_a_killed_writer_is_replaced_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    from postroom.store.api import Store

    server = make_server(tmp_path, smtp_extra="processes = 2\n")
    server.create_account("wp", "--sender-domain", "wp.example", "--trusted-network",
                          "127.0.0.0/8")
    server.start()
    acked: list[str] = []
    refused = 0
    try:
        code, text = send(server.plain)
        assert code == 250, text
        acked.append(text.decode().split("<")[1].rstrip(">"))
        first = READY.findall(server.log())
        assert len(first) == 1, server.log()
        os.kill(int(first[0]), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(READY.findall(server.log())) < 2 or len(acked) < 11:
            assert time.monotonic() < deadline, f"no new writer:\n{server.log()}"
            code, text = send(server.plain)
            if code == 250:
                acked.append(text.decode().split("<")[1].rstrip(">"))
            else:  # while no writer listens: try again later, never a 5xx
                assert (code, text) == (
                    451, b"4.3.0 Temporary local problem, please try again later")
                refused += 1
                time.sleep(0.1)
        assert "postroom-writer: the process ended" in server.log()
    finally:
        server.stop()
    store = Store(server.storage_url)
    try:
        missing = [i for i in acked if store.get_message(i) is None]
    finally:
        store.close()
    assert not missing, missing
