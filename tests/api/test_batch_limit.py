"""An HTTP send larger than one commit takes is the request's fault: 400, not 503."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from postroom.admin import accounts as admin_accounts
from postroom.api.app import create_app
from postroom.config.settings import Settings
from postroom.store import writer_link
from postroom.store.api import Store
from postroom.store.writer_link import RemoteEnqueue
from support.writer_process import running_writer


def item(content: str) -> dict[str, object]:
    return {"from": {"email": "a@shop.example"}, "to": [{"email": "r@example.org"}],
            "subject": "s", "content": content}


def test_a_send_larger_than_one_commit_gets_400(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path)
    store = Store.open(settings.storage_url)
    account = admin_accounts.create_account(store, "shop", sender_domains=["shop.example"],
                                            sender_addresses=[])
    _, key = admin_accounts.create_key(store, account.id, scopes=["send", "read"])
    monkeypatch.setattr(writer_link, "MAX_FRAME", 20_000)
    path = tmp_path / "writer.sock"
    try:
        with running_writer(settings.storage_url, path):
            app = create_app(settings, RemoteEnqueue(store, path))
            with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
                big = client.post("/v1/send_mail", json={"data": [item("x" * 30_000)]})
                small = client.post("/v1/send_mail", json={"data": [item("<p>x</p>")]})
        assert big.status_code == 400, big.text
        assert big.json()["code"] == "INVALID_DATA"
        assert "fewer items per request" in big.json()["message"]
        assert small.status_code < 300, small.text
        assert len(store.list_messages(limit=10)) == 1
    finally:
        store.close()
