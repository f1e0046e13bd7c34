"""SendGrid's X-SMTPAPI, with the examples of its SMTP API pages (scheduling parameters, section
tags, settings/filters) and of its smtpapi client libraries' test strings."""

import json
from datetime import UTC, datetime

from tests.dialects import table_tests

from postroom.dialects import sendgrid


def smtpapi(value: object) -> list[tuple[str, str]]:
    return [("X-SMTPAPI", value if isinstance(value, str) else json.dumps(value))]


AT = datetime(2014, 8, 29, 21, 41, 53, tzinfo=UTC)  # 1409348513
TO = ["<ben@example.com>", "john@example.com", "mike@example.com"]
ADDRESSES = ("ben@example.com", "john@example.com", "mike@example.com")

VALID = [
    (smtpapi('{"send_at": 1409348513}'), {"send_at": AT}),
    (smtpapi({"to": TO, "send_each_at": [1409348513, 1409348514, 1409348515]}),
     {"extra_recipients": ADDRESSES,
      "send_each_at": {a: AT.replace(second=53 + i) for i, a in enumerate(ADDRESSES)}}),
    (smtpapi({"to": ["Ben Ex <ben@example.com>", "john@example.com"],
              "sub": {"-name-": ["Ben", "John"], "-id-": ["1", 2]}}),
     {"extra_recipients": ("ben@example.com", "john@example.com"),
      "recipient_names": {"ben@example.com": "Ben Ex"},
      "sendgrid_sub": {"-name-": ("Ben", "John"), "-id-": ("1", "2")},
      "recipient_vars": {"ben@example.com": {"-name-": "Ben", "-id-": "1"},
                         "john@example.com": {"-name-": "John", "-id-": "2"}},
      "substitution_syntax": "sendgrid"}),
    (smtpapi('{"sub":{"sub":["val 1","val 2"]}}'),  # without `to`: envelope order, kept as given
     {"sendgrid_sub": {"sub": ("val 1", "val 2")}, "substitution_syntax": "sendgrid"}),
    (smtpapi({"section": {":sectionName1": "section 1 text", ":sectionName2": "section 2 text"}}),
     {"sendgrid_sections": {":sectionName1": "section 1 text", ":sectionName2": "section 2 text"}}),
    (smtpapi('{"category":["addCategory","addCategory2"]}'),
     {"tags": ("addCategory", "addCategory2")}),
    (smtpapi('{"category": "send-001"}'), {"tags": ("send-001",)}),
    (smtpapi('{"unique_args":{"set_unique_argument_key":"set_unique_argument_value"}}'),
     {"metadata": {"set_unique_argument_key": "set_unique_argument_value"}}),
    (smtpapi({"unique_args": {"test": 1, "foo": 2}}), {"metadata": {"test": "1", "foo": "2"}}),
    (smtpapi({"filters": {"clicktrack": {"settings": {"enable": 1, "enable_text": True}}}}),
     {"track_clicks": True, "track_text_clicks": True}),
    (smtpapi({"filters": {"opentrack": {"settings": {"enable": "0"}}}}), {"track_opens": False}),
    (smtpapi({"filters": {"subscriptiontrack": {"settings": {"enable": 1}}}}),
     {"unsubscribe": True}),
    (smtpapi({"filters": {"templates": {"settings": {
        "enable": 1, "template_id": "5997fcf6-2b9f-484d-acd5-7e9a99f0dc1f"}}}}),
     {"template_id": "5997fcf6-2b9f-484d-acd5-7e9a99f0dc1f"}),
    (smtpapi({"filters": {"templates": {"settings": {"enable": 0, "template_id": "x"}},
                          "bypass_list_management": {"settings": {"enable": 1}},
                          "footer": {"settings": {"enable": 1, "text/plain": "Thanks"}}},
              "asm_group_id": 1, "ip_pool": "testPool"}), {}),  # accepted, ignored
]

INVALID = [
    (smtpapi("{'to': []}"), "is not valid JSON"),
    (smtpapi({"send_at": 1409348513, "send_each_at": [1409348513]}),
     "send_at and send_each_at exclude each other"),
    (smtpapi({"send_each_at": [1409348513]}), "send_each_at needs one time for each address"),
    (smtpapi({"to": TO, "send_each_at": [1409348513]}), "one time for each address in to"),
    (smtpapi({"send_at": "tomorrow"}), 'send_at "tomorrow" is not a date'),
    (smtpapi({"send_at": True}), "send_at a non-date is not a date"),
    (smtpapi({"to": "ben@example.com"}), "to must be a list"),
    (smtpapi({"to": ["ben"]}), 'to address "ben" is not an email address'),
    (smtpapi({"to": TO, "sub": {"-name-": ["Ben"]}}), 'sub "-name-" has 1 values for 3 recipients'),
    (smtpapi({"sub": {"-name-": "Ben"}}), 'sub "-name-" must be a list'),
    (smtpapi({"sub": {"-name-": [{"first": "Ben"}]}}), "value must be a string"),
    (smtpapi({"category": [f"c{i}" for i in range(11)]}), "more than 10 categories"),
    (smtpapi({"unique_args": ["a"]}), "unique_args must be a JSON object"),
    (smtpapi({"filters": {"clicktrack": {"settings": {"enable": "yes"}}}}),
     "clicktrack enable must be 0 or 1"),
    (smtpapi({"filters": {"templates": {"settings": {"enable": 1}}}}),
     "template_id must be a string"),
    (smtpapi({"filters": []}), "filters must be a JSON object"),
]

test_valid, test_invalid = table_tests(sendgrid, VALID, INVALID)
