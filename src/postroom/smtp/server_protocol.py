"""The SMTP server engine: bytes in, events out; replies in, bytes out. No sockets, no clock.

Theory of operation (after h11):
- `receive_data(b)` appends input (`b""` means the peer closed); `next_event()` returns the next
  event or `NEED_DATA`. Each event that asks for an answer must be answered with `send(reply)`
  before `next_event()` is called again; `MessageData` needs no answer. This strict alternation is
  what makes PIPELINING (RFC 2920) come out right: replies leave in command order.
- The engine learns the outcome of a command from the reply it is given: a 250 to `Mail` opens a
  transaction, a 2xx to `Rcpt` counts a recipient, a 354 to `DataStart` switches to message mode,
  a 235 to `Auth` marks the session authenticated, a 220 to `StartTls` waits for the handshake.
  Policy (who may send, which recipient is allowed) therefore stays outside, in the caller.
- Mistakes the RFC says a server answers and survives — syntax (501), order (503), unknown verbs
  (500), over-long lines (500 5.5.2) — come out as `Respond(reply)` events; the caller just sends
  them. So do the fixed answers (NOOP, RSET, VRFY, HELP) and the SASL prompts.
- Message data is streamed: `MessageData` chunks are already dot-unstuffed, and the terminator is
  exactly CRLF.CRLF (bare-LF variants are data, which closes SMTP smuggling). Past
  `max_message_size` the rest is read and discarded, and `EndOfMessage.oversized` is set.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import Enum

from postroom.smtp import replies as R
from postroom.smtp.commands import Path, PathError, parse_path, split_command
from postroom.smtp.errors import LocalProtocolError
from postroom.smtp.replies import Reply, reply

MAX_COMMAND_LINE = 4096  # RFC 5321 says 512; real clients exceed it with long parameters
MAX_AUTH_LINE = 16384  # SASL responses carry long API keys


# --- events -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hello:
    name: str
    extended: bool


@dataclass(frozen=True, slots=True)
class StartTls:
    pass


@dataclass(frozen=True, slots=True)
class Auth:
    mechanism: str
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Mail:
    path: Path


@dataclass(frozen=True, slots=True)
class Rcpt:
    path: Path


@dataclass(frozen=True, slots=True)
class DataStart:
    pass


@dataclass(frozen=True, slots=True)
class MessageData:
    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    size: int
    oversized: bool


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Respond:
    """The engine's own answer (errors, prompts, NOOP/RSET/VRFY/HELP); send it as is."""

    reply: Reply


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    pass


class _Need:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _Need()
# The events without fields are shared: one allocation fewer per command.
DATA_START, QUIT, CONNECTION_CLOSED = DataStart(), Quit(), ConnectionClosed()
Event = (
    Hello | StartTls | Auth | Mail | Rcpt | DataStart | MessageData | EndOfMessage | Quit
    | Respond | ConnectionClosed
)


class Phase(Enum):
    COMMAND = "command"
    AUTH_PLAIN = "auth-plain"
    AUTH_USERNAME = "auth-username"
    AUTH_PASSWORD = "auth-password"
    DATA = "data"
    TLS_PENDING = "tls-pending"
    CLOSED = "closed"


_BAD_BASE64 = reply(501, "5.5.2", "Invalid base64 data")
_SEND_HELLO = reply(503, "5.5.1", "Send EHLO/HELO first")
_NESTED_MAIL = reply(503, "5.5.1", "Sender already specified")
_NEED_MAIL = reply(503, "5.5.1", "Need MAIL command first")
_NEED_RCPT = reply(503, "5.5.1", "Need RCPT command first")
_HELO_SYNTAX = reply(501, "5.5.4", "Syntax: EHLO hostname")
_UTF8_NEEDED = reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
_TLS_ACTIVE = reply(503, "5.5.1", "TLS already active")
_HELP = reply(214, "2.0.0", "See https://www.rfc-editor.org/rfc/rfc5321 ; commands: EHLO HELO "
              "MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH")


class ServerConnection:
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
        """The handshake after STARTTLS finished: forget everything (RFC 3207 §4.2)."""
        if self.phase is not Phase.TLS_PENDING:
            raise LocalProtocolError("tls_established() without an accepted STARTTLS")
        self.tls_active = True
        self.greeted = self.authenticated = False
        self._reset_transaction()
        self._buf.clear()  # bytes pipelined behind STARTTLS are an injection attempt
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
                self.phase = Phase.TLS_PENDING
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

    def _dispatch(self, line: str) -> Event:
        if line == "\x00too-long":
            self._auth_reset_if_needed()
            return Respond(R.R500_LINE_TOO_LONG)
        if self.phase is not Phase.COMMAND:
            return self._auth_step(line)
        verb, arg = split_command(line)
        handler = _HANDLERS.get(verb)
        if handler is None:
            return Respond(R.R500_UNKNOWN)
        return handler(self, arg)

    def _on_hello(self, arg: str, extended: bool) -> Event:
        name = arg.split(" ")[0] if arg else ""
        if not name:
            return Respond(_HELO_SYNTAX)
        return Hello(name, extended)

    def _on_mail(self, arg: str) -> Event:
        if not self.greeted:
            return Respond(_SEND_HELLO)
        if self.in_transaction:
            return Respond(_NESTED_MAIL)
        try:
            path = parse_path(arg, "FROM", allow_null=True)
        except PathError as exc:
            if exc.kind == "address":
                return Respond(R.bad_sender(exc.address))
            return Respond(R.R501_SYNTAX)
        return self._check_mail_params(path)

    def _check_mail_params(self, path: Path) -> Event:
        for key, value in path.params.items():
            if key == "SIZE":
                if value is None or not value.isdigit() or len(value) > 15:
                    return Respond(R.R501_SYNTAX)
                if int(value) > self.max_message_size:
                    return Respond(R.R552_TOO_BIG)
            elif key == "BODY":
                if (value or "").upper() not in ("7BIT", "8BITMIME"):
                    return Respond(R.R555_PARAM)
            elif key == "SMTPUTF8":
                if value is not None:
                    return Respond(R.R501_SYNTAX)
            elif key != "AUTH":  # RFC 4954 AUTH=<> is harmless; everything else is unknown
                return Respond(R.R555_PARAM)
        if not path.address.isascii() and "SMTPUTF8" not in path.params:
            return Respond(_UTF8_NEEDED)
        return Mail(path)

    def _on_rcpt(self, arg: str) -> Event:
        if not self.in_transaction:
            return Respond(_NEED_MAIL)
        try:
            path = parse_path(arg, "TO", allow_null=False)
        except PathError as exc:
            if exc.kind == "address":
                return Respond(R.bad_recipient(exc.address))
            return Respond(R.R501_SYNTAX)
        if path.params:
            return Respond(R.R555_PARAM)
        if not self.smtputf8 and not path.address.isascii():  # as MAIL answers it
            return Respond(_UTF8_NEEDED)
        if self.recipients >= self.max_recipients:
            return Respond(R.R452_TOO_MANY_RCPTS)
        return Rcpt(path)

    def _on_data(self, arg: str) -> Event:
        if arg:
            return Respond(R.R501_SYNTAX)
        if not self.in_transaction:
            return Respond(_NEED_MAIL)
        if self.recipients == 0:
            return Respond(R.R554_NO_VALID_RCPTS if self.rcpt_attempts else _NEED_RCPT)
        return DATA_START

    def _on_rset(self, arg: str) -> Event:
        if arg:
            return Respond(R.R501_SYNTAX)
        self._reset_transaction()
        return Respond(R.R250_RESET)

    def _on_starttls(self, arg: str) -> Event:
        if arg:
            return Respond(R.R501_SYNTAX)
        if self.tls_active:
            return Respond(_TLS_ACTIVE)
        if not self.tls_available:
            return Respond(R.R454_TLS_UNAVAILABLE)
        return StartTls()

    def _on_auth(self, arg: str) -> Event:
        if not self.greeted:
            return Respond(_SEND_HELLO)
        if not self.auth_offered:
            return Respond(R.R538_ENCRYPTION_REQUIRED)
        if self.authenticated:
            return Respond(R.R503_ALREADY_AUTH)
        if self.in_transaction:
            return Respond(R.R503_BAD_SEQUENCE)
        mech, _, initial = arg.partition(" ")
        mech, initial = mech.upper(), initial.strip()
        if mech not in ("PLAIN", "LOGIN"):
            return Respond(R.R504_AUTH_MECH if mech else R.R501_SYNTAX)
        self._auth_mech = mech
        if not initial:
            self.phase = Phase.AUTH_PLAIN if mech == "PLAIN" else Phase.AUTH_USERNAME
            return Respond(R.R334_EMPTY if mech == "PLAIN" else R.R334_USERNAME)
        self.phase = Phase.AUTH_PLAIN if mech == "PLAIN" else Phase.AUTH_USERNAME
        return self._auth_step(initial)

    def _auth_step(self, line: str) -> Event:
        if line.strip() == "*":
            self._auth_reset_if_needed()
            return Respond(R.R501_AUTH_CANCELLED)
        try:
            decoded = b"" if line.strip() == "=" else base64.b64decode(line, validate=True)
            text = decoded.decode("utf-8")
        except (binascii.Error, ValueError):
            self._auth_reset_if_needed()
            return Respond(_BAD_BASE64)
        if self.phase is Phase.AUTH_USERNAME:
            self._auth_user = text
            self.phase = Phase.AUTH_PASSWORD
            return Respond(R.R334_PASSWORD)
        self.phase = Phase.COMMAND
        if self._auth_mech == "LOGIN":
            return Auth("LOGIN", self._auth_user, text)
        parts = text.split("\x00")
        if len(parts) != 3:
            return Respond(_BAD_BASE64)
        return Auth("PLAIN", parts[1], parts[2])

    def _auth_reset_if_needed(self) -> None:
        if self.phase in (Phase.AUTH_PLAIN, Phase.AUTH_USERNAME, Phase.AUTH_PASSWORD):
            self.phase = Phase.COMMAND

    def _next_data_event(self) -> Event | _Need:
        buf = self._data
        end = buf.find(b"\r\n.\r\n")
        if end >= 0:
            chunk = bytes(buf[: end + 2])
            rest = bytes(buf[end + 5 :])
            self._buf[:0] = rest
            self._data = bytearray()
            self.phase = Phase.COMMAND
            self._emit_data(chunk)
            pending, self._pending_chunk = self._pending_chunk, b""
            event: Event = EndOfMessage(self._data_size, self._data_size > self.max_message_size)
            if pending:
                self._tail_event = event
                return MessageData(pending)
            self._awaiting = event
            return event
        if self._eof:
            self.phase = Phase.CLOSED
            return CONNECTION_CLOSED
        # Emit everything up to the last CRLF (or nearly all of a huge line): no terminator or
        # "\r\n.." can straddle that cut, so unstuffing stays exact while memory stays bounded.
        cut = buf.rfind(b"\r\n")
        if cut <= 0:
            if len(buf) < 65536:
                return NEED_DATA
            cut = len(buf) - (1 if buf.endswith(b"\r") else 0)
        chunk = bytes(buf[:cut])
        del buf[:cut]
        self._emit_data(chunk)
        pending, self._pending_chunk = self._pending_chunk, b""
        return MessageData(pending) if pending else NEED_DATA

    _pending_chunk: bytes = b""
    _tail_event: Event | None = None

    def _emit_data(self, chunk: bytes) -> None:
        data = chunk.replace(b"\r\n.", b"\r\n")  # RFC 5321 §4.5.2: drop one leading dot
        if self._data_first:
            data, self._data_first = data[2:], False
        before = self._data_size
        self._data_size += len(data)
        if before < self.max_message_size:
            self._pending_chunk = data[: self.max_message_size - before] if (
                self._data_size > self.max_message_size
            ) else data


def _handlers() -> dict[str, object]:
    c = ServerConnection
    return {
        "EHLO": lambda s, a: c._on_hello(s, a, True),
        "HELO": lambda s, a: c._on_hello(s, a, False),
        "MAIL": c._on_mail,
        "RCPT": c._on_rcpt,
        "DATA": c._on_data,
        "RSET": c._on_rset,
        "NOOP": lambda s, a: Respond(R.R250_OK),
        "QUIT": lambda s, a: QUIT,
        "VRFY": lambda s, a: Respond(R.R252_VRFY if a else R.R501_SYNTAX),
        "EXPN": lambda s, a: Respond(R.R502_NOT_IMPLEMENTED),
        "HELP": lambda s, a: Respond(_HELP),
        "STARTTLS": c._on_starttls,
        "AUTH": c._on_auth,
        "BDAT": lambda s, a: Respond(R.R502_NOT_IMPLEMENTED),
    }


_HANDLERS: dict = _handlers()
