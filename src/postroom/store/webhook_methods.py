"""Events going out: the webhook part of `Store` (a mixin, like http_methods.py)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from postroom.model.webhooks import AttemptOutcome, Delivery, DeliveryJob, Webhook
from postroom.store import webhook_history, webhook_leases, webhook_queue, webhooks
from postroom.store.engine import Database
from postroom.store.webhook_queue import Planner


class WebhookStoreMixin:
    _db: Database

    # endpoints and secrets
    def create_webhook(self, account_id: str, url: str, *, event_types: Sequence[str] = (),
                       batch_size: int = 1, description: str = "") -> tuple[Webhook, str]:
        """A new endpoint and its signing secret (returned this once only)."""
        return webhooks.create_webhook(self._db, account_id, url, event_types=event_types,
                                       batch_size=batch_size, description=description)

    def get_webhook(self, account_id: str, webhook_id: str) -> Webhook | None:
        return webhooks.get_webhook(self._db, account_id, webhook_id)

    def list_webhooks(self, account_id: str | None = None) -> list[Webhook]:
        return webhooks.list_webhooks(self._db, account_id)

    def delete_webhook(self, account_id: str, webhook_id: str) -> bool:
        """Stop an endpoint; its pending deliveries end `cancelled`."""
        return webhooks.delete_webhook(self._db, account_id, webhook_id)

    def rotate_webhook_secret(self, account_id: str, webhook_id: str, *,
                              keep: timedelta = timedelta(hours=24)) -> str | None:
        """A new secret; the old one keeps signing (as a second signature) for `keep`."""
        return webhooks.rotate_webhook_secret(self._db, account_id, webhook_id, keep)

    def rotate_account_secret(self, account_id: str, *,
                              keep: timedelta = timedelta(hours=24)) -> str:
        """A new secret for the account's notify/tracking URL reports (made if none)."""
        return webhooks.rotate_account_secret(self._db, account_id, keep)

    def record_complaint(self, account_id: str, message_id: str | None, recipient: str,
                         data: Mapping[str, Any]) -> int:
        """Append `complained` and suppress the address (reason "complaint") in one
        transaction; returns the event id."""
        return webhooks.record_complaint(self._db, account_id, message_id, recipient, data)

    # the durable queue
    def dispatch_events(self, plan: Planner, *, limit: int = 1000,
                        give_up_after: float = 3 * 86400.0) -> int:
        """Turn new events into deliveries (see store/webhook_queue.py); events read."""
        return webhook_queue.dispatch(self._db, plan, limit=limit, give_up_after=give_up_after)

    def claim_webhook_deliveries(
        self, owner: str, *, now: datetime, limit: int, lease_seconds: float,
        skip: Collection[str] = (), room: Callable[[str], int] | None = None,
    ) -> list[DeliveryJob]:
        kwargs = {"room": room} if room is not None else {}
        return webhook_leases.claim(self._db, owner, now=now, limit=limit,
                                   lease_seconds=lease_seconds, skip=skip, **kwargs)

    def claim_webhook_deliveries_by_account(
        self, owner: str, *, now: datetime, limit: int, lease_seconds: float,
        skip: Collection[str] = (), room: Callable[[str], int] | None = None,
        skip_accounts: Collection[str] = (), account_room: Callable[[str], int] | None = None,
    ) -> list[tuple[str, DeliveryJob]]:
        """(account id, job) pairs; per-account limits as well as per-endpoint ones."""
        kwargs = {k: v for k, v in (("room", room), ("account_room", account_room))
                  if v is not None}
        return webhook_leases.claim_by_account(
            self._db, owner, now=now, limit=limit, lease_seconds=lease_seconds, skip=skip,
            skip_accounts=skip_accounts, **kwargs)

    def record_webhook_attempts(self, owner: str, outcomes: Sequence[AttemptOutcome]) -> int:
        return webhook_leases.record(self._db, owner, outcomes)

    def release_webhook_leases(self, owner: str) -> int:
        return webhook_leases.release(self._db, owner)

    def webhook_delivery_counts(self) -> dict[str, int]:
        return webhook_leases.counts(self._db)

    def next_webhook_due_at(self) -> datetime | None:
        return webhook_leases.next_due_at(self._db)

    # history
    def list_webhook_deliveries(self, account_id: str, webhook_id: str | None, *,
                                limit: int = 50, before: str | None = None,
                                status: str | None = None) -> list[Delivery]:
        """Newest first, each with its attempts; `webhook_id=None`: notify/tracking URLs."""
        return webhook_history.list_deliveries(self._db, account_id, webhook_id, limit=limit,
                                               before=before, status=status)

    def purge_webhook_deliveries(self, before: datetime, *, limit: int = 5000) -> int:
        """Forget finished deliveries last changed before `before` (a batch at a time)."""
        return webhook_history.purge(self._db, before, limit=limit)
