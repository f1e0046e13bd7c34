"""Plain values passed between stages (the leaf layer: imports nothing from postroom)."""

from postroom.model.ids import new_id
from postroom.model.records import (
    Account,
    ApiKey,
    Claim,
    Event,
    EventType,
    MessageRecord,
    NewMessage,
    RecipientRecord,
    RecipientStatus,
    Suppression,
)

__all__ = [
    "Account",
    "ApiKey",
    "Claim",
    "Event",
    "EventType",
    "MessageRecord",
    "NewMessage",
    "RecipientRecord",
    "RecipientStatus",
    "Suppression",
    "new_id",
]
