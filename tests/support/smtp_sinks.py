"""Real SMTP receivers on 127.0.0.1 (ephemeral ports) for tests that deliver mail.

* `SmtpSink` — an aiosmtpd server that records every accepted message. Scripted answers per
  sender / recipient / DATA ("550 for x@…", "451 twice, then accept"), optional STARTTLS with a
  generated certificate, optional AUTH, extensions added or hidden in the EHLO reply. Run it in a
  background thread (`with SmtpSink() as sink:`) from any test, or inside the test's own event
  loop (`async with sink.serving():`).
* `WireRecorder` — a raw-socket SMTP server that keeps every `recv()` chunk, so a test can see
  how the client grouped its writes (PIPELINING: MAIL + RCPT… + DATA in one write).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from postroom.smtp.tls import ensure_dev_certificate, server_context

HOST = "127.0.0.1"
Script = str | list[str]  # one reply always, or replies in turn (then accept normally)
_CERT_DIR: Path | None = None


def times(n: int, reply: str = "451 4.3.0 Try again later") -> list[str]:
    """`reply` for the first n attempts, then normal acceptance."""
    return [reply] * n


def sink_certificate() -> tuple[Path, Path]:
    """(cert, key) shared by all sinks in this process (generated once)."""
    global _CERT_DIR
    if _CERT_DIR is None:
        _CERT_DIR = Path(tempfile.mkdtemp(prefix="postroom-sink-tls-"))
    return ensure_dev_certificate(_CERT_DIR, "localhost")


@dataclass
class Received:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]
    tls: bool
    auth_user: str | None
    peer: Any = None


@dataclass
class SinkHandler:
    """aiosmtpd hooks: scripted refusals first, otherwise accept and record."""

    mail_replies: dict[str, Script] = field(default_factory=dict)
    rcpt_replies: dict[str, Script] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    hide_extensions: tuple[str, ...] = ()
    add_extensions: tuple[str, ...] = ()
    messages: list[Received] = field(default_factory=list)
    ehlo_count: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @staticmethod
    def _next(script: dict[str, Script], key: str) -> str | None:
        value = script.get(key.lower())
        if isinstance(value, list):
            return value.pop(0) if value else None
        return value

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.ehlo_count += 1
        hidden = {h.upper() for h in self.hide_extensions}
        body = [r[4:] for r in responses[1:-1] if r[4:].split(" ")[0].upper() not in hidden]
        body += list(self.add_extensions)
        return [responses[0], *(f"250-{b}" for b in body), responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        scripted = self._next(self.mail_replies, address)
        if scripted is not None:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        scripted = self._next(self.rcpt_replies, address)
        if scripted is not None:
            return scripted
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        auth = session.auth_data if session.authenticated else None
        login = auth.login if isinstance(auth, LoginPassword) else None
        received = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content or b"",
            mail_options=list(envelope.mail_options),
            tls=session.ssl is not None,
            auth_user=login.decode() if isinstance(login, bytes) else login,
            peer=session.peer,
        )
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()
        return "250 2.0.0 Message accepted"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"sink got {len(self.messages)} messages, wanted {count}")
            return list(self.messages)


class _Controller(Controller):
    """aiosmtpd's Controller, fixed for port 0: learn the real port before self-testing."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """A recording aiosmtpd receiver on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        *,
        hostname: str = "sink.test",
        starttls: bool = False,
        require_starttls: bool = False,
        users: Mapping[str, str] | None = None,
        auth_require_tls: bool = True,
        auth_exclude: Iterable[str] = (),
        smtputf8: bool = True,
        size_limit: int | None = 33554432,
        hide_extensions: Iterable[str] = (),
        add_extensions: Iterable[str] = (),
        mail_replies: Mapping[str, Script] | None = None,
        rcpt_replies: Mapping[str, Script] | None = None,
        data_replies: Iterable[str] = (),
    ) -> None:
        self.handler = SinkHandler(
            mail_replies={k.lower(): _copy(v) for k, v in (mail_replies or {}).items()},
            rcpt_replies={k.lower(): _copy(v) for k, v in (rcpt_replies or {}).items()},
            data_replies=list(data_replies),
            hide_extensions=tuple(hide_extensions),
            add_extensions=tuple(add_extensions),
        )
        self.users = dict(users or {})
        self.host = HOST
        self.port = 0
        self.cert_path: Path | None = None
        self.hostname = hostname
        kwargs: dict[str, Any] = {
            "enable_SMTPUTF8": smtputf8,
            "data_size_limit": size_limit,
            "auth_require_tls": auth_require_tls,
            "authenticator": self._authenticate,
        }
        if starttls or require_starttls:
            self.cert_path, key = sink_certificate()
            kwargs["tls_context"] = server_context(self.cert_path, key)
            kwargs["require_starttls"] = require_starttls
        kwargs["auth_exclude_mechanism"] = (
            ["LOGIN", "PLAIN"] if not self.users else list(auth_exclude)
        )
        self._kwargs = kwargs
        self._controller: _Controller | None = None

    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[Received]:
        return self.handler.wait_for(count, timeout)

    def start(self) -> SmtpSink:
        self._controller = _Controller(
            self.handler, hostname=HOST, port=0, server_hostname=self.hostname, **self._kwargs
        )
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[SmtpSink]:
        """Serve from the running event loop (no thread) for the duration of the block."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(self.handler, loop=loop, hostname=self.hostname, **self._kwargs), HOST, 0
        )
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()


def _copy(script: Script) -> Script:
    return list(script) if isinstance(script, list) else script


#: Ports this test process has handed out: the kernel may offer a just-closed port again, and a
#: server given the same port twice (its listeners, a sink) fails with "address already in use".
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """An ephemeral port that was free a moment ago (for servers that cannot bind port 0),
    never one this process handed out before."""
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_listening(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class WireRecorder:
    """A scripted raw-socket SMTP server that records each `recv()` chunk per connection.

    It answers every complete command found in one chunk with one `sendall`, like a pipelining
    server, accepts all senders and recipients except `rcpt_replies`, and keeps messages. Each
    connection is served by its own thread; `stop()` closes everything.
    """

    def __init__(
        self,
        extensions: Iterable[str] = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"),
        rcpt_replies: Mapping[str, str] | None = None,
    ) -> None:
        self.extensions = list(extensions)
        self.rcpt_replies = {k.lower(): v for k, v in (rcpt_replies or {}).items()}
        self.chunks: list[list[bytes]] = []  # per connection, every recv() in order
        self.messages: list[bytes] = []
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)
        self.host, self.port = HOST, self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    def __enter__(self) -> WireRecorder:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            chunks: list[bytes] = []
            self.chunks.append(chunks)
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, chunks), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket, chunks: list[bytes]) -> None:
        conn.settimeout(10)
        state = {"data": None, "valid": 0}
        with conn:
            conn.sendall(b"220 wire.test ESMTP recorder\r\n")
            buf = b""
            while not self._stopping.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                chunks.append(chunk)
                buf += chunk
                out = []
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    reply = self._line(line.rstrip(b"\r"), state)
                    if reply:
                        out.append(reply)
                if out:
                    conn.sendall(b"".join(out))
                if out and out[-1].startswith(b"221"):
                    return

    def _line(self, line: bytes, state: dict[str, Any]) -> bytes:
        if state["data"] is not None:
            if line == b".":
                self.messages.append(b"".join(state["data"]))
                state["data"] = None
                return b"250 2.0.0 Ok: queued\r\n"
            state["data"].append(line[1:] + b"\r\n" if line.startswith(b".") else line + b"\r\n")
            return b""
        verb = line.split(b" ", 1)[0].upper()
        if verb == b"EHLO":
            lines = ["wire.test", *self.extensions]
            return "".join(
                f"250{'-' if i < len(lines) - 1 else ' '}{x}\r\n" for i, x in enumerate(lines)
            ).encode()
        if verb == b"MAIL":
            state["valid"] = 0
            return b"250 2.1.0 Ok\r\n"
        if verb == b"RCPT":
            address = line.partition(b"<")[2].partition(b">")[0].decode().lower()
            if address in self.rcpt_replies:
                return self.rcpt_replies[address].encode() + b"\r\n"
            state["valid"] += 1
            return b"250 2.1.5 Ok\r\n"
        if verb == b"DATA":
            if not state["valid"]:
                return b"554 5.5.1 Error: no valid recipients\r\n"
            state["data"] = []
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb in (b"RSET", b"NOOP", b"HELO"):
            state["valid"] = 0 if verb == b"RSET" else state["valid"]
            return b"250 2.0.0 Ok\r\n"
        if verb == b"QUIT":
            return b"221 2.0.0 Bye\r\n"
        return b"502 5.5.2 Error: command not recognized\r\n"


__all__ = [
    "HOST",
    "Received",
    "SinkHandler",
    "SmtpSink",
    "WireRecorder",
    "free_port",
    "sink_certificate",
    "times",
    "wait_listening",
]
