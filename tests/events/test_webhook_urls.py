"""URLs that reached the store although no door should take them now.

- A URL with credentials (`https://user:pass@host/`): docs/WEBHOOKS.md names no such feature
  (deliveries are signed instead), and httpx would send them as Basic auth. Registration
  refuses one (INVALID_DATA, like any other bad URL); a notify URL that carries them anyway
  (stored earlier, or through a door that does not check them yet) is dropped at dispatch,
  with a warning that does not show them, and a delivery queued with one before is failed,
  never POSTed.
- A webhook stored before the URL check whose deliveries the store cannot keep is warned
  about once per process, not on every dispatch pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.store.factories import make_message

from postroom.config.settings import WebhookSettings
from postroom.events.endpoints import url_problem
from postroom.events.planner import plan
from postroom.events.service import WebhookThread
from postroom.model import Account
from postroom.model.webhooks import DeliveryStatus
from postroom.store import Store
from support.databases import postgres_url_or_skip, sqlite_url
from support.http_receiver import HttpReceiver

SECRET = "s3cr3t-pw"
FAST = WebhookSettings(retry_base_seconds=0.1, retry_max_seconds=0.5, poll_seconds=0.05,
                       timeout_seconds=1.0, max_per_endpoint=2, max_concurrency=8,
                       allow_private_targets=True)  # the receivers are on loopback


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = sqlite_url(tmp_path) if request.param == "sqlite" else postgres_url_or_skip()
    with Store.open(url) as opened:
        yield opened


@pytest.fixture
def account(store: Store) -> Account:
    return store.create_account("acme", sender_domains=["acme.test"])


def delivered_with_notify_url(store: Store, account: Account, url: str) -> str:
    message = make_message(account.id, "v@x.example", options={"notify_url": url})
    store.enqueue_many([message])
    store.append_event("delivered", message_id=message.id, recipient="v@x.example")
    return message.id


def queue_directly(store: Store, account_id: str, url: str) -> None:
    """A notify delivery as dispatch queued it before it checked for credentials."""
    from postroom.model.ids import new_id
    from postroom.store.schema import webhook_deliveries

    store.rotate_account_secret(account_id)  # as dispatch made it for the account
    now = datetime.now(UTC)
    host = url.rpartition("@")[2].split("/")[0]
    with store._db.write() as conn:
        conn.execute(webhook_deliveries.insert().values(
            id=new_id(), account_id=account_id, webhook_id=None, kind="notify", url=url,
            endpoint=f"http://{host}", content_type="application/json", body="{}",
            event_ids=[1], status="pending", attempts=0, next_attempt_at=now,
            give_up_at=now + timedelta(hours=1), created_at=now, updated_at=now))


def dispatch_all(store: Store) -> None:
    while store.dispatch_events(plan, limit=1000):
        pass


def dropped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "postroom.events" and r.levelno >= logging.WARNING
            and "was dropped" in r.getMessage()]


@pytest.mark.parametrize("url", ["https://user:pw@hooks.example.com/in",
                                 "https://user@hooks.example.com/in",
                                 "https://:pw@hooks.example.com/in",
                                 "https://@hooks.example.com/in"])
def test_registration_refuses_credentials(url: str) -> None:
    assert url_problem(url) == "the URL must not carry credentials (deliveries are signed instead)"


def test_a_notify_url_with_credentials_is_dropped_without_showing_them(
        store: Store, account: Account, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "postroom.events"):
        delivered_with_notify_url(store, account, f"https://user:{SECRET}@hooks.example.com/dlr")
        dispatch_all(store)
    assert store.list_webhook_deliveries(account.id, None) == []
    [warning] = dropped(caplog)
    assert "must not carry credentials" in warning and "hooks.example.com/dlr" in warning
    assert not any(SECRET in r.getMessage() or "user:" in r.getMessage()
                   for r in caplog.records), "the credentials were logged"


def test_a_delivery_queued_with_credentials_before_is_never_posted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Store.open(sqlite_url(tmp_path)) as store, HttpReceiver() as receiver:
        account = store.create_account("acme", sender_domains=["acme.test"])
        url = receiver.url("/dlr").replace("://", f"://user:{SECRET}@")
        queue_directly(store, account.id, url)
        worker = WebhookThread(store, FAST)
        worker.start()
        try:
            deadline = time.monotonic() + 6
            while not (found := [d for d in store.list_webhook_deliveries(account.id, None)
                                 if d.attempts]):
                assert time.monotonic() < deadline, "no attempt was recorded"
                time.sleep(0.05)
        finally:
            worker.stop()
        [delivery] = found
        assert delivery.status is DeliveryStatus.FAILED and delivery.next_attempt_at is None
        assert delivery.last_error is not None and SECRET not in delivery.last_error
        assert delivery.last_error.startswith("invalid URL: ")
        assert "the URL must not carry credentials" in delivery.last_error
        assert receiver.requests == []
        assert not any(SECRET in r.getMessage() for r in caplog.records)


def test_a_webhook_stored_before_the_check_is_warned_about_once(
        store: Store, account: Account, caplog: pytest.LogCaptureFixture) -> None:
    store.create_webhook(account.id, "https://" + "h" * 300 + ".example.com/in")  # earlier
    other = store.create_webhook(account.id, "http://example.com:99999/in")[0]
    with caplog.at_level(logging.DEBUG, "postroom.events"):
        for n in range(3):  # three dispatch passes, each with an event for the webhooks
            store.enqueue_many([make_message(account.id, f"a{n}@x.example")])
            dispatch_all(store)
    warnings = dropped(caplog)
    assert len(warnings) == 2, warnings  # once for each webhook
    assert sum(other.id in w for w in warnings) == 1
    later = [r for r in caplog.records if r.levelno == logging.DEBUG
             and "was dropped" in r.getMessage()]
    assert len(later) == 4  # the later passes still say so, quietly
