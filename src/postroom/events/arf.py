"""ARF (RFC 5965) feedback reports → the complained-about message and recipient (pure).

A mailbox provider's feedback loop sends `multipart/report; report-type=feedback-report` with a
human part, a `message/feedback-report` part (Feedback-Type, Original-Mail-From,
Original-Rcpt-To, Arrival-Date, Source-IP…) and the original message or its headers
(`message/rfc822` or `text/rfc822-headers`). Providers redact differently, so the message and
recipient are looked for in several places, best first:

1. Postroom's VERP return path (`local+<message id>-<recipient id>-<sig>@domain`) in
   Original-Mail-From or in the original's Return-Path. Its signature is checked only when the
   caller passes `verify` (e.g. `lambda a: verp.decode(a, secret)`); otherwise `verified` is
   False and the caller should check it before trusting the recipient id.
2. The original's Message-ID when Postroom made it (`<message id@hostname>`).
3. The recipient from Original-Rcpt-To, Microsoft's X-HmXmrOriginalRecipient, or a single To.

Reports that are not complaints (`auth-failure` DMARC forensics, `not-spam`) give None.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

log = logging.getLogger("postroom.events")
NOT_COMPLAINTS = frozenset({"auth-failure", "not-spam"})
_ID = r"[0-9abcdefghjkmnpqrstvwxyz]{26}"
_VERP = re.compile(rf"\+({_ID})-([0-9a-z]{{1,13}})-([a-z2-7]{{16}})@", re.IGNORECASE)
_OWN_MESSAGE_ID = re.compile(rf"^<?({_ID})@([^>\s]+)>?$", re.IGNORECASE)

Verify = Callable[[str], "tuple[str, int] | None"]


@dataclass(frozen=True, slots=True)
class Complaint:
    feedback_type: str
    message_id: str | None = None
    recipient: str | None = None
    recipient_id: int | None = None
    #: the VERP address the ids came from, and whether its signature was checked
    return_path: str | None = None
    verified: bool = False
    message_id_header: str | None = None
    user_agent: str | None = None
    source_ip: str | None = None
    arrival_date: str | None = None
    reported_domain: str | None = None

    def data(self) -> dict[str, Any]:
        """What the `complained` event keeps (non-empty fields)."""
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


def parse_arf(raw: bytes, *, verify: Verify | None = None,
              hostname: str | None = None) -> Complaint | None:
    """The complaint in `raw`, or None when it is no ARF complaint. `hostname`: accept only
    Message-IDs made by this Postroom (`<id@hostname>`); any hostname when None.

    A report that cannot be read (8-bit or malformed headers, broken MIME) is None as well,
    never an exception: mail from the internet is not Postroom's error, and an exception
    would make the SMTP server answer 451 and the sender retry it for days."""
    try:
        return _parse(raw, verify, hostname)
    except Exception:
        log.warning("an ARF report could not be read; ignored", exc_info=True)
        return None


def _parse(raw: bytes, verify: Verify | None, hostname: str | None) -> Complaint | None:
    report = message_from_bytes(raw, policy=compat32)
    if report.get_content_type() != "multipart/report" or \
            (report.get_param("report-type") or "").lower() != "feedback-report":
        return None
    fields, original = _parts(report)
    if fields is None:
        return None
    kind = (_clean(fields.get("Feedback-Type")) or "abuse").lower()  # 8-bit: a Header object
    if kind in NOT_COMPLAINTS:
        return None
    headers = original or Message()
    verp = _verp(fields.get("Original-Mail-From"), verify) or \
        _verp(headers.get("Return-Path"), verify)
    message_id, recipient_id, path, verified = verp or (None, None, None, False)
    mid_header = _clean(headers.get("Message-ID"))
    if message_id is None and mid_header:
        own = _OWN_MESSAGE_ID.match(mid_header)
        if own and (hostname is None or own.group(2).lower() == hostname.lower()):
            message_id = own.group(1).lower()
    return Complaint(
        feedback_type=kind, message_id=message_id, recipient=_recipient(fields, headers),
        recipient_id=recipient_id, return_path=path, verified=verified,
        message_id_header=mid_header, user_agent=_clean(fields.get("User-Agent")),
        source_ip=_clean(fields.get("Source-IP")), arrival_date=_clean(fields.get("Arrival-Date")),
        reported_domain=_clean(fields.get("Reported-Domain")),
    )


def _parts(report: Message) -> tuple[Message | None, Message | None]:
    """(feedback fields, original message or its headers) from the report's parts."""
    fields = original = None
    for part in report.get_payload() if report.is_multipart() else []:
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            fields = _as_headers(part)
        elif ctype == "message/rfc822":
            original = _as_headers(part)
        elif ctype == "text/rfc822-headers":
            original = HeaderParser(policy=compat32).parsestr(_text(part))
    return fields, original


def _as_headers(part: Message) -> Message:
    """A message/* part's content as headers: parsed already by `email`, or still text."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        return payload[0]
    return HeaderParser(policy=compat32).parsestr(_text(part))


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(part.get_payload())


def _clean(value: Any) -> str | None:
    text = " ".join(str(value).split()) if value is not None else ""
    return text or None


def _verp(value: Any, verify: Verify | None) -> tuple[str, int, str, bool] | None:
    for _, address in getaddresses([str(value)] if value else []):
        match = _VERP.search(address)
        if not match:
            continue
        if verify is not None:
            checked = verify(address)
            if checked is None:
                continue  # a forged or foreign token: not ours
            return checked[0], checked[1], address, True
        return match.group(1).lower(), int(match.group(2), 36), address, False
    return None


def _recipient(fields: Message, headers: Message) -> str | None:
    for value in (fields.get("Original-Rcpt-To"), headers.get("X-HmXmrOriginalRecipient"),
                  fields.get("Removal-Recipient")):
        found = [a for _, a in getaddresses([str(value)]) if "@" in a] if value else []
        if found:
            return found[0].lower()
    to = [a for _, a in getaddresses(headers.get_all("To") or []) if "@" in a]
    return to[0].lower() if len(to) == 1 else None
