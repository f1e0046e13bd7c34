"""Postroom's own `X-Postroom-*` headers: every option of the model, in one documented dialect.

Values follow one style: comma-separated lists, `yes`/`no` switches, dates as ISO 8601 or RFC
5322, JSON objects for variables. These headers take precedence over every vendor's. An unknown
`X-Postroom-*` header is not a control header: it is left in the message, untouched.
"""

from __future__ import annotations

from typing import Any

from postroom.dialects.infobip import callback_data, content_type
from postroom.dialects.table import Dialect, metadata_prefix, to
from postroom.dialects.values import (
    MAX_RECIPIENTS,
    DialectError,
    address,
    boolean,
    file_refs,
    json_object,
    moment,
    per_recipient,
    tag_list,
    text,
    url,
)


def variables(header: str, value: str) -> dict[str, Any]:
    data = per_recipient(header, json_object(header, value), "variables")
    return {"recipient_vars": data, "substitution_syntax": "postroom"}


def global_variables(header: str, value: str) -> dict[str, Any]:
    return {"global_vars": json_object(header, value), "substitution_syntax": "postroom"}


def send_each_at(header: str, value: str) -> dict[str, Any]:
    data = json_object(header, value)
    if len(data) > MAX_RECIPIENTS:
        raise DialectError(header, f"more than {MAX_RECIPIENTS} recipients")
    return {"send_each_at": {address(header, k).lower(): moment(header, v) for k, v in data.items()}}


def recipients(header: str, value: str) -> tuple[str, ...]:
    found = tuple(address(header, a) for a in value.split(","))
    if len(found) > MAX_RECIPIENTS:
        raise DialectError(header, f"more than {MAX_RECIPIENTS} recipients")
    return found


PREFIX = "x-postroom-metadata-"
DIALECT = Dialect(
    "postroom",
    {
        "x-postroom-campaign": to("campaign_id", text),
        "x-postroom-campaign-name": to("campaign_name", text),
        "x-postroom-tags": to("tags", tag_list),
        "x-postroom-client-ref": to("client_reference", text),
        "x-postroom-variables": variables,
        "x-postroom-global-variables": global_variables,
        "x-postroom-track-opens": to("track_opens", boolean),
        "x-postroom-track-clicks": to("track_clicks", boolean),
        "x-postroom-track-text-clicks": to("track_text_clicks", boolean),
        "x-postroom-unsubscribe": to("unsubscribe", boolean),
        "x-postroom-send-at": to("send_at", moment),
        "x-postroom-send-each-at": send_each_at,
        "x-postroom-deliver-by": to("deliver_by", moment),
        "x-postroom-template": to("template_id", text),
        "x-postroom-files": to("attachments", file_refs),
        "x-postroom-notify-url": to("notify_url", url),
        "x-postroom-notify-content-type": to("notify_content_type", content_type),
        "x-postroom-callback-data": to("callback_data", callback_data),
        "x-postroom-intermediate-report": to("intermediate_report", boolean),
        "x-postroom-tracking-url": to("tracking_url", url),
        "x-postroom-message-stream": to("message_stream", text),
        "x-postroom-configuration-set": to("configuration_set", text),
        "x-postroom-recipients": to("extra_recipients", recipients),
    },
    repeatable=frozenset({"x-postroom-tags", "x-postroom-files", "x-postroom-recipients"}),
    prefixes={PREFIX: metadata_prefix(PREFIX)},
)
HEADERS = DIALECT.headers
PREFIXES = tuple(DIALECT.prefixes)
parse = DIALECT.parse
