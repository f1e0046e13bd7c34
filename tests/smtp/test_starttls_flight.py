"""STARTTLS on a real listener (127.0.0.1, asyncio and uvloop) with a raw TLS client.

The client drives its handshake through `ssl.MemoryBIO`, so it controls which bytes share a
write: a command sent in the same flight as its TLS 1.3 Finished must be answered (CPython's
asyncio delivers it before `loop.start_tls()` returns), and plaintext sent behind STARTTLS,
before the handshake, must never be executed (the CVE-2011-0411 command injection).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from postroom.smtp import replies as R
from postroom.smtp.commands import Path as SmtpPath
from postroom.smtp.server import (
    ConnectionLimiter,
    ListenerConfig,
    ServerOptions,
    Session,
    start_listeners,
)
from postroom.smtp.server_protocol import NEED_DATA, Hello, ServerConnection, StartTls
from postroom.smtp.spool import Spool
from postroom.smtp.tls import ensure_dev_certificate, server_context

LOOPS = ["asyncio", "uvloop"]


class Recorder:
    """Accepts everyone; remembers every MAIL it was asked about."""

    def __init__(self) -> None:
        self.mails: list[str] = []

    async def connection_opened(self, session: Session) -> None:
        session.identity = "account"

    async def authenticate(self, session: Session, username: str, password: str) -> R.Reply:
        return R.R535_AUTH_FAILED

    async def mail_from(self, session: Session, path: SmtpPath) -> R.Reply:
        self.mails.append(path.address)
        return R.sender_ok(path.address)

    async def rcpt_to(self, session: Session, path: SmtpPath) -> R.Reply:
        return R.recipient_ok(path.address)

    async def message(self, session: Session, body: Spool) -> R.Reply:
        return R.queued("m1")


def serve(handler: Recorder, client: Callable[[int], object], loop_kind: str,
          certs: Path) -> object:
    """Run `client(port)` in a thread against a STARTTLS-capable listener; return its result."""
    cert, key = ensure_dev_certificate(certs, "localhost")
    result: list[object] = []

    async def main() -> None:
        opts = ServerOptions(hostname="postroom.test", max_message_size=10_000_000,
                             max_recipients=10, allow_plaintext_auth=False, idle_timeout=30,
                             data_timeout=30, ssl_context=server_context(cert, key),
                             limiter=ConnectionLimiter(100, 100))
        servers = await start_listeners(opts, [ListenerConfig("plain", "127.0.0.1", 0)],
                                        lambda: handler)
        port = servers[0].sockets[0].getsockname()[1]
        try:
            loop = asyncio.get_running_loop()
            result.append(await asyncio.wait_for(loop.run_in_executor(None, client, port), 20))
        finally:
            for srv in servers:
                srv.close()

    if loop_kind == "uvloop":
        pytest.importorskip("uvloop").run(main())
    else:
        asyncio.run(main())
    return result[0]


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    out = b""
    while marker not in out:
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


class TlsClient:
    """A TLS client over a connected socket, one MemoryBIO pair: `handshake(after=...)` puts
    `after` (application data) into the same write as the client's last handshake flight."""

    def __init__(self, sock: socket.socket) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.sock, self.inc, self.out = sock, ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")

    def handshake(self, after: bytes = b"") -> None:
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if self.out.pending:
                    self.sock.sendall(self.out.read())
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed during the handshake") from None
                self.inc.write(chunk)
        if after:
            self.tls.write(after)
        self.sock.sendall(self.out.read())  # Finished (+ `after`) in one write

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.sock.sendall(self.out.read())

    def read_until(self, marker: bytes) -> bytes:
        got = b""
        while marker not in got:
            try:
                got += self.tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.inc.write(chunk)
        return got


def plain_until_starttls(port: int, extra: bytes = b"") -> socket.socket:
    """EHLO, then `STARTTLS` (+ `extra` in the same write); returns after the 220."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    recv_until(sock, b"\r\n")
    sock.sendall(b"EHLO x\r\n")
    recv_until(sock, b"250 ")
    sock.sendall(b"STARTTLS\r\n" + extra)
    assert recv_until(sock, b"\r\n").startswith(b"220 2.0.0")
    return sock


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_command_in_the_finished_flight_is_answered(loop_kind: str, tmp_path: Path) -> None:
    def client(port: int) -> bytes:
        with plain_until_starttls(port) as sock:
            tls = TlsClient(sock)
            tls.handshake(after=b"EHLO y\r\n")
            return tls.read_until(b"250 ")

    got = serve(Recorder(), client, loop_kind, tmp_path)
    assert isinstance(got, bytes) and got.startswith(b"250-postroom.test\r\n"), got
    assert b"STARTTLS" not in got  # the capabilities of a TLS session


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_commands_pipelined_behind_starttls_are_discarded(loop_kind: str,
                                                          tmp_path: Path) -> None:
    handler = Recorder()

    def client(port: int) -> bytes:
        with plain_until_starttls(port, b"RSET\r\nMAIL FROM:<evil@x.example>\r\n") as sock:
            tls = TlsClient(sock)
            tls.handshake()
            tls.send(b"EHLO y\r\nMAIL FROM:<good@x.example>\r\n")
            return tls.read_until(b"250 2.1.0")

    got = serve(handler, client, loop_kind, tmp_path)
    assert isinstance(got, bytes) and got.startswith(b"250-postroom.test\r\n"), got
    assert got.endswith(b"250 2.1.0 Sender <good@x.example> OK\r\n"), got
    assert handler.mails == ["good@x.example"]


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_plaintext_after_the_220_is_not_a_command(loop_kind: str, tmp_path: Path) -> None:
    """Plaintext that arrives after the 220 reaches the TLS layer, not the engine: the
    handshake fails and nothing is executed."""
    handler = Recorder()

    def client(port: int) -> str:
        with plain_until_starttls(port) as sock:
            sock.sendall(b"MAIL FROM:<evil@x.example>\r\n")
            try:
                TlsClient(sock).handshake()
            except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
                return type(exc).__name__
            return "handshake completed"

    outcome = serve(handler, client, loop_kind, tmp_path)
    assert outcome != "handshake completed"
    assert handler.mails == []


def test_engine_keeps_what_arrives_between_the_220_and_the_handshake() -> None:
    """After the 220 the caller feeds decrypted bytes only; they may come before it reports
    the handshake done (asyncio does so), and must be read as the first TLS commands."""
    conn = ServerConnection(max_message_size=1000, max_recipients=5, tls_available=True)
    conn.receive_data(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
    assert isinstance(conn.next_event(), Hello)
    conn.send(R.R250_OK)
    assert isinstance(conn.next_event(), StartTls)
    conn.send(R.R220_GO_TLS)
    conn.receive_data(b"EHLO y\r\n")  # decrypted, delivered with the client's Finished
    assert conn.next_event() is NEED_DATA  # nothing is read until the handshake is done
    conn.tls_established()
    event = conn.next_event()
    assert isinstance(event, Hello) and event.name == "y"
    conn.send(R.R250_OK)
    assert conn.next_event() is NEED_DATA  # the injected MAIL is gone
