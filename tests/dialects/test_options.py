"""SendOptions: JSON for the store, and merge precedence."""

import json
from datetime import UTC, datetime

import pytest

from postroom.dialects import FileRef, Sender, SendOptions

FULL = SendOptions(
    campaign_id="c-1", campaign_name="Spring", tags=("a", "b"), metadata={"k": "v"},
    client_reference="ref", recipient_vars={"a@example.com": {"n": 1, "l": [1, {"x": None}]}},
    recipient_names={"a@example.com": "Ann"}, recipient_fields={"a@example.com": {"c": "CA"}},
    global_vars={"shop": "Books"}, substitution_syntax="zoho", sendgrid_sub={"-n-": ("Ann",)},
    sendgrid_sections={":s": "text"}, track_opens=False, track_clicks=True, track_text_clicks=False,
    unsubscribe=True, send_at=datetime(2030, 1, 1, tzinfo=UTC),
    send_each_at={"a@example.com": datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)},
    deliver_by=datetime(2030, 1, 3, tzinfo=UTC), template_id="t",
    attachments=(FileRef("k1", "a.pdf"), FileRef("k2")), notify_url="https://example.com/n",
    notify_content_type="application/json", callback_data="cb", intermediate_report=False,
    tracking_url="https://example.com/t", message_stream="outbound", configuration_set="cs",
    from_override=Sender("news@example.com", "News"), extra_recipients=("b@example.com",),
    dialects=("zoho", "postroom"),
)


def test_every_field_survives_json() -> None:
    text = json.dumps(FULL.to_json(), allow_nan=False)
    assert SendOptions.from_json(json.loads(text)) == FULL


def test_json_is_compact_and_plain() -> None:
    assert SendOptions().to_json() == {}
    out = SendOptions(track_opens=False, send_at=datetime(2030, 1, 1, tzinfo=UTC),
                      attachments=(FileRef("k"),)).to_json()
    assert out == {"track_opens": False, "send_at": "2030-01-01T00:00:00+00:00",
                   "attachments": [{"key": "k", "name": None}]}


def test_from_json_ignores_unknown_keys() -> None:
    assert SendOptions.from_json({"tags": ["a"], "added_later": 1}) == SendOptions(tags=("a",))


LOW = SendOptions(campaign_id="low", track_opens=True, tags=("a", "b"), metadata={"k": "1", "x": "1"},
                  recipient_vars={"a@example.com": {"n": "low", "only_low": 1}},
                  attachments=(FileRef("k1"),), dialects=("mailgun",))
HIGH = SendOptions(campaign_id="high", track_opens=None, tags=("b", "c"), metadata={"k": "2"},
                   recipient_vars={"a@example.com": {"n": "high"}, "b@example.com": {"n": "b"}},
                   attachments=(FileRef("k1"), FileRef("k1", "other.pdf")), dialects=("postroom",))


@pytest.mark.parametrize(("field", "expected"), [
    ("campaign_id", "high"),  # set in both: the higher wins
    ("track_opens", True),  # None is "not asked", never a value
    ("tags", ("a", "b", "c")),
    ("metadata", {"k": "2", "x": "1"}),
    ("recipient_vars", {"a@example.com": {"n": "high", "only_low": 1}, "b@example.com": {"n": "b"}}),
    ("attachments", (FileRef("k1"), FileRef("k1", "other.pdf"))),
    ("dialects", ("mailgun", "postroom")),
])
def test_merge_precedence(field: str, expected: object) -> None:
    assert getattr(LOW.merge(HIGH), field) == expected


def test_merge_with_nothing_changes_nothing() -> None:
    assert FULL.merge(SendOptions()) == FULL
    assert SendOptions().merge(FULL) == FULL


def test_bulk_and_syntax() -> None:
    assert not SendOptions().is_bulk and SendOptions().syntax == "postroom"
    assert SendOptions(campaign_name="Spring").is_bulk
    assert SendOptions(campaign_id="b-1", substitution_syntax="mailgun").syntax == "mailgun"
