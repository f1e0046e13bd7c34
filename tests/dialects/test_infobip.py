"""Infobip, with the headers of the "fully featured MIME example" of its SMTP page (seed 003)."""

from tests.dialects import table_tests

from postroom.dialects import infobip

SEED = [
    ("X-IB-Bulk-Id", "1234567890"),
    ("X-IB-Tracking-Url", "https://www.example.com/email/webhook/server"),
    ("X-IB-Intermediate-Report", "true"),
    ("X-IB-Notify-Url", "https://www.example.com/email/delivery/server"),
    ("X-IB-Notify-Content-Type", "application/json"),
    ("X-IB-Callback-Data", '[{"id": 1, "desc": "Callback Data Example as JSON"}]'),
]
SEED_FIELDS = {
    "campaign_id": "1234567890",
    "tracking_url": "https://www.example.com/email/webhook/server",
    "intermediate_report": True,
    "notify_url": "https://www.example.com/email/delivery/server",
    "notify_content_type": "application/json",
    "callback_data": '[{"id": 1, "desc": "Callback Data Example as JSON"}]',
}

VALID = [
    (SEED, SEED_FIELDS),
    ([("X-IB-Notify-Content-Type", "Application/XML")], {"notify_content_type": "application/xml"}),
    ([("X-IB-Intermediate-Report", "false")], {"intermediate_report": False}),
    ([("X-IB-Callback-Data", "order=42")], {"callback_data": "order=42"}),  # any text
    ([("x-ib-bulk-id", "spring-sale")], {"campaign_id": "spring-sale"}),
]

INVALID = [
    ([("X-IB-Notify-Content-Type", "text/plain")], "must be application/json or application/xml"),
    ([("X-IB-Notify-Url", "www.example.com/report")], "is not an http(s) URL"),
    ([("X-IB-Tracking-Url", "ftp://example.com/x")], "is not an http(s) URL"),
    ([("X-IB-Tracking-Url", "https://")], "is not an http(s) URL"),
    ([("X-IB-Intermediate-Report", "perhaps")], "expected yes or no"),
    ([("X-IB-Callback-Data", "x" * 4001)], "longer than 4000 characters"),
    ([("X-IB-Bulk-Id", "1"), ("X-IB-Bulk-Id", "2")], "given more than once"),
]

test_valid, test_invalid = table_tests(infobip, VALID, INVALID)
