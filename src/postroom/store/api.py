"""`Store`: the one object the other stages use; nothing outside `postroom.store` sees SQL.

Every method is synchronous and thread-safe (each call takes its own pooled connection and
transaction) except `enqueue`, which is a coroutine fed to the group-commit writer thread.
Failures surface as `postroom.store.errors.StoreError` subclasses; programming errors such as
a naive datetime raise `ValueError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from postroom.model.records import (
    Account,
    ApiKey,
    Claim,
    Event,
    EventType,
    MessageRecord,
    NewMessage,
    RecipientStatus,
    Suppression,
)
from postroom.store import accounts, claim, delivery, domains, migrate, outbound, reads, rows
from postroom.store.account_lists import AccountListsMixin
from postroom.store.commit import COMMIT_TIMEOUT, GroupCommitWriter
from postroom.store.domains import DkimKey
from postroom.store.engine import Database
from postroom.store.http_methods import HttpStoreMixin
from postroom.store.outbound import Finish, FollowUps
from postroom.store.webhook_methods import WebhookStoreMixin


class Store(HttpStoreMixin, WebhookStoreMixin, AccountListsMixin):
    """The durable queue and everything else Postroom keeps (SQLite or PostgreSQL)."""

    def __init__(self, url: str, *, relaxed: bool = False,
                 commit_timeout: float = COMMIT_TIMEOUT) -> None:
        """`relaxed`: commits without fsync on SQLite (see `engine.make_engine`); for the
        delivery and webhook processes, never for a process that accepts mail.
        `commit_timeout`: how long `enqueue` waits for its commit (`[storage] commit_timeout`)."""
        self._db = Database(url, relaxed=relaxed)
        #: The group-commit writer; `writer.commits` counts its transactions.
        self.writer = GroupCommitWriter(self._db, commit_timeout=commit_timeout)

    @classmethod
    def open(cls, url: str, *, commit_timeout: float = COMMIT_TIMEOUT) -> Store:
        """Connect and upgrade the schema to the newest migration."""
        store = cls(url, commit_timeout=commit_timeout)
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._db.dialect

    def migrate(self) -> None:
        """Upgrade the schema to head (safe to run from several processes at once)."""
        migrate.migrate(self._db)

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        return migrate.current_revision(self._db)

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers (for health checks)."""
        self.count_accounts()

    def close(self) -> None:
        """Commit pending enqueues, stop the writer and close all connections."""
        self.writer.close()
        self._db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # accounts ------------------------------------------------------------------------------

    def create_account(
        self,
        name: str,
        *,
        sender_domains: Sequence[str] = (),
        sender_addresses: Sequence[str] = (),
        bounce_address: str | None = None,
        daily_limit: int | None = None,
        allow_ips: Sequence[str] = (),
        trusted_networks: Sequence[str] = (),
    ) -> Account:
        """Create an account; AlreadyExists if the name is taken."""
        return accounts.create_account(
            self._db, name, sender_domains=sender_domains, sender_addresses=sender_addresses,
            bounce_address=bounce_address, daily_limit=daily_limit, allow_ips=allow_ips,
            trusted_networks=trusted_networks,
        )

    def get_account(self, name_or_id: str) -> Account | None:
        return accounts.get_account(self._db, name_or_id)

    def list_accounts(self) -> list[Account]:
        """All accounts, by name."""
        return accounts.list_accounts(self._db)

    def count_accounts(self) -> int:
        return accounts.count_accounts(self._db)

    # API keys ------------------------------------------------------------------------------

    def create_api_key(
        self, account_id: str, *, key_hash: str, prefix: str,
        scopes: Sequence[str] = ("send", "read"),
    ) -> ApiKey:
        """Store a key's hash; NotFound for an unknown account, AlreadyExists for a reused hash."""
        return accounts.create_api_key(
            self._db, account_id, key_hash=key_hash, prefix=prefix, scopes=scopes
        )

    def find_api_key(self, key_hash: str) -> tuple[ApiKey, Account] | None:
        """The active (not revoked) key with this hash, and its account."""
        return accounts.find_api_key(self._db, key_hash)

    def list_api_keys(self, account_id: str | None = None) -> list[ApiKey]:
        return accounts.list_api_keys(self._db, account_id)

    def revoke_api_key(self, key_id_or_prefix: str) -> bool:
        """Revoke by id or display prefix; False if no active key matches.

        Raises ValueError when a prefix matches several active keys (never guess which).
        """
        return accounts.revoke_api_key(self._db, key_id_or_prefix)

    # suppressions and usage -------------------------------------------------------------------

    def add_suppression(self, account_id: str, address: str, reason: str) -> None:
        """Suppress `address` (case-insensitively) for the account; a repeat is a no-op."""
        accounts.add_suppression(self._db, account_id, address, reason)

    def remove_suppression(self, account_id: str, address: str) -> bool:
        return accounts.remove_suppression(self._db, account_id, address)

    def suppressed_among(self, account_id: str, addresses: Iterable[str]) -> set[str]:
        """The given spellings whose address is suppressed (compared case-insensitively)."""
        return accounts.suppressed_among(self._db, account_id, addresses)

    def suppressions_since(
        self, account_id: str, since: datetime | None = None
    ) -> list[tuple[str, datetime]]:
        """(lowercased address, created_at) suppressed at or after `since` (all when None)."""
        return accounts.suppressions_since(self._db, account_id, since)

    def list_suppressions(self, account_id: str) -> list[Suppression]:
        return accounts.list_suppressions(self._db, account_id)

    def daily_count(self, account_id: str, day: str) -> int:
        """Messages accepted for the account on `day` (YYYY-MM-DD, UTC)."""
        return accounts.daily_count(self._db, account_id, day)

    # submission ------------------------------------------------------------------------------

    async def enqueue(self, message: NewMessage) -> None:
        """Durably queue one message; returns only after the (group) commit is fsync'd.

        If the awaiting task is cancelled, the write may still complete: the message is then
        queued although the caller never learned it (the safe direction for a mail queue).
        """
        await self.writer.enqueue((message,))

    def enqueue_many(self, messages: Sequence[NewMessage]) -> None:
        """Durably queue several messages, all or none (blocking; shares the group commit)."""
        if messages:
            self.writer.enqueue_sync(messages)

    # reading ---------------------------------------------------------------------------------

    def get_message(self, message_id: str) -> MessageRecord | None:
        """A message (without its raw bytes) and its recipients."""
        return reads.get_message(self._db, message_id)

    def list_messages(
        self, *, limit: int = 50, account_id: str | None = None, before: str | None = None
    ) -> list[MessageRecord]:
        """Newest first; pass the last id seen as `before` to page on."""
        return reads.list_messages(self._db, limit=limit, account_id=account_id, before=before)

    def get_raw(self, message_id: str) -> bytes | None:
        return reads.get_raw(self._db, message_id)

    def list_events(
        self, message_id: str | None = None, *, limit: int = 1000, after: int | None = None
    ) -> list[Event]:
        """Oldest first; pass the last event id seen as `after` to resume."""
        return reads.list_events(self._db, message_id, limit=limit, after=after)

    def append_event(
        self,
        type: EventType | str,
        *,
        message_id: str | None = None,
        recipient: str | None = None,
        attempt: int | None = None,
        remote_host: str | None = None,
        reply: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Record an event (opened, clicked, suppressed, ...) now; returns the event id."""
        row = reads.event_row(
            type, message_id=message_id, recipient=recipient, at=rows.utc_now(),
            attempt=attempt, remote_host=remote_host, reply=reply, data=data,
        )
        return reads.append_event(self._db, row)

    # delivery --------------------------------------------------------------------------------

    def claim_due(
        self, owner: str, *, now: datetime, limit: int, lease_seconds: float
    ) -> list[Claim]:
        """Lease up to `limit` due recipients to `owner`, grouped (sorted) by domain."""
        return claim.claim_due(
            self._db, owner, now=now, limit=limit, lease_seconds=lease_seconds
        )

    def mark_delivered(
        self, recipient_id: int, owner: str, *, reply: str | None, remote_host: str | None,
        attempt: int,
    ) -> bool:
        return delivery.finish(
            self._db, recipient_id, owner, status=RecipientStatus.DELIVERED, reply=reply,
            remote_host=remote_host, attempt=attempt,
        )

    def mark_deferred(
        self, recipient_id: int, owner: str, *, reply: str | None, remote_host: str | None,
        next_attempt_at: datetime, attempt: int,
    ) -> bool:
        return delivery.finish(
            self._db, recipient_id, owner, status=RecipientStatus.DEFERRED, reply=reply,
            remote_host=remote_host, attempt=attempt, next_attempt_at=next_attempt_at,
        )

    def mark_bounced(
        self, recipient_id: int, owner: str, *, reply: str | None, remote_host: str | None,
        attempt: int, data: Mapping[str, Any] | None = None,
    ) -> bool:
        return delivery.finish(
            self._db, recipient_id, owner, status=RecipientStatus.BOUNCED, reply=reply,
            remote_host=remote_host, attempt=attempt, data=data,
        )

    def mark_failed(
        self, recipient_id: int, owner: str, *, reply: str | None, attempt: int,
        data: Mapping[str, Any] | None = None,
    ) -> bool:
        """Give up on a recipient (expired or cancelled); remote_host is left as it was."""
        return delivery.finish(
            self._db, recipient_id, owner, status=RecipientStatus.FAILED, reply=reply,
            attempt=attempt, data=data,
        )

    def release_leases(self, owner: str) -> int:
        return delivery.release_leases(self._db, owner)

    def counts_by_status(self) -> dict[str, int]:
        return delivery.counts_by_status(self._db)

    def next_due_at(self) -> datetime | None:
        """When the next recipient becomes claimable (now if one already is); None if idle."""
        return delivery.next_due_at(self._db)

    # delivery: batched outcomes, message envelopes ------------------------------------------

    def load_for_delivery(
        self, message_ids: Sequence[str]
    ) -> dict[str, tuple[MessageRecord, bytes]]:
        """{id: (message without recipients, its full raw bytes)} for the ids that exist."""
        return outbound.load_for_delivery(self._db, message_ids)

    def record_outcomes(
        self,
        owner: str,
        items: Sequence[Finish],
        follow_ups: Callable[[set[int]], FollowUps] | None = None,
    ) -> set[int]:
        """Several `mark_*` in one transaction, plus their suppressions and DSNs; returns the
        recipient ids recorded (an id is missing when `owner` lost its lease)."""
        return outbound.record_outcomes(self._db, owner, items, follow_ups)

    # sender domains (DKIM) and secrets -------------------------------------------------------

    def add_dkim_key(
        self, domain: str, selector: str, algorithm: str, private_key: bytes
    ) -> DkimKey:
        """Store a sender domain's DKIM key; AlreadyExists when the domain has one."""
        return domains.add_dkim_key(self._db, domain, selector, algorithm, private_key)

    def get_dkim_key(self, domain: str) -> DkimKey | None:
        return domains.get_dkim_key(self._db, domain)

    def list_dkim_keys(self) -> list[DkimKey]:
        return domains.list_dkim_keys(self._db)

    def get_or_create_secret(self, name: str) -> bytes:
        """A random 32-byte secret shared by every process on this store (made on first use)."""
        return domains.get_or_create_secret(self._db, name)
