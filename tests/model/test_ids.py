"""Message ids: 26 Crockford base32 digits of (48-bit milliseconds, 80 random bits), sortable."""

from __future__ import annotations

from postroom.model.ids import _ALPHABET, _rng, new_id


def _reference(ms: int, rand: int) -> str:
    """The ULID layout written the slow, obvious way."""
    value = (ms << 80) | rand
    return "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def test_ids_match_the_ulid_layout_digit_for_digit() -> None:
    for ms in (0, 1, 1_763_830_000_000, (1 << 48) - 1):
        state = _rng.getstate()
        rand = _rng.getrandbits(80)
        _rng.setstate(state)
        assert new_id(ms) == _reference(ms, rand)


def test_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_id(ms) for ms in range(1_763_830_000_000, 1_763_830_000_000 + 2000)]
    assert ids == sorted(ids)
    assert len(set(new_id() for _ in range(10_000))) == 10_000
    assert all(len(i) == 26 and set(i) <= set(_ALPHABET) for i in ids)
