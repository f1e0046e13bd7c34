"""Sign-in attempts per client IP (one process), with the SMTP AUTH limits.

Unlike SMTP's `AuthThrottle`, an attempt is counted when it starts, before the form is read
or the key looked up: requests sent in parallel cannot all slip in under the limit while the
first are still being checked. A successful sign-in takes back only its own attempt; the
failures before it stay until they age out, so signing in with a key of one's own does not
buy more guesses.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress

#: Bounds memory under a distributed attack (the oldest IP is forgotten first).
MAX_IPS = 100_000


class SignInThrottle:
    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._attempts: dict[str, deque[float]] = {}

    def _recent(self, ip: str) -> deque[float]:
        q = self._attempts.get(ip)
        if q is None:
            return deque()
        cutoff = self.clock() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            del self._attempts[ip]
        return q

    def begin(self, ip: str) -> float | None:
        """Count an attempt from `ip` now; its stamp, or None when the IP is over the limit
        (failures and attempts still running together)."""
        q = self._recent(ip)
        if len(q) >= self.limit:
            return None
        stamp = self.clock()
        q.append(stamp)
        self._attempts[ip] = q
        if len(self._attempts) > MAX_IPS:
            self._attempts.pop(next(iter(self._attempts)))
        return stamp

    def failed(self, ip: str) -> float:
        """The attempt failed (it stays counted): how long to pause before answering, growing
        past the third recent attempt, up to 3 s."""
        return min(0.25 * max(0, len(self._recent(ip)) - 3), 3.0)

    def succeeded(self, ip: str, stamp: float) -> None:
        """The attempt begun at `stamp` signed in: uncount it, and only it."""
        q = self._attempts.get(ip)
        if q is not None:
            with suppress(ValueError):
                q.remove(stamp)
            if not q:
                del self._attempts[ip]
