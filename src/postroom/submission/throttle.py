"""Per-IP throttling of failed authentications (one process; no store round trip).

After `limit` failures inside `window` seconds an IP is refused until its failures age out, and
every failure past the third costs that session a growing pause. The pause is an `await`, so only
the guessing client waits; other sessions on the same loop carry on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class AuthThrottle:
    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, ip: str) -> deque[float]:
        q = self._failures.get(ip)
        if q is None:
            return deque()
        cutoff = self.clock() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        if not q:
            del self._failures[ip]
        return q

    def blocked(self, ip: str) -> bool:
        return len(self._recent(ip)) >= self.limit

    def record_failure(self, ip: str) -> float:
        """Count a failure; return how long the failing session should pause (seconds)."""
        q = self._recent(ip)
        q.append(self.clock())
        self._failures[ip] = q
        if len(self._failures) > 100_000:  # bound memory under a distributed attack
            self._failures.pop(next(iter(self._failures)))
        return min(0.25 * max(0, len(q) - 3), 3.0)

    def record_success(self, ip: str) -> None:
        self._failures.pop(ip, None)
