"""Retry timing: exponential backoff with a cap, expiry, and waits named in 4xx replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.delivery.schedule import (
    next_retry_delay,
    requested_wait,
    retry_delay_for,
    should_expire,
)


def test_backoff_doubles_from_base() -> None:
    delays = [next_retry_delay(n, base=60, cap=7200) for n in range(1, 9)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3840, 7200]


def test_backoff_edges() -> None:
    assert next_retry_delay(0, base=60, cap=7200) == 60
    assert next_retry_delay(-3, base=60, cap=7200) == 60
    assert next_retry_delay(10_000, base=60, cap=7200) == 7200
    assert next_retry_delay(1, base=600, cap=300) == 300
    with pytest.raises(ValueError):
        next_retry_delay(1, base=0, cap=10)


@given(st.integers(min_value=-5, max_value=5000), st.floats(0.001, 1e6), st.floats(0.001, 1e7))
def test_backoff_is_bounded_and_monotonic(attempt: int, base: float, cap: float) -> None:
    delay = next_retry_delay(attempt, base=base, cap=cap)
    assert 0 < delay <= cap
    assert next_retry_delay(attempt + 1, base=base, cap=cap) >= delay


def test_expiry() -> None:
    accepted = datetime(2024, 1, 1, tzinfo=UTC)
    five_days = 432000.0
    assert not should_expire(accepted, accepted, five_days)
    assert not should_expire(accepted, accepted + timedelta(days=5, seconds=-1), five_days)
    assert should_expire(accepted, accepted + timedelta(days=5), five_days)
    assert should_expire(accepted, accepted + timedelta(days=9), five_days)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4.7.1 Please try again in 10 minutes", 600),
        ("Greylisted, retry after 120 seconds", 120),
        ("Rate limited, try again in 1 hour", 3600),
        ("Service busy, please retry in 2 hrs", 7200),
        ("4.7.0 Temporarily deferred, wait 30s", 30),
        ("Greylisted for 5 minutes", 300),
        ("<a@b.test>: Recipient address rejected: Greylisted for 300 seconds", 300),
        ("Too many connections, try again in an hour", 3600),
        ("Please come back in 1.5 min", 90),
        ("Deferred: retry in 45 secs", 45),
        ("try again after 15m", 900),
    ],
)
def test_requested_wait_is_read(text: str, seconds: float) -> None:
    assert requested_wait(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "4.7.0 Try again later",
        "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume",
        "452 4.2.2 The recipient's inbox is out of storage space",
        "4.7.1 You have exceeded the limit of 500 messages in 24 hours",
        "451 4.3.0 Temporary local problem",
        "try again in 0 minutes",
        "",
    ],
)
def test_requested_wait_none(text: str) -> None:
    assert requested_wait(text) is None


def test_retry_delay_honours_longer_requests_within_the_cap() -> None:
    assert retry_delay_for(1, "try again in 10 minutes", base=60, cap=7200) == 600
    assert retry_delay_for(5, "try again in 1 minute", base=60, cap=7200) == 960  # never shorter
    assert retry_delay_for(1, "try again in 5 hours", base=60, cap=7200) == 7200
    assert retry_delay_for(2, None, base=60, cap=7200) == 120
