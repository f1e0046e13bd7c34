"""Ingress review fixes, in process: RCPT and SMTPUTF8 (engine), the idle clock during a commit and
a full disk while spooling (a real listener on loopback, a fake handler, a raw client)."""

from __future__ import annotations

import asyncio
import errno
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from postroom.smtp import replies as R
from postroom.smtp import server_connection as server_module  # SPOOL_MEMORY_LIMIT
from postroom.smtp.commands import Path as SmtpPath
from postroom.smtp.server import (
    ConnectionLimiter,
    ListenerConfig,
    ServerOptions,
    Session,
    start_listeners,
)
from postroom.smtp.server_protocol import Mail, Rcpt, Respond, ServerConnection
from postroom.smtp.spool import Spool

ENVELOPE = b"EHLO x\r\nMAIL FROM:<a@shop.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"


async def at_data(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw client connection whose transaction has just got its 354."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ENVELOPE)
    await read_until(reader, b"354")
    return reader, writer


# --- RCPT and SMTPUTF8 (engine) -------------------------------------------------------------
def _after_ehlo(conn: ServerConnection) -> None:
    assert type(conn.next_event()).__name__ == "Hello"
    conn.send(R.R250_OK)


def _mail_then_rcpt(mail_arg: str, rcpt_arg: str) -> object:
    conn = ServerConnection(max_message_size=1000, max_recipients=5)
    conn.receive_data(f"EHLO x\r\nMAIL {mail_arg}\r\nRCPT {rcpt_arg}\r\n".encode())
    _after_ehlo(conn)
    mail = conn.next_event()
    assert isinstance(mail, Mail)
    conn.send(R.sender_ok(mail.path.address))
    return conn.next_event()


def test_non_ascii_rcpt_needs_smtputf8_on_mail() -> None:
    event = _mail_then_rcpt("FROM:<a@shop.example>", "TO:<ü@exämple.org>")
    assert isinstance(event, Respond)
    assert event.reply.to_bytes() == b"553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"


def test_non_ascii_rcpt_is_taken_with_smtputf8() -> None:
    event = _mail_then_rcpt("FROM:<a@shop.example> SMTPUTF8", "TO:<ü@exämple.org>")
    assert isinstance(event, Rcpt) and event.path == SmtpPath("ü@exämple.org")


def test_smtputf8_ends_with_its_transaction() -> None:
    conn = ServerConnection(max_message_size=1000, max_recipients=5)
    conn.receive_data("EHLO x\r\nMAIL FROM:<a@shop.example> SMTPUTF8\r\nRSET\r\n"
                      "MAIL FROM:<a@shop.example>\r\nRCPT TO:<ü@exämple.org>\r\n".encode())
    _after_ehlo(conn)
    assert isinstance(conn.next_event(), Mail)
    conn.send(R.R250_OK)
    assert isinstance(conn.next_event(), Respond)  # RSET
    conn.send(R.R250_RESET)
    mail = conn.next_event()
    assert isinstance(mail, Mail)
    conn.send(R.R250_OK)
    event = conn.next_event()
    assert isinstance(event, Respond) and event.reply.code == 553


# --- a real listener with a fake handler ----------------------------------------------------
class FakeHandler:
    """Every client is somebody; a message is committed after `commit_delay` seconds."""

    def __init__(self, commit_delay: float = 0.0) -> None:
        self.commit_delay = commit_delay
        self.messages: list[int] = []

    async def connection_opened(self, session: Session) -> None:
        session.identity = "account"

    async def authenticate(self, session: Session, username: str, password: str) -> R.Reply:
        return R.R535_AUTH_FAILED

    async def mail_from(self, session: Session, path: SmtpPath) -> R.Reply:
        return R.sender_ok(path.address)

    async def rcpt_to(self, session: Session, path: SmtpPath) -> R.Reply:
        return R.recipient_ok(path.address)

    async def message(self, session: Session, body: Spool) -> R.Reply:
        await asyncio.sleep(self.commit_delay)
        self.messages.append(body.size)
        return R.queued(f"m{len(self.messages)}")


def run_with_server(handler: FakeHandler, client: Callable[[int], Awaitable[None]], *,
                    idle_timeout: float = 30.0, loop_kind: str = "asyncio") -> None:
    """Serve on a free loopback port for the duration of `client(port)`."""

    async def main() -> None:
        opts = ServerOptions(hostname="postroom.test", max_message_size=10_000_000,
                             max_recipients=10, allow_plaintext_auth=False,
                             idle_timeout=idle_timeout, data_timeout=idle_timeout,
                             ssl_context=None, limiter=ConnectionLimiter(100, 100))
        servers = await start_listeners(opts, [ListenerConfig("plain", "127.0.0.1", 0)],
                                        lambda: handler)
        port = servers[0].sockets[0].getsockname()[1]
        try:
            await asyncio.wait_for(client(port), 20)
        finally:
            for srv in servers:
                srv.close()

    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


async def read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float = 5.0) -> bytes:
    """Everything up to and including the line that starts with `marker` (or up to EOF)."""
    out = b""
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        out += line
        if not line or line.startswith(marker):
            return out


LOOPS = ["asyncio", "uvloop"]


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_idle_clock_does_not_run_while_the_server_commits(loop_kind: str) -> None:
    """idle_timeout 0.3 s, commit 0.8 s: the client gets its 250, and 421 only after its own
    silence."""
    handler = FakeHandler(commit_delay=0.8)
    replies: list[bytes] = []

    async def client(port: int) -> None:
        reader, writer = await at_data(port)
        writer.write(b"Subject: slow commit\r\n\r\nhello\r\n.\r\n")
        replies.append(await read_until(reader, b"250 2.6.0", timeout=5))
        loop = asyncio.get_running_loop()
        start = loop.time()
        replies.append(await read_until(reader, b"421", timeout=5))
        replies.append(str(loop.time() - start).encode())
        writer.close()

    run_with_server(handler, client, idle_timeout=0.3, loop_kind=loop_kind)
    assert handler.messages, "the message was committed"
    assert b"421" not in replies[0] and replies[0].endswith(b"250 2.6.0 Message queued as <m1>\r\n")
    assert replies[1] == b"421 4.4.2 Idle timeout, closing connection\r\n"
    assert 0.2 < float(replies[2]) < 2.0  # the idle clock started with the 250


def _spool_fails_once_on_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str) -> None:
    """Spool past 1000 bytes into tmp_path; the disk is full for `where` ("write" or "finish")."""
    monkeypatch.setattr(server_module, "SPOOL_MEMORY_LIMIT", 1000)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    real = getattr(Spool, where)

    def full(self: Spool, *args: object) -> None:
        real(self, *args)
        if self.path is not None:  # the temp file exists: now the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Spool, where, full)


@pytest.mark.parametrize("where", ["write", "finish"])
@pytest.mark.parametrize("loop_kind", LOOPS)
def test_full_disk_while_spooling_answers_452_after_the_dot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    where: str, loop_kind: str,
) -> None:
    _spool_fails_once_on_disk(monkeypatch, tmp_path, where)
    handler = FakeHandler()
    got: list[bytes] = []

    async def client(port: int) -> None:
        reader, writer = await at_data(port)
        writer.write(b"Subject: big\r\n\r\n")
        for _ in range(40):  # 40 chunks of ~3 KB: the spool spills, then keeps being fed
            writer.write((b"x" * 70 + b"\r\n") * 40)
            await writer.drain()
        writer.write(b".\r\nNOOP\r\n")
        got.append(await read_until(reader, b"250 2.0.0 OK"))
        writer.close()

    with caplog.at_level(logging.ERROR, logger="postroom.smtp"):
        run_with_server(handler, client, loop_kind=loop_kind)
    assert got[0].endswith(b"452 4.3.1 Insufficient system storage, please try again later\r\n"
                           b"250 2.0.0 OK\r\n"), got[0]
    assert not handler.messages
    assert list(tmp_path.iterdir()) == []  # the spool file is gone
    assert not [r for r in caplog.records if r.exc_info], "a full disk is not a crash"


def test_spool_close_removes_the_file_when_the_last_flush_fails(tmp_path: Path) -> None:
    spool = Spool(memory_limit=10, directory=str(tmp_path))
    spool.write(b"x" * 100)
    assert spool.path is not None and spool._file is not None

    class FullFile:
        def __init__(self, real: object) -> None:
            self.real = real

        def close(self) -> None:
            self.real.close()  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, "No space left on device")

    spool._file = FullFile(spool._file)  # type: ignore[assignment]
    spool.close()
    assert list(tmp_path.iterdir()) == []
    spool.close()  # twice is harmless


def test_ipv4_clients_of_a_dual_stack_listener_keep_their_ipv4_address() -> None:
    from postroom.smtp.server import client_ip

    assert client_ip(("::ffff:127.0.0.2", 2525, 0, 0)) == "127.0.0.2"
    assert client_ip(("::FFFF:10.0.0.1", 2525, 0, 0)) == "10.0.0.1"
    assert client_ip(("2001:db8::1", 2525, 0, 0)) == "2001:db8::1"
    assert client_ip(("127.0.0.1", 2525)) == "127.0.0.1"
    assert client_ip(None) == ""
