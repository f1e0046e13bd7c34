"""Turning stored message bytes into what may legally go on the wire to one particular peer.

Three jobs, all pure: CRLF normalisation and dot-stuffing (RFC 5321 §4.5.2), and — when the peer
lacks 8BITMIME (RFC 6152) or SMTPUTF8 (RFC 6531) — a downgrade: 8-bit body parts are re-encoded
as quoted-printable (text) or base64 (anything else), and UTF-8 header fields become RFC 2047
encoded words. What cannot be downgraded (a UTF-8 address inside a header, 8-bit bytes outside
any MIME part) raises `NotConvertible`, which the transaction turns into a permanent 5.6.x
failure instead of sending bytes the peer never agreed to receive.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import quopri
import re
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message

_NEWLINE = re.compile(rb"\r\n|\r|\n")
_UNFOLD = re.compile(r"\r?\n(?=[ \t])")
_COMPAT = email.policy.compat32.clone(linesep="\r\n")
_FOLD = email.policy.SMTP.clone(max_line_length=78)
# RFC 3463 codes for the two refusals (RFC 6531 §3.4 names 5.6.7 for missing SMTPUTF8).
CONVERSION_FAILED = "5.6.3"
SMTPUTF8_REQUIRED = "5.6.7"


class NotConvertible(ValueError):
    """The message needs an extension the peer lacks and cannot be rewritten to avoid it."""

    def __init__(self, text: str, enhanced: str = CONVERSION_FAILED) -> None:
        super().__init__(text)
        self.enhanced = enhanced


def has_8bit(data: bytes) -> bool:
    return not data.isascii()


def normalise_crlf(data: bytes) -> bytes:
    """Every bare CR, bare LF or CRLF becomes CRLF: SMTP lines end in CRLF and nothing else."""
    crlf = data.count(b"\r\n")
    if data.count(b"\r") == crlf == data.count(b"\n"):  # the usual case: nothing to rewrite
        return data
    return _NEWLINE.sub(b"\r\n", data)


def dot_stuff(data: bytes) -> bytes:
    """Wire form of a CRLF-normalised message: leading dots doubled, ending CRLF + `.` CRLF."""
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def split_header(data: bytes) -> tuple[bytes, bytes]:
    """(header block, body) of a CRLF message; the blank line belongs to neither."""
    if data.startswith(b"\r\n"):
        return b"", data[2:]
    head, sep, body = data.partition(b"\r\n\r\n")
    return (head + b"\r\n", body) if sep else (data, b"")


def utf8_header(data: bytes) -> bool:
    """True when the top-level header holds valid UTF-8 beyond ASCII (an RFC 6532 message)."""
    head, _ = split_header(data)
    if head.isascii():
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """The message as it will be sent (CRLF, maybe downgraded, not yet dot-stuffed)."""

    data: bytes
    eight_bit: bool  # still carries 8-bit bytes: send BODY=8BITMIME
    utf8_headers: bool  # UTF-8 header fields: send SMTPUTF8 (only when the peer offers it)
    converted: bool


def prepare_message(message: bytes, *, eight_bit_mime: bool, smtputf8: bool) -> PreparedMessage:
    """Fit `message` to a peer offering (or not) 8BITMIME and SMTPUTF8; see module docstring."""
    data = normalise_crlf(message)
    head, _ = split_header(data)
    fix_headers = not smtputf8 and not head.isascii()
    fix_body = not eight_bit_mime and not data.isascii()
    converted = False
    if fix_headers or fix_body:
        try:
            data = _downgrade(data, headers=fix_headers or not eight_bit_mime, bodies=fix_body)
        except NotConvertible:
            raise
        except Exception:  # the email package trips over some malformed MIME; refuse, not crash
            raise NotConvertible("message is malformed and cannot be converted to 7-bit") from None
        converted = True
        if not eight_bit_mime and not data.isascii():
            raise NotConvertible("message has 8-bit data that cannot be converted to 7-bit")
    return PreparedMessage(
        data=data,
        eight_bit=not data.isascii(),
        utf8_headers=smtputf8 and utf8_header(data),
        converted=converted,
    )


def _downgrade(data: bytes, *, headers: bool, bodies: bool) -> bytes:
    msg = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.compat32)
    if bodies and msg.get("MIME-Version") is None:
        _make_mime(msg)
    for part in msg.walk():
        if headers:
            _downgrade_headers(part)
        if bodies and not part.is_multipart():
            _encode_body(part)
    if bodies:
        for part in msg.walk():
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if part.is_multipart() and cte in ("8bit", "binary"):
                part.replace_header("Content-Transfer-Encoding", "7bit")
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, maxheaderlen=0, policy=_COMPAT).flatten(msg)
    return out.getvalue()


def _raw(value: str) -> bytes:
    """compat32 keeps undecodable header bytes as surrogate escapes; get the bytes back."""
    return value.encode("ascii", "surrogateescape")


def _downgrade_headers(part: Message) -> None:
    items = list(part.raw_items())
    if all(_raw(v).isascii() for _, v in items):
        return
    for name in {n for n, _ in items}:
        del part[name]
    for name, value in items:
        part[name] = _encode_field(name, value) if not _raw(value).isascii() else value


def _encode_field(name: str, value: str) -> str:
    raw = _raw(value)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # legacy unlabelled 8-bit: the least wrong guess
    text = _UNFOLD.sub("", text).strip()
    header = _FOLD.header_factory(name, text)
    for address in getattr(header, "addresses", ()):
        if not address.addr_spec.isascii():
            raise NotConvertible(
                "SMTPUTF8 not supported by the receiving server", SMTPUTF8_REQUIRED
            )
    folded = header.fold(policy=_FOLD)
    folded = folded[len(name) + 1 :].strip().replace("\r\n", "\n")
    if not folded.isascii():
        raise NotConvertible("SMTPUTF8 not supported by the receiving server", SMTPUTF8_REQUIRED)
    return folded


def _make_mime(msg: Message) -> None:
    """An 8-bit message without MIME has no charset to re-encode for: as UTF-8 (what such mail
    is nowadays) it becomes a MIME text/plain message; anything else cannot be converted.
    (Adding a transfer encoding alone left readers with `Caf=C3=A9`.)"""
    raw = msg.get_payload(decode=True)
    if msg.is_multipart() or not isinstance(raw, bytes) or raw.isascii():
        return
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotConvertible("8-bit message without MIME in an unknown charset") from None
    msg["MIME-Version"] = "1.0"
    if "Content-Type" not in msg:
        msg["Content-Type"] = 'text/plain; charset="utf-8"'


def _encode_body(part: Message) -> None:
    """Re-encode one leaf part carrying 8-bit bytes; 7-bit parts are left byte-for-byte."""
    cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if cte not in ("7bit", "8bit", "binary"):
        return  # already encoded (or unknown): left alone; the final 7-bit check catches junk
    raw = part.get_payload(decode=True)  # identity encodings: the raw bytes as received
    if not isinstance(raw, bytes) or raw.isascii():
        return
    if part.get_content_maintype() == "text":
        encoded, cte = quopri.encodestring(raw).decode("ascii"), "quoted-printable"
    else:  # the parse saw LF line ends: the bytes on the wire had CRLF, and so must the data
        encoded, cte = base64.encodebytes(raw.replace(b"\n", b"\r\n")).decode("ascii"), "base64"
    if "Content-Transfer-Encoding" in part:
        part.replace_header("Content-Transfer-Encoding", cte)
    else:
        part["Content-Transfer-Encoding"] = cte
    part.set_payload(encoded)
