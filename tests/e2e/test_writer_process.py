"""The writer process behind `postroom serve`: killed, it is replaced, and every 250 stands."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.server import make_server, submit
from support.write_lock import write_lock_held

pytestmark = pytest.mark.slow

MSG = b"From: a@wp.example\r\nSubject: wp\r\n\r\nhello\r\n"
READY = re.compile(r" (\d+): writer process ready")


def send(port: int) -> tuple[int, bytes]:
    return submit(port, "a@wp.example", "r@example.org", MSG)


def test_a_killed_writer_is_replaced_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    """SIGKILL the writer in the middle of a transaction (held up by another process's hold
    on the write lock): that session hears 451 at once, not after the commit timeout, and its
    message is not stored; a new writer takes over and every 250 stands."""
    from postroom.store.api import Store

    server = make_server(tmp_path, smtp_extra="processes = 2\n")
    server.create_account("wp", "--sender-domain", "wp.example", "--trusted-network",
                          "127.0.0.0/8")
    server.start()
    db = Path(server.storage_url.removeprefix("sqlite:///"))
    acked: list[str] = []
    try:
        code, text = send(server.plain)
        assert code == 250, text
        acked.append(text.decode().split("<")[1].rstrip(">"))
        first = READY.findall(server.log())
        assert len(first) == 1, server.log()
        with write_lock_held(db), ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(send, server.plain)
            time.sleep(1.0)  # its request is inside the writer's transaction, waiting
            killed = time.monotonic()
            os.kill(int(first[0]), signal.SIGKILL)
            assert stuck.result(20) == (
                451, b"4.3.0 Temporary local problem, please try again later")
            assert time.monotonic() - killed < 5.0
        deadline = time.monotonic() + 30
        while len(READY.findall(server.log())) < 2:
            assert time.monotonic() < deadline, f"no new writer:\n{server.log()}"
            time.sleep(0.1)
        for _ in range(10):
            code, text = send(server.plain)
            assert code == 250, text
            acked.append(text.decode().split("<")[1].rstrip(">"))
        assert "postroom-writer: the process ended" in server.log()
    finally:
        server.stop()
    store = Store(server.storage_url)
    try:
        stored = {m.id for m in store.list_messages(limit=100)}
    finally:
        store.close()
    assert stored == set(acked), (stored, acked)
