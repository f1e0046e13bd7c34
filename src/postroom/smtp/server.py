"""asyncio edge of the SMTP server: sockets, TLS, timeouts and limits around `ServerConnection`.

The listener knows bytes and replies, nothing about queues: every decision about who may send
what is delegated to a `SubmissionHandler` (injected by `postroom.runtime`), as Postfix's smtpd
hands mail to cleanup. Built on `asyncio.Protocol` rather than streams because the per-message
cost of the ingress is dominated by Python overhead, and protocols skip a layer of it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from postroom.smtp import replies as R
from postroom.smtp.commands import Path
from postroom.smtp.replies import Reply, reply
from postroom.smtp.server_protocol import (
    NEED_DATA,
    Auth,
    ConnectionClosed,
    DataStart,
    EndOfMessage,
    Hello,
    Mail,
    MessageData,
    Phase,
    Quit,
    Rcpt,
    Respond,
    ServerConnection,
    StartTls,
)
from postroom.smtp.spool import Spool

log = logging.getLogger("postroom.smtp")

SPOOL_MEMORY_LIMIT = 1 << 20  # message bytes kept in memory before spilling to a temp file
READ_PAUSE_LIMIT = 1 << 20  # unprocessed input buffered before reading pauses
_STARTTLS_FIRST = reply(530, "5.7.0", "Must issue a STARTTLS command first")


@dataclass
class Session:
    """What the handler may know and remember about one connection."""

    peer_ip: str
    listener: str
    tls: bool = False
    helo: str = ""
    identity: Any = None  # set by the handler: the authenticated (or trusted) account
    mail_from: str | None = None
    mail_params: dict[str, str | None] = field(default_factory=dict)
    recipients: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


class SubmissionHandler(Protocol):
    """The policy side of the server. Each method returns the reply to send."""

    async def connection_opened(self, session: Session) -> None: ...

    async def authenticate(self, session: Session, username: str, password: str) -> Reply: ...

    async def mail_from(self, session: Session, path: Path) -> Reply: ...

    async def rcpt_to(self, session: Session, path: Path) -> Reply: ...

    async def message(self, session: Session, body: Spool) -> Reply: ...


@dataclass
class ListenerConfig:
    name: str  # "plain", "implicit_tls" or "starttls"
    host: str
    port: int
    implicit_tls: bool = False
    require_tls: bool = False  # the submission port: MAIL/AUTH only after STARTTLS


class ConnectionLimiter:
    """Counts open connections in total and per client IP (one process)."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total, self.per_ip = total, per_ip
        self.open = 0
        self.by_ip: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        if self.open >= self.total or self.by_ip.get(ip, 0) >= self.per_ip:
            return False
        self.open += 1
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        return True

    def release(self, ip: str) -> None:
        self.open -= 1
        left = self.by_ip.get(ip, 1) - 1
        if left:
            self.by_ip[ip] = left
        else:
            self.by_ip.pop(ip, None)


@dataclass
class ServerOptions:
    hostname: str
    max_message_size: int
    max_recipients: int
    allow_plaintext_auth: bool
    idle_timeout: float
    data_timeout: float
    ssl_context: ssl.SSLContext | None
    limiter: ConnectionLimiter


class SmtpProtocol(asyncio.Protocol):
    """One connection: feeds bytes to the engine and runs a driver task that answers events."""

    def __init__(self, opts: ServerOptions, listener: ListenerConfig, handler: SubmissionHandler):
        self.opts, self.listener, self.handler = opts, listener, handler
        self.transport: asyncio.Transport | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._out: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._ip = ""
        self._counted = False

    # --- transport callbacks -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername") or ("", 0)
        self._ip = str(peer[0])
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.opts.limiter.acquire(self._ip):
            transport.write(R.R421_TOO_MANY.to_bytes())
            transport.close()
            return
        self._counted = True
        tls = self.listener.implicit_tls
        self.conn = ServerConnection(
            max_message_size=self.opts.max_message_size,
            max_recipients=self.opts.max_recipients,
            tls_active=tls,
            tls_available=self.opts.ssl_context is not None,
            allow_plaintext_auth=self.opts.allow_plaintext_auth,
        )
        self.session = Session(peer_ip=self._ip, listener=self.listener.name, tls=tls)
        self._arm_timer()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._last_activity = self._loop.time()
        if self.conn.buffered > READ_PAUSE_LIMIT and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.opts.limiter.release(self._ip)
            self.conn.receive_data(b"")
            self._wake()
        if self._timer:
            self._timer.cancel()
        self.transport = None

    # --- driver ------------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _arm_timer(self) -> None:
        """One timer per connection, re-armed lazily: reads only stamp `_last_activity`."""
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._timer = self._loop.call_later(self._timeout(), self._on_idle)

    def _timeout(self) -> float:
        return self.opts.data_timeout if self.conn.phase is Phase.DATA else self.opts.idle_timeout

    def _on_idle(self) -> None:
        left = self._last_activity + self._timeout() - self._loop.time()
        if left > 0.01:
            self._timer = self._loop.call_later(left, self._on_idle)
            return
        if self.transport is not None:
            self._flush()
            self.transport.write(R.R421_IDLE.to_bytes())
            self.transport.close()

    def _flush(self) -> None:
        if self._out and self.transport is not None:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    async def _run(self) -> None:
        spool: Spool | None = None
        try:
            self._out.append(f"220 {self.opts.hostname} ESMTP Postroom ready\r\n".encode())
            await self.handler.connection_opened(self.session)
            while self.transport is not None:
                event = self.conn.next_event()
                if event is NEED_DATA:
                    self._flush()
                    if self._paused and self.transport is not None:
                        self._paused = False
                        self.transport.resume_reading()
                    self._wakeup = asyncio.get_running_loop().create_future()
                    await self._wakeup
                    continue
                if isinstance(event, ConnectionClosed):
                    break
                if isinstance(event, MessageData):
                    if spool is not None:
                        spool.write(event.data)
                    continue
                if isinstance(event, DataStart):
                    spool = Spool(SPOOL_MEMORY_LIMIT)
                answer = await self._answer(event, spool)
                if isinstance(event, EndOfMessage) and spool is not None:
                    spool.close()
                    spool = None
                self._out.append(self.conn.send(answer))
                if isinstance(event, StartTls) and answer.code == 220:
                    await self._start_tls()
                elif self.conn.phase is Phase.CLOSED:
                    break
        except Exception:  # never let one session take the server down
            log.exception("smtp session failed (peer %s)", self._ip)
            self._out.append(R.R451_INTERNAL.to_bytes())
        finally:
            if spool is not None:
                spool.close()
            self._flush()
            if self.transport is not None:
                self.transport.close()

    async def _start_tls(self) -> None:
        self._flush()
        loop = asyncio.get_running_loop()
        assert self.transport is not None and self.opts.ssl_context is not None
        try:
            new = await loop.start_tls(
                self.transport, self, self.opts.ssl_context, server_side=True,
                ssl_handshake_timeout=30,
            )
        except (TimeoutError, OSError, ssl.SSLError, ConnectionError):
            self.transport = None
            return
        self.transport = new
        self.conn.tls_established()
        self.session.tls = True
        self.session.identity = None
        self._reset_transaction()

    def _reset_transaction(self) -> None:
        self.session.mail_from = None
        self.session.mail_params = {}
        self.session.recipients = []

    async def _answer(self, event: object, spool: Spool | None) -> Reply:
        s = self.session
        if isinstance(event, Respond):
            return event.reply
        if isinstance(event, Hello):
            s.helo = event.name
            self._reset_transaction()
            if not event.extended:
                return reply(250, None, self.opts.hostname)
            return reply(250, None, self.opts.hostname, *self.conn.ehlo_keywords())
        if isinstance(event, Quit):
            return R.R221_BYE
        if isinstance(event, StartTls):
            return R.R220_GO_TLS
        if isinstance(event, DataStart):
            return R.R354_DATA
        if self.listener.require_tls and not s.tls and isinstance(event, Mail | Auth):
            return _STARTTLS_FIRST
        if isinstance(event, Auth):
            return await self.handler.authenticate(s, event.username, event.password)
        if isinstance(event, Mail):
            self._reset_transaction()
            answer = await self.handler.mail_from(s, event.path)
            if answer.is_positive:
                s.mail_from, s.mail_params = event.path.address, dict(event.path.params)
            return answer
        if isinstance(event, Rcpt):
            answer = await self.handler.rcpt_to(s, event.path)
            if answer.is_positive:
                s.recipients.append(event.path.address)
            return answer
        if isinstance(event, EndOfMessage):
            if event.oversized:
                return R.R552_TOO_BIG
            assert spool is not None
            spool.finish()
            return await self.handler.message(s, spool)
        return R.R500_UNKNOWN


async def start_listeners(
    opts: ServerOptions,
    listeners: list[ListenerConfig],
    handler_factory: Callable[[], SubmissionHandler],
    *,
    reuse_port: bool = False,
) -> list[asyncio.Server]:
    """Bind every listener; implicit-TLS ones wrap the socket before the banner."""
    loop = asyncio.get_running_loop()
    servers = []
    for lc in listeners:
        ctx = opts.ssl_context if lc.implicit_tls else None
        if lc.implicit_tls and ctx is None:
            raise ValueError(f"listener {lc.name} needs a TLS certificate")
        server = await loop.create_server(
            lambda lc=lc: SmtpProtocol(opts, lc, handler_factory()),
            lc.host, lc.port, ssl=ctx, reuse_address=True, reuse_port=reuse_port,
            backlog=1024, ssl_handshake_timeout=30 if ctx else None,
        )
        servers.append(server)
    return servers
