"""Kill -9 under load: every message acknowledged with 250 survives, with all its recipients."""

from __future__ import annotations

import smtplib
import threading
import time
from pathlib import Path

import pytest

from support.databases import postgres_url_or_skip
from support.server import RunningServer, make_server

pytestmark = pytest.mark.slow

CLIENTS = 16
MAX_PER_CLIENT = 400  # bounded: the load stops by itself even if the kill never lands
MSG = b"From: a@crash.example\r\nSubject: crash\r\n\r\n" + b"x" * 2000 + b"\r\n"


def load(server: RunningServer, acked: dict[str, list[str]], stop: threading.Event, n: int) -> None:
    sent = 0
    while not stop.is_set() and sent < MAX_PER_CLIENT:
        try:
            c = smtplib.SMTP("127.0.0.1", server.plain, timeout=10)
            c.ehlo("load")
            while not stop.is_set() and sent < MAX_PER_CLIENT:
                rcpts = [f"c{n}-m{sent}-r{i}@example.org" for i in range(3)]
                c.mail("a@crash.example")
                for r in rcpts:
                    c.rcpt(r)
                code, text = c.data(MSG)
                sent += 1
                if code == 250:
                    acked[text.decode().split("<")[1].rstrip(">")] = rcpts
                c.rset()
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)  # server gone: keep trying until told to stop


def run_crash(server: RunningServer) -> None:
    server.create_account("crash", "--sender-domain", "crash.example",
                          "--trusted-network", "127.0.0.0/8")
    server.start()
    acked: dict[str, list[str]] = {}
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(server, acked, stop, i)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # SIGKILL mid-load
    stop.set()
    for t in threads:
        t.join(30)
    snapshot = dict(acked)
    assert len(snapshot) >= 100, "the load never got going"
    server.start()
    server.stop()
    from postroom.store.api import Store

    store = Store(server.storage_url)
    try:
        missing = []
        for mid, rcpts in snapshot.items():
            rec = store.get_message(mid)
            if rec is None or sorted(r.address for r in rec.recipients) != sorted(rcpts) or store.get_raw(mid) is None or MSG not in (store.get_raw(mid) or b""):
                missing.append(mid)
        assert not missing, f"{len(missing)} of {len(snapshot)} acknowledged messages lost"
    finally:
        store.close()


def test_sigkill_loses_nothing_acknowledged_sqlite(tmp_path: Path) -> None:
    run_crash(make_server(tmp_path))


def test_sigkill_loses_nothing_acknowledged_postgresql(tmp_path: Path) -> None:
    run_crash(make_server(tmp_path, storage_url=postgres_url_or_skip()))
