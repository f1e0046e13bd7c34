"""The HTTP API's part of `Store` (a mixin, so store/api.py stays one screenful per concern)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from postroom.model.records import Consent, Event, NewMessage, StoredFile, Template
from postroom.store import http_data, http_privacy, http_resources, inbound
from postroom.store.engine import Database


class HttpStoreMixin:
    _db: Database
    writer: Any

    async def enqueue_batch(self, batch: Sequence[NewMessage]) -> None:
        """Durably queue several messages in one transaction (group-committed; all or none)."""
        if batch:
            await self.writer.enqueue(tuple(batch))

    # mail coming back (asynchronous bounces through VERP)
    def record_async_bounce(self, message_id: str, recipient_id: int, *, reply: str, hard: bool,
                            data: dict[str, Any]) -> tuple[str, str] | None:
        return inbound.record_async_bounce(self._db, message_id, recipient_id, reply=reply,
                                           hard=hard, data=data)

    def recipient_of(self, message_id: str, recipient_id: int) -> tuple[str, str] | None:
        return inbound.recipient_of(self._db, message_id, recipient_id)

    # idempotency
    def idempotency_claim(self, account_id: str, key: str, request_hash: str, *,
                          ttl: timedelta = timedelta(hours=24),
                          stale: timedelta = timedelta(minutes=5)) -> tuple[str, int, Any]:
        return http_resources.idempotency_claim(self._db, account_id, key, request_hash, ttl=ttl,
                                                stale=stale)

    def idempotency_finish(self, account_id: str, key: str, status: int, response: Any) -> None:
        http_resources.idempotency_finish(self._db, account_id, key, status, response)

    def idempotency_release(self, account_id: str, key: str) -> None:
        http_resources.idempotency_release(self._db, account_id, key)

    # file cache
    def put_file(self, account_id: str, name: str, content_type: str, data: bytes,
                 expires_at: datetime) -> StoredFile:
        return http_resources.file_put(self._db, account_id, name, content_type, data, expires_at)

    def get_file(self, account_id: str | None, key: str, *, with_data: bool = False
                 ) -> StoredFile | None:
        return http_resources.file_get(self._db, account_id, key, with_data=with_data)

    def delete_file(self, account_id: str, key: str) -> bool:
        return http_resources.file_delete(self._db, account_id, key)

    def list_files(self, account_id: str, limit: int = 100) -> list[StoredFile]:
        return http_resources.file_list(self._db, account_id, limit)

    def purge_expired_files(self) -> int:
        return http_resources.files_purge_expired(self._db)

    # templates
    def save_template(self, account_id: str, fields: dict[str, Any],
                      template_id: str | None = None) -> Template | None:
        return http_resources.template_save(self._db, account_id, fields, template_id)

    def get_template(self, account_id: str, template_id: str) -> Template | None:
        return http_resources.template_get(self._db, account_id, template_id)

    def list_templates(self, account_id: str) -> list[Template]:
        return http_resources.template_list(self._db, account_id)

    def delete_template(self, account_id: str, template_id: str) -> bool:
        return http_resources.template_delete(self._db, account_id, template_id)

    # consent
    def record_consent(self, account_id: str, address: str, ip: str, source: str) -> Consent:
        return http_privacy.consent_record(self._db, account_id, address, ip, source)

    def list_consents(self, account_id: str, address: str | None = None) -> list[Consent]:
        return http_privacy.consents_list(self._db, account_id, address)

    def consented_among(self, account_id: str, addresses: Sequence[str]) -> set[str]:
        return http_privacy.consented_among(self._db, account_id, addresses)

    def update_account(self, account_id: str, fields: dict[str, Any]) -> bool:
        """Change settings: require_consent, tracking_base_url, track_opens, track_clicks,
        list_unsubscribe, daily_limit, bounce_address."""
        return http_privacy.update_account(self._db, account_id, fields)

    def set_require_consent(self, account_id: str, value: bool) -> bool:
        return http_privacy.set_require_consent(self._db, account_id, value)

    # filtered reads
    def find_message_ids(self, account_id: str, *, status: str | None = None,
                         recipient: str | None = None, since: datetime | None = None,
                         until: datetime | None = None, campaign: str | None = None,
                         tag: str | None = None, limit: int = 50,
                         before: str | None = None) -> list[str]:
        return http_data.message_ids(self._db, account_id, status=status, recipient=recipient,
                                     since=since, until=until, campaign=campaign, tag=tag,
                                     limit=limit, before=before)

    def find_events(self, account_id: str, *, message_id: str | None = None,
                    type_: str | None = None, recipient: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    limit: int = 100, after: int | None = None) -> list[Event]:
        """The account's event log; pass the id of the last event received as `after`. On
        PostgreSQL it is served in commit order, so that no later commit is passed over."""
        return http_data.events_for_account(self._db, account_id, message_id=message_id,
                                            type_=type_, recipient=recipient, since=since,
                                            until=until, limit=limit, after=after)

    def cancel_scheduled(self, account_id: str, message_id: str) -> list[str]:
        return http_data.cancel_scheduled(self._db, account_id, message_id)

    # data subject requests
    def messages_involving(self, account_id: str, address: str) -> list[str]:
        return http_privacy.messages_involving(self._db, account_id, address)

    def erase_address(self, account_id: str, address: str, ids: Sequence[str]) -> str:
        return http_privacy.erase_address(self._db, account_id, address, ids)

    def suppression_for(self, account_id: str, address: str) -> Any:
        return http_privacy.suppression_for(self._db, account_id, address)
