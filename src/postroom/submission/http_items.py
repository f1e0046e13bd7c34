"""The send_mail request's shape (Zoho CRM's, plus Postroom's extras) and each item's answer.

Kept apart from `http_send` (the policy) so routes, files and tests can name them cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postroom.dialects.values import http_url_problem
from postroom.model import NewMessage

MAX_ITEMS = 500
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
SENT = "Your mail has been sent successfully."
SCHEDULED = "Your mail has been scheduled successfully."


class Person(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_name: str | None = None
    email: str | None = None
    merge_data: dict[str, Any] | None = None


class FileRef(BaseModel):
    id: str
    content_id: str | None = None
    name: str | None = None


class TemplateRef(BaseModel):
    id: str


class SendMailItem(BaseModel):
    """One mail, in Zoho CRM's send_mail shape plus Postroom's extras (tags, metadata…)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    from_: Person | None = Field(None, alias="from")
    to: list[Person] | None = None
    cc: list[Person] = Field(default_factory=list)
    bcc: list[Person] = Field(default_factory=list)
    reply_to: Person | None = None
    in_reply_to: str | None = None
    scheduled_time: str | None = None
    subject: str | None = None
    content: str | None = None
    mail_format: str = "html"
    attachments: list[FileRef] = Field(default_factory=list)
    template: TemplateRef | None = None
    merge_data: dict[str, Any] = Field(default_factory=dict)
    consent_email: bool = False
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    client_reference: str | None = None
    notify_url: str | None = None
    callback_data: str | None = None
    #: the message's own tracking switches (as ZeptoMail's fields and the SMTP control headers);
    #: absent: the account's defaults
    track_opens: bool | None = None
    track_clicks: bool | None = None

    @field_validator("notify_url")
    @classmethod
    def _postable(cls, value: str | None) -> str | None:
        """The checks the SMTP headers' notify URL gets (INVALID_DATA naming the field): a URL
        the webhook dispatcher cannot store or POST to would otherwise fail out of sight."""
        problem = http_url_problem(value) if value else None
        if problem:
            raise ValueError(problem)
        return value


class SendMailRequest(BaseModel):
    data: list[SendMailItem] = Field(min_length=1)


@dataclass
class ItemResult:
    ok: bool
    code: str = "SUCCESS"
    message: str = SENT
    details: dict[str, Any] = field(default_factory=dict)
    messages: list[NewMessage] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "message": self.message,
                "status": "success" if self.ok else "error"}


class Refused(Exception):
    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def parse_time(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refused("INVALID_DATA", "scheduled_time must be ISO 8601 with an offset.",
                      api_name="scheduled_time") from None
    if when.tzinfo is None:
        raise Refused("INVALID_DATA", "scheduled_time needs a UTC offset (e.g. +05:30).",
                      api_name="scheduled_time")
    return when.astimezone(UTC)
