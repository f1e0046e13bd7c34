"""Retry policy for webhook deliveries: what is retried, how soon, and until when."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from postroom.events.policy import Verdict, backoff, next_attempt, retry_after, verdict

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("code", "want"), [
    (200, Verdict.DONE), (204, Verdict.DONE), (None, Verdict.RETRY), (500, Verdict.RETRY),
    (502, Verdict.RETRY), (503, Verdict.RETRY), (429, Verdict.RETRY), (408, Verdict.RETRY),
    (301, Verdict.RETRY), (400, Verdict.STOP), (401, Verdict.STOP), (404, Verdict.STOP),
    (410, Verdict.STOP), (413, Verdict.STOP),
])
def test_verdicts(code: int | None, want: Verdict) -> None:
    assert verdict(code) is want


def test_backoff_doubles_from_base_within_jitter_and_stops_at_cap() -> None:
    rng = random.Random(7)
    waits = [backoff(n, base=10, cap=3600, rng=rng) for n in range(1, 12)]
    assert 9.0 <= waits[0] <= 10.0  # first retry within retry_base_seconds
    assert 18.0 <= waits[1] <= 20.0
    assert all(w <= 3600 for w in waits) and waits[-1] >= 3240


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after("120", NOW) == 120.0
    assert retry_after("Tue, 24 Nov 2026 12:01:00 GMT", NOW) == 60.0
    assert retry_after("soon", NOW) is None and retry_after(None, NOW) is None


def test_next_attempt_honours_retry_after_and_ends_at_give_up() -> None:
    give_up = NOW + timedelta(days=3)
    when = next_attempt(1, NOW, give_up, base=10, cap=3600, asked=300)
    assert when == NOW + timedelta(seconds=300)
    late = give_up - timedelta(minutes=1)
    assert next_attempt(40, late, give_up, base=10, cap=3600) == give_up  # one last try
    assert next_attempt(41, give_up, give_up, base=10, cap=3600) is None


def test_three_days_of_retries_is_about_seventy_attempts() -> None:
    t, give_up, n = NOW, NOW + timedelta(days=3), 0
    while (t := next_attempt(n + 1, t, give_up, base=10, cap=3600)) is not None:
        n += 1
        if t == give_up:
            break
    assert (give_up - NOW) >= timedelta(hours=24) and 60 <= n <= 90
