"""Zoho Campaigns' X-ZCEA-SMTP-DATA, with the example of its SMTP API page (seed 000).

The page shows the addresses blanked out (`""`); `SEED` is the example verbatim, `FILLED` the same
with addresses written in.
"""

import json

from tests.dialects import table_tests

from postroom.dialects import Sender, zoho

SEED = ('{"campaign_name":"Summer is here","recipient_data":{"":{"name":"Aaron Fletcher",'
        '"additional_data":{"phone":"+91231241444","country":"CA"},"merge_data":{"first_name":'
        '"Aaron"}},"":{"name":"EA Test","additional_data":{"phone":"+9198762313210","country":'
        '"CA"},"merge_data":{"first_name":"EA"}}},"from":{"address":"","name":"Aron Fletcher"}}')
FILLED = (SEED.replace('{"":{"name":"Aaron', '{"Aaron@Example.com":{"name":"Aaron')
          .replace(',"":{"name":"EA', ',"ea@example.com":{"name":"EA')
          .replace('"address":""', '"address":"aron@example.com"'))
FILLED_FIELDS = {
    "campaign_name": "Summer is here",
    "recipient_vars": {"aaron@example.com": {"first_name": "Aaron"},
                       "ea@example.com": {"first_name": "EA"}},
    "recipient_names": {"aaron@example.com": "Aaron Fletcher", "ea@example.com": "EA Test"},
    "recipient_fields": {"aaron@example.com": {"phone": "+91231241444", "country": "CA"},
                         "ea@example.com": {"phone": "+9198762313210", "country": "CA"}},
    "substitution_syntax": "zoho",
    "from_override": Sender("aron@example.com", "Aron Fletcher"),
}


def data(value: object) -> list[tuple[str, str]]:
    return [("X-ZCEA-SMTP-DATA", value if isinstance(value, str) else json.dumps(value))]


ONE = {"a@example.com": {"merge_data": {"first_name": "Ann", "visits": 3}}}

VALID = [
    (data(FILLED), FILLED_FIELDS),
    (data({"transmission_name": "Order updates"}), {"campaign_name": "Order updates"}),
    (data({"transmission_name": "t", "campaign_name": "c"}), {"campaign_name": "c"}),
    (data({"recipient_data": ONE}),
     {"recipient_vars": {"a@example.com": {"first_name": "Ann", "visits": "3"}},
      "recipient_names": {}, "recipient_fields": {}, "substitution_syntax": "zoho"}),
    (data({"from": {"address": "news@example.com"}}), {"from_override": Sender("news@example.com")}),
    (data({"campaign_name": "c", "unknown_key": [1, 2]}), {"campaign_name": "c"}),
]

INVALID = [
    (data(SEED), 'recipient_data key "" is not an email address'),
    (data(FILLED[:-1]), "is not valid JSON"),
    (data([FILLED]), "must be a JSON object"),
    (data({"campaign_name": ["Summer"]}), "campaign_name must be a string"),
    (data({"recipient_data": []}), "recipient_data must be a JSON object"),
    (data({"recipient_data": {"a@example.com": "Ann"}}),
     'recipient_data "a@example.com" must be a JSON object'),
    (data({"recipient_data": {"a@example.com": {"merge_data": {"x": {"y": 1}}, "name": ["Ann"]}}}),
     'recipient_data "a@example.com" name must be a string'),
    (data({"recipient_data": {"a@example.com": {"merge_data": ["Ann"]}}}),
     "merge_data must be a JSON object"),
    (data({"from": {"name": "News"}}), "from address must be a string"),
    (data({"from": {"address": "news"}}), 'from address "news" is not an email address'),
    (data({"recipient_data": {f"u{i}@example.com": {} for i in range(10_001)}}),
     "more than 10000 recipients"),
]

test_valid, test_invalid = table_tests(zoho, VALID, INVALID)
