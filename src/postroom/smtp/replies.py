"""SMTP replies (RFC 5321 §4.2) with RFC 3463 enhanced status codes, and the reply catalogue.

Both sides use `Reply`: the server formats it, the client parses it. Texts come from the vendor
documents Postroom imitates (Infobip, Zoho Campaigns, ZeptoMail), so clients written for them see
the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


@dataclass(frozen=True, slots=True)
class Reply:
    """One (possibly multi-line) reply: a 3-digit code, an enhanced code and text lines."""

    code: int
    enhanced: str | None
    lines: tuple[str, ...]
    # The wire form, kept after the first `to_bytes()`: the catalogue's replies and the cached
    # EHLO answer are sent once per message or connection, and formatting them showed in profiles.
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def to_bytes(self) -> bytes:
        """Wire form. The enhanced code prefixes every line, as RFC 2034 asks."""
        if self._wire is not None:
            return self._wire
        prefix = f"{self.enhanced} " if self.enhanced else ""
        lines = self.lines or ("",)
        if len(lines) == 1:  # nearly every reply: one format, no loop
            wire = f"{self.code} {prefix}{lines[0]}\r\n".encode("utf-8", "replace")
        else:
            out = []
            for i, line in enumerate(lines):
                sep = " " if i == len(lines) - 1 else "-"
                out.append(f"{self.code}{sep}{prefix}{line}\r\n")  # "334 " keeps its SP (RFC 4954)
            wire = "".join(out).encode("utf-8", "replace")
        object.__setattr__(self, "_wire", wire)  # a cache, not state: equality ignores it
        return wire

    def __str__(self) -> str:
        prefix = f"{self.enhanced} " if self.enhanced else ""
        return f"{self.code} {prefix}{' '.join(self.lines)}".strip()


def reply(code: int, enhanced: str | None, *lines: str) -> Reply:
    """Build a reply, checking that the enhanced code's class matches the basic code."""
    if not 200 <= code <= 599:
        raise ValueError(f"bad reply code {code}")
    if enhanced is not None:
        m = _ENHANCED.match(enhanced)
        if m is None or m.group(1) != str(code)[0]:
            raise ValueError(f"enhanced code {enhanced!r} does not fit {code}")
    return Reply(code, enhanced, tuple(lines) or ("",))


def parse_enhanced(code: int, text: str) -> tuple[str | None, str]:
    """Split a leading enhanced code from reply text when it matches the reply's class."""
    head, _, rest = text.partition(" ")
    m = _ENHANCED.match(head)
    if m and m.group(1) == str(code)[0]:
        return head, rest
    return None, text


# --- the catalogue: every reply the submission server sends is named here -----------------
R220_READY = "220 {host} ESMTP Postroom ready"
R221_BYE = reply(221, "2.0.0", "Bye")
R235_AUTH_OK = reply(235, "2.7.0", "Authentication successful")
R250_OK = reply(250, "2.0.0", "OK")
R250_RESET = reply(250, "2.0.0", "Reset OK")
R252_VRFY = reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
R354_DATA = reply(354, None, "End data with <CR><LF>.<CR><LF>")
R334_USERNAME = reply(334, None, "VXNlcm5hbWU6")
R334_PASSWORD = reply(334, None, "UGFzc3dvcmQ6")
R334_EMPTY = reply(334, None, "")
R220_GO_TLS = reply(220, "2.0.0", "Ready to start TLS")
R421_IDLE = reply(421, "4.4.2", "Idle timeout, closing connection")
R421_TOO_MANY = reply(421, "4.7.0", "Too many connections, try again later")
R421_SHUTDOWN = reply(421, "4.3.2", "Service shutting down, closing connection")
R451_INTERNAL = reply(451, "4.3.0", "Temporary local problem, please try again later")
R452_STORAGE = reply(452, "4.3.1", "Insufficient system storage, please try again later")
R452_TOO_MANY_RCPTS = reply(452, "4.5.3", "Too many recipients")
R454_TLS_UNAVAILABLE = reply(454, "4.7.0", "TLS not available")
R454_AUTH_THROTTLED = reply(454, "4.7.0", "Too many failed authentications, try again later")
R500_UNKNOWN = reply(500, "5.5.1", "Command not recognized")
R500_LINE_TOO_LONG = reply(500, "5.5.2", "Line too long")
R501_SYNTAX = reply(501, "5.5.4", "Syntax error in parameters or arguments")
R501_AUTH_CANCELLED = reply(501, "5.7.0", "Authentication cancelled")
R502_NOT_IMPLEMENTED = reply(502, "5.5.1", "Command not implemented")
R503_BAD_SEQUENCE = reply(503, "5.5.1", "Bad sequence of commands")
R503_ALREADY_AUTH = reply(503, "5.5.1", "Already authenticated")
R504_AUTH_MECH = reply(504, "5.5.4", "Unrecognized authentication type")
R530_AUTH_REQUIRED = reply(530, "5.7.0", "Authentication required")
R535_AUTH_FAILED = reply(535, "5.7.8", "Authentication credentials invalid")
R538_ENCRYPTION_REQUIRED = reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
R552_TOO_BIG = reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
R554_NO_VALID_RCPTS = reply(554, "5.5.1", "No valid recipients")
R555_PARAM = reply(555, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented")


# The per-message replies below are built without `reply()`'s checks: their codes are fixed and
# valid, and the regex match cost shows in the ingest profile (three replies per message).
def sender_ok(address: str) -> Reply:
    return Reply(250, "2.1.0", (f"Sender <{address}> OK",))


def recipient_ok(address: str) -> Reply:
    return Reply(250, "2.1.5", (f"Recipient <{address}> OK",))


def bad_recipient(address: str) -> Reply:
    return reply(501, "5.1.7", f"Bad recipient address <{address}>")


def bad_sender(address: str) -> Reply:
    return reply(501, "5.1.7", f"Bad sender address <{address}>")


def recipient_not_allowed(address: str) -> Reply:
    return Reply(550, "5.7.1", (f"Recipient <{address}> not allowed",))


def sender_not_allowed(address: str, reason: str = "not allowed for this account") -> Reply:
    return reply(550, "5.7.1", f"Sender <{address}> {reason}")


def queued(message_id: str) -> Reply:
    return Reply(250, "2.6.0", (f"Message queued as <{message_id}>",))
