"""Webhooks: endpoints and their deliveries, read-only."""

from __future__ import annotations

from datetime import UTC, datetime

from postroom.events.planner import plan
from postroom.model.webhooks import AttemptOutcome, DeliveryStatus

from .conftest import Site


def test_endpoints_and_delivery_statuses(site: Site) -> None:
    tenant = site.tenant()
    with site.client(headers={"Authorization": f"Bearer {tenant.key}"}) as api:
        hook = api.post("/v1/webhooks", json={
            "url": "https://hooks.example/in", "event_types": ["queued", "delivered"],
            "description": "CRM <sync>"}).json()["data"]
    site.send(tenant, {"subject": "one"}, {"subject": "two"})
    while site.store.dispatch_events(plan, limit=500):
        pass
    now = datetime.now(UTC)
    jobs = site.store.claim_webhook_deliveries("web-test", now=now, limit=100, lease_seconds=60)
    mine = [j for j in jobs if j.url == "https://hooks.example/in"]
    assert len(mine) == 2
    site.store.record_webhook_attempts("web-test", [
        AttemptOutcome(mine[0].id, 1, now, 12, DeliveryStatus.SUCCEEDED, status_code=200),
        AttemptOutcome(mine[1].id, 1, now, 30, DeliveryStatus.FAILED, status_code=410,
                       error="gone")])
    site.store.release_webhook_leases("web-test")
    secret = hook["secret"]

    browser = site.browser(tenant.keys["read"])
    page = browser.page("/dashboard/webhooks")
    assert page.attr("webhook", "data-id") == [hook["id"]]
    [section] = page.texts("webhook")
    assert "https://hooks.example/in" in section and "CRM <sync>" in section
    assert "delivered, queued" in section or "queued, delivered" in section
    assert secret not in page.html
    statuses = sorted(r.split(" UTC ")[1].split()[0] for r in page.texts("delivery"))
    assert statuses == ["failed", "succeeded"]
    assert "HTTP 410 gone" in " ".join(page.texts("delivery"))

    detail = browser.page(f"/dashboard/webhooks/{hook['id']}")
    assert len(detail.texts("delivery")) == 2
    failed = browser.page(f"/dashboard/webhooks/{hook['id']}", params={"status": "failed"})
    assert failed.attr("delivery", "data-id") == [mine[1].id]
    browser.page(f"/dashboard/webhooks/{hook['id']}", params={"status": "nope"}, status=400)
    browser.page("/dashboard/webhooks/notify")
    browser.page("/dashboard/webhooks/01nosuchwebhook00000000000", status=404)
    browser.close()
