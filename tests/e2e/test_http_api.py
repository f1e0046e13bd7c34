"""The HTTP API over real HTTP against a running `postroom serve`: every endpoint and error code."""

from __future__ import annotations

import base64
import email
import json
import time
from collections.abc import Iterator
from email import policy
from typing import Any

import httpx
import pytest

from support.server import RunningServer, make_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = make_server(tmp_path_factory.mktemp("http"), smtp_extra="max_recipients = 50\n")
    srv.create_account("shop", "--sender-domain", "shop.example", "--sender-address",
                       "owner@shop.example")
    srv.create_account("capped", "--sender-domain", "capped.example", "--daily-limit", "2")
    srv.create_account("fenced", "--sender-domain", "fenced.example", "--allow-ip", "10.1.2.0/24")
    out = srv.cli("keys", "create", "--account", "shop", "--scope", "read", "--json").stdout
    srv.keys["shop-read"] = json.loads(out)["key"]
    out = srv.cli("keys", "create", "--account", "shop", "--scope", "admin", "--scope", "send",
                  "--scope", "read", "--json").stdout
    srv.keys["admin"] = json.loads(out)["key"]
    srv.start()
    yield srv
    srv.stop()


def client(server: RunningServer, key: str | None = None, scheme: str = "Bearer") -> httpx.Client:
    headers = {"Authorization": f"{scheme} {key}"} if key else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{server.http}", headers=headers, timeout=20)


def item(**over: Any) -> dict[str, Any]:
    base = {"from": {"user_name": "Shop", "email": "news@shop.example"},
            "to": [{"user_name": "Jason Smith", "email": "j.smith@example.org"}],
            "subject": "Testing Send Mail API", "content": "<h3>Hello</h3><p>World</p>",
            "mail_format": "html"}
    base.update(over)
    return base


def test_send_mail_seed_shape_and_store(server: RunningServer) -> None:
    with client(server, server.keys["shop"]) as c:
        r = c.post("/v1/send_mail", json={"data": [item(
            cc=[{"user_name": "user3", "email": "user3@example.org"}],
            bcc=[{"user_name": "user4", "email": "user4@example.org"}],
            reply_to={"user_name": "user5", "email": "user5@example.org"})]})
    assert r.status_code == 200, r.text
    body = r.json()["data"][0]
    assert body["code"] == "SUCCESS" and body["status"] == "success"
    assert body["message"] == "Your mail has been sent successfully."
    mid = body["details"]["message_id"]
    shown = server.message(mid)
    assert sorted(x["address"] for x in shown["recipients"]) == [
        "j.smith@example.org", "user3@example.org", "user4@example.org"]
    assert mid in server.cli("messages", "show", mid).stdout
    from postroom.store.api import Store

    store = Store(server.storage_url)
    raw = store.get_raw(mid)
    store.close()
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Bcc"] is None and "user4" not in raw.decode()
    assert msg["Cc"] == "user3 <user3@example.org>"
    assert msg["Reply-To"] == "user5 <user5@example.org>"
    assert msg.get_content_type() == "multipart/alternative"
    assert "Hello" in msg.get_body(("plain",)).get_content()


def test_zoho_oauthtoken_scheme_and_auth_errors(server: RunningServer) -> None:
    with client(server, server.keys["shop"], "Zoho-oauthtoken") as c:
        assert c.get("/v1/ping").status_code == 200
    with client(server) as c:
        r = c.post("/v1/send_mail", json={"data": [item()]})
        assert r.status_code == 401 and r.json()["code"] == "AUTHENTICATION_FAILURE"
    with client(server, "pr_not-a-real-key-0000000000") as c:
        assert c.get("/v1/messages").json()["code"] == "AUTHENTICATION_FAILURE"
    with client(server, server.keys["shop-read"]) as c:
        r = c.post("/v1/send_mail", json={"data": [item()]})
        assert r.status_code == 403 and r.json()["code"] == "NO_PERMISSION"
        assert c.get("/v1/messages").status_code == 200
    with client(server, server.keys["fenced"]) as c:
        r = c.get("/v1/ping")
        assert r.status_code == 403 and r.json()["code"] == "NO_PERMISSION"


def test_per_item_errors_and_status_codes(server: RunningServer) -> None:
    with client(server, server.keys["shop"]) as c:
        r = c.post("/v1/send_mail", json={"data": [
            item(), item(**{"from": None}), item(to=[]),
            item(**{"from": {"email": "ceo@evil.example"}}), item(to=[{"email": "bad@"}]),
            item(scheduled_time="tomorrow"), item(attachments=[{"id": "nope"}]),
            item(mail_format="rtf"), item(in_reply_to="01nonexistent")]})
        assert r.status_code == 207
        codes = [(d["code"], d["details"].get("api_name")) for d in r.json()["data"]]
        assert codes == [("SUCCESS", None), ("MANDATORY_NOT_FOUND", "from"),
                         ("MANDATORY_NOT_FOUND", "to"), ("INVALID_DATA", "from"),
                         ("INVALID_DATA", "to"), ("INVALID_DATA", "scheduled_time"),
                         ("INVALID_DATA", "attachments"), ("INVALID_DATA", "mail_format"),
                         ("INVALID_DATA", "in_reply_to")]
        assert all(d["status"] == "error" for d in r.json()["data"][1:])
        r = c.post("/v1/send_mail", json={"data": [item(to=[])]})
        assert r.status_code == 400
        r = c.post("/v1/send_mail", json={"data": [item()] * 501})
        assert r.status_code == 400 and r.json()["code"] == "INVALID_DATA"
        r = c.post("/v1/send_mail", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["status"] == "error"
        assert c.get("/v1/nowhere").json()["code"] == "NOT_FOUND"


def test_suppressed_recipient_not_allowed_and_suppression_api(server: RunningServer) -> None:
    with client(server, server.keys["shop"]) as c:
        r = c.post("/v1/suppressions", json={"email": "Gone@Example.org", "reason": "unsubscribe"})
        assert r.status_code == 201
        r = c.post("/v1/send_mail", json={"data": [item(to=[{"email": "gone@example.org"}])]})
        assert r.status_code == 400
        d = r.json()["data"][0]
        assert d["code"] == "NOT_ALLOWED" and d["details"]["email"] == "gone@example.org"
        listed = c.get("/v1/suppressions").json()["data"]
        assert {"email": "gone@example.org", "reason": "unsubscribe"}.items() <= listed[0].items()
        assert c.delete("/v1/suppressions/gone@example.org").status_code == 200
        assert c.delete("/v1/suppressions/gone@example.org").json()["code"] == "NOT_FOUND"
        r = c.post("/v1/send_mail", json={"data": [item(to=[{"email": "gone@example.org"}])]})
        assert r.status_code == 200


def test_daily_limit(server: RunningServer) -> None:
    capped = item(**{"from": {"email": "a@capped.example"}})
    with client(server, server.keys["capped"]) as c:
        r = c.post("/v1/send_mail", json={"data": [capped, capped, capped]})
        assert [d["code"] for d in r.json()["data"]] == ["SUCCESS", "SUCCESS", "LIMIT_EXCEEDED"]


def test_idempotency_key(server: RunningServer) -> None:
    with client(server, server.keys["shop"]) as c:
        h = {"Idempotency-Key": "order-42"}
        first = c.post("/v1/send_mail", json={"data": [item()]}, headers=h)
        again = c.post("/v1/send_mail", json={"data": [item()]}, headers=h)
        assert first.json() == again.json() and again.headers["Idempotent-Replayed"] == "true"
        other = c.post("/v1/send_mail", json={"data": [item(subject="x")]}, headers=h)
        assert other.status_code == 400
    mid = first.json()["data"][0]["details"]["message_id"]
    listed = json.loads(server.cli("messages", "list", "--json", "--limit", "1000").stdout)
    assert [m["id"] for m in listed].count(mid) == 1
    assert sum(m["subject"] == "Testing Send Mail API" for m in listed) >= 1


def test_scheduled_mail_and_cancel(server: RunningServer) -> None:
    with client(server, server.keys["shop"]) as c:
        r = c.post("/v1/send_mail", json={"data": [item(scheduled_time="2031-06-12T12:12:12+05:30")]})
        d = r.json()["data"][0]
        assert d["message"] == "Your mail has been scheduled successfully."
        mid = d["details"]["message_id"]
        got = c.get(f"/v1/messages/{mid}").json()["data"]
        assert got["recipients"][0]["status"] == "scheduled"
        assert [e["type"] for e in got["events"]] == ["scheduled"]
        assert c.delete(f"/v1/messages/{mid}/schedule").status_code == 200
        assert c.get(f"/v1/messages/{mid}").json()["data"]["recipients"][0]["status"] == "failed"
        assert c.delete(f"/v1/messages/{mid}/schedule").status_code == 404


def test_in_reply_to_sets_headers(server: RunningServer) -> None:
    from postroom.store.api import Store

    with client(server, server.keys["shop"]) as c:
        first = c.post("/v1/send_mail", json={"data": [item()]}).json()["data"][0]
        mid = first["details"]["message_id"]
        reply = c.post("/v1/send_mail", json={"data": [item(in_reply_to=mid)]}).json()["data"][0]
    store = Store(server.storage_url)
    raw = store.get_raw(reply["details"]["message_id"])
    header = store.get_message(mid).message_id_header
    store.close()
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["In-Reply-To"] == header and msg["References"] == header


def test_send_raw_json_and_rfc822(server: RunningServer) -> None:
    raw = b"From: news@shop.example\r\nTo: r@example.org\r\nSubject: raw\r\n\r\nhi\r\n"
    with client(server, server.keys["shop"]) as c:
        r = c.post("/v1/send_raw", json={"raw": base64.b64encode(raw).decode(),
                                         "mail_from": "news@shop.example",
                                         "recipients": ["r@example.org"]})
        assert r.status_code == 200, r.text
        mid = r.json()["data"][0]["details"]["message_id"]
        r = c.post("/v1/send_raw?mail_from=news@shop.example&to=a@example.org&to=b@example.org",
                   content=raw, headers={"content-type": "message/rfc822"})
        assert r.status_code == 200, r.text
        mid2 = r.json()["data"][0]["details"]["message_id"]
        bad = raw.replace(b"news@shop.example", b"x@evil.example")
        r = c.post("/v1/send_raw", json={"raw": base64.b64encode(bad).decode(),
                                         "mail_from": "news@shop.example",
                                         "recipients": ["r@example.org"]})
        assert r.status_code == 400 and r.json()["code"] == "INVALID_DATA"
    assert server.message(mid)["subject"] == "raw"
    assert len(server.message(mid2)["recipients"]) == 2


def test_files_attachments_and_inline_images(server: RunningServer) -> None:
    from postroom.store.api import Store

    with client(server, server.keys["shop"]) as c:
        up = c.post("/v1/files", files={"file": ("report.pdf", b"%PDF-1.1 x", "application/pdf")})
        assert up.status_code == 201
        key = up.json()["data"]["key"]
        img = c.post("/v1/files", files={"file": ("logo.png", b"\x89PNG....", "image/png")})
        ikey = img.json()["data"]["key"]
        assert c.get(f"/v1/files/{key}").content == b"%PDF-1.1 x"
        assert c.get(f"/v1/files/{key}?meta=true").json()["data"]["name"] == "report.pdf"
        r = c.post("/v1/send_mail", json={"data": [item(
            content='<p>Logo: <img src="cid:logo1"></p>',
            attachments=[{"id": key}, {"id": ikey, "content_id": "logo1"}])]})
        assert r.status_code == 200, r.text
        mid = r.json()["data"][0]["details"]["message_id"]
        big = c.post("/v1/files", files={"file": ("big.bin", b"0" * (6 * 1024 * 1024))})
        big2 = c.post("/v1/files", files={"file": ("big2.bin", b"0" * (6 * 1024 * 1024))})
        r = c.post("/v1/send_mail", json={"data": [item(attachments=[
            {"id": big.json()["data"]["key"]}, {"id": big2.json()["data"]["key"]}])]})
        assert r.json()["data"][0]["code"] == "FILE_SIZE_EXCEEDS"
        assert c.delete(f"/v1/files/{key}").status_code == 200
        assert c.get(f"/v1/files/{key}").json()["code"] == "NOT_FOUND"
    store = Store(server.storage_url)
    msg = email.message_from_bytes(store.get_raw(mid), policy=policy.default)
    store.close()
    names = [p.get_filename() for p in msg.walk() if p.get_filename()]
    assert sorted(names) == ["logo.png", "report.pdf"]
    inline = [p for p in msg.walk() if p["Content-ID"] == "<logo1>"]
    assert inline and inline[0].get_content_disposition() == "inline"


def test_templates_and_merge_data(server: RunningServer) -> None:
    from postroom.store.api import Store

    with client(server, server.keys["shop"]) as c:
        t = c.post("/v1/templates", json={"name": "welcome", "subject": "Hi {{ first_name }}",
                                          "html": "<p>Hello {{ first_name }} from {{ shop }}</p>",
                                          "text": "Hello {{ first_name }}"}).json()["data"]
        assert c.get(f"/v1/templates/{t['id']}").json()["data"]["name"] == "welcome"
        r = c.post("/v1/send_mail", json={"data": [{
            "from": {"email": "news@shop.example"}, "template": {"id": t["id"]},
            "merge_data": {"shop": "<Shop & Co>"},
            "to": [{"email": "a@example.org", "merge_data": {"first_name": "Ann"}},
                   {"email": "b@example.org", "merge_data": {"first_name": "<b>Bob</b>"}}]}]})
        assert r.status_code == 200, r.text
        ids = r.json()["data"][0]["details"]["message_ids"]
        r = c.post("/v1/send_mail", json={"data": [{
            "from": {"email": "news@shop.example"}, "template": {"id": t["id"]},
            "to": [{"email": "c@example.org"}]}]})
        d = r.json()["data"][0]
        assert d["code"] == "INVALID_DATA" and "first_name" in d["message"]
        assert c.patch(f"/v1/templates/{t['id']}", json={"missing_policy": "empty"}).status_code == 200
        r = c.post("/v1/send_mail", json={"data": [{
            "from": {"email": "news@shop.example"}, "template": {"id": t["id"]},
            "to": [{"email": "c@example.org"}]}]})
        assert r.json()["data"][0]["code"] == "SUCCESS"
        bad = c.post("/v1/templates", json={"name": "x", "html": "{{ unclosed"})
        assert bad.json()["code"] == "INVALID_DATA"
        assert c.delete(f"/v1/templates/{t['id']}").status_code == 200
    store = Store(server.storage_url)
    bodies = {}
    for i in ids:
        m = email.message_from_bytes(store.get_raw(i), policy=policy.default)
        bodies[m["To"]] = (m["Subject"], m.get_body(("html",)).get_content())
    store.close()
    assert bodies["a@example.org"][0] == "Hi Ann"
    assert "Hello Ann from &lt;Shop &amp; Co&gt;" in bodies["a@example.org"][1]
    assert "&lt;b&gt;Bob&lt;/b&gt;" in bodies["b@example.org"][1]  # escaped in HTML


def test_status_events_and_filters(server: RunningServer) -> None:
    with client(server, server.keys["shop"]) as c:
        r = c.post("/v1/send_mail", json={"data": [item(tags=["welcome"],
                                                        to=[{"email": "filter@example.org"}])]})
        mid = r.json()["data"][0]["details"]["message_id"]
        got = c.get("/v1/messages", params={"recipient": "filter@example.org"}).json()
        assert [m["id"] for m in got["data"]] == [mid]
        assert got["data"][0]["tags"] == ["welcome"]
        assert c.get("/v1/messages", params={"tag": "welcome"}).json()["data"][0]["id"] == mid
        page = c.get("/v1/messages", params={"limit": 2}).json()
        nxt = c.get("/v1/messages", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        assert not {m["id"] for m in page["data"]} & {m["id"] for m in nxt["data"]}
        ev = c.get("/v1/events", params={"message_id": mid}).json()["data"]
        assert [e["type"] for e in ev] == ["queued"]
        assert c.get("/v1/events", params={"type": "queued", "limit": 1}).json()["next_cursor"]
        assert c.get("/v1/messages", params={"since": "yesterday"}).json()["code"] == "INVALID_DATA"
        froms = c.get("/v1/from_addresses").json()["from_addresses"]
        assert {"email": "owner@shop.example", "type": "address"} in froms
    with client(server, server.keys["capped"]) as c:  # another account cannot see it
        assert c.get(f"/v1/messages/{mid}").json()["code"] == "NOT_FOUND"


def test_consent_flow_and_data_subject_requests(server: RunningServer) -> None:
    with client(server, server.keys["admin"]) as c:
        acct = c.post("/v1/admin/accounts", json={"name": "gdpr", "sender_domains": ["gdpr.example"],
                                                  "require_consent": True}).json()["data"]
        key = c.post(f"/v1/admin/accounts/{acct['id']}/keys",
                     json={"scopes": ["send", "read", "admin"]}).json()["data"]["key"]
    g = item(**{"from": {"email": "dpo@gdpr.example"}}, to=[{"email": "lead@example.org"}])
    with client(server, key) as c:
        r = c.post("/v1/send_mail", json={"data": [g]})
        assert r.json()["data"][0]["code"] == "NOT_ALLOWED"
        ask = dict(g, consent_email=True,
                   content='<a href="${ConsentForm.en_US}" id="ConsentForm">Consent form link</a>')
        r = c.post("/v1/send_mail", json={"data": [ask]})
        assert r.status_code == 200, r.text
        mid = r.json()["data"][0]["details"]["message_id"]
    from postroom.store.api import Store

    store = Store(server.storage_url)
    html = email.message_from_bytes(store.get_raw(mid), policy=policy.default) \
        .get_body(("html",)).get_content()
    store.close()
    link = html.split('href="')[1].split('"')[0]
    assert "/consent/" in link
    with httpx.Client(timeout=10) as web:
        assert web.get(link).status_code == 200
        tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
        assert web.post(tampered).status_code == 404
        assert web.post(link).status_code == 200
    with client(server, key) as c:
        consents = c.get("/v1/consents", params={"email": "lead@example.org"}).json()["data"]
        assert consents[0]["ip"] == "127.0.0.1" and consents[0]["source"] == "consent_form"
        assert c.post("/v1/send_mail", json={"data": [g]}).status_code == 200
        access = c.post("/v1/data_subject_requests",
                        json={"email": "lead@example.org", "type": "access"}).json()["data"]
        assert len(access["messages"]) == 2 and access["consent"]
        csv = c.post("/v1/data_subject_requests",
                     json={"email": "lead@example.org", "type": "export", "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv") and "lead@example.org" in csv.text
        erased = c.post("/v1/data_subject_requests",
                        json={"email": "lead@example.org", "type": "erase"}).json()["data"]
        assert erased["messages"] == 2
        after = c.post("/v1/data_subject_requests",
                       json={"email": "lead@example.org", "type": "access"}).json()["data"]
        assert after["messages"] == [] and after["consent"] == []
        shown = c.get(f"/v1/messages/{mid}").json()["data"]
        assert shown["recipients"][0]["address"].startswith("erased-")  # counts survive


def test_admin_endpoints(server: RunningServer) -> None:
    with client(server, server.keys["admin"]) as c:
        names = [a["name"] for a in c.get("/v1/admin/accounts").json()["data"]]
        assert "shop" in names
        r = c.post("/v1/admin/accounts", json={"name": "api-made", "sender_domains": ["m.example"]})
        assert r.status_code == 201
        assert c.post("/v1/admin/accounts", json={"name": "api-made",
                                                  "sender_domains": ["m.example"]}).status_code == 400
        k = c.post("/v1/admin/accounts/api-made/keys", json={}).json()["data"]
        assert k["key"].startswith("pr_") and k["scopes"] == ["send", "read"]
        keys = c.get("/v1/admin/accounts/api-made/keys").json()["data"]
        assert "key" not in keys[0] and keys[0]["prefix"] == k["prefix"]
        assert c.delete(f"/v1/admin/keys/{k['id']}").status_code == 200
        assert c.get("/v1/admin/domains").status_code == 200
    with client(server, k["key"]) as c:
        assert c.get("/v1/ping").status_code == 401  # revoked
    with client(server, server.keys["shop"]) as c:
        assert c.get("/v1/admin/accounts").json()["code"] == "NO_PERMISSION"


def test_openapi_and_docs(server: RunningServer) -> None:
    with client(server) as c:
        spec = c.get("/openapi.json").json()
        assert "/v1/send_mail" in spec["paths"] and c.get("/docs").status_code == 200


def test_rate_limited(tmp_path_factory: pytest.TempPathFactory) -> None:
    srv = make_server(tmp_path_factory.mktemp("rl"), extra="")
    srv.config.write_text(srv.config.read_text().replace(
        "[http]\n", "[http]\nrate_limit_per_second = 2\n"))
    key = srv.create_account("rl", "--sender-domain", "rl.example")
    srv.start()
    try:
        with client(srv, key) as c:
            codes = [c.get("/v1/ping").status_code for _ in range(10)]
            assert 429 in codes
            r = c.get("/v1/ping")
            if r.status_code == 429:
                assert r.json()["code"] == "RATE_LIMITED"
            time.sleep(1.1)
            assert c.get("/v1/ping").status_code == 200
    finally:
        srv.stop()
