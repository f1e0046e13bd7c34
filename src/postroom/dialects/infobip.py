"""Infobip (seed 003): bulk id, delivery reports and their callback data, tracking webhook.

`X-IB-Callback-Data` is opaque text returned with each report (the vendor's example is JSON, but
any text up to Infobip's 4,000 characters is accepted and kept as written).
"""

from __future__ import annotations

from postroom.dialects.table import Dialect, to
from postroom.dialects.values import DialectError, boolean, text, url

CONTENT_TYPES = ("application/json", "application/xml")  # the two Infobip offers
MAX_CALLBACK_DATA = 4000


def content_type(header: str, value: str) -> str:
    value = text(header, value).lower()
    if value not in CONTENT_TYPES:
        raise DialectError(header, f"must be {' or '.join(CONTENT_TYPES)}")
    return value


def callback_data(header: str, value: str) -> str:
    return text(header, value, MAX_CALLBACK_DATA)


DIALECT = Dialect(
    "infobip",
    {
        "x-ib-bulk-id": to("campaign_id", text),
        "x-ib-tracking-url": to("tracking_url", url),
        "x-ib-intermediate-report": to("intermediate_report", boolean),
        "x-ib-notify-url": to("notify_url", url),
        "x-ib-notify-content-type": to("notify_content_type", content_type),
        "x-ib-callback-data": to("callback_data", callback_data),
    },
)
HEADERS = DIALECT.headers
parse = DIALECT.parse
