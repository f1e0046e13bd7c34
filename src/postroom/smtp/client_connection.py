"""The asyncio edge of the SMTP client: one TCP (later TLS) connection feeding a `ReplyParser`.

A Protocol rather than streams, so the bytes received before STARTTLS are ours to inspect (none
may be buffered when the handshake starts) and replies are parsed the moment they arrive. It
raises plain exceptions (OSError, EOFError, TimeoutError, RemoteProtocolError); `client` maps
them to the `DeliveryError` tree.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections import deque

from postroom.smtp.client_protocol import RemoteProtocolError, ReplyParser
from postroom.smtp.replies import Reply

MAX_QUEUED_REPLIES = 10_000  # more unread replies than any pipelined batch can produce


class _ReplyProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = ReplyParser()
        self.replies: deque[Reply] = deque()
        self.transport: asyncio.Transport | None = None
        self.error: Exception | None = None
        self.lost = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.replies.extend(self.parser.feed(data))
            if len(self.replies) > MAX_QUEUED_REPLIES:
                raise RemoteProtocolError("too many unsolicited replies", None)
        except RemoteProtocolError as exc:
            self.error = exc
            if self.transport is not None:
                self.transport.abort()
        self._wake()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()
        if not self.gone.done():
            self.gone.set_result(None)
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_reply(self, timeout: float | None = None) -> Reply:
        """The next reply; TimeoutError when none is complete `timeout` seconds from now (one
        deadline for the whole reply: a server trickling bytes cannot extend it). A timer
        handle rather than `asyncio.timeout`, which cost a tenth of the delivery process."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self.replies:
                return self.replies.popleft()
            if self.error is not None:
                raise self.error
            if self.lost:
                raise EOFError("connection closed by the remote server")
            self._waiter = waiter = loop.create_future()
            timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()

    async def wait_writable(self, block_timeout: float) -> None:
        """Wait until the transport's buffer drains below its low-water mark. Every resume is
        progress, so `block_timeout` bounds each block (RFC 5321 §4.5.3.2.5), not the total."""
        while self._paused and not self.lost:
            self._resumed = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(block_timeout):
                await self._resumed
        if self.lost:
            raise EOFError("connection closed by the remote server")


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Connection:
    """A connected SMTP client socket. Only `write` (per block) and `start_tls` take timeouts;
    the caller bounds everything else with the RFC 5321 timeout that fits the step."""

    def __init__(self, transport: asyncio.Transport, protocol: _ReplyProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.peer: tuple[str, int] | None = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        #: the socket for direct writes while the connection is plain TCP (-1: use the transport)
        self._fd = sock.fileno() if sock is not None and self.peer is not None else -1

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(_ReplyProtocol, host, port)
        return cls(transport, protocol)  # type: ignore[arg-type]

    @property
    def closed(self) -> bool:
        return self._protocol.lost or self._transport.is_closing()

    @property
    def has_pending_input(self) -> bool:
        return bool(self._protocol.replies) or self._protocol.parser.has_pending

    async def read_reply(self, timeout: float | None = None) -> Reply:
        return await self._protocol.next_reply(timeout)

    def reply_nowait(self) -> Reply | None:
        """A reply that has already arrived, or None (then await `read_reply`)."""
        replies = self._protocol.replies
        return replies.popleft() if replies else None

    def send_nowait(self, data: bytes) -> bytes:
        """Write what the socket takes at once, without waiting; returns the rest (b"": all
        sent), which the caller hands to `write`. Why: most writes complete at once, and
        awaiting them under a timeout cost more than the send itself."""
        if self._fd < 0 or self.closed or self._transport.get_write_buffer_size():
            return data
        try:
            sent = os.write(self._fd, data)
        except OSError:  # EAGAIN, or a failed socket: `write` lets the transport report it
            return data
        return data[sent:] if sent < len(data) else b""

    async def write(self, data: bytes, block_timeout: float) -> None:
        """Hand `data` to the transport in one write; wait while its buffer is over high water
        (TimeoutError when one block takes longer than `block_timeout`)."""
        if self.closed:
            raise EOFError("connection closed")
        # Why os.write first: it releases the interpreter lock during the send; the
        # transport's write holds it, and on loopback the kernel runs the receiver's side
        # inside that send. The transport takes whatever the kernel did not (and reports
        # failures).
        data = self.send_nowait(data)
        if not data:
            return
        self._transport.write(data)
        await self._protocol.wait_writable(block_timeout)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> None:
        loop = asyncio.get_running_loop()
        self._fd = -1  # from now on every byte goes through TLS
        new = await loop.start_tls(
            self._transport,
            self._protocol,
            context,
            server_hostname=server_hostname,
            ssl_handshake_timeout=timeout,
        )
        if new is None:
            raise EOFError("connection closed during the TLS handshake")
        self._transport = new  # type: ignore[assignment]
        self._protocol.transport = new

    @property
    def tls_version(self) -> str | None:
        obj = self._transport.get_extra_info("ssl_object")
        return obj.version() if obj is not None else None

    def close(self) -> None:
        self._transport.close()

    async def wait_closed(self, timeout: float) -> None:
        """Wait for the socket to be released (a TLS close waits for the peer's close_notify);
        abort when that takes longer than `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._protocol.gone)
        except TimeoutError:
            self._transport.abort()

    def abort(self) -> None:
        self._transport.abort()
