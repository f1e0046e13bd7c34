"""A store that is full or unreachable gets 4xx, never 250; what was acknowledged stays."""

from __future__ import annotations

import contextlib
import re
import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from support.databases import ADMIN_URL, postgres_url_or_skip
from support.server import make_server, submit
from support.write_lock import write_lock_held

pytestmark = pytest.mark.slow

MSG = b"From: a@fail.example\r\nSubject: s\r\n\r\n" + b"y" * 200_000 + b"\r\n"


@contextlib.contextmanager
def tiny_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def send(port: int) -> tuple[int, bytes]:
    return submit(port, "a@fail.example", "r@example.org", MSG)


def test_disk_full_answers_4xx_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    from postroom.store.api import Store

    with tiny_disk(tmp_path / "disk", "4m") as disk:
        server = make_server(tmp_path / "srv", storage_url=f"sqlite:///{disk / 'postroom.db'}")
        server.create_account("fail", "--sender-domain", "fail.example",
                              "--trusted-network", "127.0.0.0/8")
        server.start()
        acked, refusal = [], None
        try:
            for _ in range(60):  # 60 x 200 KB = 12 MB: far more than the disk holds
                code, text = send(server.plain)
                if code != 250:
                    refusal = (code, text)
                    break
                acked.append(text.decode().split("<")[1].rstrip(">"))
        finally:
            server.stop()
        assert refusal is not None, "the disk never filled up"
        assert refusal[0] in (451, 452), refusal
        if refusal[0] == 452:
            assert refusal[1] == b"4.3.1 Insufficient system storage, please try again later"
        assert acked, "nothing was accepted before the disk filled"
        store = Store(server.storage_url)
        try:
            assert all(store.get_message(m) is not None for m in acked)
        finally:
            store.close()


def test_unreachable_database_answers_451(tmp_path: Path) -> None:
    url = postgres_url_or_skip()
    name = urlsplit(url).path.lstrip("/")
    server = make_server(tmp_path, storage_url=url)
    server.create_account("fail", "--sender-domain", "fail.example",
                          "--trusted-network", "127.0.0.0/8")
    server.start()
    admin = psycopg.connect(ADMIN_URL, autocommit=True)
    try:
        assert send(server.plain)[0] == 250
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        codes = set()
        for _ in range(3):
            try:
                codes.add(send(server.plain))
            except smtplib.SMTPResponseException as exc:  # refused before DATA: also 4xx
                codes.add((exc.smtp_code, exc.smtp_error))
        assert codes == {(451, b"4.3.0 Temporary local problem, please try again later")}, codes
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        deadline = time.monotonic() + 10
        while send(server.plain)[0] != 250:
            assert time.monotonic() < deadline, "no recovery after the database came back"
            time.sleep(0.3)
    finally:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
        server.stop()


def test_a_stuck_store_answers_451_in_bounded_time(tmp_path: Path) -> None:
    """Another process holds the SQLite write lock: both ingress processes answer 451 and the
    HTTP API 503 after `[storage] commit_timeout`, never 250/200. Once the lock is free, only
    the message that was inside the stuck transaction lands (the others were dropped at their
    deadlines, so retries do not pile up copies), and mail is accepted again."""
    from postroom.store.api import Store

    server = make_server(tmp_path, extra="[storage]\ncommit_timeout = 1.0\n",
                         smtp_extra="processes = 2\n")
    key = server.create_account("fail", "--sender-domain", "fail.example",
                                "--trusted-network", "127.0.0.0/8")
    server.start()
    item = {"from": {"email": "a@fail.example"}, "to": [{"email": "r@example.org"}],
            "subject": "s", "content": "<p>x</p>"}
    try:
        with write_lock_held(Path(server.storage_url.removeprefix("sqlite:///"))):
            refusing: set[str] = set()  # pids of the ingress processes that answered 451
            for _ in range(16):  # new connections: SO_REUSEPORT spreads them over both
                started = time.monotonic()
                code, text = send(server.plain)
                assert (code, text) == (
                    451, b"4.3.0 Temporary local problem, please try again later")
                assert time.monotonic() - started < 8.0
                refusing = set(re.findall(r" (\d+): store unavailable: refused", server.log()))
                if len(refusing) == 2:
                    break
            assert len(refusing) == 2, "the child process never got a connection"
            started = time.monotonic()
            r = httpx.post(f"http://127.0.0.1:{server.http}/v1/send_mail", json={"data": [item]},
                           headers={"Authorization": f"Bearer {key}"}, timeout=20)
            assert r.status_code == 503 and r.json()["code"] == "SERVICE_UNAVAILABLE", r.text
            assert time.monotonic() - started < 8.0
        code, text = send(server.plain)
        assert code == 250, text
        accepted = text.decode().split("<")[1].rstrip(">")
    finally:
        server.stop()
    store = Store(server.storage_url)
    try:
        stored = [m.id for m in store.list_messages(limit=100)]
    finally:
        store.close()
    assert accepted in stored and len(stored) == 2, stored
