"""What an HTTP answer means for a webhook delivery, and when to try again (pure).

2xx is done. Timeouts, connection errors, 5xx, 429 and 408 are the receiver's passing trouble:
retry with exponential backoff (base, 2·base, 4·base… capped), honouring Retry-After, until the
delivery's give-up time. Any other 4xx says the request itself is unwanted (gone, forbidden,
malformed): retrying cannot fix that, so the delivery fails at once. 3xx is retried: redirects
are not followed (the signature names one URL) and the owner may fix the URL meanwhile.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import Enum

RETRYABLE_4XX = frozenset({408, 429})
#: delta-seconds (RFC 9110): ASCII digits only. str.isdigit() also takes "²" or "٣", which
#: float() then refuses; a receiver's header must never make an attempt raise.
_SECONDS = re.compile(r"[0-9]{1,12}")


class Verdict(Enum):
    DONE = "done"
    RETRY = "retry"
    STOP = "stop"


def verdict(status_code: int | None) -> Verdict:
    """`None` stands for no answer at all (timeout, refused, reset)."""
    if status_code is None:
        return Verdict.RETRY
    if 200 <= status_code < 300:
        return Verdict.DONE
    if 400 <= status_code < 500 and status_code not in RETRYABLE_4XX:
        return Verdict.STOP
    return Verdict.RETRY


def backoff(attempt: int, *, base: float, cap: float, jitter: float = 0.1,
            rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): base·2^(n-1), at most `cap`,
    shortened by up to `jitter` (a fraction) so that many deliveries failed together spread out
    instead of retrying in lockstep. Never longer than base for the first retry."""
    delay = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 60))
    return delay * (1.0 - jitter * (rng or random).random())


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if it has one."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def next_attempt(attempt: int, now: datetime, give_up_at: datetime, *, base: float, cap: float,
                 asked: float | None = None) -> datetime | None:
    """When to try again (a last try at `give_up_at` itself), or None once it has passed."""
    if now >= give_up_at:
        return None
    delay = backoff(attempt, base=base, cap=cap)
    if asked is not None:
        delay = min(max(delay, asked), cap)
    return min(now + timedelta(seconds=delay), give_up_at)
