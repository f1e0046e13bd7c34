"""Identifiers: time-ordered, URL-safe, unique across processes and nodes.

A message id is 26 characters of lowercase Crockford base32: 48 bits of milliseconds since the
epoch followed by 80 random bits (the ULID layout). Sorting ids sorts by creation time, which the
store uses for cursor pagination, and the same id names the message in SMTP replies, the API,
the CLI and the logs.
"""

from __future__ import annotations

import os
import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# A per-process generator seeded from the OS: ids must be unique, not secret (links that must
# not be guessable carry their own signatures), and os.urandom per id cost a system call.
_rng = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))
#: every pair of digits, so that an id is 13 table lookups (10 bits each), not 26 shifts
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = tuple(range(120, -1, -10))


def new_id(now_ms: int | None = None) -> str:
    """Return a new 26-character id (ULID layout, lowercase)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | _rng.getrandbits(80)  # 128 bits as 130: the first digit is 0-7
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
