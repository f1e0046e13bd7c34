"""Client side of SMTP, sans-IO (h11 style): bytes in → `Reply` events out, values → command bytes.

This module knows nothing about sockets, clocks or TLS, so every byte the outbound client sends or
accepts is decided here and can be tested (and fuzzed) without a network. The transaction planner
(with RFC 2920 pipelining) lives in `client_transaction`, message preparation (dot-stuffing,
8-bit downgrade) in `client_message`; both build on the pieces below.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from postroom.smtp.errors import LocalProtocolError, RemoteProtocolError
from postroom.smtp.replies import Reply, parse_enhanced

__all__ = [
    "AUTH_CANCEL",
    "DATA",
    "NOOP",
    "QUIT",
    "RSET",
    "STARTTLS",
    "Capabilities",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ReplyParser",
    "auth_login_command",
    "auth_plain_command",
    "auth_response",
    "ehlo_command",
    "helo_command",
    "mail_command",
    "parse_ehlo",
    "rcpt_command",
]

# RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; real servers overshoot a little, so we
# accept four times that before calling the peer broken.
MAX_REPLY_LINE = 2048
MAX_REPLY_LINES = 1000  # a multi-line reply longer than this is a runaway peer, not an EHLO

_CONTROL = {c: "?" for c in range(32) if c != 9} | {127: "?"}


class ReplyParser:
    """Incremental reply reader: feed it any split of the byte stream, get complete replies.

    Accepts CRLF and bare LF (as Postfix does); rejects lines that do not start with a 2xx–5xx
    code, continuation lines whose code differs from the first, over-long lines and runaway
    replies. After one `RemoteProtocolError` the parser stays broken: the stream is lost.
    """

    def __init__(self, max_line: int = MAX_REPLY_LINE, max_lines: int = MAX_REPLY_LINES) -> None:
        self._buf = bytearray()
        self._code: int | None = None
        self._lines: list[str] = []
        self._max_line = max_line
        self._max_lines = max_lines
        self._broken: str | None = None

    @property
    def has_pending(self) -> bool:
        """True when bytes of an incomplete reply are buffered (e.g. data after a 220 to
        STARTTLS, which must never be carried across the TLS handshake)."""
        return bool(self._buf) or bool(self._lines)

    def feed(self, data: bytes) -> list[Reply]:
        if self._broken is not None:
            raise RemoteProtocolError(self._broken, None)
        self._buf += data
        out: list[Reply] = []
        try:
            while True:
                nl = self._buf.find(b"\n")
                if nl < 0:
                    if len(self._buf) > self._max_line:
                        self._fail("reply line too long")
                    return out
                if nl + 1 > self._max_line:
                    self._fail("reply line too long")
                line = bytes(self._buf[:nl]).rstrip(b"\r")
                del self._buf[: nl + 1]
                done = self._line(line)
                if done is not None:
                    out.append(done)
        except RemoteProtocolError as exc:
            self._broken = str(exc)
            raise

    def _fail(self, why: str) -> NoReturn:
        raise RemoteProtocolError(why, None)

    def _line(self, raw: bytes) -> Reply | None:
        if (
            len(raw) < 3
            or raw[0] not in b"2345"
            or not raw[1:3].isdigit()
            or (len(raw) > 3 and raw[3:4] not in (b" ", b"-"))
        ):
            self._fail("malformed reply line")
        code = int(raw[:3])
        if self._code is not None and code != self._code:
            self._fail("reply code changed inside a multi-line reply")
        self._code = code
        self._lines.append(raw[4:].decode("utf-8", "replace").translate(_CONTROL))
        if len(self._lines) > self._max_lines:
            self._fail("reply has too many lines")
        if raw[3:4] == b"-":
            return None
        lines, self._lines, self._code = self._lines, [], None
        return _make_reply(code, lines)


def _make_reply(code: int, lines: list[str]) -> Reply:
    """Split the RFC 3463 enhanced code off every line that carries it (RFC 2034 §4)."""
    enhanced, _ = parse_enhanced(code, lines[0])
    if enhanced is not None:
        prefix = enhanced + " "
        lines = [ln[len(prefix) :] if ln.startswith(prefix) else ln for ln in lines]
        lines = ["" if ln == enhanced else ln for ln in lines]
    return Reply(code, enhanced, tuple(lines))


# --- EHLO capabilities (RFC 5321 §4.1.1.1) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the peer's EHLO reply offered. Keywords are upper-cased; parameters kept as sent."""

    esmtp: bool = False
    keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def has(self, keyword: str) -> bool:
        return keyword.upper() in self.keywords

    @property
    def pipelining(self) -> bool:
        return self.has("PIPELINING")

    @property
    def eight_bit_mime(self) -> bool:
        return self.has("8BITMIME")

    @property
    def smtputf8(self) -> bool:
        return self.has("SMTPUTF8")

    @property
    def starttls(self) -> bool:
        return self.has("STARTTLS")

    @property
    def enhanced_status_codes(self) -> bool:
        return self.has("ENHANCEDSTATUSCODES")

    @property
    def size_supported(self) -> bool:
        return self.has("SIZE")

    @property
    def size_limit(self) -> int | None:
        """The fixed maximum from `SIZE n` (RFC 1870); None when absent, 0 or unreadable."""
        params = self.keywords.get("SIZE", ())
        if params and params[0].isascii() and params[0].isdigit() and int(params[0]) > 0:
            return int(params[0])
        return None

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        return frozenset(p.upper() for p in self.keywords.get("AUTH", ()))


def parse_ehlo(reply: Reply) -> Capabilities:
    """Capabilities from a 250 EHLO reply: the first line names the server, the rest are
    `keyword *(SP param)`. The pre-RFC `AUTH=PLAIN LOGIN` form is folded into AUTH."""
    keywords: dict[str, tuple[str, ...]] = {}
    for line in reply.lines[1:]:
        words = line.split()
        if not words:
            continue
        head, params = words[0].upper(), words[1:]
        if "=" in head:  # "AUTH=LOGIN PLAIN" from old Microsoft/Postfix servers
            head, _, first = head.partition("=")
            params = [first, *params] if first else params
        if not head.replace("-", "").isalnum():
            continue
        keywords[head] = tuple(dict.fromkeys([*keywords.get(head, ()), *params]))
    return Capabilities(esmtp=True, keywords=keywords)


# --- command builders -------------------------------------------------------------------------

STARTTLS = b"STARTTLS\r\n"
DATA = b"DATA\r\n"
RSET = b"RSET\r\n"
QUIT = b"QUIT\r\n"
NOOP = b"NOOP\r\n"


def _clean(value: str, what: str) -> str:
    """Refuse CR, LF and NUL in anything we put on a command line (command injection)."""
    if any(c in value for c in "\r\n\0"):
        raise LocalProtocolError(f"{what} contains a line break or NUL")
    return value


def _line(text: str) -> bytes:
    return text.encode("utf-8") + b"\r\n"


def ehlo_command(name: str) -> bytes:
    if not name or any(c.isspace() for c in name):
        raise LocalProtocolError("EHLO name must be one non-empty word")
    return _line(f"EHLO {_clean(name, 'EHLO name')}")


def helo_command(name: str) -> bytes:
    if not name or any(c.isspace() for c in name):
        raise LocalProtocolError("HELO name must be one non-empty word")
    return _line(f"HELO {_clean(name, 'HELO name')}")


def mail_command(address: str, params: Iterable[str] = ()) -> bytes:
    """`MAIL FROM:<address> params`; the empty address is the null reverse-path `<>`."""
    extra = "".join(f" {_clean(p, 'MAIL parameter')}" for p in params)
    return _line(f"MAIL FROM:<{_clean(address, 'sender')}>{extra}")


def rcpt_command(address: str, params: Iterable[str] = ()) -> bytes:
    if not address:
        raise LocalProtocolError("recipient address is empty")
    extra = "".join(f" {_clean(p, 'RCPT parameter')}" for p in params)
    return _line(f"RCPT TO:<{_clean(address, 'recipient')}>{extra}")


def auth_plain_command(username: str, password: str) -> bytes:
    """AUTH PLAIN with the initial response (RFC 4616: authzid empty, UTF-8 credentials)."""
    token = b"\0" + username.encode("utf-8") + b"\0" + password.encode("utf-8")
    return b"AUTH PLAIN " + base64.b64encode(token) + b"\r\n"


def auth_login_command() -> bytes:
    """AUTH LOGIN without an initial response: not every server accepts one for LOGIN."""
    return b"AUTH LOGIN\r\n"


def auth_response(value: str) -> bytes:
    """One base64 line answering a 334 challenge (LOGIN's username or password)."""
    return base64.b64encode(value.encode("utf-8")) + b"\r\n"


AUTH_CANCEL = b"*\r\n"
