"""`SendOptions`: what every dialect's control headers ask for, as one model.

Each dialect module builds one from its own headers, the registry merges them, the store keeps
`to_json()` in `messages.options`, and delivery reads it back with `from_json()`. Pure data: the
model never looks at a clock, a file or the store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

Syntax = Literal["postroom", "sendgrid", "mailgun", "zoho"]
"""Placeholder syntax of a personalised message: `{{ x }}`, SendGrid's literal `sub` keys,
Mailgun's `%recipient.x%`, Zoho's `$[field|Default]$`."""


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file-cache key to attach at delivery, and the name to give it (None: the stored name)."""

    key: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Sender:
    """Zoho's `from` override: the header From a campaign goes out with."""

    address: str
    name: str | None = None


# Per-recipient dicts merge one level deeper: two dialects may each give a recipient variables.
_PER_RECIPIENT = frozenset({"recipient_vars", "recipient_fields"})


@dataclass(frozen=True, slots=True)
class SendOptions:
    """Sending options of one message. None means "not asked": the account's default applies.

    Dicts and their values are shared, never copied: treat them as read-only.
    """

    campaign_id: str | None = None  # campaign / bulk id: marks the message as bulk mail
    campaign_name: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)  # returned with every event
    client_reference: str | None = None
    # Personalisation, keyed by lowercased recipient address.
    recipient_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    recipient_names: dict[str, str] = field(default_factory=dict)  # display names (Zoho, SendGrid)
    recipient_fields: dict[str, dict[str, str]] = field(default_factory=dict)  # Zoho contact data
    global_vars: dict[str, Any] = field(default_factory=dict)
    # Variables only a template sees (Mailgun's): `registry.parse_all` moves them into
    # global_vars when the message uses a template and drops them otherwise; never stored.
    template_vars: dict[str, Any] = field(default_factory=dict)
    substitution_syntax: Syntax | None = None  # None: Postroom's {{ x }}
    sendgrid_sub: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key → one per `to`
    sendgrid_sections: dict[str, str] = field(default_factory=dict)
    # Tracking: clicks are links in the HTML part, text clicks links in the text part.
    track_opens: bool | None = None
    track_clicks: bool | None = None
    track_text_clicks: bool | None = None
    unsubscribe: bool | None = None  # List-Unsubscribe / subscription tracking
    # Schedule (aware UTC datetimes).
    send_at: datetime | None = None
    send_each_at: dict[str, datetime] = field(default_factory=dict)
    deliver_by: datetime | None = None  # deadline: undelivered copies expire then
    template_id: str | None = None
    attachments: tuple[FileRef, ...] = ()
    # Delivery reports (Infobip).
    notify_url: str | None = None
    notify_content_type: str | None = None
    callback_data: str | None = None
    intermediate_report: bool | None = None
    tracking_url: str | None = None
    message_stream: str | None = None  # Postmark
    configuration_set: str | None = None  # SES
    from_override: Sender | None = None  # Zoho
    extra_recipients: tuple[str, ...] = ()  # SendGrid `to`: addresses beyond the envelope
    dialects: tuple[str, ...] = ()  # which dialects contributed, lowest precedence first

    @property
    def is_bulk(self) -> bool:
        """Bulk mail carries List-Unsubscribe: a campaign or bulk id, or a campaign name."""
        return bool(self.campaign_id or self.campaign_name)

    @property
    def syntax(self) -> Syntax:
        return self.substitution_syntax or "postroom"

    def merge(self, other: SendOptions) -> SendOptions:
        """Both option sets in one; `other` takes precedence.

        Scalars: `other`'s value unless it is None. Tuples: union, ours first, without repeats.
        Dicts: key by key, `other`'s value winning; a recipient present in both keeps the union of
        its variables (and contact fields), `other`'s winning per variable.
        """
        changes: dict[str, Any] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, tuple):
                changes[f.name] = tuple(dict.fromkeys(mine + theirs)) if theirs else mine
            elif isinstance(mine, dict):
                merged = {**mine, **theirs} if mine and theirs else (theirs or mine)
                if f.name in _PER_RECIPIENT and mine and theirs:
                    for address in mine.keys() & theirs.keys():
                        merged[address] = {**mine[address], **theirs[address]}
                changes[f.name] = merged
            else:
                changes[f.name] = mine if theirs is None else theirs
        return SendOptions(**changes)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (datetimes as ISO 8601); fields left at their default are omitted."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (not value and not isinstance(value, bool)):
                continue
            out[f.name] = _encode(value)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SendOptions:
        """The inverse of `to_json()`. Keys this version does not know are ignored."""
        if not data and cls is SendOptions:  # most mail has no options: one shared value
            return NO_OPTIONS
        known = {f.name for f in fields(cls)}
        return cls(**{
            name: _DECODE.get(name, _same)(value)
            for name, value in data.items() if name in known and value is not None
        })


#: `SendOptions()`, shared (it is frozen): what a message without control headers carries.
NO_OPTIONS = SendOptions()


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, FileRef | Sender):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _same(value: Any) -> Any:
    return value


# --- content values ------------------------------------------------------------------------------
# Text that goes into a message's body (SendGrid `sub` values and sections, Zoho merge data,
# Mailgun variables) may span lines and is kept as given; `values.text` is for one-line values.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, LF and CR are text


def content(header: str, value: Any, limit: int, what: str = "value") -> str:
    """Body text, line breaks and surrounding spaces kept; JSON numbers kept as written."""
    from postroom.dialects.values import DialectError  # values imports this module

    if isinstance(value, int | float) and not isinstance(value, bool):
        value = json.dumps(value)
    if not isinstance(value, str):
        raise DialectError(header, f"{what} must be a string")
    if len(value) > limit:
        raise DialectError(header, f"{what} is longer than {limit} characters")
    if _CONTROL.search(value):
        raise DialectError(header, f"{what} contains control characters")
    return value


def content_map(header: str, value: Any, what: str) -> dict[str, str]:
    """`values.string_map` (one-line keys, other JSON values as compact JSON text) whose
    values are body text (`content`)."""
    from postroom.dialects import values as v  # values imports this module

    data = v.obj(header, value, what)
    if len(data) > v.MAX_METADATA:
        raise v.DialectError(header, f"{what} has more than {v.MAX_METADATA} entries")
    return {
        v.text(header, k, 256, f"{what} key"): content(
            header, x if isinstance(x, str) else json.dumps(x, separators=(",", ":"),
                                                            ensure_ascii=False),
            v.MAX_METADATA_VALUE, f"{what} {v.show(k)}")
        for k, x in data.items()
    }


_DECODE: dict[str, Any] = {
    "tags": tuple,
    "extra_recipients": tuple,
    "dialects": tuple,
    "send_at": datetime.fromisoformat,
    "deliver_by": datetime.fromisoformat,
    "send_each_at": lambda d: {k: datetime.fromisoformat(v) for k, v in d.items()},
    "sendgrid_sub": lambda d: {k: tuple(v) for k, v in d.items()},
    "attachments": lambda refs: tuple(FileRef(**r) for r in refs),
    "from_override": lambda d: Sender(**d),
}
