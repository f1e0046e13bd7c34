"""Data-subject requests are an operator's: an admin key covers every account (or the one named),
and the answer says which accounts were covered."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from postroom.admin import accounts as admin_accounts

DSR = "/v1/data_subject_requests"
PERSON = "carol@example.net"


def _tenant(env: SimpleNamespace, name: str) -> tuple[str, dict[str, str]]:
    """An account of its own with a send/read key; the operator's key is env.auth (alice)."""
    account = admin_accounts.create_account(env.store, name, sender_domains=[f"{name}.example"],
                                            sender_addresses=[])
    _, key = admin_accounts.create_key(env.store, account.id, scopes=["send", "read"])
    return account.id, {"Authorization": f"Bearer {key}"}


def _send(env: SimpleNamespace, name: str, auth: dict[str, str]) -> str:
    item = {"from": {"email": f"news@{name}.example"}, "to": [{"email": PERSON}],
            "subject": "hello", "content": "<p>x</p>"}
    r = env.c.post("/v1/send_mail", json={"data": [item]}, headers=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["data"][0]["details"]["message_id"])


def _two_tenants(env: SimpleNamespace) -> dict[str, Any]:
    bob, bob_auth = _tenant(env, "bob")
    shop, shop_auth = _tenant(env, "shop")
    env.c.post("/v1/consents", json={"email": PERSON}, headers=shop_auth)
    return {"bob": (bob, _send(env, "bob", bob_auth)), "shop": (shop, _send(env, "shop", shop_auth))}


def test_access_and_erase_cover_every_account(env: SimpleNamespace) -> None:
    sent = _two_tenants(env)
    r = env.c.post(DSR, json={"email": PERSON, "type": "access"}, headers=env.auth)
    assert r.status_code == 200, r.text
    access = r.json()["data"]
    assert {m["id"] for m in access["messages"]} == {mid for _, mid in sent.values()}
    assert [c["account_id"] for c in access["consent"]] == [sent["shop"][0]]
    assert {a["name"] for a in access["accounts"]} == {"alice", "bob", "shop"}
    r = env.c.post(DSR, json={"email": PERSON, "type": "erase"}, headers=env.auth)
    assert r.status_code == 200, r.text
    erased = r.json()["data"]
    assert erased["messages"] == 2
    assert {a["name"]: a["messages"] for a in erased["accounts"]} == {"alice": 0, "bob": 1,
                                                                      "shop": 1}
    for _, mid in sent.values():
        message = env.store.get_message(mid)
        assert [x.address for x in message.recipients] == [erased["replaced_by"]]
    assert env.store.list_consents(sent["shop"][0], PERSON) == []


def test_an_account_field_limits_the_request_to_that_account(env: SimpleNamespace) -> None:
    sent = _two_tenants(env)
    r = env.c.post(DSR, json={"email": PERSON, "type": "erase", "account": "bob"},
                   headers=env.auth)
    assert r.status_code == 200, r.text
    assert [a["name"] for a in r.json()["data"]["accounts"]] == ["bob"]
    shop_message = env.store.get_message(sent["shop"][1])
    assert [x.address for x in shop_message.recipients] == [PERSON]
    r = env.c.post(DSR, json={"email": PERSON, "type": "access", "account": "nobody"},
                   headers=env.auth)
    assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND")
