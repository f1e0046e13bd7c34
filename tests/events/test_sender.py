"""The webhook service against real HTTP receivers on loopback (in this process, fast)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.store.factories import make_message

from postroom.config.settings import WebhookSettings
from postroom.events.service import WebhookThread
from postroom.events.signing import verify
from postroom.model import Account
from postroom.model.webhooks import DeliveryStatus
from postroom.store import Store
from support.databases import sqlite_url
from support.http_receiver import HttpReceiver

FAST = WebhookSettings(retry_base_seconds=0.1, retry_max_seconds=0.5, poll_seconds=0.05,
                       timeout_seconds=0.5, max_per_endpoint=2, max_concurrency=8,
                       allow_private_targets=True)  # the receivers are on loopback


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(sqlite_url(tmp_path)) as opened:
        yield opened


@pytest.fixture
def account(store: Store) -> Account:
    return store.create_account("acme", sender_domains=["acme.test"])


@pytest.fixture
def service(store: Store) -> Iterator[WebhookThread]:
    worker = WebhookThread(store, FAST)
    worker.start()
    yield worker
    worker.stop()


def wait(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_fails_twice_then_accepted_once_with_one_delivery_id(
        store: Store, account: Account, service: WebhookThread) -> None:
    with HttpReceiver(replies=[500, 503]) as hook:
        webhook, secret = store.create_webhook(account.id, hook.url(), event_types=["queued"])
        store.enqueue_many([make_message(account.id, "a@x.example")])
        [accepted] = hook.wait_for(1)
        time.sleep(0.3)
        assert [r.status for r in hook.requests] == [500, 503, 200]
        assert len({r.headers["postroom-delivery-id"] for r in hook.requests}) == 1
        assert [r.headers["postroom-attempt"] for r in hook.requests] == ["1", "2", "3"]
        assert verify(accepted.body, accepted.headers["postroom-signature"], secret)
        [event] = accepted.json()["events"]
        assert accepted.headers["postroom-event-id"] == str(event["id"])
    [d] = wait(lambda: [d for d in store.list_webhook_deliveries(account.id, webhook.id)
                        if d.status is DeliveryStatus.SUCCEEDED])
    assert [a.status_code for a in d.history] == [500, 503, 200] and d.attempts == 3


def test_a_4xx_stops_at_once_but_408_and_429_retry(store: Store, account: Account,
                                                   service: WebhookThread) -> None:
    with HttpReceiver(replies=[408, 429, 410]) as hook:
        webhook, _ = store.create_webhook(account.id, hook.url(), event_types=["queued"])
        store.enqueue_many([make_message(account.id, "a@x.example")])
        [d] = wait(lambda: [d for d in store.list_webhook_deliveries(account.id, webhook.id)
                            if d.status is DeliveryStatus.FAILED])
        time.sleep(0.3)
        assert [r.status for r in hook.requests] == [408, 429, 410]
    assert d.attempts == 3 and d.last_status_code == 410 and d.next_attempt_at is None


def test_a_dead_endpoint_does_not_hold_up_a_live_one(store: Store, account: Account,
                                                     service: WebhookThread) -> None:
    with HttpReceiver(delay=5.0) as dead, HttpReceiver() as live:
        store.create_webhook(account.id, dead.url(), event_types=["queued"])
        store.create_webhook(account.id, live.url(), event_types=["queued"])
        started = time.monotonic()
        store.enqueue_many([make_message(account.id, *(f"r{i}@x.example" for i in range(40)))])
        live.wait_for(40, timeout=5.0)
        assert time.monotonic() - started < 4.0
        assert dead.count <= FAST.max_per_endpoint  # a probe at a time, never a flood


def docs_verify():  # type: ignore[no-untyped-def]
    """The `verify` function exactly as docs/WEBHOOKS.md prints it."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "WEBHOOKS.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 12
    scope: dict[str, object] = {}
    exec(compile(code, "WEBHOOKS.md", "exec"), scope)
    return scope["verify"]


def test_the_docs_example_verifies_real_deliveries_and_both_rotation_secrets(
        store: Store, account: Account, service: WebhookThread) -> None:
    verify_doc = docs_verify()
    with HttpReceiver() as hook:
        webhook, old = store.create_webhook(account.id, hook.url(), event_types=["queued"])
        store.enqueue_many([make_message(account.id, "a@x.example")])
        [first] = hook.wait_for(1)
        assert verify_doc(first.body, first.headers["postroom-signature"], old)
        assert not verify_doc(first.body + b" ", first.headers["postroom-signature"], old)
        assert not verify_doc(first.body, first.headers["postroom-signature"], "whsec_other")
        new = store.rotate_webhook_secret(account.id, webhook.id)
        store.enqueue_many([make_message(account.id, "b@x.example")])
        second = hook.wait_for(2)[1]
        assert second.headers["postroom-signature"].count("v1=") == 2
        assert verify_doc(second.body, second.headers["postroom-signature"], new)
        assert verify_doc(second.body, second.headers["postroom-signature"], old)
