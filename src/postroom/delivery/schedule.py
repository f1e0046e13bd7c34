"""Retry timing, as pure functions: when to try a deferred recipient again, and when to give up.

Kept free of clocks and I/O so the policy can be tested exhaustively; the delivery loop passes
`now` in. Receivers sometimes say how long to wait ("try again in 10 minutes"); honouring that
avoids hammering a greylisting or rate-limiting server at our own, shorter, schedule.
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["next_retry_delay", "requested_wait", "retry_delay_for", "should_expire"]

_MAX_EXPONENT = 60  # 2**60 * base overflows nothing and is far past any cap


def next_retry_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): base, 2·base, 4·base…
    never more than `cap`."""
    if base <= 0 or cap <= 0:
        raise ValueError("base and cap must be positive")
    exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
    return min(base * (2.0**exponent), cap)


def should_expire(accepted_at: datetime, now: datetime, expire_seconds: float) -> bool:
    """True once a message accepted at `accepted_at` has been queued `expire_seconds` or more."""
    return (now - accepted_at).total_seconds() >= expire_seconds


_UNITS = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
}  # fmt: skip
_UNIT = r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b"
_AMOUNT = r"(\d+(?:\.\d+)?|an?|one)"
# A wait is a number with a unit after a word that introduces one: "try again in 10 minutes",
# "retry after 120 seconds", "in 1 hour", "wait 30s", "greylisted for 5 minutes".
_WAIT = re.compile(
    rf"\b(?:in|after|wait(?:ing)?|for|within)\s+(?:at\s+least\s+|about\s+|another\s+)?"
    rf"{_AMOUNT}\s*{_UNIT}",
    re.IGNORECASE,
)
# Only texts about waiting count, so "500 messages in 24 hours" (a quota) is not a wait.
_CONTEXT = re.compile(
    r"\btry\b|retry|again|wait|later|greylist|graylist|defer|back\s*off|come\s+back|resend",
    re.IGNORECASE,
)


def requested_wait(reply_text: str) -> float | None:
    """Seconds a 4xx reply asks us to wait before retrying, or None when it names no wait."""
    if not _CONTEXT.search(reply_text):
        return None
    for match in _WAIT.finditer(reply_text):
        amount, unit = match.group(1).lower(), match.group(2).lower()
        value = 1.0 if amount in ("a", "an", "one") else float(amount)
        seconds = value * _UNITS[unit]
        if seconds > 0:
            return seconds
    return None


def retry_delay_for(attempt: int, reply_text: str | None, *, base: float, cap: float) -> float:
    """The wait to schedule: our backoff, stretched (never shortened) to what the server asked,
    still bounded by `cap`."""
    ours = next_retry_delay(attempt, base=base, cap=cap)
    asked = requested_wait(reply_text) if reply_text else None
    return min(max(ours, asked), cap) if asked is not None else ours
