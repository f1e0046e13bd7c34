"""Writing a mailbox into a header: shared by the HTTP API's composer and the copy renderer."""

from __future__ import annotations

from email.utils import formataddr

__all__ = ["mailbox"]


def mailbox(name: str, address: str) -> str:
    """`name <address>`, the name RFC 2047-encoded when it needs it; a bare ASCII address as it
    is. A UTF-8 address is written as it is (RFC 6532; delivering it then needs SMTPUTF8),
    which formataddr cannot do: it raised."""
    if address.isascii():
        return formataddr((name, address), charset="utf-8") if name else address
    if not name:
        return address
    shown = formataddr((name, "x@x"), charset="utf-8")
    return f"{shown[:-len('<x@x>')]}<{address}>"
