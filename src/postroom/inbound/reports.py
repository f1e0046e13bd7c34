"""Read bounce reports (pure): RFC 3464 DSNs first, then flufl.bounce's detectors for the
legacy formats of many MTAs (Exim, qmail, Exchange, Yahoo…), then, for mail that plainly comes
from a mailer daemon, a last look for a 5xx status in its own text.

Returns the per-recipient verdicts a report carries. Only failures count (Action: failed, or
a 5.x.x status); delay notices (4.x.x, Action: delayed) are not bounces. Whatever else reaches
a return path (out-of-office and other RFC 3834 auto-replies, people answering the mail) is no
bounce at all: a "call 555-0100" or "see section 5.1.2" in a vacation notice once bounced, and
even suppressed, the recipient who sent it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

from flufl.bounce import all_failures

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_5XX = re.compile(r"\b5[0-5]\d[ -]")
#: Who sends bounces (RFC 5321 §4.5.5 leaves it open; these are the names MTAs use).
_DAEMON = re.compile(r"mailer-?daemon|postmaster|mail ?delivery|mdaemon|@?mail-?daemon", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed)|failure notice|"
    r"mail delivery failed|returned mail|could not be delivered|non-?delivery", re.I)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"absence|vacation)", re.I)


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
    """The report's own text parts: not the returned message, whose words are the sender's."""
    texts: list[str] = []
    _collect_text(msg, texts)
    return "\n".join(texts)[:20000]


def _collect_text(part: Message, texts: list[str]) -> None:
    if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
        return
    if part.is_multipart():
        for sub in part.get_payload():  # type: ignore[union-attr]
            _collect_text(sub, texts)
        return
    if part.get_content_maintype() == "text":
        with contextlib.suppress(LookupError, ValueError):  # an unknown or lying charset
            texts.append(part.get_content() if isinstance(part, EmailMessage)
                         else str(part.get_payload(decode=True) or b"", "utf-8", "replace"))


def _auto_reply(msg: Message) -> bool:
    """An RFC 3834 automatic answer (a vacation notice), not a report of a failure."""
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_AUTO_REPLY_SUBJECT.search(str(msg.get("Subject", ""))))


def _from_daemon(msg: Message) -> bool:
    """Sent by a mail system about a delivery, by its sender or its subject."""
    sender = f"{msg.get('From', '')} {msg.get('Sender', '')}"
    return bool(_DAEMON.search(sender) or _BOUNCE_SUBJECT.search(str(msg.get("Subject", ""))))


def _status_in(text: str, near: str = "") -> str | None:
    """The first 5.x.x status in the text, preferring one on a line that names `near`."""
    lines = text.splitlines()
    for candidates in ([ln for ln in lines if near and near.lower() in ln.lower()], lines):
        for line in candidates:
            for m in _STATUS.finditer(line):
                if m.group(1) == "5":
                    return m.group(0)
    return None


def _detected(msg: Message) -> list[Failure] | None:
    """flufl.bounce's verdict: failures, [] for a delay notice, None when it sees no bounce."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripped over a malformed report: fall back to the text
        return None
    if not permanent:
        return [] if temporary else None
    text = _text_of(msg)
    out = []
    for raw in sorted(permanent):
        address = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        status = _status_in(text, address) or "5.0.0"
        line = next((ln.strip() for ln in text.splitlines() if address.lower() in ln.lower()),
                    "")
        out.append(Failure(address, status, line[:500]))
    return out


def failures(raw: bytes) -> list[Failure]:
    """What a bounce says failed; [] when it is no failure report at all."""
    msg = message_from_bytes(raw, policy=policy.default)
    found = _dsn_failures(msg)
    if found is not None:
        return found
    if _auto_reply(msg):
        return []
    found = _detected(msg)
    if found is not None:
        return found
    if not _from_daemon(msg):
        return []
    text = _text_of(msg)
    status = _status_in(text)
    if status is None and not _SMTP_5XX.search(text):
        return []
    line = next((ln.strip() for ln in text.splitlines()
                 if (status and status in ln) or _SMTP_5XX.search(ln)), "")
    return [Failure(None, status or "5.0.0", line[:500])]
