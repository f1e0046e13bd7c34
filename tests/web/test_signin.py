"""Signing in and out, the session cookie, and what ends a session."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from postroom.store.errors import StoreUnavailable
from postroom.web.session import COOKIE, SECURE_COOKIE, SESSION_SECONDS, SessionSigner

from .conftest import Site
from .pages import Page


def test_pages_need_a_session(site: Site) -> None:
    with site.client() as c:
        for path in ("/dashboard/", "/dashboard/messages", "/dashboard/suppressions",
                     "/dashboard/webhooks", "/dashboard/messages/01anything"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/dashboard/login", path
        r = c.get("/dashboard")
        assert r.status_code in (307, 308) and r.headers["location"].endswith("/dashboard/")
        assert c.get("/dashboard/login").status_code == 200


def test_sign_in_sets_a_signed_session_cookie_without_the_key(site: Site) -> None:
    tenant = site.tenant()
    with site.client() as c:
        r = c.post("/dashboard/login", data={"key": tenant.key})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/"
        cookie = r.headers["set-cookie"]
        attrs = [a.strip().lower() for a in cookie.split(";")]
        assert attrs[0].startswith(f"{COOKIE}=v1.")
        assert "httponly" in attrs and "samesite=strict" in attrs and "path=/dashboard" in attrs
        assert f"max-age={SESSION_SECONDS}" in attrs
        assert "secure" not in attrs  # plain HTTP: a Secure cookie would never come back
        assert tenant.key not in cookie and tenant.key[8:] not in cookie
        overview = Page(c.get("/dashboard/").text)
        assert tenant.account.name in overview.text


def test_over_https_the_cookie_is_secure_and_host_prefixed(site: Site) -> None:
    """`__Host-`: the browser keeps it only if Secure, on Path=/ and without Domain, so neither
    a sibling host nor a plain-HTTP answer can plant a session of their choosing."""
    tenant = site.tenant()
    https = {"X-Forwarded-Proto": "https"}  # uvicorn trusts it from 127.0.0.1 (a local proxy)
    with site.client() as c:
        r = c.post("/dashboard/login", data={"key": tenant.key}, headers=https)
        assert r.status_code == 303
        attrs = [a.strip().lower() for a in r.headers["set-cookie"].split(";")]
        assert attrs[0].startswith(f"{SECURE_COOKIE.lower()}=v1.")
        assert "secure" in attrs and "path=/" in attrs and not any(
            a.startswith("domain") for a in attrs)
        value = r.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        c.cookies.clear()
        assert c.get("/dashboard/", headers={**https, "Cookie": f"{SECURE_COOKIE}={value}"}
                     ).status_code == 200
        # the plain name is not read over HTTPS (nor the prefixed one over HTTP)
        assert c.get("/dashboard/", headers={**https, "Cookie": f"{COOKIE}={value}"}
                     ).status_code == 303
        assert c.get("/dashboard/", headers={"Cookie": f"{SECURE_COOKIE}={value}"}
                     ).status_code == 303
        r = c.post("/dashboard/logout", headers={**https, "Cookie": f"{SECURE_COOKIE}={value}"})
        assert r.status_code == 403  # no CSRF token; a signed-out redirect clears it below
        r = c.get("/dashboard/", headers={**https, "Cookie": f"{SECURE_COOKIE}=forged"})
        assert r.status_code == 303 and r.headers["set-cookie"].startswith(f'{SECURE_COOKIE}=""')
        assert "Path=/;" in r.headers["set-cookie"] + ";"


def test_unknown_key_and_key_without_read_scope_are_refused(site: Site) -> None:
    tenant = site.tenant()
    with site.client() as c:
        for key, status, says in ((tenant.key + "x", 401, "Unknown or revoked API key"),
                                  ("", 401, "Unknown or revoked API key"),
                                  (tenant.keys["send"], 403, "lacks the read scope")):
            r = c.post("/dashboard/login", data={"key": key})
            assert r.status_code == status and "set-cookie" not in r.headers
            assert says in Page(r.text).by_id("error")
        assert c.get("/dashboard/").status_code == 303
        assert c.post("/dashboard/login", data={"key": tenant.key}).status_code == 303


def test_an_ip_the_account_does_not_allow_cannot_sign_in(site: Site) -> None:
    tenant = site.tenant(allow_ips=["10.20.0.0/16"])
    with site.client() as c:
        r = c.post("/dashboard/login", data={"key": tenant.key})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert "not allowed" in Page(r.text).by_id("error")


def test_a_revoked_key_signs_its_session_out(site: Site) -> None:
    tenant = site.tenant()
    browser = site.browser(tenant.key)
    other = site.browser(tenant.keys["read"])  # another key of the account stays signed in
    browser.page("/dashboard/messages")
    [key] = [k for k in site.store.list_api_keys(tenant.account.id) if "send" in k.scopes
             and "read" in k.scopes]
    assert site.store.revoke_api_key(key.id)
    r = browser.get("/dashboard/messages")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login?reason=ended"
    assert f'{COOKIE}=""' in r.headers["set-cookie"] and "Max-Age=0" in r.headers["set-cookie"]
    assert "session ended" in browser.page(r.headers["location"]).by_id("notice")
    assert browser.get("/dashboard/").status_code == 303
    other.page("/dashboard/messages")
    browser.close()
    other.close()


def test_forged_foreign_and_expired_cookies_are_refused(site: Site) -> None:
    tenant = site.tenant()
    [key] = [k for k in site.store.list_api_keys(tenant.account.id) if k.scopes == ("read",)]
    secret = site.store.get_or_create_secret("dashboard")
    _, good = SessionSigner(secret).issue(key.id)
    _, foreign = SessionSigner(b"x" * 32).issue(key.id)
    _, expired = SessionSigner(secret, clock=lambda: time.time() - SESSION_SECONDS - 5
                               ).issue(key.id)
    body, _, tag = good.rpartition(".")
    flipped = body + "." + ("A" if tag[0] != "A" else "B") + tag[1:]
    with site.client() as c:
        assert c.get("/dashboard/", headers={"Cookie": f"{COOKIE}={good}"}).status_code == 200
        for cookie in (foreign, expired, flipped, "v1.e30.AAAA", "garbage", "v1.." + "A" * 2000):
            r = c.get("/dashboard/", headers={"Cookie": f"{COOKIE}={cookie}"})
            assert r.status_code == 303, cookie
            assert r.headers["location"] == "/dashboard/login?reason=ended"


def test_sign_out_needs_the_session_token_and_clears_the_cookie(site: Site) -> None:
    browser = site.browser(site.tenant().key)
    token = browser.page("/dashboard/").field("csrf")
    assert browser.post("/dashboard/logout").status_code == 403
    assert browser.post("/dashboard/logout", data={"csrf": token + "x"}).status_code == 403
    browser.page("/dashboard/")  # still signed in
    r = browser.post("/dashboard/logout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login?reason=signed_out"
    assert "Max-Age=0" in r.headers["set-cookie"]
    assert browser.get("/dashboard/").status_code == 303
    browser.close()


def test_a_cross_site_sign_in_is_refused(site: Site) -> None:
    tenant = site.tenant()
    with site.client() as c:
        r = c.post("/dashboard/login", data={"key": tenant.key},
                   headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = c.post("/dashboard/login", data={"key": tenant.key},
                   headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        r = c.post("/dashboard/login", data={"key": tenant.key},
                   headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "same-site"})
        assert r.status_code == 403
        for headers in ({"Origin": site.base},
                        # behind a proxy that rewrote Host: the browser's word, or the proxy's
                        {"Origin": "https://mail.example", "Sec-Fetch-Site": "same-origin"},
                        {"Origin": "https://mail.example", "X-Forwarded-Host": "mail.example"}):
            r = c.post("/dashboard/login", data={"key": tenant.key}, headers=headers)
            assert r.status_code == 303, headers


def test_failed_sign_ins_are_throttled_per_ip(site: Site) -> None:
    """A server of its own: its throttle starts empty, and this test's failures stay in it."""
    tenant = site.tenant()
    with site.own_server(smtp={"auth_failure_limit": 3, "auth_failure_window": 300}) as b:
        assert b.post("/dashboard/login", data={"key": tenant.key}).status_code == 303
        for _ in range(3):
            assert b.post("/dashboard/login", data={"key": "wrong"}).status_code == 401
        r = b.post("/dashboard/login", data={"key": tenant.key})  # even the right key now
        assert r.status_code == 429 and "set-cookie" not in r.headers
        assert "Too many failed sign-ins" in Page(r.text).by_id("error")


def test_pages_share_the_keys_api_rate_limit(site: Site) -> None:
    tenant = site.tenant()
    with site.own_server(http={"rate_limit_per_second": 1}) as b:  # a burst of 2
        assert b.post("/dashboard/login", data={"key": tenant.key}).status_code == 303
        assert b.get("/dashboard/webhooks").status_code == 200
        api = {"Authorization": f"Bearer {tenant.key}"}
        assert b.http.get("/v1/ping", headers=api).status_code == 200
        r = b.get("/dashboard/webhooks")
        assert r.status_code == 429 and "Too many requests" in Page(r.text).by_id("error")


def test_parallel_guesses_count_before_they_are_checked(site: Site) -> None:
    """The attempt is counted before the form is read: 30 guesses sent at once get 5 answers
    (the limit), not 30."""
    with site.own_server(smtp={"auth_failure_limit": 5, "auth_failure_window": 300}) as b:
        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=b.http.base_url, timeout=30) as c:
                answers = await asyncio.gather(*[
                    c.post("/dashboard/login", data={"key": f"pr_wrong{i}"}) for i in range(30)])
            return [r.status_code for r in answers]

        codes = asyncio.run(burst())
        assert codes.count(401) == 5 and codes.count(429) == 25


def test_signing_in_with_a_key_of_ones_own_does_not_wipe_failures(site: Site) -> None:
    tenant = site.tenant()
    with site.own_server(smtp={"auth_failure_limit": 3, "auth_failure_window": 300}) as b:
        for _ in range(2):
            assert b.post("/dashboard/login", data={"key": "wrong"}).status_code == 401
        assert b.post("/dashboard/login", data={"key": tenant.key}).status_code == 303
        b.http.cookies.clear()
        assert b.post("/dashboard/login", data={"key": "wrong"}).status_code == 401
        assert b.post("/dashboard/login", data={"key": "wrong"}).status_code == 429
        assert b.post("/dashboard/login", data={"key": tenant.key}).status_code == 429


def test_sign_ins_the_store_could_not_answer_are_not_failures(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store outage during sign-in (simulated: a real one is not cheap to make here) gives
    503 and no verdict about the key, so it must not count: after it, the limit is whole."""
    tenant = site.tenant()
    with site.own_server(smtp={"auth_failure_limit": 2, "auth_failure_window": 300}) as b:
        def unavailable(*args: object) -> None:
            raise StoreUnavailable("down")

        monkeypatch.setattr(site.store, "find_api_key", unavailable)
        for _ in range(4):
            assert b.post("/dashboard/login", data={"key": tenant.key}).status_code == 503
        monkeypatch.undo()
        assert b.post("/dashboard/login", data={"key": "wrong"}).status_code == 401
        assert b.post("/dashboard/login", data={"key": tenant.key}).status_code == 303
