"""Escaping, security headers, and one account never seeing another's data."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from postroom.model import EventType
from postroom.store.errors import StoreUnavailable
from postroom.web.session import COOKIE

from .conftest import Site

SCRIPT = "<script>alert(1)</script>"


def test_user_data_is_escaped_never_markup(site: Site) -> None:
    tenant = site.tenant()
    [mid] = site.send(tenant, {
        "from": {"user_name": '"><img src=x>', "email": f"news@{tenant.domain}"},
        "subject": f"Hi {SCRIPT} & <b>bold</b>", "tags": [f"t{SCRIPT}"]})
    site.store.append_event(EventType.CLICKED, message_id=mid, recipient="someone@example.org",
                            data={"url": f"https://x.example/?q={SCRIPT}"})
    browser = site.browser(tenant.key)
    for path in ("/dashboard/messages", f"/dashboard/messages/{mid}",
                 "/dashboard/messages?subject=" + SCRIPT):
        r = browser.get(path)
        assert r.status_code == 200
        assert "<script" not in r.text.lower() and "<b>bold" not in r.text
        assert "<img" not in r.text
    page = browser.page(f"/dashboard/messages/{mid}")
    assert page.by_id("subject") == f"Hi {SCRIPT} & <b>bold</b>"  # shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.html
    assert SCRIPT in " ".join(page.texts("event"))
    listed = browser.page("/dashboard/messages?subject=" + SCRIPT)
    assert listed.field("subject") == SCRIPT
    browser.close()


def _csp_hashes(csp: str) -> set[str]:
    return set(re.findall(r"'sha256-([^']+)'", csp))


def test_every_answer_carries_the_security_headers(site: Site) -> None:
    tenant = site.tenant()
    browser = site.browser(tenant.key)
    answers = [browser.get(p) for p in ("/dashboard/", "/dashboard/messages",
                                        "/dashboard/suppressions", "/dashboard/webhooks",
                                        "/dashboard/nowhere", "/dashboard/messages/x")]
    with site.client() as anonymous:
        answers += [anonymous.get("/dashboard/login"), anonymous.get("/dashboard/"),
                    anonymous.post("/dashboard/login", data={"key": "nope"})]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 404, 404, 200, 303, 401]
    for r in answers:
        h = r.headers
        csp = h["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "form-action 'self'" in csp and "script-src" not in csp
        assert "unsafe-inline" not in csp
        assert h["x-frame-options"] == "DENY" and h["cache-control"] == "no-store"
        assert h["x-content-type-options"] == "nosniff"
        if r.status_code != 303:
            assert r.headers["content-type"].startswith("text/html")
            [style] = re.findall(r"<style>(.*?)</style>", r.text, re.S)
            digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
            assert _csp_hashes(csp) == {digest}  # the inline stylesheet, and only it, applies
            assert "<script" not in r.text and not re.search(r"(src|href)=\"(https?:)?//", r.text)
    browser.close()


def test_another_accounts_data_is_out_of_sight(site: Site) -> None:
    alice, bob = site.tenant(), site.tenant()
    [bobs] = site.send(bob, {"to": [{"email": "bob-only@example.org"}], "subject": "Bob's"})
    site.send(alice, {"subject": "Alice's"})
    auth = {"Authorization": f"Bearer {bob.key}"}
    with site.client(headers=auth) as api:
        assert api.post("/v1/suppressions", json={"email": "bob-blocked@example.org"}
                        ).status_code == 201
        hook = api.post("/v1/webhooks", json={"url": "https://bob-hooks.example/in"}).json()
    browser = site.browser(alice.key)
    missing = browser.page("/dashboard/messages/01nosuchmessage00000000000", status=404)
    guessed = browser.page(f"/dashboard/messages/{bobs}", status=404)
    assert guessed.html == missing.html  # as if it did not exist
    assert browser.page("/dashboard/messages", params={"recipient": "bob-only"}).has_id("empty")
    assert "Bob's" not in browser.page("/dashboard/messages").text
    assert browser.page("/dashboard/suppressions", params={"q": "bob"}).has_id("empty")
    assert "bob-hooks.example" not in browser.page("/dashboard/webhooks").html
    browser.page(f"/dashboard/webhooks/{hook['data']['id']}", status=404)
    token = browser.page("/dashboard/suppressions").field("csrf")
    r = browser.post("/dashboard/suppressions/remove",
                     data={"csrf": token, "email": "bob-blocked@example.org"})
    assert r.status_code == 404
    assert site.store.suppressed_among(bob.account.id, ["bob-blocked@example.org"])
    # and bob sees his own (the checks above are not blind)
    bobs_browser = site.browser(bob.keys["read"])
    assert bobs_browser.page("/dashboard/messages").attr("message", "data-id") == [bobs]
    assert "bob-hooks.example" in bobs_browser.page("/dashboard/webhooks").html
    assert bobs_browser.page("/dashboard/suppressions", params={"q": "bob"}).texts(
        "suppression")[0].startswith("bob-blocked@example.org")
    bobs_browser.close()
    browser.close()


def test_a_session_cookie_of_one_key_shows_only_that_keys_account(site: Site) -> None:
    alice, bob = site.tenant(), site.tenant()
    with httpx.Client(base_url=site.base) as c:
        r = c.post("/dashboard/login", data={"key": bob.key})
        cookie = r.cookies[COOKIE]
    browser = site.browser(alice.key)
    assert alice.account.name in browser.page("/dashboard/").text
    browser.http.cookies.set(COOKIE, cookie, path="/dashboard")  # the last cookie wins
    overview = browser.page("/dashboard/").text
    assert bob.account.name in overview and alice.account.name not in overview
    browser.close()


def test_failures_are_error_pages_with_a_reference_not_internals(
        site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The store going away mid-request (simulated: a real outage is not cheap to make here)
    answers 503, any other failure 500; both HTML with the security headers, and the browser's
    connection stays usable."""
    browser = site.browser(site.tenant().key)

    def unavailable(*args: object) -> None:
        raise StoreUnavailable("database is locked (secret detail)")

    def broken(*args: object) -> None:
        raise RuntimeError("secret detail")

    for fault, status in ((unavailable, 503), (broken, 500)):
        monkeypatch.setattr(site.dashboard.data, "activity", fault)
        r = browser.get("/dashboard/")
        assert r.status_code == status and r.headers["x-frame-options"] == "DENY"
        assert "secret detail" not in r.text
        ref = re.search(r"reference ([0-9a-f]{12})", r.text)
        assert ref and ref.group(1) in caplog.text
    monkeypatch.undo()
    browser.page("/dashboard/")
    browser.close()
