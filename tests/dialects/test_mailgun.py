"""Mailgun, with the examples of its "Passing Sending Options" and "Batch Sending" pages."""

from datetime import UTC, datetime

from tests.dialects import table_tests

from postroom.dialects import extract, mailgun
from postroom.render.copy import Copies, Recipient
from postroom.render.personalize import Substitution

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
    # data for events; a template's variables only (`registry.parse_all` decides)
    ([("X-Mailgun-Variables", '{"my_message_id": 123}')],
     {"metadata": {"my_message_id": "123"}, "template_vars": {"my_message_id": 123}}),
    ([("X-Mailgun-Variables", '{"a": "x"}'), ("X-Mailgun-Variables", '{"b": {"c": true}}')],
     {"metadata": {"a": "x", "b": '{"c":true}'}, "template_vars": {"a": "x", "b": {"c": True}}}),
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
     {"template_id": "welcome", "template_vars": {"x": 1}}),
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


def headers(*fields: str) -> bytes:
    return "".join(f"{f}\r\n" for f in fields).encode() + b"\r\n"


def test_variables_are_data_for_events_and_no_placeholders_without_a_template() -> None:
    options, _ = extract(headers('X-Mailgun-Variables: {"x": "X", "order": 7}',
                                 'X-Mailgun-Template-Variables: {"y": "Y"}'))
    assert options.metadata == {"x": "X", "order": "7"}  # still reported with every event
    assert options.global_vars == {} and options.template_vars == {}
    assert options.to_json().keys() == {"metadata", "dialects"}
    # what delivery builds from the stored options: a plain body keeps its braces
    sub = Substitution(syntax=options.syntax, chosen=options.substitution_syntax is not None,
                       global_vars=options.global_vars)
    raw = b"From: a@shop.example\r\nSubject: {{ x }}\r\n\r\nTotal {{ order }} {{ y }}\r\n"
    copies = Copies(raw, message_id="m1", account_id="acc1", substitution=sub)
    assert copies.render(Recipient("r@example.org")) == raw


def test_variables_fill_the_template_the_message_uses() -> None:
    for template in ("X-Mailgun-Template-Name: welcome", "X-Postroom-Template: welcome"):
        options, _ = extract(headers(template, 'X-Mailgun-Variables: {"x": 1, "y": 1}',
                                     'X-Mailgun-Template-Variables: {"y": 2}',
                                     'X-Postroom-Global-Variables: {"z": 3}'))
        assert options.template_id == "welcome"
        assert options.global_vars == {"x": 1, "y": 2, "z": 3}  # the more specific header wins
        assert options.metadata == {"x": "1", "y": "1"} and options.template_vars == {}


def test_recipient_variables_do_not_fall_back_to_event_data() -> None:
    options, _ = extract(headers('X-Mailgun-Variables: {"name": "shared"}',
                                 'X-Mailgun-Recipient-Variables: {"a@example.org": {}}'))
    assert options.global_vars == {} and options.substitution_syntax == "mailgun"
