"""Tracking endpoints over real HTTP: open, click (302), tampered (404), one-click unsubscribe."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator

import httpx
import pytest

from support.server import RunningServer, make_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = make_server(tmp_path_factory.mktemp("track"))
    srv.create_account("t", "--sender-domain", "t.example", "--trusted-network", "127.0.0.0/8")
    srv.start()
    yield srv
    srv.stop()


def links(server: RunningServer) -> tuple[object, str, str]:
    from postroom.render.tracking import Links
    from postroom.store.api import Store

    with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
        c.ehlo("x")
        c.mail("a@t.example")
        c.rcpt("reader@example.org")
        _, text = c.data(b"From: a@t.example\r\nSubject: t\r\n\r\nhi\r\n")
    mid = text.decode().split("<")[1].rstrip(">")
    store = Store(server.storage_url)
    secret, account = store.get_or_create_secret("links"), store.get_account("t")
    store.close()
    return Links(f"http://127.0.0.1:{server.http}", secret), mid, account.id


def events(server: RunningServer, mid: str) -> list[dict]:
    return server.message(mid)["events"]


def test_open_click_and_tampering(server: RunningServer) -> None:
    lk, mid, _ = links(server)
    with httpx.Client(timeout=10, follow_redirects=False) as web:
        r = web.get(lk.open_url(mid, "reader@example.org"),
                    headers={"User-Agent": "Mozilla/5.0 (Macintosh) Thunderbird/128"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
        r = web.get(lk.click_url(mid, "reader@example.org", "https://shop.example/p?id=7"),
                    headers={"User-Agent": "Mozilla/5.0 (X11) Firefox/130"})
        assert r.status_code == 302 and r.headers["location"] == "https://shop.example/p?id=7"
        evil = lk.click_url(mid, "reader@example.org", "https://shop.example/p")
        body, sig = evil.rsplit("/", 1)[1].split(".")
        forged = body[:-4] + "AAAA" + "." + sig
        r = web.get(f"http://127.0.0.1:{server.http}/t/c/{forged}")
        assert r.status_code == 404 and "location" not in r.headers
        assert web.get(f"http://127.0.0.1:{server.http}/t/o/garbage").status_code == 404
        r = web.get(lk.open_url(mid, "reader@example.org"), headers={"User-Agent": "Mozilla/5.0"})
        assert r.status_code == 200
    got = [e for e in events(server, mid) if e["type"] in ("opened", "clicked")]
    assert [e["type"] for e in got] == ["opened", "clicked", "opened"]
    assert got[0]["data"]["ip"] == "127.0.0.1" and got[0]["data"]["machine"] is False
    assert got[1]["data"]["url"] == "https://shop.example/p?id=7"
    assert got[2]["data"]["machine"] is True  # Apple Mail privacy proxy's bare user agent


def test_one_click_unsubscribe_suppresses_at_once(server: RunningServer) -> None:
    lk, mid, account_id = links(server)
    url = lk.unsubscribe_url(account_id, mid, "reader@example.org")
    with httpx.Client(timeout=10) as web:
        assert "Unsubscribe" in web.get(url).text  # GET shows a confirmation page
        r = web.post(url, content=b"List-Unsubscribe=One-Click",
                     headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200
        assert web.post(url[:-3] + "zzz").status_code == 404
    assert "unsubscribed" in [e["type"] for e in events(server, mid)]
    with smtplib.SMTP("127.0.0.1", server.plain, timeout=10) as c:
        c.ehlo("x")
        c.mail("a@t.example")
        deadline = time.monotonic() + 5
        while (answer := c.rcpt("reader@example.org"))[0] == 250 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert answer == (550, b"5.7.1 Recipient <reader@example.org> not allowed")
