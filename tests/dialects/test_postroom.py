"""Postroom's own X-Postroom-* headers, as docs/SMTP_HEADERS.md documents them."""

from datetime import UTC, datetime

from tests.dialects import table_tests

from postroom.dialects import FileRef, postroom

NOON = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)

VALID = [
    ([("X-Postroom-Campaign", "spring-2030"), ("X-Postroom-Campaign-Name", "Spring sale")],
     {"campaign_id": "spring-2030", "campaign_name": "Spring sale"}),
    ([("X-Postroom-Tags", "newsletter, spring"), ("X-Postroom-Tags", "spring,vip")],
     {"tags": ("newsletter", "spring", "vip")}),
    ([("X-Postroom-Metadata-Order-Id", "42"), ("X-Postroom-Metadata-user", "u-7")],
     {"metadata": {"Order-Id": "42", "user": "u-7"}}),
    ([("X-Postroom-Client-Ref", "order-42")], {"client_reference": "order-42"}),
    ([("X-Postroom-Variables", '{"Ann@Example.com": {"first_name": "Ann", "points": 12}}')],
     {"recipient_vars": {"ann@example.com": {"first_name": "Ann", "points": 12}},
      "substitution_syntax": "postroom"}),
    ([("X-Postroom-Global-Variables", '{"shop": "Corner Books"}')],
     {"global_vars": {"shop": "Corner Books"}, "substitution_syntax": "postroom"}),
    ([("X-Postroom-Track-Opens", "yes"), ("X-Postroom-Track-Clicks", "no"),
      ("X-Postroom-Track-Text-Clicks", "false"), ("X-Postroom-Unsubscribe", "true")],
     {"track_opens": True, "track_clicks": False, "track_text_clicks": False, "unsubscribe": True}),
    ([("X-Postroom-Send-At", "2030-05-01T14:00:00+02:00")], {"send_at": NOON}),
    ([("X-Postroom-Send-At", "Wed, 01 May 2030 12:00:00 +0000")], {"send_at": NOON}),
    ([("X-Postroom-Send-At", "2030-05-01 12:00")], {"send_at": NOON}),  # no zone: UTC
    ([("X-Postroom-Send-At", "1903867200")], {"send_at": NOON}),
    ([("X-Postroom-Send-Each-At", '{"a@example.com": "2030-05-01T12:00:00Z"}')],
     {"send_each_at": {"a@example.com": NOON}}),
    ([("X-Postroom-Deliver-By", "2030-05-01T12:00:00Z")], {"deliver_by": NOON}),
    ([("X-Postroom-Template", "welcome-v2")], {"template_id": "welcome-v2"}),
    ([("X-Postroom-Files", "k1:invoice.pdf, k2")],
     {"attachments": (FileRef("k1", "invoice.pdf"), FileRef("k2"))}),
    ([("X-Postroom-Notify-Url", "https://example.com/reports"),
      ("X-Postroom-Notify-Content-Type", "application/xml"),
      ("X-Postroom-Callback-Data", "batch 7"), ("X-Postroom-Intermediate-Report", "yes"),
      ("X-Postroom-Tracking-Url", "http://example.com/events")],
     {"notify_url": "https://example.com/reports", "notify_content_type": "application/xml",
      "callback_data": "batch 7", "intermediate_report": True,
      "tracking_url": "http://example.com/events"}),
    ([("X-Postroom-Message-Stream", "broadcast"), ("X-Postroom-Configuration-Set", "marketing")],
     {"message_stream": "broadcast", "configuration_set": "marketing"}),
    ([("X-Postroom-Recipients", "a@example.com, B@example.com")],
     {"extra_recipients": ("a@example.com", "B@example.com")}),
]

INVALID = [
    ([("X-Postroom-Tags", "a,,b")], "empty tag"),
    ([("X-Postroom-Variables", '{"ann": {}}')], '"ann" is not an email address'),
    ([("X-Postroom-Variables", '{"a@example.com": 1}')], "must be a JSON object"),
    ([("X-Postroom-Global-Variables", "shop=Corner")], "is not valid JSON"),
    ([("X-Postroom-Send-At", "next tuesday")], "is not a date"),
    ([("X-Postroom-Send-At", "2030-13-01")], "is not a date"),
    ([("X-Postroom-Send-At", "99999999999999999999")], "is not a date"),
    ([("X-Postroom-Send-Each-At", '{"a@example.com": [1]}')], "a non-date is not a date"),
    ([("X-Postroom-Track-Opens", "sometimes")], "expected yes or no"),
    ([("X-Postroom-Notify-Url", "javascript:alert(1)")], "is not an http(s) URL"),
    ([("X-Postroom-Notify-Content-Type", "text/html")], "must be application/json"),
    ([("X-Postroom-Files", "k1:")], "empty file name"),
    ([("X-Postroom-Recipients", "a@example.com, nobody")], '"nobody" is not an email address'),
    ([("X-Postroom-Metadata-", "x")], "metadata key missing"),
    ([("X-Postroom-Metadata-k", "v" * 10_001)], "longer than 10000"),
    ([("X-Postroom-Campaign", "a"), ("x-postroom-campaign", "a")], "given more than once"),
]

test_valid, test_invalid = table_tests(postroom, VALID, INVALID)
