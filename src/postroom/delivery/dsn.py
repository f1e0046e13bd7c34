"""Delivery status notifications (bounce messages) per RFC 3464 / RFC 3462, as pure functions.

A DSN goes to the original envelope sender when recipients fail (or are delayed), so it must be
machine-readable (the message/delivery-status part that mail clients and ESP tooling parse) and
readable by a person, and it must never trigger another DSN: it carries `Auto-Submitted:
auto-replied` and is sent with an empty envelope sender (the caller's job). Only the original
message's headers are returned, never its body, so bounces cannot be used to reflect content.
"""

from __future__ import annotations

import email.quoprimime
import textwrap
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, make_msgid

__all__ = ["FailedRecipient", "build_dsn", "dsn_address"]


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    """One recipient line of the report."""

    address: str
    #: RFC 3463 status, "5.1.1"
    status: str
    #: "smtp; 550 5.1.1 ..." (a bare reply gets the "smtp; " type added)
    diagnostic: str = ""
    remote_mta: str | None = None
    #: "failed" for bounces, "delayed" for delay warnings
    action: str = "failed"
    original_recipient: str | None = None
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None


def build_dsn(
    *,
    reporting_mta: str,
    original_envelope_from: str,
    original_message_headers: bytes,
    failed: Sequence[FailedRecipient],
    to_address: str,
    from_address: str,
    arrival_date: datetime,
    original_envelope_id: str | None = None,
    subject: str | None = None,
    message_id: str | None = None,
    date: datetime | None = None,
) -> bytes:
    """The complete DSN message (CRLF line ends), ready to queue with MAIL FROM:<>."""
    if not failed:
        raise ValueError("a DSN needs at least one recipient")
    delayed_only = all(r.action == "delayed" for r in failed)
    if subject is None:
        subject = (
            "Delayed Mail (still being retried)"
            if delayed_only
            else "Undelivered Mail Returned to Sender"
        )
    boundary = f"=_postroom_dsn_{uuid.uuid4().hex}"
    sender = from_address if "<" in from_address else f"Mail Delivery System <{from_address}>"
    head = [
        f"From: {sender}",
        f"To: <{to_address}>" if "<" not in to_address else f"To: {to_address}",
        f"Subject: {_header_text(subject)}",
        f"Date: {format_datetime(date or datetime.now(UTC))}",
        f"Message-ID: {message_id or make_msgid(domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
    ]
    human = _human_text(reporting_mta, original_envelope_from, failed, delayed_only)
    if human.isascii():
        human_part = ["Content-Type: text/plain; charset=us-ascii", "", human]
    else:
        # body_encode wants one character per octet: hand it the UTF-8 octets as latin-1.
        encoded = email.quoprimime.body_encode(human.encode().decode("latin-1"), eol="\r\n")
        human_part = [
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            encoded,
        ]
    status_part = [
        "Content-Type: message/delivery-status",
        "",
        _status_fields(
            reporting_mta, original_envelope_from, failed, arrival_date, original_envelope_id
        ),
    ]
    headers = _header_block(original_message_headers)
    headers_part = "Content-Type: text/rfc822-headers\r\n"
    if not headers.isascii():
        headers_part += "Content-Transfer-Encoding: 8bit\r\n"
    out = "\r\n".join(head) + "\r\n\r\nThis is a MIME-encapsulated delivery status report.\r\n"
    for part in (human_part, status_part):
        out += f"\r\n--{boundary}\r\n" + "\r\n".join(part).rstrip("\r\n") + "\r\n"
    body = out.encode("utf-8")
    body += f"\r\n--{boundary}\r\n{headers_part}\r\n".encode("ascii") + headers
    return body + f"\r\n--{boundary}--\r\n".encode("ascii")


def dsn_address(address: str) -> str:
    """An address as a DSN field value: "rfc822; a@b", or RFC 6533's "utf-8; " form with
    non-ASCII characters written as \\x{HHHH} (message/delivery-status must stay 7-bit)."""
    if address.isascii() and all(33 <= ord(c) < 127 for c in address):
        return f"rfc822; {address}"
    escaped = "".join(
        c if 0x21 <= ord(c) <= 0x7E and c not in "+=\\" else f"\\x{{{ord(c):X}}}" for c in address
    )
    return f"utf-8; {escaped}"


def _status_fields(
    reporting_mta: str,
    envelope_from: str,
    recipients: Sequence[FailedRecipient],
    arrival_date: datetime,
    envelope_id: str | None,
) -> str:
    per_message = [f"Reporting-MTA: dns; {reporting_mta}"]
    if envelope_id:
        per_message.append(f"Original-Envelope-Id: {_ascii(envelope_id)}")
    per_message.append(f"X-Postroom-Sender: {dsn_address(envelope_from or '<>')}")
    per_message.append(f"Arrival-Date: {format_datetime(arrival_date)}")
    blocks = ["\r\n".join(per_message)]
    for r in recipients:
        fields = []
        if r.original_recipient:
            fields.append(f"Original-Recipient: {dsn_address(r.original_recipient)}")
        fields += [
            f"Final-Recipient: {dsn_address(r.address)}",
            f"Action: {r.action}",
            f"Status: {r.status}",
        ]
        if r.remote_mta:
            fields.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.diagnostic:
            diagnostic = (
                r.diagnostic if ";" in r.diagnostic.split(" ", 1)[0] else f"smtp; {r.diagnostic}"
            )
            fields.append(_fold(f"Diagnostic-Code: {_ascii(diagnostic)}"))
        if r.last_attempt:
            fields.append(f"Last-Attempt-Date: {format_datetime(r.last_attempt)}")
        if r.will_retry_until:
            fields.append(f"Will-Retry-Until: {format_datetime(r.will_retry_until)}")
        blocks.append("\r\n".join(fields))
    return "\r\n\r\n".join(blocks)


def _human_text(
    reporting_mta: str, envelope_from: str, recipients: Sequence[FailedRecipient], delayed: bool
) -> str:
    if delayed:
        intro = (
            "Delivery of your message to the recipients below has been delayed.\r\n"
            "The mail system will keep trying; no action is needed yet."
        )
    else:
        intro = (
            "Your message could not be delivered to the recipients below.\r\n"
            "This is a permanent error; the message will not be retried."
        )
    lines = [f"This is the mail system at {reporting_mta}.", "", intro, ""]
    if envelope_from:
        lines += [f"The message was sent by <{envelope_from}>.", ""]
    for r in recipients:
        lines.append(f"<{r.address}>: {r.action} ({r.status})")
        if r.remote_mta:
            lines.append(f"    Remote server: {r.remote_mta}")
        if r.diagnostic:
            reply = r.diagnostic.split(";", 1)[-1].strip() if ";" in r.diagnostic else r.diagnostic
            lines.append(
                textwrap.fill(
                    " ".join(reply.split()),
                    width=76,
                    initial_indent="    Reply: ",
                    subsequent_indent="      ",
                    break_long_words=False,
                    break_on_hyphens=False,
                ).replace("\n", "\r\n")
            )
        lines.append("")
    lines.append("The headers of the original message are attached.")
    return "\r\n".join(lines) + "\r\n"


def _header_block(raw: bytes) -> bytes:
    """The original's header section only, with CRLF line ends and a final CRLF."""
    raw = raw.replace(b"\r\n", b"\n")
    head = raw.split(b"\n\n", 1)[0].strip(b"\n")
    return head.replace(b"\n", b"\r\n") + b"\r\n"


def _ascii(text: str) -> str:
    return " ".join(text.split()).encode("ascii", "replace").decode("ascii")


def _fold(line: str, width: int = 78) -> str:
    """Fold a long header-style field at spaces (continuation lines start with a space)."""
    out, current = [], ""
    for word in line.split(" "):
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = " " + word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return "\r\n".join(out)


def _header_text(text: str) -> str:
    return text if text.isascii() else Header(text, "utf-8").encode()
