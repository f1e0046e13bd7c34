"""Suppressions: search, and removal guarded by scope, origin and the session's CSRF token."""

from __future__ import annotations

from .conftest import Site, Tenant


def _suppress(site: Site, tenant: Tenant, *addresses: str) -> None:
    with site.client(headers={"Authorization": f"Bearer {tenant.key}"}) as api:
        for address in addresses:
            r = api.post("/v1/suppressions", json={"email": address, "reason": "bounce"})
            assert r.status_code == 201, r.text


def _send_status(site: Site, tenant: Tenant, address: str) -> str:
    with site.client(headers={"Authorization": f"Bearer {tenant.key}"}) as api:
        r = api.post("/v1/send_mail", json={"data": [{
            "from": {"email": f"news@{tenant.domain}"}, "to": [{"email": address}],
            "subject": "s", "content": "c", "mail_format": "text"}]})
    return str(r.json()["data"][0]["code"])


def test_search_and_pages(site: Site) -> None:
    tenant = site.tenant()
    _suppress(site, tenant, "amy@one.example", "ben@two.example", "cat@one.example")
    browser = site.browser(tenant.keys["read"])
    rows = browser.page("/dashboard/suppressions").texts("suppression")
    assert [r.split()[0] for r in rows] == ["amy@one.example", "ben@two.example",
                                           "cat@one.example"]
    assert "bounce" in rows[0]
    found = browser.page("/dashboard/suppressions", params={"q": "ONE.example"})
    assert [r.split()[0] for r in found.texts("suppression")] == ["amy@one.example",
                                                                 "cat@one.example"]
    assert found.field("q") == "ONE.example"
    assert browser.page("/dashboard/suppressions", params={"q": "%"}).has_id("empty")
    browser.close()


def test_removal_needs_this_sessions_token_and_reaches_the_send_path_at_once(site: Site) -> None:
    tenant = site.tenant()
    address = "dan@example.org"
    _suppress(site, tenant, address)
    assert _send_status(site, tenant, address) == "NOT_ALLOWED"  # loads the in-memory view
    browser, other = site.browser(tenant.key), site.browser(tenant.key)
    page = browser.page("/dashboard/suppressions")
    token, foreign = page.field("csrf"), other.page("/dashboard/suppressions").field("csrf")
    assert token != foreign
    for data in ({"email": address}, {"email": address, "csrf": ""},
                 {"email": address, "csrf": foreign}, {"email": address, "csrf": token[:-1]}):
        r = browser.post("/dashboard/suppressions/remove", data=data)
        assert r.status_code == 403, data
        assert "security token" in r.text
    r = browser.post("/dashboard/suppressions/remove", data={"email": address, "csrf": token},
                     headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert site.store.suppressed_among(tenant.account.id, [address])

    r = browser.post("/dashboard/suppressions/remove", data={"email": address, "csrf": token})
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/suppressions?removed=dan%40example.org"
    assert not site.store.suppressed_among(tenant.account.id, [address])
    assert f"Removed {address}" in browser.page(r.headers["location"]).by_id("notice")
    assert browser.page("/dashboard/suppressions").has_id("empty")
    assert _send_status(site, tenant, address) == "SUCCESS"  # the API's cache heard of it
    r = browser.post("/dashboard/suppressions/remove", data={"email": address, "csrf": token})
    assert r.status_code == 404
    browser.close()
    other.close()


def test_a_read_only_key_sees_but_cannot_remove(site: Site) -> None:
    tenant = site.tenant()
    _suppress(site, tenant, "eve@example.org")
    browser = site.browser(tenant.keys["read"])
    page = browser.page("/dashboard/suppressions")
    assert page.texts("suppression")[0].startswith("eve@example.org")
    assert "Remove" not in page.text
    r = browser.post("/dashboard/suppressions/remove",
                     data={"email": "eve@example.org", "csrf": page.field("csrf")})
    assert r.status_code == 403 and "send scope" in r.text
    assert site.store.suppressed_among(tenant.account.id, ["eve@example.org"])
    browser.close()
