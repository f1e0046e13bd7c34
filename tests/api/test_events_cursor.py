"""`GET /v1/events` on PostgreSQL: a client that passes back the last event id it got as
`cursor` gets every event, even one whose transaction took its id first and committed last."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from postroom.admin import accounts as admin_accounts
from postroom.api.app import create_app
from postroom.config.settings import Settings
from postroom.model import EventType
from postroom.store.api import Store
from postroom.store.reads import event_row
from postroom.store.rows import utc_now
from postroom.store.schema import events
from support.databases import postgres_url_or_skip
from support.settle import settle

pytestmark = pytest.mark.postgres


@pytest.fixture()
def pg_env(tmp_path: Path) -> Iterator[SimpleNamespace]:
    settings = Settings(data_dir=tmp_path, storage={"url": postgres_url_or_skip()})
    store = Store.open(settings.storage_url)
    a = admin_accounts.create_account(store, "alice", sender_domains=["alice.example"],
                                      sender_addresses=[])
    _, key = admin_accounts.create_key(store, a.id, scopes=["send", "read"])
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield SimpleNamespace(c=c, store=store, auth={"Authorization": f"Bearer {key}"})
    store.close()


def _insert(conn: Connection, message_id: str) -> int:
    row = event_row(EventType.OPENED, message_id=message_id, recipient=None, at=utc_now())
    return int(conn.execute(events.insert().values(**row)).inserted_primary_key[0])


def test_api_cursor_does_not_skip_a_late_commit(pg_env: SimpleNamespace) -> None:
    item = {"from": {"email": "x@alice.example"}, "subject": "s", "content": "<p>x</p>",
            "to": [{"email": "u@example.org"}]}
    r = pg_env.c.post("/v1/send_mail", json={"data": [item]}, headers=pg_env.auth)
    assert r.status_code == 200, r.text
    message_id = r.json()["data"][0]["details"]["message_id"]
    seen: list[int] = []
    cursor: dict[str, int] = {}

    def poll(wait: bool = True) -> None:
        if wait:  # other tests' transactions on the shared server hold events back a moment
            settle(pg_env.store)
        page = pg_env.c.get("/v1/events", params={**cursor, "limit": 2},
                            headers=pg_env.auth).json()
        seen.extend(e["id"] for e in page["data"])
        if page["data"]:
            cursor["cursor"] = page["data"][-1]["id"]  # what a poller keeps between calls
        if page["next_cursor"] is not None:
            assert page["next_cursor"] == page["data"][-1]["id"]
            poll(wait)

    poll()
    engine = pg_env.store._db.engine
    with engine.connect() as t1, t1.begin():
        first = _insert(t1, message_id)
        with engine.connect() as t2, t2.begin():
            second = _insert(t2, message_id)
            third = _insert(t2, message_id)
        poll(wait=False)  # T2 has committed, T1 has not
    poll()
    assert second > first and seen[-3:] == [first, second, third]
    assert len(seen) == len(set(seen))
