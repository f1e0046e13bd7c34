"""The overview's counts: last 24 hours, last 7 days, and today's row."""

from __future__ import annotations

from datetime import UTC, datetime

from postroom.model import EventType

from .conftest import Site


def test_counts_follow_what_happened(site: Site) -> None:
    tenant, other = site.tenant(), site.tenant()
    first, second = site.send(
        tenant, {"to": [{"email": "a@example.org"}, {"email": "b@example.org"}]},
        {"to": [{"email": "c@example.org"}]})
    site.send(other, {"subject": "not counted for tenant"})
    site.settle(first, {"a@example.org": ("delivered", "250 ok"),
                        "b@example.org": ("bounced", "550 no")})
    site.store.append_event(EventType.OPENED, message_id=first, recipient="a@example.org")
    site.store.append_event(EventType.CLICKED, message_id=first, recipient="a@example.org")
    site.store.append_event(EventType.COMPLAINED, message_id=second, recipient="c@example.org")
    today = datetime.now(UTC).date().isoformat()
    browser = site.browser(tenant.keys["read"])
    page = browser.page("/dashboard/")
    expected = {"messages": 2, "queued": 3, "delivered": 1, "bounced": 1, "opened": 1,
                "clicked": 1, "complained": 1, "deferred": 0, "unsubscribed": 0, "failed": 0}
    for kind, n in expected.items():
        assert page.by_id(f"count-24h-{kind}") == str(n), kind
        assert page.by_id(f"count-7d-{kind}") == str(n), kind
        assert page.by_id(f"day-{today}-{kind}") == str(n), kind
    days = [e.attrs["id"] for e in page.elements if e.attrs.get("id", "").startswith("day-")
            and e.attrs["id"].endswith("-messages")]
    assert len(days) == 7 and days[0] == f"day-{today}-messages"  # newest day first
    browser.close()
