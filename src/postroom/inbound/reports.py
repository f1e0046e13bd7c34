"""Read bounce reports (pure): RFC 3464 DSNs first, then the common shapes of legacy bounces.

Returns the per-recipient verdicts a report carries. Only failures count (Action: failed, or
a 5.x.x status); delay notices (4.x.x, Action: delayed) are not bounces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_5XX = re.compile(r"\b5[0-5]\d[ -]")


@dataclass(frozen=True, slots=True)
class Failure:
    recipient: str | None  # Final-Recipient, when the report names it
    status: str  # enhanced status code, e.g. "5.1.1"
    diagnostic: str

    @property
    def hard(self) -> bool:
        """The address itself is bad (5.1.x): suppress it. Full mailboxes, policy blocks and
        the rest say nothing about the address."""
        return self.status.startswith("5.1.")


def _address(value: str | None) -> str | None:
    if not value:
        return None
    _, _, addr = value.partition(";")
    return (addr or value).strip().strip("<>") or None


def _dsn_failures(msg: Message) -> list[Failure] | None:
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        groups = payload if isinstance(payload, list) else []
        out = []
        for group in groups[1:]:  # the first group is per-message
            action = str(group.get("Action", "")).strip().lower()
            status = str(group.get("Status", "")).strip()
            if action != "failed" and not status.startswith("5"):
                continue
            out.append(Failure(_address(group.get("Final-Recipient")), status or "5.0.0",
                               str(group.get("Diagnostic-Code", "")).strip()[:500]))
        return out
    return None


def _text_of(msg: Message) -> str:
    texts = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            try:
                texts.append(part.get_content() if isinstance(part, EmailMessage)
                             else str(part.get_payload(decode=True) or b"", "utf-8", "replace"))
            except (LookupError, ValueError):
                continue
    return "\n".join(texts)[:20000]


def failures(raw: bytes) -> list[Failure]:
    """What a bounce says failed; [] when it is no failure report at all."""
    msg = message_from_bytes(raw, policy=policy.default)
    found = _dsn_failures(msg)
    if found is not None:
        return found
    text = _text_of(msg)
    status = next((m.group(0) for m in _STATUS.finditer(text) if m.group(1) == "5"), None)
    if status is None and not _SMTP_5XX.search(text):
        return []
    line = next((ln.strip() for ln in text.splitlines()
                 if (status and status in ln) or _SMTP_5XX.search(ln)), "")
    return [Failure(None, status or "5.0.0", line[:500])]
