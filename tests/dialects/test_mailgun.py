"""Mailgun, with the examples of its "Passing Sending Options" and "Batch Sending" pages."""

from datetime import UTC, datetime

from tests.dialects import table_tests

from postroom.dialects import mailgun

# "Batch Sending": the recipient-variables of the curl example, and the %recipient.unique_id% one.
ALICE_BOB = ('{"alice@example.com": {"name":"Alice", "id":1}, '
             '"bob@example.com": {"name":"Bob", "id":2}}')
UNIQUE_IDS = ('{"user1@example.com" : {"unique_id": "ABC123456789"},'
              ' "user2@example.com" : {"unique_id": "ZXY987654321"}}')
ALL_ON = {"track_opens": True, "track_clicks": True, "track_text_clicks": True}

VALID = [
    # "You can make a message with several categories by setting multiple X-Mailgun-Tag headers."
    ([("X-Mailgun-Tag", "newsletter"), ("X-Mailgun-Tag", "spring, 2024")],
     {"tags": ("newsletter", "spring, 2024")}),
    ([("X-Mailgun-Variables", '{"my_message_id": 123}')],
     {"metadata": {"my_message_id": "123"}, "global_vars": {"my_message_id": 123}}),
    ([("X-Mailgun-Variables", '{"a": "x"}'), ("X-Mailgun-Variables", '{"b": {"c": true}}')],
     {"metadata": {"a": "x", "b": '{"c":true}'}, "global_vars": {"a": "x", "b": {"c": True}}}),
    ([("X-Mailgun-Recipient-Variables", ALICE_BOB)],
     {"recipient_vars": {"alice@example.com": {"name": "Alice", "id": 1},
                         "bob@example.com": {"name": "Bob", "id": 2}},
      "substitution_syntax": "mailgun"}),
    ([("X-Mailgun-Recipient-Variables", UNIQUE_IDS)],
     {"recipient_vars": {"user1@example.com": {"unique_id": "ABC123456789"},
                         "user2@example.com": {"unique_id": "ZXY987654321"}},
      "substitution_syntax": "mailgun"}),
    ([("X-Mailgun-Track", "yes")], ALL_ON),
    ([("X-Mailgun-Track-Clicks", "htmlonly")], {"track_clicks": True, "track_text_clicks": False}),
    ([("X-Mailgun-Track-Clicks", "no")], {"track_clicks": False, "track_text_clicks": False}),
    ([("X-Mailgun-Track-Opens", "no")], {"track_opens": False}),
    # the specific switch wins over X-Mailgun-Track wherever it stands
    ([("X-Mailgun-Track-Clicks", "htmlonly"), ("X-Mailgun-Track", "no")],
     {"track_opens": False, "track_clicks": True, "track_text_clicks": False}),
    ([("X-Mailgun-Track", "yes"), ("X-Mailgun-Track-Opens", "no")], {**ALL_ON, "track_opens": False}),
    ([("X-Mailgun-Deliver-By", "Fri, 14 Oct 2011 23:10:10 -0000")],
     {"send_at": datetime(2011, 10, 14, 23, 10, 10, tzinfo=UTC)}),
    ([("X-Mailgun-Deliver-By", "Thu, 13 Oct 2011 18:02:00 +0200")],
     {"send_at": datetime(2011, 10, 13, 16, 2, tzinfo=UTC)}),
    ([("X-Mailgun-Template-Name", "welcome"), ("X-Mailgun-Template-Variables", '{"x": 1}')],
     {"template_id": "welcome", "global_vars": {"x": 1}}),
    ([("X-Mailgun-Drop-Message", "no"), ("X-Mailgun-Dkim", "yes"), ("X-Mailgun-Require-TLS", "yes")],
     {}),
]

INVALID = [
    ([("X-Mailgun-Track", "maybe")], "expected yes or no"),
    ([("X-Mailgun-Track-Clicks", "textonly")], "expected yes or no"),
    ([("X-Mailgun-Variables", "my_message_id=123")], "is not valid JSON (Expecting value at"),
    ([("X-Mailgun-Variables", "[1, 2]")], "must be a JSON object"),
    ([("X-Mailgun-Variables", '{"x": NaN}')], "is not valid JSON"),
    ([("X-Mailgun-Recipient-Variables", '{"alice@example.com": "Alice"}')],
     'recipient variables of "alice@example.com" must be a JSON object'),
    ([("X-Mailgun-Recipient-Variables", '{"alice": {"name": "Alice"}}')],
     'recipient variables key "alice" is not an email address'),
    ([("X-Mailgun-Recipient-Variables", "[" * 100_000)], "nested too deeply"),
    ([("X-Mailgun-Deliver-By", "tomorrow at noon")], 'date "tomorrow at noon" is not a date'),
    ([("X-Mailgun-Deliver-By", "Fri, 14 Oct 2011 25:10:10 -0000")], "is not a date"),
    ([("X-Mailgun-Drop-Message", "yes")], "test mode is not supported"),
    ([("X-Mailgun-Tag", "")] + [("X-Mailgun-Tag", f"t{i}") for i in range(51)], "more than 50 tags in all"),
]

test_valid, test_invalid = table_tests(mailgun, VALID, INVALID)
