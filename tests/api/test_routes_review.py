"""HTTP API behaviour a review found wrong (each test failed before its fix): a refused account
creation left the account behind, a huge events cursor was a 500, recipient filters were
case-sensitive, a repeated suppression reported a reason it did not store, an address with a
"/" could not be unsuppressed, and every repeated one-click unsubscribe added an event."""

from __future__ import annotations

from types import SimpleNamespace

from postroom.render import tokens

ITEM = {"from": {"email": "x@alice.example"}, "subject": "s", "content": "<p>x</p>"}


def test_a_refused_account_is_not_created(env: SimpleNamespace) -> None:
    body = {"name": "carol", "sender_domains": ["c.example"], "tracking_base_url": "ftp://x"}
    r = env.c.post("/v1/admin/accounts", json=body, headers=env.auth)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_DATA", r.text
    assert env.c.get("/v1/admin/accounts/carol", headers=env.auth).status_code == 404
    body["tracking_base_url"] = "https://t.example"
    assert env.c.post("/v1/admin/accounts", json=body, headers=env.auth).status_code == 201


def test_a_huge_events_cursor_is_a_json_error(env: SimpleNamespace) -> None:
    r = env.c.get("/v1/events?cursor=99999999999999999999999", headers=env.auth)
    assert r.status_code == 400, r.text


def test_recipient_filters_ignore_case(env: SimpleNamespace) -> None:
    r = env.c.post("/v1/send_mail", json={"data": [{**ITEM, "to": [{"email": "User0@Example.org"}]}]},
                   headers=env.auth)
    assert r.status_code == 200, r.text
    for path in ("/v1/messages", "/v1/events"):
        found = env.c.get(f"{path}?recipient=user0@example.ORG", headers=env.auth).json()["data"]
        assert len(found) == 1, (path, found)


def test_suppressions_report_what_is_stored_and_can_always_be_removed(
        env: SimpleNamespace) -> None:
    add = lambda email, reason: env.c.post(  # noqa: E731
        "/v1/suppressions", json={"email": email, "reason": reason}, headers=env.auth)
    assert add("A@B.example", "bounce").json()["data"]["reason"] == "bounce"
    assert add("A@B.example", "manual").json()["data"]["reason"] == "bounce"
    assert add("a/b@b.example", "manual").status_code == 201
    r = env.c.delete("/v1/suppressions/a%2Fb@b.example", headers=env.auth)
    assert r.status_code == 200, r.text


def test_a_repeated_one_click_unsubscribe_is_one_event(env: SimpleNamespace) -> None:
    token = tokens.sign(env.app.state.secret, "unsubscribe",
                        {"a": env.account.id, "m": "m1", "r": "r@example.org"})
    for _ in range(3):
        r = env.c.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200, r.text
    events = env.store.list_events("m1")
    assert [e.type.value for e in events] == ["unsubscribed"]


def test_an_unsubscribe_from_a_second_message_is_recorded(env: SimpleNamespace) -> None:
    """Once suppressed by message m1's link, a one-click from m2's is still m2's event."""
    for message_id in ("m1", "m2", "m2"):
        token = tokens.sign(env.app.state.secret, "unsubscribe",
                            {"a": env.account.id, "m": message_id, "r": "r@example.org"})
        assert env.c.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    for message_id in ("m1", "m2"):
        assert [e.type.value for e in env.store.list_events(message_id)] == ["unsubscribed"]


def test_message_id_is_not_combined_with_other_filters(env: SimpleNamespace) -> None:
    r = env.c.get("/v1/messages?message_id=x&tag=odd", headers=env.auth)
    assert r.status_code == 400 and r.json()["details"]["filters"] == ["tag"], r.text
    assert env.c.get("/v1/messages?message_id=x", headers=env.auth).json()["data"] == []


def test_a_key_needs_a_scope(env: SimpleNamespace) -> None:
    r = env.c.post("/v1/admin/accounts/alice/keys", json={"scopes": []}, headers=env.auth)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_DATA", r.text
