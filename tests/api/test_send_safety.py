"""What an account must not be able to do through the HTTP API, and input that must get a JSON
error rather than a 500: header injection through names, template bombs, LIKE wildcards in
data-subject requests, one consent link for many readers, sends past the SMTP limits."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any

import pytest

from postroom.admin import accounts as admin_accounts
from postroom.api.routes.files import content_disposition
from postroom.render import tokens

BASE = {"from": {"email": "x@alice.example"}, "to": [{"email": "r@example.org"}],
        "subject": "s", "content": "<p>x</p>"}


def send(env: SimpleNamespace, *items: dict[str, Any]) -> list[dict[str, Any]]:
    r = env.c.post("/v1/send_mail", json={"data": list(items)}, headers=env.auth)
    assert r.status_code < 500, r.text
    return r.json()["data"]


def raw_of(env: SimpleNamespace, result: dict[str, Any]) -> bytes:
    return env.store.get_raw(result["details"]["message_id"])


def header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line[:1] not in (" ", "\t")]


@pytest.mark.parametrize("field", ["from", "to", "cc", "reply_to"])
def test_a_name_cannot_add_a_header(env: SimpleNamespace, field: str) -> None:
    person = {"email": "x@alice.example" if field == "from" else "p@example.org",
              "user_name": "Bob\r\nFrom: ceo@bank.example\r\nBcc: spy@evil.example"}
    item = {**BASE, field: person if field in ("from", "reply_to") else [person]}
    [result] = send(env, item)
    assert (result["code"], result["details"]["api_name"]) == ("INVALID_DATA", field)
    assert env.store.list_messages(limit=10) == []


def test_subject_line_breaks_are_spaces_with_and_without_attachments(
        env: SimpleNamespace) -> None:
    f = env.c.post("/v1/files", files={"file": ("a.txt", b"hello", "text/plain")},
                   headers=env.auth).json()["data"]
    plain, attached = send(env, {**BASE, "subject": "hi\r\nX-Evil: 1"},
                           {**BASE, "subject": "hi\r\nX-Evil: 1",
                            "attachments": [{"id": f["key"]}]})
    for result in (plain, attached):
        assert result["code"] == "SUCCESS", result
        assert "X-Evil" not in header_names(raw_of(env, result))
    [bad_name] = send(env, {**BASE, "attachments": [{"id": f["key"], "name": "a\r\nX: 1.txt"}]})
    assert bad_name["code"] == "INVALID_DATA"


def test_text_that_cannot_be_encoded_is_invalid_data(env: SimpleNamespace) -> None:
    body = ('{"data": [{"from": {"email": "x@alice.example"}, "to": [{"email": "r@example.org"}],'
            ' "subject": "\\ud800", "content": "x"}]}')
    r = env.c.post("/v1/send_mail", content=body, headers={**env.auth,
                                                           "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["data"][0]["code"] == "INVALID_DATA", r.text


def test_utf8_address_is_written_as_it_is(env: SimpleNamespace) -> None:
    [result] = send(env, {**BASE, "to": [{"email": "jöhn@example.org", "user_name": "Jöhn"}]})
    assert result["code"] == "SUCCESS", result
    raw = raw_of(env, result)
    assert "<jöhn@example.org>".encode() in raw and b"=?utf-8?" in raw  # the name, encoded


@pytest.mark.parametrize("source", [
    "{{ 7 ** 30000000 }}", '{{ "x" * 10**9 }}', '{{ "%0999999999d" % 1 }}',
    '{{ "%0999999999d"|format(1) }}', '{{ "x"|center(10**9) }}',
    '{{ ("a" * 100000)|replace("a", "a" * 100000) }}',
])
def test_template_bombs_are_refused_at_once(env: SimpleNamespace, source: str) -> None:
    started = time.monotonic()
    r = env.c.post("/v1/templates", json={"name": "t", "subject": "s", "html": source},
                   headers=env.auth)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_DATA", r.text
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("source", ["{{ 1/0 }}", "{{ range(10**9)|list }}", '{% include "x" %}',
                                    '{{ "%d"|format("a") }}', '{{ [1, "a"]|sort }}'])
def test_a_template_runtime_error_fails_its_item_only(env: SimpleNamespace, source: str) -> None:
    bad, good = send(env, {**BASE, "content": source, "merge_data": {"x": 1}}, BASE)
    assert (bad["code"], good["code"]) == ("INVALID_DATA", "SUCCESS")


def test_data_subject_addresses_are_not_patterns(env: SimpleNamespace) -> None:
    [sent] = send(env, {**BASE, "to": [{"email": "john@example.org"}]})
    dsr = "/v1/data_subject_requests"
    r = env.c.post(dsr, json={"email": "j_hn@example.org", "type": "access"}, headers=env.auth)
    assert r.status_code == 200 and r.json()["data"]["messages"] == [], r.text
    r = env.c.post(dsr, json={"email": "%@example.org", "type": "erase"}, headers=env.auth)
    assert r.status_code == 200 and r.json()["data"]["messages"] == 0, r.text
    message = env.store.get_message(sent["details"]["message_id"])
    assert [x.address for x in message.recipients] == ["john@example.org"]


def test_each_reader_gets_a_consent_link_of_their_own(env: SimpleNamespace) -> None:
    admin_accounts.update_settings(env.store, env.account.id, require_consent=True)
    env.app.state.keys.clear()
    item = {**BASE, "consent_email": True, "content": "<p>${ConsentForm}</p>",
            "to": [{"email": "first@example.org"}, {"email": "second@example.org"}]}
    [result] = send(env, item)
    assert result["code"] == "SUCCESS", result
    for message_id, reader in zip(result["details"]["message_ids"],
                                  ["first@example.org", "second@example.org"], strict=True):
        message = env.store.get_message(message_id)
        assert [x.address for x in message.recipients] == [reader]
        raw = env.store.get_raw(message_id).decode()
        [token] = set(re.findall(r"/consent/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", raw))
        assert tokens.verify(env.app.state.secret, "consent", token)["e"] == reader
    [with_bcc] = send(env, {**item, "bcc": [{"email": "third@example.org"}]})
    assert (with_bcc["code"], with_bcc["details"]["api_name"]) == ("INVALID_DATA", "consent_email")
    [no_form] = send(env, {**item, "content": "<p>Buy now</p>"})  # no way around the consent
    assert (no_form["code"], no_form["details"]["api_name"]) == ("INVALID_DATA", "content")


def test_http_sends_keep_the_smtp_limits(env: SimpleNamespace) -> None:
    many = [{"email": f"r{i}@example.org"} for i in range(6)]
    [too_many] = send(env, {**BASE, "to": many})
    assert (too_many["code"], too_many["details"]["maximum"]) == ("INVALID_DATA", 5)
    [too_big] = send(env, {**BASE, "content": "x" * 250_000})
    assert (too_big["code"], too_big["details"]["maximum"]) == ("INVALID_DATA", 200_000)
    admin_accounts.update_settings(env.store, env.account.id, daily_limit=2)
    env.app.state.keys.clear()
    personal = [{"email": f"p{i}@example.org", "merge_data": {"n": i}} for i in range(3)]
    [over] = send(env, {**BASE, "to": personal})
    assert over["code"] == "LIMIT_EXCEEDED", over
    [fits] = send(env, {**BASE, "to": personal[:2]})
    assert fits["code"] == "SUCCESS", fits
    assert len(env.store.list_messages(limit=10)) == 2


def test_a_file_with_a_non_latin_name_downloads(env: SimpleNamespace) -> None:
    f = env.c.post("/v1/files", files={"file": ("文件 a.pdf", b"%PDF", "application/pdf")},
                   headers=env.auth).json()["data"]
    r = env.c.get(f"/v1/files/{f['key']}", headers=env.auth)
    assert r.status_code == 200 and r.content == b"%PDF"
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"__ a.pdf\"; filename*=UTF-8''%E6%96%87%E4%BB%B6%20a.pdf")
    assert content_disposition('say "hi".txt') == (
        "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt")
    assert content_disposition("plain.txt") == 'attachment; filename="plain.txt"'


def test_plain_fields_are_text_not_templates(env: SimpleNamespace) -> None:
    """Without a template or merge data, `{{ code }}` is the sender's text (as at Zoho)."""
    [result] = send(env, {**BASE, "subject": "Your code {{ code }}",
                          "content": "<p>{% raw %} {{ 7*7 }}</p>"})
    assert result["code"] == "SUCCESS", result
    raw = raw_of(env, result)
    assert b"Subject: Your code {{ code }}" in raw and b"{% raw %} {{ 7*7 }}" in raw


def test_send_raw_refuses_provider_control_headers(env: SimpleNamespace) -> None:
    """They went to every recipient: one recipient's variables shown to all (review)."""
    raw = (b"From: x@alice.example\r\nTo: a@example.org\r\nSubject: s\r\n"
           b'X-Mailgun-Recipient-Variables: {"a@example.org": {"iban": "A-SECRET"}}\r\n'
           b"\r\nhello\r\n")
    r = env.c.post("/v1/send_raw?mail_from=x@alice.example&to=a@example.org", content=raw,
                   headers={**env.auth, "content-type": "message/rfc822"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_DATA", r.text
    assert r.json()["details"]["headers"] == ["x-mailgun-recipient-variables"]
    assert env.store.list_messages(limit=10) == []
