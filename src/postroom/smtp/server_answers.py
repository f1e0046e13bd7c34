"""How the server answers the engine's events that need a decision: the `SubmissionHandler` side.

A mixin of `SmtpProtocol` (`server_connection`), which owns the connection and the driver loop;
this half turns MAIL, RCPT, EHLO/HELO, AUTH, STARTTLS and the end of a message into replies,
asking the injected handler where policy decides, and keeps the `Session` the handler sees in
step: what a positive reply accepted is recorded, and RFC 3207's "forget everything" after the
TLS handshake starts a new one. Also here: a full disk while spooling is the client's
`452 4.3.1`, not our traceback.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl

from postroom.smtp import replies as R
from postroom.smtp.replies import Reply, reply
from postroom.smtp.server_protocol import (
    Auth,
    EndOfMessage,
    Hello,
    Mail,
    Quit,
    Rcpt,
    ServerConnection,
    StartTls,
)
from postroom.smtp.server_session import ListenerConfig, ServerOptions, Session, SubmissionHandler
from postroom.smtp.spool import Spool

log = logging.getLogger("postroom.smtp")

_STARTTLS_FIRST = reply(530, "5.7.0", "Must issue a STARTTLS command first")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class SessionAnswers:
    """The handler-facing methods of `SmtpProtocol` (`_start_tls` uses its `_flush`)."""

    # set by SmtpProtocol (annotations only: no class attributes)
    opts: ServerOptions
    listener: ListenerConfig
    handler: SubmissionHandler
    transport: asyncio.Transport | None
    conn: ServerConnection
    session: Session
    _ip: str
    _fd: int
    _spool_full: bool

    async def _start_tls(self) -> None:
        self._flush()
        self._fd = -1  # from now on only the TLS transport may write
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
        await self._forget_client()

    async def _forget_client(self) -> None:
        """RFC 3207 §4.2: after the handshake, drop what the client told us (HELO, AUTH, the
        transaction), but not what the peer address decided: the handler sees a new session
        on a TLS connection, so a trusted network keeps its account and an AUTH is forgotten."""
        old = self.session
        self.session = Session(peer_ip=old.peer_ip, listener=old.listener, tls=True)
        await self.handler.connection_opened(self.session)

    def _reset_transaction(self) -> None:
        self.session.mail_from = None
        self.session.mail_params = {}
        self.session.recipients = []

    def _spool_write(self, spool: Spool, data: bytes) -> Spool | None:
        """A full disk is the client's 452, not our traceback: drop the spool (and its file),
        let the rest of the message be read and discarded, and answer at the final dot."""
        try:
            spool.write(data)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            self._disk_full(spool, exc)
            self._spool_full = True
            return None
        return spool

    def _disk_full(self, spool: Spool, exc: OSError) -> None:
        log.error("spool for a message from %s: %s; answering 452", self._ip, exc.strerror)
        spool.close()

    async def _end_of_message(self, event: EndOfMessage, spool: Spool | None) -> Reply:
        full, self._spool_full = self._spool_full, False
        if event.oversized:
            return R.R552_TOO_BIG
        if full:
            return R.R452_STORAGE
        assert spool is not None
        try:
            spool.finish()
        except OSError as exc:  # the last buffered bytes did not fit
            if exc.errno not in _DISK_FULL:
                raise
            self._disk_full(spool, exc)
            return R.R452_STORAGE
        return await self.handler.message(self.session, spool)

    async def _answer(self, event: object, kind: type) -> Reply:
        s = self.session
        if kind is Mail:
            if self.opts.draining:  # no new transaction once the shutdown has begun
                return R.R421_SHUTDOWN
            if self.listener.require_tls and not s.tls:
                return _STARTTLS_FIRST
            path = event.path  # type: ignore[attr-defined]
            self._reset_transaction()
            answer = await self.handler.mail_from(s, path)
            if answer.is_positive:
                s.mail_from, s.mail_params = path.address, dict(path.params)
            return answer
        if kind is Rcpt:
            path = event.path  # type: ignore[attr-defined]
            answer = await self.handler.rcpt_to(s, path)
            if answer.is_positive:
                s.recipients.append(path.address)
            return answer
        if kind is Hello:
            s.helo = event.name  # type: ignore[attr-defined]
            self._reset_transaction()
            if not event.extended:  # type: ignore[attr-defined]
                return reply(250, None, self.opts.hostname)
            return self.opts.ehlo_reply(self.conn.ehlo_keywords())
        if kind is Quit:
            return R.R221_BYE
        if kind is StartTls:
            return R.R220_GO_TLS
        if kind is Auth:
            if self.listener.require_tls and not s.tls:
                return _STARTTLS_FIRST
            return await self.handler.authenticate(s, event.username, event.password)  # type: ignore[attr-defined]
        return R.R500_UNKNOWN
