"""Postroom-Signature: made and checked the way docs/WEBHOOKS.md tells receivers to."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from postroom.events.signing import sign, verify

BODY = b'{"events":[{"id":1,"type":"delivered"}]}'


def test_header_is_t_then_one_v1_per_secret() -> None:
    header = sign(BODY, ["new", "old"], timestamp=1_800_000_000)
    t, v_new, v_old = header.split(",")
    assert t == "t=1800000000"
    expected = hmac.new(b"new", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert v_new == f"v1={expected}" and v_old.startswith("v1=") and v_old != v_new


@pytest.mark.parametrize("secret", ["new", "old"])
def test_either_secret_verifies_during_a_rotation(secret: str) -> None:
    header = sign(BODY, ["new", "old"], timestamp=1000)
    assert verify(BODY, header, secret, now=1010)


def test_wrong_secret_tampered_body_or_stale_time_fail() -> None:
    header = sign(BODY, ["s"], timestamp=1000)
    assert not verify(BODY, header, "other", now=1000)
    assert not verify(BODY + b" ", header, "s", now=1000)
    assert not verify(BODY, header, "s", now=1000 + 301)
    assert not verify(BODY, header.replace("t=1000", "t=1001"), "s", now=1000)
    assert not verify(BODY, "v1=abc", "s", now=1000)
    assert not verify(BODY, "t=x,v1=abc", "s", now=1000)


def test_no_secret_is_a_bug() -> None:
    with pytest.raises(ValueError):
        sign(BODY, [])
