"""List-Unsubscribe (https + mailto) and RFC 8058 one-click headers for bulk mail (pure)."""

from __future__ import annotations


def headers(https_url: str, mailto: str | None) -> bytes:
    """Header lines to prepend (CRLF-terminated)."""
    targets = [f"<{https_url}>"]
    if mailto:
        targets.append(f"<mailto:{mailto}>")
    return (f"List-Unsubscribe: {', '.join(targets)}\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n").encode()


def mailto_address(local: str, domain: str, token: str) -> str:
    """unsubscribe+<token>@domain: the token is what the inbound side verifies."""
    return f"{local}+{token}@{domain}"
