"""One mail transaction (MAIL, RCPT…, DATA, message) as a sans-IO state machine.

With PIPELINING (RFC 2920) the opening batch is MAIL + every RCPT + DATA in one write and the
replies are then read in order; the only synchronisation points are the DATA reply and the reply
to the final dot, as in Postfix's smtp_proto.c. Without it, commands go lock-step.

Outcome rules (RFC 5321 §3.3, RFC 2920 §3.1):
* MAIL refused → every recipient gets the MAIL reply.
* A refused RCPT fails only that recipient; accepted recipients get the DATA reply when DATA is
  refused, else the reply to the final dot.
* No recipient accepted → the message is not sent. Lock-step: DATA is never sent. Pipelined: the
  DATA reply is checked anyway; if a server nevertheless answers 354, we send a lone `.` (an
  empty message, as RFC 2920 §3.1 tells clients to do) and ignore its reply.
* An open transaction that did not end with the final dot leaves `needs_rset`; the next
  transaction starts with RSET (pipelined in front of MAIL when the peer allows).
* 421 at any point ends the transaction: recipients without an outcome get the 421 and
  `closing` tells the caller the server is hanging up.
Recipients the peer cannot take at all (UTF-8 address, no SMTPUTF8) and messages it cannot take
(too big for SIZE, not convertible to 7-bit) are refused locally with a 5.x.x reply.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from postroom.smtp.client_message import (
    SMTPUTF8_REQUIRED,
    NotConvertible,
    dot_stuff,
    prepare_message,
)
from postroom.smtp.client_protocol import (
    DATA,
    RSET,
    Capabilities,
    RemoteProtocolError,
    mail_command,
    rcpt_command,
)
from postroom.smtp.replies import Reply, reply


class Step(StrEnum):
    """The command whose reply is awaited; the adapter picks its timeout from this."""

    RSET = "RSET"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    DOT = "DOT"  # the reply to the final "." of the message
    ABORT_DOT = "ABORT_DOT"  # the reply to a lone "." sent after an unwanted 354


def no_smtputf8() -> Reply:
    return reply(550, SMTPUTF8_REQUIRED, "SMTPUTF8 not supported by the receiving server")


def too_big(limit: int) -> Reply:
    return reply(552, "5.3.4", f"Message size exceeds the receiving server's limit of {limit}")


@dataclass(slots=True)
class TransactionResult:
    """Everything the peer (or the local checks) said about one transaction."""

    mail_reply: Reply | None = None  # None when nothing was sent
    rcpt_replies: dict[str, Reply] = field(default_factory=dict)  # reply to each RCPT
    data_reply: Reply | None = None  # reply to DATA (354 or a refusal)
    final_reply: Reply | None = None  # reply to the final dot
    outcomes: dict[str, Reply] = field(default_factory=dict)  # the verdict per recipient
    needs_rset: bool = False
    closing: bool = False  # the server said 421 and is closing the connection

    @property
    def accepted(self) -> list[str]:
        return [r for r, rep in self.outcomes.items() if 200 <= rep.code < 300]


class Transaction:
    """Call `start()` once, write its bytes, then feed each reply to `receive()` and write what
    it returns until `done`. `expecting` names the awaited reply; after a 354 the bytes
    returned are the message itself (`expecting` is then `Step.DOT`)."""

    def __init__(
        self,
        mail_from: str,
        rcpts: Sequence[str],
        message: bytes,
        caps: Capabilities,
        *,
        reset_first: bool = False,
        resign: Callable[[bytes], bytes] | None = None,
    ) -> None:
        """`resign`: re-signs the message once it had to be converted for this peer (7-bit
        downgrade), whose signature, made over the stored bytes, would no longer verify."""
        if not rcpts:
            raise ValueError("a transaction needs at least one recipient")
        self._caps = caps
        self._pipelining = caps.pipelining
        self._reset_first = reset_first
        self.result = TransactionResult()
        self._rcpts = list(dict.fromkeys(rcpts))
        self._pending: deque[tuple[Step, str]] = deque()
        self._todo: deque[str] = deque()
        self._accepted: list[str] = []
        self._mail_failed = False
        self._done = False
        self._payload = b""
        self._params: list[str] = []
        self._resign = resign
        self._plan(mail_from, message)

    @property
    def done(self) -> bool:
        return self._done

    @property
    def expecting(self) -> Step | None:
        return self._pending[0][0] if self._pending else None

    def _plan(self, mail_from: str, message: bytes) -> None:
        caps = self._caps
        if not mail_from.isascii() and not caps.smtputf8:
            self._refuse_all(no_smtputf8())
            return
        for rcpt in self._rcpts:
            if not rcpt.isascii() and not caps.smtputf8:
                self.result.outcomes[rcpt] = no_smtputf8()
        self._todo.extend(r for r in self._rcpts if r not in self.result.outcomes)
        if not self._todo:
            self._done = True
            return
        try:
            prepared = prepare_message(
                message, eight_bit_mime=caps.eight_bit_mime, smtputf8=caps.smtputf8
            )
        except NotConvertible as exc:
            self._refuse_all(
                reply(554 if exc.enhanced != SMTPUTF8_REQUIRED else 550, exc.enhanced, str(exc))
            )
            return
        limit = caps.size_limit
        data = prepared.data
        if prepared.converted and self._resign is not None:
            data = self._resign(data)
        if limit is not None and len(data) > limit:
            self._refuse_all(too_big(limit))
            return
        if caps.size_supported:
            self._params.append(f"SIZE={len(data)}")
        if prepared.eight_bit and caps.eight_bit_mime:
            self._params.append("BODY=8BITMIME")
        utf8_envelope = not mail_from.isascii() or any(not r.isascii() for r in self._todo)
        if caps.smtputf8 and (utf8_envelope or prepared.utf8_headers):
            self._params.append("SMTPUTF8")
        self._payload = dot_stuff(data)
        # Build every command now: a bad address fails here, before anything is on the wire.
        self._mail_cmd = mail_command(mail_from, self._params)
        self._rcpt_cmds = {r: rcpt_command(r) for r in self._todo}

    def _refuse_all(self, rep: Reply) -> None:
        for rcpt in self._rcpts:
            self.result.outcomes.setdefault(rcpt, rep)
        self._todo.clear()
        self._done = True

    def start(self) -> bytes:
        """The opening write: everything up to DATA when pipelining, else the first command."""
        if self._done:
            return b""
        out = bytearray()
        if self._reset_first:
            out += self._queue(Step.RSET, "", RSET)
            if not self._pipelining:
                return bytes(out)
        out += self._queue(Step.MAIL, "", self._mail_cmd)
        if self._pipelining:
            while self._todo:
                rcpt = self._todo.popleft()
                out += self._queue(Step.RCPT, rcpt, self._rcpt_cmds[rcpt])
            out += self._queue(Step.DATA, "", DATA)
        return bytes(out)

    def _queue(self, step: Step, arg: str, command: bytes) -> bytes:
        self._pending.append((step, arg))
        return command

    def receive(self, rep: Reply) -> bytes:
        """Account for the next reply; return the bytes to write now (possibly none)."""
        if not self._pending:
            raise RemoteProtocolError("reply without a command", None)
        step, arg = self._pending.popleft()
        if rep.code == 421:
            return self._close(step, arg, rep)
        if step in (Step.RSET, Step.MAIL, Step.RCPT) and 300 <= rep.code < 400:
            raise RemoteProtocolError(f"unexpected {rep.code} reply to {step.value}", None)
        handler = getattr(self, f"_on_{step.value.lower()}")
        return handler(arg, rep)

    def _on_rset(self, _: str, rep: Reply) -> bytes:
        if not rep.is_positive:
            raise RemoteProtocolError(f"RSET refused with {rep.code}", None)
        if self._pipelining:
            return b""
        return self._queue(Step.MAIL, "", self._mail_cmd)

    def _on_mail(self, _: str, rep: Reply) -> bytes:
        self.result.mail_reply = rep
        if rep.code >= 400:
            self._mail_failed = True
            for rcpt in self._rcpts:
                self.result.outcomes.setdefault(rcpt, rep)
            if not self._pipelining:
                self._finish()
            return b""
        return b"" if self._pipelining else self._next_lockstep()

    def _on_rcpt(self, rcpt: str, rep: Reply) -> bytes:
        if not self._mail_failed:
            self.result.rcpt_replies[rcpt] = rep
            if rep.code < 300:
                self._accepted.append(rcpt)
            else:
                self.result.outcomes[rcpt] = rep
        return b"" if self._pipelining else self._next_lockstep()

    def _next_lockstep(self) -> bytes:
        if self._todo:
            rcpt = self._todo.popleft()
            return self._queue(Step.RCPT, rcpt, self._rcpt_cmds[rcpt])
        if self._accepted:
            return self._queue(Step.DATA, "", DATA)
        self.result.needs_rset = True  # MAIL was accepted: a transaction is open
        self._finish()
        return b""

    def _on_data(self, _: str, rep: Reply) -> bytes:
        self.result.data_reply = rep
        live = self._accepted and not self._mail_failed
        if rep.code == 354:
            if live:
                return self._queue(Step.DOT, "", self._payload)
            return self._queue(Step.ABORT_DOT, "", b".\r\n")
        if rep.code < 400:
            raise RemoteProtocolError(f"unexpected {rep.code} reply to DATA", None)
        for rcpt in self._accepted if live else ():
            self.result.outcomes[rcpt] = rep
        self.result.needs_rset = not self._mail_failed
        self._finish()
        return b""

    def _on_dot(self, _: str, rep: Reply) -> bytes:
        if 300 <= rep.code < 400:
            raise RemoteProtocolError(f"unexpected {rep.code} reply to end of data", None)
        self.result.final_reply = rep
        for rcpt in self._accepted:
            self.result.outcomes[rcpt] = rep
        self._finish()
        return b""

    def _on_abort_dot(self, _: str, rep: Reply) -> bytes:
        self._finish()
        return b""

    def _close(self, step: Step, arg: str, rep: Reply) -> bytes:
        if step is Step.MAIL:
            self.result.mail_reply = rep
        elif step is Step.RCPT and not self._mail_failed:
            self.result.rcpt_replies[arg] = rep
        elif step is Step.DATA:
            self.result.data_reply = rep
        elif step is Step.DOT:
            self.result.final_reply = rep
        for rcpt in self._rcpts:
            self.result.outcomes.setdefault(rcpt, rep)
        self.result.closing = True
        self._pending.clear()
        self._finish()
        return b""

    def _finish(self) -> None:
        self._done = True
        self._pending.clear()
        order = {r: i for i, r in enumerate(self._rcpts)}
        items = sorted(self.result.outcomes.items(), key=lambda kv: order[kv[0]])
        self.result.outcomes = dict(items)
