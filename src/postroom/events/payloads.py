"""Postroom's own webhook JSON: `{"events": [event, …]}`, one or (batched) several per POST.

Each event carries what the log holds (type, time, recipient, attempt, remote host and reply,
`data` such as a bounce's category) and what the sender attached to the message, so a receiver
never has to look anything up: campaign/bulk id, tags, metadata, client reference, callback data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from postroom.dialects.options import SendOptions
from postroom.model.records import Event, MessageRecord

CONTENT_TYPE = "application/json"


def event_payload(event: Event, message: MessageRecord | None, options: SendOptions,
                  account_id: str) -> dict[str, Any]:
    data = {k: v for k, v in event.data.items() if k != "account_id"}
    return {
        "id": event.id,
        "type": event.type.value,
        "at": event.at.isoformat(),
        "account_id": account_id,
        "message_id": event.message_id,
        "recipient": event.recipient,
        "attempt": event.attempt,
        "remote_host": event.remote_host,
        "reply": event.reply,
        "data": data,
        "subject": message.subject if message else None,
        "campaign_id": options.campaign_id,
        "campaign_name": options.campaign_name,
        "tags": list(options.tags),
        "metadata": dict(options.metadata),
        "client_reference": options.client_reference,
        "callback_data": options.callback_data,
    }


def body(payloads: Sequence[dict[str, Any]]) -> str:
    """The JSON text that is POSTed (and signed, as UTF-8)."""
    return json.dumps({"events": list(payloads)}, ensure_ascii=False, separators=(",", ":"),
                      default=str)
