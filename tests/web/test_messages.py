"""Messages: the list with its filters and pages, and one message's page."""

from __future__ import annotations

import re

from postroom.model import EventType

from .conftest import Site


def test_a_sent_message_shows_its_envelope_headers_recipients_and_events(site: Site) -> None:
    tenant = site.tenant()
    [mid] = site.send(tenant, {
        "from": {"user_name": "Shop News", "email": f"news@{tenant.domain}"},
        "to": [{"user_name": "Ann", "email": "ann@example.org"}],
        "cc": [{"email": "carl@example.net"}], "bcc": [{"email": "hidden@example.com"}],
        "subject": "Your order shipped", "tags": ["orders"]})
    site.settle(mid, {"ann@example.org": ("delivered", "250 2.0.0 Ok: queued as ABC"),
                      "carl@example.net": ("deferred", "451 4.7.1 greylisted")})
    site.store.append_event(EventType.OPENED, message_id=mid, recipient="ann@example.org")
    browser = site.browser(tenant.key)

    listed = browser.page("/dashboard/messages")
    assert listed.attr("message", "data-id") == [mid]
    [row] = listed.texts("message")
    assert "Your order shipped" in row and "ann@example.org +2" in row and "#orders" in row
    assert "delivered" in row and "deferred" in row and "queued" in row
    assert f"/dashboard/messages/{mid}" in listed.html

    page = browser.page(f"/dashboard/messages/{mid}")
    assert page.by_id("subject") == "Your order shipped"
    envelope = page.by_id("envelope")
    assert mid in envelope and f"news@{tenant.domain}" in envelope and "orders" in envelope
    headers = page.by_id("headers")
    assert f"From Shop News <news@{tenant.domain}>" in headers
    assert "To Ann <ann@example.org>" in headers and "Cc carl@example.net" in headers
    assert "Subject Your order shipped" in headers
    assert re.search(r"Message-ID <[^>]+>", headers)
    assert "hidden@example.com" not in headers  # Bcc is never a header
    recipients = page.texts("recipient")
    assert len(recipients) == 3
    ann = next(r for r in recipients if r.startswith("ann@example.org"))
    assert "delivered" in ann and "250 2.0.0 Ok: queued as ABC" in ann and "mx.example.org" in ann
    carl = next(r for r in recipients if r.startswith("carl@example.net"))
    assert "deferred" in carl and "451 4.7.1 greylisted" in carl
    assert any(r.startswith("hidden@example.com") and "queued" in r for r in recipients)
    events = page.texts("event")
    kinds = [e.split(" UTC ")[1].split()[0] for e in events]
    assert kinds.count("queued") == 3 and {"delivered", "deferred", "opened"} <= set(kinds)
    assert kinds.index("queued") < kinds.index("delivered") < kinds.index("opened")
    browser.close()


def test_unknown_message_is_404(site: Site) -> None:
    browser = site.browser(site.tenant().key)
    page = browser.page("/dashboard/messages/01nosuchmessage00000000000", status=404)
    assert page.by_id("error") == "No such message."
    browser.close()


def test_filters(site: Site) -> None:
    tenant = site.tenant()
    welcome, invoice, promo = site.send(
        tenant,
        {"to": [{"email": "dora@example.org"}], "subject": "Welcome aboard"},
        {"from": {"email": f"billing@{tenant.domain}"}, "to": [{"email": "erik@example.com"}],
         "subject": "Invoice 42", "tags": ["billing"]},
        {"to": [{"email": "Dora@Example.org"}, {"email": "fay@example.com"}],
         "subject": "Spring promo", "tags": ["promo"]})
    site.settle(invoice, {"erik@example.com": ("bounced", "550 5.1.1 no such user")})
    browser = site.browser(tenant.keys["read"])

    def ids(**query: str) -> set[str]:
        return set(browser.page("/dashboard/messages", params=query).attr("message", "data-id"))

    assert ids() == {welcome, invoice, promo}
    assert ids(recipient="dora@") == {welcome, promo}  # contains, any case
    assert ids(recipient="FAY") == {promo}
    assert ids(sender="billing@") == {invoice}
    assert ids(subject="PROMO") == {promo}
    assert ids(status="bounced") == {invoice}
    assert ids(status="queued") == {welcome, promo}
    assert ids(tag="billing") == {invoice}
    assert ids(tag="promo", recipient="dora") == {promo}
    assert ids(subject="nothing like it") == set()
    filtered = browser.page("/dashboard/messages", params={"subject": "promo"})
    assert filtered.field("subject") == "promo"  # the form keeps what was asked
    assert filtered.has_id("empty") is False
    assert browser.page("/dashboard/messages", params={"subject": "zzz"}).has_id("empty")
    bad = browser.page("/dashboard/messages", params={"status": "lost"}, status=400)
    assert bad.by_id("error") == "Unknown status."
    browser.close()


def test_pages_go_from_newest_to_oldest_without_gaps_or_repeats(site: Site) -> None:
    tenant = site.tenant()
    sent = site.send(tenant, *[{"subject": f"Number {i}"} for i in range(4)])
    sent += site.send(tenant, {"subject": "Number 4"})  # a later request: certainly newer
    browser = site.browser(tenant.key)
    seen: list[str] = []
    url: str | None = "/dashboard/messages?limit=2"
    pages = 0
    while url:
        page = browser.page(url)
        found = page.attr("message", "data-id")
        assert len(found) == (2 if pages < 2 else 1)
        seen += found
        url = page.link("next")
        pages += 1
        if pages > 1:
            assert page.link("first") == "/dashboard/messages?limit=2"
    assert pages == 3 and sorted(seen) == sorted(sent) and len(set(seen)) == 5
    assert seen == sorted(seen, reverse=True) and seen[0] == sent[-1]
    browser.close()
