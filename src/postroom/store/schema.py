"""The schema of record: every table the store owns, as SQLAlchemy Core metadata.

This module is the one import point (`from postroom.store.schema import events, metadata`);
the tables are defined, by concern, in
- `schema_types`: `metadata` (naming convention), `ID`, `UTCDateTime`;
- `schema_accounts`: accounts, api_keys, suppressions, account_usage, dkim_keys, secrets;
- `schema_mail`: messages, message_chunks, recipients, events;
- `schema_http`: idempotency_keys, files, templates, consents;
- `schema_webhooks`: webhooks, webhook_account_secrets, webhook_deliveries, webhook_attempts,
  webhook_cursor.

Migrations in `store/migrations/versions/` must produce exactly this (a test compares them with
Alembic's autogenerate on SQLite and PostgreSQL). Change a table and add a migration together.

Foreign keys exist only where a dangling row would be a bug in the store itself
(`api_keys.account_id`, `recipients.message_id`); messages, events, usage and suppressions
name an account or message by id without a constraint, so that events about unknown messages
(tracking hits) and tests of other stages need no setup rows.
"""

from __future__ import annotations

from postroom.store.schema_accounts import (
    account_usage,
    accounts,
    api_keys,
    dkim_keys,
    secrets,
    suppressions,
)
from postroom.store.schema_http import consents, files, idempotency_keys, templates
from postroom.store.schema_mail import events, message_chunks, messages, recipients
from postroom.store.schema_types import ID, NAMING, UTCDateTime, metadata
from postroom.store.schema_webhooks import (
    webhook_account_secrets,
    webhook_attempts,
    webhook_cursor,
    webhook_deliveries,
    webhooks,
)

__all__ = [
    "ID", "NAMING", "UTCDateTime", "account_usage", "accounts", "api_keys", "consents",
    "dkim_keys", "events", "files", "idempotency_keys", "message_chunks", "messages",
    "metadata", "recipients", "secrets", "suppressions", "templates", "webhook_account_secrets",
    "webhook_attempts", "webhook_cursor", "webhook_deliveries", "webhooks",
]
