"""Events out, end to end: SMTP with Infobip headers -> `postroom serve` -> a loopback mail
server that takes one recipient and refuses another -> signed POSTs to real HTTP receivers."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.delivery.harness import SENDER_DOMAIN, delivery_config, dns_world, wait_until

from postroom.events.signing import verify
from support.http_receiver import HttpReceiver
from support.server import RunningServer, free_port, make_server
from support.smtp_sinks import SmtpSink

pytestmark = pytest.mark.slow
FAST = "[webhooks]\nretry_base_seconds = 0.2\nretry_max_seconds = 1.0\npoll_seconds = 0.05\n" \
       "timeout_seconds = 2.0\nallow_private_targets = true\n"  # receivers on loopback
CALLBACK = '{"order": 1001, "note": "echo me"}'


class Api:
    def __init__(self, server: RunningServer, key: str) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{server.http}", timeout=10,
                                 headers={"Authorization": f"Bearer {key}"})

    def __call__(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        assert r.status_code < 300, r.text
        return r.json()["data"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[RunningServer, Api, SmtpSink]]:
    with dns_world() as dns, SmtpSink(rcpt_replies={
        "bad@rcpt.test": "550 5.1.1 <bad@rcpt.test>: Recipient address rejected: User unknown",
    }) as sink:
        server = make_server(tmp_path, extra=FAST, delivery=delivery_config(dns, sink.port))
        key = server.create_account("shop", "--sender-domain", SENDER_DOMAIN,
                                    "--trusted-network", "127.0.0.0/8")
        server.start()
        try:
            yield server, Api(server, key), sink
        finally:
            server.stop()


def submit(server: RunningServer, rcpts: list[str], headers: str) -> str:
    msg = (f"From: Shop <news@{SENDER_DOMAIN}>\r\nTo: someone@rcpt.test\r\n{headers}"
           "Subject: Your order\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
           '<html><body><a href="https://shop.example/o/1001">Order</a></body></html>\r\n'
           ).encode()
    with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
        c.ehlo("tester")
        c.mail(f"news@{SENDER_DOMAIN}")
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        code, text = c.data(msg)
        assert code == 250, text
    return text.decode().split("<")[1].rstrip(">")


def events_by_type(hook: HttpReceiver, secret: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for req in hook.accepted():
        assert verify(req.body, req.headers["postroom-signature"], secret), req.headers
        for e in req.json()["events"]:
            found.setdefault(e["type"], []).append(e)
    return found


def test_every_outcome_reaches_the_receivers_signed_with_callback_data(world: Any) -> None:
    from postroom.render.tracking import Links
    from postroom.store.api import Store

    server, api, _ = world
    with HttpReceiver() as hook, HttpReceiver() as notify, HttpReceiver() as tracking:
        created = api("POST", "/v1/webhooks", json={"url": hook.url(), "event_types": [
            "delivered", "bounced", "opened", "clicked", "unsubscribed"]})
        secret = created["secret"]
        assert created["event_types"] == ["bounced", "clicked", "delivered", "opened",
                                          "unsubscribed"]
        notify_secret = api("POST", "/v1/webhooks/notify_secret",
                            json={"keep_hours": 0})["secret"]
        mid = submit(server, ["good@rcpt.test", "bad@rcpt.test"],
                     f"X-IB-Notify-Url: {notify.url('/dlr')}\r\n"
                     f"X-IB-Tracking-Url: {tracking.url('/trk')}\r\n"
                     f"X-IB-Callback-Data: {CALLBACK}\r\nX-IB-Bulk-Id: bulk-7\r\n")
        wait_until(lambda: {"delivered", "bounced"} <= set(events_by_type(hook, secret)), 20,
                   "delivered and bounced at the webhook")
        store = Store(server.storage_url)
        try:
            links = Links(f"http://127.0.0.1:{server.http}", store.get_or_create_secret("links"))
            account_id = store.get_account("shop").id  # type: ignore[union-attr]
        finally:
            store.close()
        with httpx.Client(timeout=10, follow_redirects=False) as web:
            agent = {"User-Agent": "Mozilla/5.0 (X11; Linux) Firefox/130"}
            assert web.get(links.open_url(mid, "good@rcpt.test"), headers=agent).is_success
            assert web.get(links.click_url(mid, "good@rcpt.test", "https://shop.example/o/1001"),
                           headers=agent).status_code == 302
            assert web.post(links.unsubscribe_url(account_id, mid, "good@rcpt.test"),
                            content=b"List-Unsubscribe=One-Click").is_success
        got = wait_until(lambda: (lambda e: e if len(e) == 5 else None)(
            events_by_type(hook, secret)), 20, "five event types at the webhook")
        for kind, found in got.items():
            [e] = found
            assert e["message_id"] == mid and e["callback_data"] == CALLBACK, kind
            assert e["campaign_id"] == "bulk-7"
        assert got["delivered"][0]["recipient"] == "good@rcpt.test"
        assert got["bounced"][0]["recipient"] == "bad@rcpt.test"
        assert got["bounced"][0]["data"]["hard"] is True
        assert got["clicked"][0]["data"]["url"] == "https://shop.example/o/1001"
        for req in hook.accepted():
            assert req.headers["postroom-delivery-id"] and req.headers["postroom-event-id"]

        wait_until(lambda: len([r for q in notify.accepted() for r in q.json()["results"]]) == 2,
                   10, "two delivery reports")
        reports = [(q, r) for q in notify.accepted() for r in q.json()["results"]]
        by_to = {r["to"]: r for _, r in reports}
        assert by_to["good@rcpt.test"]["status"]["groupName"] == "DELIVERED"
        assert by_to["bad@rcpt.test"]["status"]["groupName"] == "UNDELIVERABLE"
        for q, r in reports:
            assert r["messageId"] == mid and r["callbackData"] == CALLBACK
            assert r["bulkId"] == "bulk-7" and q.path == "/dlr"
            assert verify(q.body, q.headers["postroom-signature"], notify_secret)
        notes = wait_until(lambda: (lambda n: n if len(n) == 3 else None)(
            [q.json() for q in tracking.accepted()]), 10, "three tracking notifications")
        assert sorted(n["notificationType"] for n in notes) == ["CLICKED", "OPENED",
                                                               "UNSUBSCRIBED"]
        assert all(n["callbackData"] == CALLBACK and n["messageId"] == mid for n in notes)


def test_a_receiver_that_is_down_leaves_the_delivery_retrying_in_the_api(world: Any) -> None:
    server, api, _ = world
    dead_url = f"http://127.0.0.1:{free_port()}/down"
    hook = api("POST", "/v1/webhooks", json={"url": dead_url, "event_types": ["delivered"]})
    submit(server, ["good@rcpt.test"], "")

    def retrying() -> Any:
        found = api("GET", f"/v1/webhooks/{hook['id']}/deliveries")
        return found if found and found[0]["attempts"] >= 3 else None

    [d] = wait_until(retrying, 20, "three failed attempts")
    assert d["status"] == "pending" and d["next_attempt_at"] is not None
    assert "connection error" in d["last_error"] and len(d["history"]) >= 3
    assert all(a["status_code"] is None for a in d["history"])
    shown = server.cli("webhooks", "deliveries", hook["id"], "--account", "shop").stdout
    assert d["id"] in shown and "pending" in shown and "next " in shown


def test_webhook_management_over_the_api_and_the_cli(world: Any) -> None:
    server, api, _ = world
    bad = api.http.post("/v1/webhooks", json={"url": "ftp://x.example/"})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_DATA"
    bad = api.http.post("/v1/webhooks", json={"url": "https://x.example/", "event_types": ["x"]})
    assert bad.status_code == 400
    hook = api("POST", "/v1/webhooks", json={"url": "http://127.0.0.1:9/in", "batch_size": 50,
                                             "description": "crm"})
    assert "secret" not in api("GET", f"/v1/webhooks/{hook['id']}")
    assert [h["id"] for h in api("GET", "/v1/webhooks")] == [hook["id"]]
    rotated = api("POST", f"/v1/webhooks/{hook['id']}/rotate_secret", json={"keep_hours": 2})
    assert rotated["secret"] != hook["secret"] and rotated["previous_secret_valid_until"]
    listed = server.cli("webhooks", "list", "--account", "shop").stdout
    assert hook["id"] in listed and "batch=50" in listed and "whsec_" not in listed
    made = server.cli("webhooks", "create", "http://127.0.0.1:9/in2", "--account", "shop",
                      "--event", "delivered").stdout
    assert "whsec_" in made
    assert api("DELETE", f"/v1/webhooks/{hook['id']}") == {"id": hook["id"], "deleted": True}
    assert api.http.get(f"/v1/webhooks/{hook['id']}").status_code == 404
    assert api.http.get(f"/v1/webhooks/{hook['id']}/deliveries").status_code == 404
    assert api("GET", "/v1/webhooks/notify/deliveries") == []


def test_internal_urls_are_refused_by_default_at_registration(tmp_path: Path) -> None:
    """Without [webhooks] allow_private_targets, the API and the CLI refuse a webhook at a
    non-public address at once (POSTs to names that resolve inward are refused when sent)."""
    server = make_server(tmp_path)
    key = server.create_account("shop", "--sender-domain", "shop.test")
    made = server.cli("webhooks", "create", "http://127.0.0.1:9/in", "--account", "shop",
                      check=False)
    assert made.returncode == 2 and "non-public address" in made.stderr + made.stdout
    server.start()
    try:
        r = httpx.post(f"http://127.0.0.1:{server.http}/v1/webhooks",
                       json={"url": "http://169.254.169.254/latest"},
                       headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_DATA", r.text
        assert "non-public address" in r.text
        ok = httpx.post(f"http://127.0.0.1:{server.http}/v1/webhooks",
                        json={"url": "https://hooks.example.com/in"},
                        headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert ok.status_code == 201, ok.text
    finally:
        server.stop()
