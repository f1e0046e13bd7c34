"""The SMTP server engine: bytes in, events out; replies in, bytes out. No sockets, no clock.

Theory of operation (after h11):
- `receive_data(b)` appends input (`b""` means the peer closed); `next_event()` returns the next
  event or `NEED_DATA`. Each event that asks for an answer must be answered with `send(reply)`
  before `next_event()` is called again; `MessageData` needs no answer. This strict alternation is
  what makes PIPELINING (RFC 2920) come out right: replies leave in command order.
- The engine learns the outcome of a command from the reply it is given: a 250 to `Mail` opens a
  transaction, a 2xx to `Rcpt` counts a recipient, a 354 to `DataStart` switches to message mode,
  a 235 to `Auth` marks the session authenticated, a 220 to `StartTls` drops the plaintext
  pipelined behind it and waits for the handshake (`tls_established()`; the bytes fed after the
  220 must be the TLS layer's decrypted ones).
  Policy (who may send, which recipient is allowed) therefore stays outside, in the caller.
- Mistakes the RFC says a server answers and survives — syntax (501), order (503), unknown verbs
  (500), over-long lines (500 5.5.2) — come out as `Respond(reply)` events; the caller just sends
  them. So do the fixed answers (NOOP, RSET, VRFY, HELP) and the SASL prompts.
- Message data is streamed: `MessageData` chunks are already dot-unstuffed, and the terminator is
  exactly CRLF.CRLF (bare-LF variants are data, which closes SMTP smuggling). Past
  `max_message_size` the rest is read and discarded, and `EndOfMessage.oversized` is set.

`ServerConnection` is one class assembled from mixins, one module each, so that every call on the
per-command path stays a plain method call on one object (this is the ingest hot path):
- here: the state, input, line splitting, and `send`, which alone moves the session forward
  from the reply it is given;
- `server_events`: the events and phases (re-exported here: import them from either);
- `server_commands`: the verb table (`_dispatch`) and each envelope command's checks;
- `server_sasl`: the AUTH exchange; `server_data`: the DATA phase (streaming, dot-unstuffing,
  the size limit).
"""

from __future__ import annotations

from postroom.smtp.errors import LocalProtocolError
from postroom.smtp.replies import Reply
from postroom.smtp.server_commands import CommandChecks
from postroom.smtp.server_data import DataStream
from postroom.smtp.server_events import (
    CONNECTION_CLOSED,
    DATA_START,
    NEED_DATA,
    QUIT,
    Auth,
    ConnectionClosed,
    DataStart,
    EndOfMessage,
    Event,
    Hello,
    Mail,
    MessageData,
    Phase,
    Quit,
    Rcpt,
    Respond,
    StartTls,
    _Need,
)
from postroom.smtp.server_sasl import SaslSteps

__all__ = [
    "CONNECTION_CLOSED", "DATA_START", "MAX_AUTH_LINE", "MAX_COMMAND_LINE", "NEED_DATA", "QUIT",
    "Auth", "ConnectionClosed", "DataStart", "EndOfMessage", "Event", "Hello", "Mail",
    "MessageData", "Phase", "Quit", "Rcpt", "Respond", "ServerConnection", "StartTls",
]

MAX_COMMAND_LINE = 4096  # RFC 5321 says 512; real clients exceed it with long parameters
MAX_AUTH_LINE = 16384  # SASL responses carry long API keys


class ServerConnection(CommandChecks, SaslSteps, DataStream):
    """One SMTP server session's protocol state."""

    def __init__(
        self,
        *,
        max_message_size: int,
        max_recipients: int,
        tls_active: bool = False,
        tls_available: bool = False,
        allow_plaintext_auth: bool = False,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.tls_active = tls_active
        self.tls_available = tls_available
        self.allow_plaintext_auth = allow_plaintext_auth
        self.phase = Phase.COMMAND
        self.greeted = False
        self.authenticated = False
        self.in_transaction = False
        self.smtputf8 = False  # the open transaction's MAIL carried SMTPUTF8 (RFC 6531)
        self.recipients = 0
        self.rcpt_attempts = 0
        self._buf = bytearray()
        self._eof = False
        self._awaiting: Event | None = None
        self._discarding_line = False
        self._auth_mech = ""
        self._auth_user = ""
        self._data = bytearray()  # in DATA: "\r\n" + unprocessed message bytes
        self._data_first = True
        self._data_size = 0

    _tail_event: Event | None = None  # EndOfMessage held back behind the last MessageData

    @property
    def buffered(self) -> int:
        """Input bytes not yet turned into events (the adapter pauses reading above a cap)."""
        return len(self._buf) + len(self._data)

    # --- capabilities ---------------------------------------------------------------------
    @property
    def auth_offered(self) -> bool:
        return self.tls_active or self.allow_plaintext_auth

    def ehlo_keywords(self) -> list[str]:
        words = ["PIPELINING", f"SIZE {self.max_message_size}", "8BITMIME", "SMTPUTF8"]
        if self.tls_available and not self.tls_active:
            words.append("STARTTLS")
        if self.auth_offered:
            words.append("AUTH LOGIN PLAIN")
        words += ["ENHANCEDSTATUSCODES", "HELP"]
        return words

    def tls_established(self) -> None:
        """The handshake after STARTTLS finished: forget everything (RFC 3207 §4.2).

        The input is kept: the plaintext behind STARTTLS was dropped when the 220 was sent, so
        what is buffered now came through TLS (asyncio hands over a command that shared a
        segment with the client's Finished before its `start_tls()` returns)."""
        if self.phase is not Phase.TLS_PENDING:
            raise LocalProtocolError("tls_established() without an accepted STARTTLS")
        self.tls_active = True
        self.greeted = self.authenticated = False
        self._reset_transaction()
        self.phase = Phase.COMMAND

    # --- input ----------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if data:
            if self.phase is Phase.DATA:
                self._data += data
            else:
                self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event | _Need:
        if self._awaiting is not None:
            raise LocalProtocolError(f"{self._awaiting!r} has not been answered")
        if self._tail_event is not None:
            event, self._tail_event = self._tail_event, None
            self._awaiting = event
            return event
        if self.phase is Phase.CLOSED:
            return CONNECTION_CLOSED
        if self.phase is Phase.TLS_PENDING:
            return NEED_DATA
        if self.phase is Phase.DATA:
            return self._next_data_event()
        line = self._next_line()
        if line is None:
            if self._eof:
                self.phase = Phase.CLOSED
                return CONNECTION_CLOSED
            return NEED_DATA
        event = self._dispatch(line)
        if not isinstance(event, MessageData):
            self._awaiting = event
        return event

    # --- output ---------------------------------------------------------------------------
    def send(self, answer: Reply) -> bytes:
        """Record the answer to the pending event and return its wire bytes."""
        event, self._awaiting = self._awaiting, None
        code = answer.code
        ok = 200 <= code < 400
        kind = type(event)  # event classes are final: `is` on the type, cheaper than isinstance
        if code == 421:
            self.phase = Phase.CLOSED
        elif kind is Mail:
            if ok:
                self.in_transaction = True
                self.smtputf8 = "SMTPUTF8" in event.path.params  # type: ignore[union-attr]
        elif kind is Rcpt:
            self.rcpt_attempts += 1
            if ok:
                self.recipients += 1
        elif kind is EndOfMessage:
            self._reset_transaction()
        elif kind is DataStart:
            if code == 354:
                self.phase = Phase.DATA
                self._data = bytearray(b"\r\n") + self._buf
                self._buf.clear()
                self._data_first, self._data_size = True, 0
        elif kind is Hello:
            if ok:
                self.greeted = True
                self._reset_transaction()
        elif kind is Auth:
            self.authenticated = code == 235
        elif kind is StartTls:
            if code == 220:
                # Plaintext pipelined behind STARTTLS is an injection attempt (CVE-2011-0411):
                # drop it now. From here on the caller feeds only what the TLS layer decrypted.
                self.phase = Phase.TLS_PENDING
                self._buf.clear()
                self._discarding_line = False
        elif kind is Quit:
            self.phase = Phase.CLOSED
        return answer.to_bytes()

    # --- internals ------------------------------------------------------------------------
    def _reset_transaction(self) -> None:
        self.in_transaction = self.smtputf8 = False
        self.recipients = self.rcpt_attempts = 0

    def _next_line(self) -> str | None:
        limit = MAX_AUTH_LINE if self.phase is not Phase.COMMAND else MAX_COMMAND_LINE
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > limit:
                    self._buf.clear()
                    self._discarding_line = True
                return None
            if self._discarding_line or nl > limit:
                del self._buf[: nl + 1]
                self._discarding_line = False
                return "\x00too-long"
            end = nl - 1 if nl and self._buf[nl - 1] == 13 else nl  # drop the CR of CRLF
            line = self._buf[:end].decode("utf-8", "replace")
            del self._buf[: nl + 1]
            return line
