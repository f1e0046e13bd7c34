"""An in-memory view of each account's suppression list, so RCPT never waits on the store.

Why: a store query per RCPT (through a worker thread) cost more CPU than everything else in the
SMTP session put together. The cache loads an account's list on first use, then picks up new
entries in the background every `refresh` seconds (rows since the last look, with an overlap for
commits that land late) and reloads in full every `full_reload` seconds (to see removals).
A suppression added in this process is visible at once (`add_local`); one added by another
process is visible within about `refresh` seconds. Delivery checks the store again before it
sends, so this is an early answer, never the last word.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

OVERLAP = timedelta(seconds=10)


@dataclass
class _Entry:
    addresses: set[str] = field(default_factory=set)
    newest: datetime | None = None
    checked_at: float = 0.0
    full_at: float = 0.0
    task: asyncio.Task[None] | None = None


class SuppressionCache:
    def __init__(self, store: Any, *, refresh: float = 1.0, full_reload: float = 60.0) -> None:
        self.store, self.refresh, self.full_reload = store, refresh, full_reload
        self._entries: dict[str, _Entry] = {}

    async def suppressed(self, account_id: str, address: str) -> bool:
        entry = self._entries.get(account_id)
        if entry is None:
            entry = _Entry()
            await self._load(account_id, entry, full=True)
            self._entries[account_id] = entry
        else:
            now = time.monotonic()
            if now - entry.checked_at > self.refresh and entry.task is None:
                full = now - entry.full_at > self.full_reload
                entry.task = asyncio.get_running_loop().create_task(
                    self._background(account_id, entry, full)
                )
        return address.lower() in entry.addresses

    def add_local(self, account_id: str, address: str) -> None:
        entry = self._entries.get(account_id)
        if entry is not None:
            entry.addresses.add(address.lower())

    def remove_local(self, account_id: str, address: str) -> None:
        entry = self._entries.get(account_id)
        if entry is not None:
            entry.addresses.discard(address.lower())

    async def _background(self, account_id: str, entry: _Entry, full: bool) -> None:
        try:
            with contextlib.suppress(Exception):  # a failed refresh keeps the last view
                await self._load(account_id, entry, full=full)
        finally:
            entry.task = None

    async def _load(self, account_id: str, entry: _Entry, *, full: bool) -> None:
        since = None if full or entry.newest is None else entry.newest - OVERLAP
        started = time.monotonic()
        rows = await asyncio.to_thread(self.store.suppressions_since, account_id, since)
        found = {address for address, _ in rows}
        if full:
            entry.addresses = found
            entry.full_at = started
        else:
            entry.addresses |= found
        for _, created in rows:
            if entry.newest is None or created > entry.newest:
                entry.newest = created
        entry.checked_at = started
