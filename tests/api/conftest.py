"""A real SQLite store behind the FastAPI app, one account with an all-scopes key; SMTP limits
set low (5 recipients, 200,000 bytes) so that tests can reach them."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from postroom.admin import accounts as admin_accounts
from postroom.api.app import create_app
from postroom.config.settings import Settings
from postroom.store.api import Store


@pytest.fixture()
def env(tmp_path: Any) -> Iterator[SimpleNamespace]:
    settings = Settings(data_dir=tmp_path, smtp={"max_recipients": 5,
                                                 "max_message_size": 200_000})
    store = Store.open(settings.storage_url)
    a = admin_accounts.create_account(store, "alice", sender_domains=["alice.example"],
                                      sender_addresses=[])
    _, key = admin_accounts.create_key(store, a.id, scopes=["send", "read", "admin"])
    app = create_app(settings, store)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield SimpleNamespace(c=c, store=store, app=app, account=a,
                              auth={"Authorization": f"Bearer {key}"})
    store.close()
