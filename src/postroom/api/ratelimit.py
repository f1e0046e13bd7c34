"""A token bucket per API key (one process): `[http] rate_limit_per_second`, burst of 2 s."""

from __future__ import annotations

import time


class RateLimiter:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate * 2)
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 100_000:
            self._buckets.pop(next(iter(self._buckets)))
        return True
