"""How a personalized copy writes its text: bodies as UTF-8 with a transfer encoding, header
values folded and RFC 2047-encoded when they are not ASCII (pure)."""

from __future__ import annotations

import binascii
import re
from base64 import b64encode

from postroom.render.personalize import header_safe

__all__ = ["encode_body", "fold"]

_NEWLINE = re.compile(r"\r\n|\r|\n")


def encode_body(text: str) -> tuple[bytes, bytes]:
    """(body bytes with CRLF line ends, Content-Transfer-Encoding) for UTF-8 text."""
    text = _NEWLINE.sub("\r\n", text)
    if not text.endswith("\r\n"):
        text += "\r\n"
    data = text.encode("utf-8", "replace")
    if data.isascii() and b"\0" not in data and (
        len(data) <= 998 or max(map(len, data.split(b"\r\n"))) <= 998
    ):
        return data, b"7bit"
    return binascii.b2a_qp(data, istext=True), b"quoted-printable"


def fold(name: str, value: str) -> bytes:
    """The folded value of a header (what follows "Name: "): RFC 2047 encoded words (UTF-8,
    base64) when it is not ASCII, folded at spaces to keep lines under 78 characters."""
    value = header_safe(value)
    if not value.isascii():
        return "\r\n ".join(f"=?utf-8?b?{b64encode(w).decode()}?=" for w in _utf8_chunks(value)
                              ).encode("ascii")
    if len(value) + len(name) < 76:
        return value.encode("ascii")
    lines, line = [], ""
    room = 76 - len(name)
    for word in value.split(" "):
        if line and len(line) + 1 + len(word) > room:
            lines.append(line)
            line, room = word, 77
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines).encode("ascii")


def _utf8_chunks(text: str, size: int = 39) -> list[bytes]:
    """UTF-8 bytes in pieces of at most `size`, never splitting a character: an encoded word
    is then 64 characters, and "Subject: " plus one stays under 78."""
    data = text.encode("utf-8")
    chunks = []
    while data:
        cut = min(size, len(data))
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # a continuation byte
            cut -= 1
        chunks.append(data[:cut])
        data = data[cut:]
    return chunks
