"""What a delivery batch reads before it sends: messages, accounts, suppressions, deadlines.

A mixin of `worker.BatchDelivery` (like the store's mixins: one concern per module). Messages
are read in one query, or taken from `CopyMaker.recent` when a batch moments ago prepared them;
accounts are cached for 5 s; suppressions are checked in the store per account (a recipient
suppressed since it was accepted is failed, not sent); and a claim whose message expired or
whose `deliver_by` has passed is failed without a try.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from postroom.delivery import outcomes
from postroom.delivery.copies import CopyMaker
from postroom.delivery.outcomes import RetryPolicy
from postroom.delivery.schedule import should_expire
from postroom.model import Account, Claim, MessageRecord
from postroom.store.outbound import Finish

__all__ = ["BatchInputs", "Loaded"]

Loaded = dict[str, tuple[MessageRecord, bytes, Account | None]]


class BatchInputs:
    store: Any
    copies: CopyMaker
    policy: RetryPolicy
    _accounts: dict[str, tuple[float, Account | None]]

    async def _load(self, claims: list[Claim]) -> Loaded:
        """Messages prepared moments ago (`CopyMaker.recent`) are not read again: a fan-out's
        batches would each re-read and re-parse its megabytes of per-recipient options."""
        ids = sorted({c.message_id for c in claims})
        found = {i: hit for i in ids if (hit := self.copies.recent(i)) is not None}
        if len(found) < len(ids):
            found.update(await asyncio.to_thread(
                self.store.load_for_delivery, [i for i in ids if i not in found]))
        out: Loaded = {}
        for message_id, (record, raw) in found.items():
            out[message_id] = (record, raw, await self._account(record.account_id))
        return out

    async def _account(self, account_id: str) -> Account | None:
        hit = self._accounts.get(account_id)
        if hit is None or hit[0] < time.monotonic():
            account = await asyncio.to_thread(self.store.get_account, account_id)
            hit = self._accounts[account_id] = (time.monotonic() + 5.0, account)
        return hit[1]

    async def _suppressed(self, claims: list[Claim]) -> set[int]:
        by_account: dict[str, list[Claim]] = defaultdict(list)
        for c in claims:
            by_account[c.account_id].append(c)
        out: set[int] = set()
        for account_id, group in by_account.items():
            hits = await asyncio.to_thread(
                self.store.suppressed_among, account_id, [c.address for c in group]
            )
            out |= {c.recipient_id for c in group if c.address in hits}
        return out

    def _too_late(self, claim: Claim, loaded: Loaded, now: datetime) -> Finish | None:
        """Failed without a try: the message expired, or its `deliver_by` deadline passed."""
        if should_expire(claim.due_since, now, self.policy.expire):
            return outcomes.expired_finish(claim, self.policy)
        hit = loaded.get(claim.message_id)
        deadline = _deliver_by(hit[0]) if hit is not None else None
        if deadline is not None and now >= deadline:
            return outcomes.deadline_finish(claim, deadline)
        return None


def _deliver_by(record: MessageRecord) -> datetime | None:
    """The message's `deliver_by` option (an ISO 8601 time), if it has a valid one."""
    value = (record.options or {}).get("deliver_by")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
