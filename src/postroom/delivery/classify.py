"""What a delivery attempt's result means: delivered, deferred or bounced, hard or soft, and why.

Receivers disagree on codes (Microsoft says 5.4.1 for an unknown user, Gmail 4.2.1 for a rate
limit), so the RFC 3463 enhanced code decides only where it is specific; generic codes (X.0.0,
X.2.1, X.4.x, X.5.x …) fall through to patterns on the reply text, and only then to what the code
class means. Pure: no I/O, so it is table-tested against real receivers' replies.

`hard` answers "should this address be suppressed?": true for a 5xx about the address itself
(unknown user, disabled account, non-existent domain), false for a full mailbox, an oversized
message, policy/reputation blocks, TLS and network trouble, which say nothing about the address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from postroom.smtp.replies import Reply

__all__ = ["Category", "LocalError", "Outcome", "OutcomeKind", "classify_error", "classify_reply"]


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


class Category(StrEnum):
    """Why an attempt did not deliver (OTHER for deliveries and anything unrecognised)."""

    #: the mailbox or domain does not exist, or the account is disabled
    INVALID_RECIPIENT = "invalid_recipient"
    #: over quota
    MAILBOX_FULL = "mailbox_full"
    #: the message exceeds a size limit
    MESSAGE_TOO_LARGE = "message_too_large"
    #: spam, blocklists, reputation, rate limits, SPF/DKIM/DMARC, relay denied, greylisting
    POLICY_BLOCK = "policy_block"
    #: the recipient domain's DNS (NXDOMAIN, null MX, SERVFAIL, unroutable)
    DNS = "dns"
    #: STARTTLS unavailable or failed when it was required
    TLS = "tls"
    #: the remote server stopped answering in time
    TIMEOUT = "timeout"
    #: refused, reset or dropped connections
    CONNECTION = "connection"
    OTHER = "other"


class LocalError(StrEnum):
    """Failures seen before or instead of an SMTP reply."""

    DNS = "dns"
    TLS = "tls"
    TIMEOUT = "timeout"
    CONNECTION = "connection"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    hard: bool
    category: Category
    #: RFC 3463 status for DSNs and events, e.g. "5.1.1"
    status: str


_C = Category
_SOFT = frozenset(
    {_C.MAILBOX_FULL, _C.MESSAGE_TOO_LARGE, _C.POLICY_BLOCK, _C.TLS, _C.TIMEOUT, _C.CONNECTION}
)

# (subject, detail) -> category, for codes whose meaning receivers agree on.
_STRONG: dict[tuple[int, int], Category] = {
    (1, 1): _C.INVALID_RECIPIENT,
    (1, 2): _C.INVALID_RECIPIENT,
    (1, 3): _C.INVALID_RECIPIENT,
    (1, 6): _C.INVALID_RECIPIENT,
    (1, 10): _C.INVALID_RECIPIENT,
    (2, 2): _C.MAILBOX_FULL,
    (2, 3): _C.MESSAGE_TOO_LARGE,
    (3, 4): _C.MESSAGE_TOO_LARGE,
    (4, 4): _C.DNS,
    (4, 7): _C.TIMEOUT,
    (7, 10): _C.TLS,
    (7, 11): _C.TLS,
}
# Codes used loosely: the text decides first, these are the fallback.
_WEAK: dict[tuple[int, int], Category] = {
    (2, 1): _C.INVALID_RECIPIENT,
    (4, 1): _C.CONNECTION,
    (4, 2): _C.CONNECTION,
    (4, 3): _C.DNS,
    (7, 0): _C.POLICY_BLOCK,
}

_RULES: list[tuple[Category, re.Pattern[str]]] = [
    (
        _C.MAILBOX_FULL,
        re.compile(
            r"mailbox (is )?full|inbox is full|mail ?folder is full|over ?quota|quota ?exceeded"
            r"|exceeds? (the )?(user'?s? )?quota|exceeded storage allocation|out of storage"
            r"|mailbox size limit|disk quota|storage (space )?(is )?full",
            re.I,
        ),
    ),
    (
        _C.MESSAGE_TOO_LARGE,
        re.compile(
            r"too (large|big)|size (limit|exceeds|exceeded)|exceeds? (the )?(fixed |maximum |max )?"
            r"(message )?size|message (length|size) exceeds|exceeded .{0,30}size limit",
            re.I,
        ),
    ),
    (
        _C.POLICY_BLOCK,
        re.compile(
            r"sender address rejected|sender (domain|address) (does not exist|not found|invalid)"
            r"|gr[ae]ylist",
            re.I,
        ),
    ),
    (
        _C.INVALID_RECIPIENT,
        re.compile(
            r"user unknown|unknown (user|recipient|mailbox|address)|no such (user|mailbox|recipient"
            r"|address|account)|(user|mailbox|recipient|address|account)\b[^.;]{0,40}\b(does not"
            r"|doesn'?t) exist|does not exist|mailbox (unavailable|not found|disabled|is disabled)"
            r"|recipient (not found|unknown|invalid)|invalid (recipient|mailbox)|unrouteable address"
            r"|(account|mailbox|user)\b[^.;]{0,40}\b(disabled|suspended|deactivated|inactive)"
            r"|address rejected: access denied|RecipientNotFound|user not found|address unknown"
            r"|doesn'?t have an? \S+ account|no mailbox here|bad destination mailbox",
            re.I,
        ),
    ),
    (_C.TLS, re.compile(r"starttls|\btls\b|\bssl\b|encryption (is )?required|certificate", re.I)),
    (
        _C.POLICY_BLOCK,
        re.compile(
            r"spam|unsolicited|block ?list|black ?list|deny ?list|blocked|reputation|\brbl\b"
            r"|dnsbl|spamhaus|spamcop|barracuda|policy|not (authori[sz]ed|permitted|allowed)"
            r"|relay(ing)? (access )?denied|unable to relay|rate limit|too many|too quickly"
            r"|at a rate|unusual rate|throttl|\bdmarc\b|\bspf\b|\bdkim\b|authenticat|\bTSS\d+"
            r"|complaints|access denied|traffic not accepted|abuse|suspicious|virus|malware"
            r"|phish|listed",
            re.I,
        ),
    ),
    (
        _C.DNS,
        re.compile(
            r"\bdns\b|host (or domain name )?not found|domain not found|name service error"
            r"|nxdomain|no mx|mx (record|lookup)",
            re.I,
        ),
    ),
    (_C.TIMEOUT, re.compile(r"time[ d-]?out|timed out", re.I)),
    (
        _C.CONNECTION,
        re.compile(
            r"connection (refused|reset|closed|dropped|lost)|lost connection|closing (transmission )?"
            r"channel|network (is )?unreachable",
            re.I,
        ),
    ),
]

_BASIC: dict[int, Category] = {
    421: _C.CONNECTION,
    551: _C.INVALID_RECIPIENT,
    553: _C.INVALID_RECIPIENT,
}
_ENHANCED = re.compile(r"^[245]\.(\d{1,3})\.(\d{1,3})$")
_IN_TEXT = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b", re.M)


def classify_reply(reply: Reply) -> Outcome:
    """Classify the final reply to a recipient (to RCPT, or to the end of DATA)."""
    code, text = reply.code, " ".join(reply.lines)
    enhanced = reply.enhanced or _enhanced_in_text(code, reply.text)
    if 200 <= code < 300:
        return Outcome(OutcomeKind.DELIVERED, False, _C.OTHER, enhanced or "2.0.0")
    permanent = code >= 500 and not _too_many_recipients(code, enhanced, text)
    category = _category(code, enhanced, text)
    status = enhanced or ("5.0.0" if permanent else "4.0.0")
    if not permanent and status.startswith("5"):
        status = "4" + status[1:]  # a 5xx taken as temporary
    if not permanent:
        return Outcome(OutcomeKind.DEFERRED, False, category, status)
    return Outcome(OutcomeKind.BOUNCED, category not in _SOFT, category, status)


def classify_error(
    kind: LocalError | str, *, permanent: bool = False, status: str | None = None
) -> Outcome:
    """Classify a local failure. Only DNS answers (NXDOMAIN, null MX) are normally permanent;
    refused connections, timeouts and TLS trouble are retried until the message expires."""
    kind = LocalError(kind)
    category = Category(kind.value)
    default = {
        LocalError.DNS: ("5.1.2", "4.4.3"),  # bad destination system / directory failure
        LocalError.TLS: ("5.7.10", "4.7.5"),  # encryption needed / cryptographic failure
        LocalError.TIMEOUT: ("5.4.2", "4.4.2"),  # bad connection
        LocalError.CONNECTION: ("5.4.1", "4.4.1"),  # no answer from host
    }[kind][0 if permanent else 1]
    if not permanent:
        return Outcome(OutcomeKind.DEFERRED, False, category, status or default)
    return Outcome(OutcomeKind.BOUNCED, category not in _SOFT, category, status or default)


def _category(code: int, enhanced: str | None, text: str) -> Category:
    key: tuple[int, int] | None = None
    parts = _ENHANCED.match(enhanced or "")
    if parts:
        subject, detail = int(parts.group(1)), int(parts.group(2))
        key = (subject, detail)
        if key in _STRONG:
            return _STRONG[key]
        if subject == 7 and detail != 0:
            return _C.POLICY_BLOCK
    for category, pattern in _RULES:
        if pattern.search(text):
            return category
    if key is not None:
        if key in _WEAK:
            return _WEAK[key]
        if key[0] == 7:
            return _C.POLICY_BLOCK
    return _BASIC.get(code, _C.OTHER)


_TOO_MANY = re.compile(r"too many recipients", re.I)


def _too_many_recipients(code: int, enhanced: str | None, text: str) -> bool:
    """RFC 5321 §4.5.3.1.10: a 552 for too many recipients in one transaction (an old
    RFC 821 usage) is to be treated as temporary: the rest go in the next transaction."""
    return code == 552 and (enhanced == "5.5.3" or _TOO_MANY.search(text) is not None)


def _enhanced_in_text(code: int, text: str) -> str | None:
    match = _IN_TEXT.search(text)
    if match and match.group(1) == str(code)[0]:
        return ".".join(match.groups())
    return None
