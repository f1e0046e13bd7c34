"""NUL characters are the client's mistake, on both backends: PostgreSQL refuses NUL in text,
and the store's InvalidData for it was answered 503 "store unavailable" with an ERROR in the
log. A NUL in an API path or query string is refused before the route (400 on SQLite too); one
that reaches the store inside a body is the store's InvalidData, answered 400."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from postroom.admin import accounts as admin_accounts
from postroom.api.app import create_app
from postroom.config.settings import Settings
from postroom.store.api import Store
from support.databases import postgres_url_or_skip, sqlite_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimpleNamespace]:
    url = sqlite_url(tmp_path) if request.param == "sqlite" else postgres_url_or_skip()
    settings = Settings(data_dir=tmp_path, storage={"url": url})
    store = Store.open(settings.storage_url)
    account = admin_accounts.create_account(store, "shop", sender_domains=["shop.example"],
                                            sender_addresses=[])
    _, key = admin_accounts.create_key(store, account.id, scopes=["send", "read"])
    with TestClient(create_app(settings, store), raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {key}"}) as c:
        yield SimpleNamespace(c=c, backend=request.param)
    store.close()


@pytest.mark.parametrize("path", [
    "/v1/messages?cursor=%00",
    "/v1/messages?message_id=x%00",
    "/v1/messages?tag=a%00b",
    "/v1/events?message_id=x%00",
    "/v1/messages/x%00",
    "/v1/files/x%00",
    "/v1/templates/x%00",
    "/v1/webhooks/x%00/deliveries",
])
def test_nul_in_a_path_or_query_is_invalid_data(env: SimpleNamespace, path: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        r = env.c.get(path)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "INVALID_DATA"
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], caplog.text


def test_nul_that_reaches_the_store_is_invalid_data(env: SimpleNamespace,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        r = env.c.post("/v1/templates", json={"name": "a\u0000b", "subject": "s"})
    if env.backend == "sqlite":  # SQLite keeps it: nothing to refuse
        assert r.status_code == 201, r.text
        return
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "INVALID_DATA"
    assert "ref" in r.json()["details"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], caplog.text


def test_an_escaped_percent_is_not_a_nul(env: SimpleNamespace) -> None:
    r = env.c.get("/v1/messages?tag=%2500")  # the tag "%00", three characters
    assert r.status_code == 200, r.text
