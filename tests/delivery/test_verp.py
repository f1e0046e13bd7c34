"""VERP return paths: round trip, case folding, and rejection of anything forged or mangled."""

from __future__ import annotations

import pytest

from postroom.delivery.verp import decode, encode

SECRET = b"s" * 32
MID = "01jd3k5x7y8z9abcdefghjkmnp"


def test_round_trip_and_shape() -> None:
    address = encode("bounces@bounce.example", MID, 123456789, SECRET)
    local, _, domain = address.partition("@")
    assert domain == "bounce.example" and local.startswith(f"bounces+{MID}-")
    assert len(local) <= 64  # RFC 5321 local-part limit
    assert decode(address, SECRET) == (MID, 123456789)
    assert decode(f"<{address.upper()}>", SECRET) == (MID, 123456789)  # case folded in transit


def test_a_plus_in_the_bounce_local_part_is_kept() -> None:
    address = encode("ops+bounces@b.example", MID, 0, SECRET)
    assert address.startswith("ops+bounces+") and decode(address, SECRET) == (MID, 0)


@pytest.mark.parametrize("mangle", [
    lambda a: a.replace(f"{MID}-", f"{MID[:-1]}q-"),  # another message
    lambda a: a.replace("-3y54ii1-", "-3y54ii2-"),  # another recipient
    lambda a: a[: a.index("@") - 1] + "a" + a[a.index("@"):],  # signature changed
    lambda a: a.split("+")[0] + "@bounce.example",  # no token
    lambda a: "bounces@bounce.example",
    lambda a: "not an address",
])
def test_forged_or_mangled_addresses_are_not_ours(mangle: object) -> None:
    address = encode("bounces@bounce.example", MID, 8594805673, SECRET)
    assert "-3y54ii1-" in address
    assert decode(mangle(address), SECRET) is None  # type: ignore[operator]


def test_another_secret_does_not_decode() -> None:
    assert decode(encode("b@x.example", MID, 7, SECRET), b"t" * 32) is None


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        encode("no-at-sign", MID, 1, SECRET)
    with pytest.raises(ValueError):
        encode("b@x.example", MID, -1, SECRET)
