"""`[smtp] processes = 2` on SQLite: both processes' messages land."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from support.server import make_server

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("writer_process", ["true", "false"])
def test_two_ingress_processes_commit_everything(tmp_path: Path, writer_process: str) -> None:
    """Both through the writer process (the default) and each with a writer thread."""
    from postroom.store.api import Store

    server = make_server(tmp_path, extra=f"[storage]\nwriter_process = {writer_process}\n",
                         smtp_extra="processes = 2\n")
    server.create_account("mp", "--sender-domain", "mp.example", "--trusted-network", "127.0.0.0/8")
    server.start()
    ids = []
    try:
        children = (Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
                    .read_text().split())
        assert len(children) >= 1, "no ingress child process"
        for i in range(40):  # new connections: SO_REUSEPORT spreads them over both processes
            with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
                c.ehlo("x")
                c.mail("a@mp.example")
                c.rcpt(f"r{i}@example.org")
                code, text = c.data(b"From: a@mp.example\r\nSubject: mp\r\n\r\nhi\r\n")
                assert code == 250, text
                ids.append(text.decode().split("<")[1].rstrip(">"))
    finally:
        server.stop()
    store = Store(server.storage_url)
    try:
        assert all(store.get_message(i) is not None for i in ids)
    finally:
        store.close()
