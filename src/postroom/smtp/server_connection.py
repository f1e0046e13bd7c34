"""One SMTP connection on asyncio: feeds the socket's bytes to `ServerConnection`, writes replies.

`SmtpProtocol` is the per-connection half of the server (`server` binds the listeners and ends the
sessions at shutdown): transport callbacks, the driver task that answers the engine's events in
order, timers, read pausing, writes. Its handler-facing methods are in `server_answers` (a mixin:
one object, plain method calls). Built on `asyncio.Protocol` rather than streams because the
per-message cost of the ingress is dominated by Python overhead, and protocols skip a layer of it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket

from postroom.smtp import replies as R
from postroom.smtp.server_answers import SessionAnswers
from postroom.smtp.server_protocol import (
    NEED_DATA,
    ConnectionClosed,
    DataStart,
    EndOfMessage,
    MessageData,
    Phase,
    Respond,
    ServerConnection,
    StartTls,
)
from postroom.smtp.server_session import ListenerConfig, ServerOptions, Session, SubmissionHandler
from postroom.smtp.spool import Spool

log = logging.getLogger("postroom.smtp")

SPOOL_MEMORY_LIMIT = 1 << 20  # message bytes kept in memory before spilling to a temp file
READ_PAUSE_LIMIT = 1 << 20  # unprocessed input buffered before reading pauses


def client_ip(peer: object) -> str:
    """The client's address as the account rules see it: an IPv4 client of a dual-stack
    (`::`) listener arrives as `::ffff:a.b.c.d`, which no IPv4 network or allow list matched."""
    if not peer:
        return ""
    ip = str(peer[0])  # type: ignore[index]
    return ip[7:] if ip[:7].lower() == "::ffff:" and "." in ip else ip


class SmtpProtocol(SessionAnswers, asyncio.Protocol):
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
        self._fd = -1  # the plain TCP socket, written directly (see `_flush`); -1: use transport
        self._spool_full = False  # the disk filled up during this DATA: answer 452 at the dot

    # --- transport callbacks -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self._ip = client_ip(peer)
        if not self.opts.limiter.acquire(self._ip):
            transport.write(R.R421_TOO_MANY.to_bytes())
            transport.close()
            return
        self._counted = True
        tls = self.listener.implicit_tls
        if not tls:  # (uvloop and asyncio both set TCP_NODELAY themselves)
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                self._fd = sock.fileno()
        self.conn = ServerConnection(
            max_message_size=self.opts.max_message_size,
            max_recipients=self.opts.max_recipients,
            tls_active=tls,
            tls_available=self.opts.ssl_context is not None,
            allow_plaintext_auth=self.opts.allow_plaintext_auth,
        )
        self.session = Session(peer_ip=self._ip, listener=self.listener.name, tls=tls)
        self._arm_timer()
        self._task = self._loop.create_task(self._run())
        self.opts.live.add(self)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        self._last_activity = self._loop.time()
        if conn.buffered > READ_PAUSE_LIMIT and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        """The client half-closed. A plain socket stays open for writing, so the commands it
        sent before (a pipelined `.` then QUIT) are still answered; the driver closes at the end.
        TLS cannot half-close: the transport closes itself once this returns."""
        self.conn.receive_data(b"")
        self._wake()
        if self.session.tls:
            self._fd = -1
            return None
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._fd = -1
        if self._counted:
            self._counted = False
            self.opts.limiter.release(self._ip)
            self.conn.receive_data(b"")
            self._wake()
        if self._timer:
            self._timer.cancel()
        self.transport = None

    # --- driver ------------------------------------------------------------------------------
    def _reading(self) -> bool:
        """The driver waits for the client (not for the handler, the handshake or a wakeup)."""
        return self._wakeup is not None and not self._wakeup.done()

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
        """Only the client's silence counts: while the server itself works (a commit, the
        handshake) the clock restarts, or a slow commit would end in 421 after the 250 was due."""
        now = self._loop.time()
        if not self._reading():
            self._last_activity = now
        left = self._last_activity + self._timeout() - now
        if left > 0.01:
            self._timer = self._loop.call_later(left, self._on_idle)
            return
        if self.transport is not None:
            self._out.append(R.R421_IDLE.to_bytes())
            self._close()

    def _close(self) -> None:
        self._flush()
        self._fd = -1  # closing frees the descriptor number for the next accept
        if self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        """Send what the replies produced, in one write.

        On a plain TCP connection the bytes go straight to the socket with `os.write`, which
        releases the interpreter lock during the system call; uvloop's `transport.write` holds it,
        and on loopback that send (the kernel runs the peer's receive path in it) was the largest
        single cost of the event loop. The transport takes over whenever its own buffer is not
        empty, the kernel takes less than everything, or the socket fails.
        """
        out, t = self._out, self.transport
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if t is None:
            return
        if self._fd >= 0 and not t.is_closing() and not t.get_write_buffer_size():
            try:
                sent = os.write(self._fd, data)
            except OSError:  # EAGAIN, or a failed socket: the transport reports and cleans up
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        t.write(data)

    async def _run(self) -> None:
        conn = self.conn
        spool: Spool | None = None
        try:
            self._out.append(self.opts.banner)
            await self.handler.connection_opened(self.session)
            while self.transport is not None:
                event = conn.next_event()
                kind = type(event)
                if kind is MessageData:
                    if spool is not None:
                        spool = self._spool_write(spool, event.data)  # type: ignore[union-attr]
                    continue
                if event is NEED_DATA:
                    if self.opts.draining and self._between_transactions():
                        self._out.append(R.R421_SHUTDOWN.to_bytes())
                        break
                    self._flush()
                    if self._paused and self.transport is not None:
                        self._paused = False
                        self.transport.resume_reading()
                    self._wakeup = self._loop.create_future()
                    self._last_activity = self._loop.time()  # the client's turn starts now
                    await self._wakeup
                    continue
                if kind is ConnectionClosed:
                    break
                if kind is Respond:
                    answer = event.reply  # type: ignore[union-attr]
                elif kind is DataStart:
                    spool = Spool(SPOOL_MEMORY_LIMIT)
                    answer = R.R354_DATA
                elif kind is EndOfMessage:
                    answer = await self._end_of_message(event, spool)  # type: ignore[arg-type]
                    if spool is not None:
                        spool.close()
                        spool = None
                else:
                    answer = await self._answer(event, kind)
                self._out.append(conn.send(answer))
                if kind is StartTls and answer.code == 220:
                    await self._start_tls()
                elif conn.phase is Phase.CLOSED:
                    break
        except Exception:  # never let one session take the server down
            log.exception("smtp session failed (peer %s)", self._ip)
            self._out.append(R.R451_INTERNAL.to_bytes())
        finally:
            if spool is not None:
                spool.close()
            self._close()
            self.opts.live.discard(self)

    def _between_transactions(self) -> bool:
        """Nothing would be lost by closing now: no transaction, AUTH or DATA under way."""
        return self.conn.phase is Phase.COMMAND and not self.conn.in_transaction

    def drain(self) -> None:
        """Shutdown: let the driver look at `opts.draining` now if it waits for the client."""
        self._wake()

    def cut(self) -> None:
        """Shutdown, the grace is over: 421 and close, whatever the session was doing."""
        if self.transport is not None:
            self._out.append(R.R421_SHUTDOWN.to_bytes())
            self._close()
        self._task.cancel()
