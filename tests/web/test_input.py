"""Odd input: control characters in a path, a query or a form, on SQLite and PostgreSQL (whose
driver refuses NUL in text: that was answered 503 "store unavailable" and logged as an
error), and values the store refuses, answered as the client's mistake (400)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from postroom.api.app import create_app
from postroom.config.settings import Settings
from postroom.store.api import Store
from postroom.store.errors import InvalidData
from postroom.web import with_dashboard
from support.databases import postgres_url_or_skip

from .conftest import Served, Site
from .pages import Page

#: (path, status): controls in the path answer 404 (no such page), in the query 400.
ODD = [("/dashboard/messages?subject=%00", 400), ("/dashboard/messages?before=%00", 400),
       ("/dashboard/messages?tag=a%00", 400), ("/dashboard/messages?recipient=%1b", 400),
       ("/dashboard/suppressions?q=a%00", 400), ("/dashboard/suppressions?after=%00", 400),
       ("/dashboard/messages/x%00", 404), ("/dashboard/webhooks/%00", 404),
       ("/dashboard/webhooks/notify?before=%00", 400), ("/dashboard/messages?%00=x", 400),
       ("/dashboard/messages/x?before=%c2%85", 400)]


@pytest.fixture(scope="module")
def pg_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("web-pg"),
                        storage={"url": postgres_url_or_skip()})
    store = Store.open(settings.storage_url)
    app = with_dashboard(create_app(settings, store), settings, store)
    served = Served(app)
    [mount] = [r for r in app.routes if getattr(r, "path", "") == "/dashboard"]
    try:
        yield Site(served.base, store, settings, mount.app.state.dashboard)
    finally:
        served.stop()
        store.close()


def _odd_input_is_refused(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    tenant = site.tenant()
    site.send(tenant, {"subject": "x"})
    browser = site.browser(tenant.key)
    with caplog.at_level(logging.INFO, logger="postroom.web"):
        for path, status in ODD:
            r = browser.get(path)
            assert r.status_code == status, (path, r.status_code, r.text[-400:])
            assert r.headers["x-frame-options"] == "DENY"
            assert "control characters" in r.text or "No such page" in r.text, path
        token = browser.page("/dashboard/suppressions").field("csrf")
        r = browser.post("/dashboard/suppressions/remove", data={"csrf": token, "email": "a\0b"})
        assert r.status_code == 404
        assert Page(r.text).by_id("error") == "That address is not suppressed."
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert browser.page("/dashboard/messages", params={"subject": "x"}).texts("message")
    browser.close()


def test_control_characters_are_refused_on_sqlite(site: Site,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    _odd_input_is_refused(site, caplog)


@pytest.mark.postgres
def test_control_characters_are_refused_on_postgresql(pg_site: Site,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    _odd_input_is_refused(pg_site, caplog)


def test_values_the_store_refuses_are_a_bad_request_not_an_outage(
        site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """InvalidData (a value the database will not take, simulated: the dashboard's own input
    checks keep the real ones out) is the request's fault: 400, not 503, and no ERROR."""
    browser = site.browser(site.tenant().key)

    def refused(*args: object, **kwargs: object) -> None:
        raise InvalidData("rejected by the database: value too long (secret detail)")

    monkeypatch.setattr(site.dashboard.data, "find_suppressions", refused)
    with caplog.at_level(logging.INFO, logger="postroom.web"):
        r = browser.get("/dashboard/suppressions")
    assert r.status_code == 400 and "secret detail" not in r.text
    assert "values the store cannot take" in Page(r.text).by_id("error")
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    monkeypatch.undo()
    browser.page("/dashboard/suppressions")
    browser.close()
