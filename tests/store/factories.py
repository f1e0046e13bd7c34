"""Building test inputs for the store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from postroom.model import NewMessage, new_id


def make_message(
    account_id: str,
    *recipients: str,
    id: str | None = None,
    raw: bytes = b"Subject: hi\r\n\r\nhello\r\n",
    not_before: datetime | None = None,
    **fields: Any,
) -> NewMessage:
    """A NewMessage with sensible defaults (one recipient at example.com unless given)."""
    return NewMessage(
        id=id or new_id(),
        account_id=account_id,
        mail_from=fields.pop("mail_from", "sender@acme.test"),
        recipients=recipients or ("rcpt@example.com",),
        raw=raw,
        not_before=not_before,
        **fields,
    )
