"""Read what submission needs from a message's header block, and add what RFC 5322 requires.

Only the header block is parsed (the body can be 20 MB and is stored as received). `Message-ID`
and `Date` are prepended when missing, so every stored message is complete before it is queued.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32

MAX_HEADER_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class ParsedHeaders:
    header_from: str  # the address only ("" when absent or unparsable)
    from_count: int
    subject: str
    message_id: str
    has_date: bool


def header_block(head: bytes) -> bytes:
    """The bytes up to and including the blank line (or all of `head` when there is none)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = head.find(sep)
        if i >= 0:
            return head[: i + len(sep)]
    return head


def parse_headers(head: bytes) -> ParsedHeaders:
    msg = BytesHeaderParser(policy=compat32).parsebytes(header_block(head[:MAX_HEADER_BLOCK]))
    froms = msg.get_all("From") or []
    addresses = [a for _, a in email.utils.getaddresses([str(f) for f in froms]) if a]
    subject = ""
    raw_subject = msg.get("Subject")
    if raw_subject is not None:
        try:
            subject = str(make_header(decode_header(str(raw_subject))))
        except (ValueError, LookupError, UnicodeError):
            subject = str(raw_subject)
    return ParsedHeaders(
        header_from=addresses[0] if len(addresses) == 1 else "",
        from_count=len(addresses),
        subject=subject.replace("\r", "").replace("\n", "")[:998],
        message_id=str(msg.get("Message-ID", "")).strip(),
        has_date=msg.get("Date") is not None,
    )


def missing_headers(parsed: ParsedHeaders, message_id: str, hostname: str) -> tuple[bytes, str]:
    """Return (header lines to prepend, the Message-ID the message will carry)."""
    extra = b""
    mid = parsed.message_id
    if not mid:
        mid = f"<{message_id}@{hostname}>"
        extra += f"Message-ID: {mid}\r\n".encode()
    if not parsed.has_date:
        extra += f"Date: {email.utils.format_datetime(datetime.now(UTC))}\r\n".encode()
    return extra, mid
