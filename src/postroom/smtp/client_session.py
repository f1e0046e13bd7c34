"""`ClientSession`: one established outbound SMTP session, driving `Transaction`s over it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from postroom.smtp.client_connection import Connection
from postroom.smtp.client_errors import (
    ClientTimeouts,
    ConnectionLost,
    DeliveryError,
    ProtocolFailure,
    io_step,
)
from postroom.smtp.client_protocol import QUIT, Capabilities, RemoteProtocolError
from postroom.smtp.client_transaction import Step, Transaction, TransactionResult
from postroom.smtp.replies import Reply


class ClientSession:
    """An established SMTP session, reusable for many transactions (never concurrently)."""

    def __init__(self, conn: Connection, host: str, timeouts: ClientTimeouts) -> None:
        self._conn = conn
        self.timeouts = timeouts
        self._lock = asyncio.Lock()
        self._needs_rset = False
        self._usable = True
        self.remote_host = host
        self.remote_address: tuple[str, int] | None = conn.peer
        self.banner: Reply | None = None
        self.capabilities = Capabilities()
        self.tls_active = False
        self.tls_version: str | None = None
        self.tls_fallback_reason: str | None = None  # why opportunistic TLS was abandoned
        self.authenticated = False
        self.transactions = 0

    @property
    def usable(self) -> bool:
        """False once the session failed, the server said 421, or `close()` ran."""
        return self._usable and not self._conn.closed

    async def command(self, data: bytes, timeout: float, name: str) -> Reply:
        """Send one command line and return its reply (for the connection phase)."""
        await io_step(self._conn.write(data, timeout), timeout, name)
        return await self.read(timeout, name)

    async def read(self, timeout: float, name: str) -> Reply:
        reply = self._conn.reply_nowait()  # pipelined replies often arrive together
        if reply is not None:
            return reply
        return await io_step(self._conn.read_reply(timeout), None, name)

    def _timeout(self, step: Step | None) -> float:
        t = self.timeouts
        return {
            Step.RSET: t.ehlo,
            Step.RCPT: t.rcpt,
            Step.DATA: t.data_init,
            Step.DOT: t.data_final,
            Step.ABORT_DOT: t.data_final,
        }.get(step, t.mail)  # type: ignore[arg-type]

    async def send(self, mail_from: str, rcpts: Sequence[str], message: bytes) -> TransactionResult:
        """Run one transaction; per-recipient verdicts are in `result.outcomes`.

        Raises `DeliveryError` when the session breaks; the session is then unusable and the
        recipients' fate is unknown only if `SmtpTimeout.command == "DOT"` (the message may
        have been accepted — RFC 1047).
        """
        if not self.usable:
            raise ConnectionLost("the SMTP session is closed")
        async with self._lock:
            if self._conn.has_pending_input:  # e.g. an idle-timeout 421 while we were away
                self._fail()
                raise ConnectionLost("the server ended the session while it was idle")
            tx = Transaction(
                mail_from, rcpts, message, self.capabilities, reset_first=self._needs_rset
            )
            out = tx.start()
            if not out:
                return tx.result
            try:
                await self._drive(tx, out)
            except RemoteProtocolError as exc:
                self._fail()
                raise ProtocolFailure(f"protocol error from the server: {exc}") from None
            except BaseException:  # DeliveryError, or cancellation mid-transaction
                self._fail()
                raise
            self.transactions += 1
            self._needs_rset = tx.result.needs_rset
            if tx.result.closing:
                self._usable = False
                self._conn.close()
            return tx.result

    async def _drive(self, tx: Transaction, out: bytes) -> None:
        """Write, read one reply, repeat; the message itself is timed per block (§4.5.3.2.5)."""
        while not tx.done:
            step = tx.expecting
            name = step.value if step is not None else "command"
            if out:
                out = self._conn.send_nowait(out)  # usually all of it: no need to wait
            if step is Step.DOT and out:
                await io_step(self._conn.write(out, self.timeouts.data_block), None, "DATA block")
            elif out:
                await io_step(self._conn.write(out, self._timeout(step)), None, name)
            out = tx.receive(await self.read(self._timeout(step), name))

    def _fail(self) -> None:
        self._usable = False
        self._conn.abort()

    async def close(self) -> None:
        """Say QUIT (best effort, briefly), close and wait until the socket is released.
        Safe to call more than once."""
        if self.usable:
            self._usable = False
            with contextlib.suppress(DeliveryError):
                await self.command(QUIT, self.timeouts.quit, "QUIT")
            self._conn.close()
        else:
            self._usable = False
            self._conn.abort()
        await self._conn.wait_closed(self.timeouts.quit)

    async def __aenter__(self) -> ClientSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
