"""The dashboard on a real `postroom serve`: mounted by the runtime on the HTTP listener, showing
mail submitted over SMTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from postroom.admin import accounts as admin_accounts
from postroom.store.api import Store
from support.server import RunningServer, make_server, submit

from .pages import Page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root: Path = tmp_path_factory.mktemp("serve")
    srv = make_server(root)
    with Store.open(srv.storage_url) as store:  # in-process: two CLI runs cost seconds more
        account = admin_accounts.create_account(
            store, "shop", sender_domains=["shop.example"], sender_addresses=[],
            trusted_networks=["127.0.0.0/8"])
        srv.keys["shop"] = admin_accounts.create_key(store, account.id, scopes=["read"])[1]
    srv.start()
    yield srv
    srv.stop()


def test_mail_submitted_over_smtp_shows_in_the_dashboard(server: RunningServer) -> None:
    code, _ = submit(server.plain, "news@shop.example", "reader@example.org",
                     b"From: News <news@shop.example>\r\nTo: reader@example.org\r\n"
                     b"Subject: Over SMTP <i>really</i>\r\n\r\nHello\r\n")
    assert code == 250
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http}", timeout=20) as c:
        assert c.get("/dashboard/messages").status_code == 303
        r = c.post("/dashboard/login", data={"key": server.keys["shop"]})
        assert r.status_code == 303, r.text
        listed = Page(c.get("/dashboard/messages").text)
        [row] = listed.texts("message")
        assert "Over SMTP <i>really</i>" in row and "reader@example.org" in row
        [mid] = listed.attr("message", "data-id")
        page = Page(c.get(f"/dashboard/messages/{mid}").text)
        assert page.texts("recipient")[0].startswith("reader@example.org queued")
        assert "smtp from 127.0.0.1" in page.by_id("envelope")
        assert "To reader@example.org" in page.by_id("headers")
        overview = Page(c.get("/dashboard/").text)
        assert overview.by_id("count-24h-messages") == "1"
        assert c.get("/v1/ping", headers={"Authorization": f"Bearer {server.keys['shop']}"}
                     ).status_code == 200  # the API is still there beside it
