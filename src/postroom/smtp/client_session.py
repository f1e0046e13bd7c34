"""`ClientSession`: one established outbound SMTP session, driving `Transaction`s over it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

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

#: A transaction to send: envelope sender, recipients, message.
Envelope = tuple[str, Sequence[str], bytes]
#: Signs a message again after it was converted for the peer (see `Transaction`).
Resign = Callable[[bytes], bytes]
#: Larger messages open no transaction behind them: the saving is one write, the cost a copy.
CHAIN_MAX_BYTES = 256 << 10


def _key(envelope: Envelope) -> Envelope:
    """An envelope as `send` compares it with the one it opened (recipients as a tuple)."""
    mail_from, rcpts, message = envelope
    return mail_from, tuple(rcpts), message


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
        #: the next transaction, already opened behind the last message (see `send`'s `then`)
        self._opened: tuple[Envelope, Transaction] | None = None

    @property
    def usable(self) -> bool:
        """False once the session failed, the server said 421, or `close()` ran; also while
        idle with a reply nobody asked for waiting (an idle-timeout 421 whose close has not
        arrived yet): the pool then opens a fresh connection instead of handing this one out
        to fail, which deferred its job for a retry minutes later."""
        if not self._usable or self._conn.closed:
            return False
        return self._opened is not None or not self._conn.has_pending_input

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

    async def send(self, mail_from: str, rcpts: Sequence[str], message: bytes, *,
                   then: Envelope | None = None, resign: Resign | None = None,
                   then_resign: Resign | None = None) -> TransactionResult:
        """Run one transaction; per-recipient verdicts are in `result.outcomes`.

        `then`: the transaction the caller will send next on this session. With PIPELINING its
        opening commands (MAIL, RCPT…, DATA) go out in the same write as this message (RFC 2920
        §3.1: message content may start a group), so a connection that carries many messages
        costs one write and one read per message instead of two each. The caller must then
        call `send(*then)` next; `opened` tells whether that happened. If this session breaks
        first, those commands were sent but never the message: retrying it elsewhere is safe.

        `resign` (`then_resign` for `then`): see `Transaction`; a converted message is
        signed again for this peer.

        Raises `DeliveryError` when the session breaks; the session is then unusable and the
        recipients' fate is unknown only if `SmtpTimeout.command == "DOT"` (the message may
        have been accepted — RFC 1047).
        """
        if not self.usable:
            raise ConnectionLost("the SMTP session is closed")
        async with self._lock:
            opened, self._opened = self._opened, None
            if opened is not None:
                if opened[0] != _key((mail_from, rcpts, message)):
                    self._fail()
                    raise ValueError("send() must continue with the transaction given as then=")
                tx, out = opened[1], b""
            elif self._conn.has_pending_input:  # e.g. an idle-timeout 421 while we were away
                self._fail()
                raise ConnectionLost("the server ended the session while it was idle")
            else:
                tx = Transaction(mail_from, rcpts, message, self.capabilities,
                                 reset_first=self._needs_rset, resign=resign)
                out = tx.start()
            if tx.done:
                return tx.result
            nxt = self._next(then, then_resign) if len(message) <= CHAIN_MAX_BYTES else None
            try:
                await self._drive(tx, out, nxt)
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
                self._opened = None
                self._conn.close()
            return tx.result

    @property
    def opened(self) -> bool:
        """True when the `then` of the last `send` is on the wire and the session can go on
        with it (see `send`); False when it was not sent, or the session ended since."""
        return self._opened is not None and self.usable

    def _next(self, then: Envelope | None, resign: Resign | None = None
              ) -> tuple[Envelope, Transaction] | None:
        """The transaction to open behind this message, built before anything is sent: one
        that cannot be built (say, an address a command cannot carry) is not opened, and the
        caller's next `send` meets the error on its own, without harm to this message."""
        if then is None or not self.capabilities.pipelining:
            return None
        try:
            nxt = Transaction(*then, self.capabilities, resign=resign)  # no RSET after a dot
        except Exception:
            return None
        return _key(then), nxt

    async def _drive(self, tx: Transaction, out: bytes,
                     then: tuple[Envelope, Transaction] | None = None) -> None:
        """Write, read one reply, repeat; the message itself is timed per block (§4.5.3.2.5)."""
        while not tx.done:
            step = tx.expecting
            name = step.value if step is not None else "command"
            if step is Step.DOT and then is not None:
                self._opened, then = then, None
                out += self._opened[1].start()  # the message, then the next one's commands
            if out:
                out = self._conn.send_nowait(out)  # usually all of it: no need to wait
            if step is Step.DOT and out:
                await io_step(self._conn.write(out, self.timeouts.data_block), None, "DATA block")
            elif out:
                await io_step(self._conn.write(out, self._timeout(step)), None, name)
            out = tx.receive(await self.read(self._timeout(step), name))

    def _fail(self) -> None:
        self._usable = False
        self._opened = None
        self._conn.abort()

    async def close(self) -> None:
        """Say QUIT (best effort, briefly), close and wait until the socket is released.
        Safe to call more than once."""
        if self.usable and self._opened is None:  # after an opened DATA, QUIT would be text
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
