"""Functions run in separate processes by the tests (importable by multiprocessing spawn)."""

from __future__ import annotations

import time
from datetime import datetime

from postroom.store import Store


def claim_until_empty(url: str, owner: str, now_iso: str, start_at: float) -> list[int]:
    """Claim in small batches until nothing is left; returns the recipient ids claimed."""
    store = Store(url)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        now = datetime.fromisoformat(now_iso)
        claimed: list[int] = []
        while True:
            claims = store.claim_due(owner, now=now, limit=5, lease_seconds=300)
            if not claims:
                return claimed
            claimed.extend(c.recipient_id for c in claims)
    finally:
        store.close()
