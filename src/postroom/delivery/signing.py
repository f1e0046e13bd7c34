"""What each outgoing copy carries beyond the stored bytes: our `Received:` field and, when the
header From domain has a key (`postroom domains add`), a `DKIM-Signature:`.

A message with nothing to render (`delivery.copies`) is otherwise sent byte for byte. A message
whose copies are all alike is rendered once for every recipient, so several RCPTs can share one
transaction and the RSA signature is computed once per message. A personalized copy is signed
after it is rendered, with a signature of its own that covers its Subject, To, body and
List-Unsubscribe fields. Signers are cached per domain for `ttl` seconds, so a key added while
Postroom runs is used soon after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from postroom.model.records import MessageRecord
from postroom.render.dkim import DkimSigner

log = logging.getLogger("postroom.delivery")

__all__ = ["SignerCache", "received_field", "render_copy"]

_PROTOCOLS = {"smtp": "ESMTP", "api": "HTTP", "http": "HTTP", "dsn": "local"}


_date_cache: tuple[int, str] = (0, "")


def _date_now() -> str:
    """The current RFC 5322 date, formatted once per second (not once per copy)."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, format_datetime(datetime.fromtimestamp(second, UTC)))
    return _date_cache[1]


def received_field(message: MessageRecord, hostname: str, now: datetime | None = None) -> bytes:
    """RFC 5321 §4.4 trace field for our hop (folded, CRLF-terminated)."""
    when = format_datetime(now) if now is not None else _date_now()
    source = f"from [{message.client_ip}]\r\n\t" if message.client_ip else ""
    protocol = _PROTOCOLS.get(message.source, message.source.upper() or "local")
    return (
        f"Received: {source}by {hostname} (Postroom) with {protocol} id {message.id};\r\n"
        f"\t{when}\r\n"
    ).encode("ascii", "replace")


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().rstrip(">").rstrip(".").lower()


class SignerCache:
    """DKIM signers by sender domain, loaded from the store with `lookup(domain)`."""

    def __init__(
        self,
        lookup: Callable[[str], Any],
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._clock = clock
        self._signers: dict[str, tuple[float, DkimSigner | None]] = {}

    def cached(self, domain: str) -> tuple[bool, DkimSigner | None]:
        """(known, signer) without touching the store."""
        hit = self._signers.get(domain)
        if hit is not None and hit[0] > self._clock():
            return True, hit[1]
        return False, None

    def load(self, domain: str) -> DkimSigner | None:
        """Blocking (a store read): call it from a thread."""
        signer = None
        key = self._lookup(domain)
        if key is not None:
            try:
                signer = DkimSigner(key.domain, key.selector, key.private_key, key.algorithm)
            except ValueError as exc:
                log.error("DKIM key for %s is unusable: %s", domain, exc)
        self._signers[domain] = (self._clock() + self._ttl, signer)
        return signer


def render_copy(
    raw: bytes, message: MessageRecord, hostname: str, signer: DkimSigner | None,
    received: bytes | None = None,
) -> bytes:
    """Received + (DKIM-Signature) + the copy (`received`: a field made earlier, reused for
    the copies of one message)."""
    signature = b""
    if signer is not None:
        try:
            signature = signer.sign(raw)
        except Exception:  # a message the signer cannot parse still goes out, unsigned
            log.exception("DKIM signing failed for message %s", message.id)
    return (received or received_field(message, hostname)) + signature + raw


def resigner(signer: DkimSigner) -> Callable[[bytes], bytes]:
    """Signs a copy again after the SMTP client converted it (7-bit downgrade for a peer
    without 8BITMIME changes the body; the signature made by `render_copy` over the stored
    bytes would fail there). Replaces the first DKIM-Signature field, ours: `render_copy`
    puts it right after our Received field, in front of any the sender brought."""
    def resign(data: bytes) -> bytes:
        start = data.find(b"\r\nDKIM-Signature:")
        if start < 0:
            return data
        start += 2
        end = start
        while True:  # to the end of the (folded) field
            nl = data.find(b"\r\n", end)
            if nl < 0:
                return data
            end = nl + 2
            if data[end:end + 1] not in (b" ", b"\t"):
                break
        unsigned = data[:start] + data[end:]
        try:
            return data[:start] + signer.sign(unsigned) + data[end:]
        except Exception:  # as in render_copy: unsigned rather than not sent
            log.exception("DKIM signing of a converted copy failed")
            return unsigned

    return resign
