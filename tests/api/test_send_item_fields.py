"""Per-item send_mail fields: `track_opens` / `track_clicks` set the message's own tracking
switches (as the SMTP control headers do), and a control character in a subject fails only
its item, as one in a name does."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from postroom.delivery.copies import tracking_switches
from postroom.dialects.options import SendOptions

BASE = {"from": {"email": "x@alice.example"}, "to": [{"email": "r@example.org"}],
        "subject": "s", "content": "<p>x</p>"}


def _send(env: SimpleNamespace, *items: dict[str, Any]) -> list[dict[str, Any]]:
    body = json.dumps({"data": list(items)})  # ASCII, so a lone surrogate travels as \\ud800
    r = env.c.post("/v1/send_mail", content=body,
                   headers={**env.auth, "Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    return r.json()["data"]


def _options(env: SimpleNamespace, result: dict[str, Any]) -> SendOptions:
    message = env.store.get_message(result["details"]["message_id"])
    return SendOptions.from_json(message.options or {})


def test_per_item_tracking_switches(env: SimpleNamespace) -> None:
    on, off, unset = _send(env, {**BASE, "track_opens": True, "track_clicks": True},
                           {**BASE, "track_opens": False, "track_clicks": False}, BASE)
    assert (_options(env, on).track_opens, _options(env, on).track_clicks) == (True, True)
    assert (_options(env, off).track_opens, _options(env, off).track_clicks) == (False, False)
    assert (_options(env, unset).track_opens, _options(env, unset).track_clicks) == (None, None)
    account = env.account.__class__(id="a", name="a", track_opens=True, track_clicks=True)
    switches = tracking_switches(_options(env, off), account)  # off wins over the account
    assert (switches.opens, switches.clicks) == (False, False)
    r = env.c.post("/v1/send_mail", json={"data": [{**BASE, "track_opens": "sometimes"}]},
                   headers=env.auth)  # a wrong type is the request's shape, as for any field
    assert (r.status_code, r.json()["code"]) == (400, "INVALID_DATA"), r.text
    assert r.json()["details"]["fields"][0]["api_name"] == "data.0.track_opens"


@pytest.mark.parametrize("subject", ["a\x00b", "a\x07b", "a\x7fb", "a\ud800b"])
def test_a_control_character_in_a_subject_fails_its_item_only(
        env: SimpleNamespace, subject: str) -> None:
    bad, good = _send(env, {**BASE, "subject": subject}, BASE)
    assert (bad["code"], bad["details"]["api_name"]) == ("INVALID_DATA", "subject"), bad
    assert good["code"] == "SUCCESS", good
    assert [m.subject for m in env.store.list_messages(limit=10)] == ["s"]


def test_a_templated_subject_is_checked_after_merging(env: SimpleNamespace) -> None:
    [bad] = _send(env, {**BASE, "subject": "Hi {{ who }}", "merge_data": {"who": "a\x00b"}})
    assert (bad["code"], bad["details"]["api_name"]) == ("INVALID_DATA", "subject"), bad
    [tab] = _send(env, {**BASE, "subject": "tab\there"})  # whitespace, not a control to refuse
    assert tab["code"] == "SUCCESS", tab
