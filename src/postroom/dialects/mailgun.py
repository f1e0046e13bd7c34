"""Mailgun: tags, variables, recipient variables, tracking switches and scheduled delivery.

`X-Mailgun-Track` switches opens and clicks together; `-Track-Opens` and `-Track-Clicks` (`yes`,
`no`, `htmlonly`) override it wherever they stand. `X-Mailgun-Variables` is returned with events
(metadata); it may be repeated. As at Mailgun, it and `X-Mailgun-Template-Variables` fill in a
template's placeholders only: a message without a template keeps its `{{ x }}` as text
(`template_vars`, which `registry.parse_all` resolves). `X-Mailgun-Deliver-By` is an RFC 2822
date: the time to send.
"""

from __future__ import annotations

from typing import Any

from postroom.dialects.options import content_map
from postroom.dialects.table import Dialect, ignored, to
from postroom.dialects.values import (
    DialectError,
    boolean,
    json_object,
    moment,
    per_recipient,
    tags,
    text,
)


def track(header: str, value: str) -> dict[str, Any]:
    on = boolean(header, value)
    return {"track_opens": on, "track_clicks": on, "track_text_clicks": on}


def track_clicks(header: str, value: str) -> dict[str, Any]:
    if value.strip().lower() == "htmlonly":
        return {"track_clicks": True, "track_text_clicks": False}
    on = boolean(header, value)
    return {"track_clicks": on, "track_text_clicks": on}


def variables(header: str, value: str) -> dict[str, Any]:
    data = json_object(header, value)
    return {"metadata": content_map(header, data, "variables"), "template_vars": data}


def recipient_variables(header: str, value: str) -> dict[str, Any]:
    data = per_recipient(header, json_object(header, value), "recipient variables")
    return {"recipient_vars": data, "substitution_syntax": "mailgun"}


def drop_message(header: str, value: str) -> dict[str, Any]:
    """Test mode: refused rather than ignored, or a test would really be delivered."""
    if boolean(header, value):
        raise DialectError(header, "test mode is not supported; remove the header to send")
    return {}


DIALECT = Dialect(
    "mailgun",
    {
        "x-mailgun-track": track,  # first: the specific switches below override it
        "x-mailgun-track-opens": to("track_opens", boolean),
        "x-mailgun-track-clicks": track_clicks,
        "x-mailgun-tag": to("tags", tags),
        "x-mailgun-variables": variables,
        "x-mailgun-recipient-variables": recipient_variables,
        "x-mailgun-deliver-by": to("send_at", moment),
        "x-mailgun-template-name": to("template_id", text),
        "x-mailgun-template-variables": lambda h, v: {"template_vars": json_object(h, v)},
        "x-mailgun-drop-message": drop_message,
        "x-mailgun-dkim": ignored,
        "x-mailgun-require-tls": ignored,
        "x-mailgun-skip-verification": ignored,
        "x-mailgun-sending-ip": ignored,
        "x-mailgun-sending-ip-pool": ignored,
        "x-mailgun-template-version": ignored,
        "x-mailgun-delivery-time-optimize-period": ignored,  # send-time optimisation
        "x-mailgun-time-zone-localize": ignored,
    },
    repeatable=frozenset({"x-mailgun-tag", "x-mailgun-variables"}),
)
HEADERS = DIALECT.headers
parse = DIALECT.parse
