"""Pages over large or hostile data do bounded work and say what they left out: crafted and
long header blocks, a search through more messages than one request examines, and a timeline
of more events than one page shows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import insert

from postroom.model import NewMessage, new_id
from postroom.store.dashboard_messages import HEAD_CAP, SCAN_BUDGET
from postroom.store.schema import events, messages
from postroom.web.messages import EVENTS_SHOWN, MAX_PAGE_SIZE

from .conftest import Site, Tenant


def _stored(site: Site, tenant: Tenant, raw: bytes, **fields: object) -> str:
    """A message stored as the SMTP ingress would (the dashboard reads it back as is)."""
    message = NewMessage(id=new_id(), account_id=tenant.account.id,
                         mail_from=f"news@{tenant.domain}", recipients=("reader@example.org",),
                         raw=raw, **fields)  # type: ignore[arg-type]
    site.store.enqueue_many([message])
    return message.id


def test_a_crafted_header_block_neither_stalls_the_server_nor_hides_the_cut(site: Site) -> None:
    """63 KB of folded backslashes in Cc held the event loop (every page, the API, SMTP) for
    about 25 s while one message page parsed it."""
    tenant = site.tenant()
    cc = b"Cc: " + b"\r\n ".join([b"\\" * 900] * 70)
    mid = _stored(site, tenant, b"From: news@x.example\r\nSubject: hi\r\n" + cc + b"\r\n\r\nbody")
    browser = site.browser(tenant.key)
    browser.http.timeout = httpx.Timeout(10)
    started = time.monotonic()
    page = browser.page(f"/dashboard/messages/{mid}")
    assert time.monotonic() - started < 5.0
    headers = page.by_id("headers")
    assert "Cc \\\\\\" in headers and "Subject hi" in headers
    [cut] = page.texts("header-cut")
    assert "more characters not shown" in cut
    browser.close()


def test_headers_past_the_first_64_kib_are_shown_and_a_cut_block_says_so(site: Site) -> None:
    tenant = site.tenant()
    cc = "Cc: " + ",\r\n ".join(f"member{i:05d}@list.example.org" for i in range(3000))
    long_block = (f"From: news@x.example\r\nTo: reader@example.org\r\n{cc}\r\n"
                  "Subject: Quarterly report\r\nMessage-ID: <q1@x.example>\r\n").encode()
    long = _stored(site, tenant, long_block + b"\r\nbody\r\n")
    huge = _stored(site, tenant, b"Subject: first\r\nX-Pad: " + b"p" * HEAD_CAP
                   + b"\r\nMessage-ID: <lost@x.example>\r\n\r\nbody")
    browser = site.browser(tenant.key)
    page = browser.page(f"/dashboard/messages/{long}")
    headers = page.by_id("headers")
    assert "Subject Quarterly report" in headers and "Message-ID <q1@x.example>" in headers
    assert "member00000@list.example.org" in headers and page.has_id("headers-cut") is False
    page = browser.page(f"/dashboard/messages/{huge}")
    assert "Subject first" in page.by_id("headers") and "lost@" not in page.html
    assert "header block is longer" in page.by_id("headers-cut")
    browser.close()


def test_a_long_timeline_shows_its_latest_events_first_with_repeats_folded(site: Site) -> None:
    """After 1000 pixel hits a complaint was beyond the page's 1000 events, silently."""
    tenant = site.tenant()
    [mid] = site.send(tenant, {"subject": "newsletter"})
    now = datetime.now(UTC)
    with site.store._db.write() as conn:  # one transaction: 1000 appends would fsync 1000 times
        conn.execute(insert(events), [
            {"type": "opened", "message_id": mid, "recipient": "someone@example.org",
             "at": now + timedelta(milliseconds=i), "data": {"ip": f"10.0.{i // 250}.{i % 250}"}}
            for i in range(1000)])
    site.store.append_event("complained", message_id=mid, recipient="someone@example.org",
                            data={"feedback_type": "abuse"})
    browser = site.browser(tenant.key)
    page = browser.page(f"/dashboard/messages/{mid}")
    rows = page.texts("event")
    assert len(rows) == 2 and f"opened ×{EVENTS_SHOWN - 1}" in rows[0]
    assert "complained" in rows[1] and "feedback_type: abuse" in rows[1]
    assert "802 earlier events not shown" in page.by_id("events-earlier")
    older = browser.page(page.link("earlier") or "")
    assert [r.split(" UTC ")[1].split()[:2] for r in older.texts("event")] == [["opened", "×200"]]
    assert "602 earlier" in older.by_id("events-earlier")
    assert older.link("newest") == f"/dashboard/messages/{mid}"
    bad = browser.page(f"/dashboard/messages/{mid}?before=x", status=400)
    assert bad.by_id("error") == "Unknown place in the timeline."
    browser.close()


def test_a_search_examines_a_bounded_number_of_messages_per_page(site: Site) -> None:
    """The one match is older than SCAN_BUDGET other messages: the first page stops there and
    links on; the next page finds it."""
    tenant = site.tenant()
    rare = _stored(site, tenant, b"Subject: Rare invoice\r\n\r\nx", subject="Rare invoice")
    ms, now = int(time.time() * 1000), datetime.now(UTC)
    with site.store._db.write() as conn:
        conn.execute(insert(messages), [
            {"id": new_id(ms + 1 + i), "account_id": tenant.account.id, "mail_from": "a@x",
             "header_from": "", "subject": f"Common {i}", "message_id_header": "", "size": 1,
             "raw": b"x", "source": "smtp", "client_ip": "", "options": {},
             "created_at": now, "not_before": None} for i in range(SCAN_BUDGET + 10)])
    browser = site.browser(tenant.keys["read"])
    first = browser.page("/dashboard/messages", params={"subject": "rare"})
    assert first.has_id("empty") and f"examining {SCAN_BUDGET:,} messages" in \
        first.by_id("stopped") and first.link("next") is None
    second = browser.page(first.link("continue") or "")
    assert second.attr("message", "data-id") == [rare] and not second.has_id("stopped")
    assert second.field("subject") == "rare" and second.link("first")
    unfiltered = browser.page("/dashboard/messages", params={"limit": "500"})
    assert len(unfiltered.texts("message")) == MAX_PAGE_SIZE == 100
    assert not unfiltered.has_id("stopped") and unfiltered.link("next")
    browser.close()
