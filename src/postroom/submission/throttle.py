"""Authentication attempts per client IP (one process; no store round trip), for SMTP AUTH and
the dashboard's sign-in (`web/throttle.py`), both with `[smtp] auth_failure_limit` and
`auth_failure_window`.

An attempt is counted when it starts, before the key is looked up (before any await): attempts
sent in parallel over many connections cannot all slip in under the limit while the first are
still being checked. At most `limit` attempts of one IP are running or have failed within
`window`; past that the IP is refused until its failures age out. A successful attempt takes
back only its own count; the failures before it stay, so signing in with a key of one's own
buys no more guesses. Past the third recent attempt each failure makes its session pause a
little longer: an `await`, so only that client waits. Every IP has its own count: other
clients are never slowed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress

#: Bounds memory under a distributed attack (the oldest IP is forgotten first).
MAX_IPS = 100_000


class AuthThrottle:
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

    async def begin_when_free(self, ip: str, patience: float = 1.0) -> float | None:
        """`begin`, retried for up to `patience` seconds: a client opening many connections at
        once (a pool) gets in as the attempts before it succeed, rather than being refused for
        their running lookups. None when the IP is still over the limit."""
        loop = asyncio.get_running_loop()
        deadline, step = loop.time() + patience, 0.01
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(step, left))
            step = min(step * 2, 0.1)
            stamp = self.begin(ip)
            if stamp is not None:
                return stamp
        return None

    def failed(self, ip: str) -> float:
        """The attempt failed (it stays counted): how long to pause before answering, growing
        past the third recent attempt, up to 3 s."""
        return min(0.25 * max(0, len(self._recent(ip)) - 3), 3.0)

    def succeeded(self, ip: str, stamp: float) -> None:
        """The attempt begun at `stamp` signed in: uncount it, and only it."""
        self.withdraw(ip, stamp)

    def withdraw(self, ip: str, stamp: float) -> None:
        """Uncount the attempt begun at `stamp` (it succeeded, or ended without a verdict)."""
        q = self._attempts.get(ip)
        if q is not None:
            with suppress(ValueError):
                q.remove(stamp)
            if not q:
                del self._attempts[ip]
