"""Webhooks in the store, on SQLite and PostgreSQL: endpoints, secrets, the dispatch cursor,
leases and attempts, complaints."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from postroom.events.planner import plan
from postroom.model import Account, EventType
from postroom.model.webhooks import AttemptOutcome, DeliveryStatus
from postroom.store import Store
from postroom.store.schema import events

from .factories import make_message

LEASE = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


def _dispatch_all(store: Store) -> None:
    while store.dispatch_events(plan, limit=50):
        pass


def _claim(store: Store, owner: str = "o1", **kw: object) -> list:
    return store.claim_webhook_deliveries(owner, now=_now(), limit=100, lease_seconds=LEASE,
                                          **kw)  # type: ignore[arg-type]


def test_endpoints_and_their_secrets(store: Store, account: Account) -> None:
    hook, secret = store.create_webhook(account.id, "https://h.example/in",
                                        event_types=["delivered", "bounced"], batch_size=5)
    assert secret.startswith("whsec_") and hook.event_types == ("bounced", "delivered")
    assert store.list_webhooks(account.id) == [hook] == store.list_webhooks()
    assert store.get_webhook("other", hook.id) is None
    store.enqueue_many([make_message(account.id)])
    store.append_event(EventType.DELIVERED, message_id=store.list_messages()[0].id)
    _dispatch_all(store)
    [job] = _claim(store)
    assert job.secrets == (secret,)
    new = store.rotate_webhook_secret(account.id, hook.id, keep=timedelta(hours=1))
    store.release_webhook_leases("o1")
    [job] = _claim(store)
    assert job.secrets == (new, secret)  # both sign while the old one is still valid
    newer = store.rotate_webhook_secret(account.id, hook.id, keep=timedelta(0))
    store.release_webhook_leases("o1")
    assert _claim(store)[0].secrets == (newer,)
    assert store.rotate_webhook_secret(account.id, "nope") is None


def test_delete_stops_the_endpoint_and_cancels_what_is_pending(store: Store,
                                                               account: Account) -> None:
    hook, _ = store.create_webhook(account.id, "https://h.example/in")
    store.enqueue_many([make_message(account.id, "a@x.example", "b@x.example")])
    _dispatch_all(store)
    assert store.delete_webhook(account.id, hook.id) and not store.delete_webhook(account.id,
                                                                                  hook.id)
    assert store.list_webhooks(account.id) == [] and _claim(store) == []
    shown = store.list_webhook_deliveries(account.id, hook.id)
    assert [d.status for d in shown] == [DeliveryStatus.CANCELLED] * 2


def test_notify_deliveries_get_an_account_secret(store: Store, account: Account) -> None:
    msg = make_message(account.id, options={"notify_url": "https://app.example/dlr"})
    store.enqueue_many([msg])
    store.append_event(EventType.DELIVERED, message_id=msg.id, recipient="rcpt@example.com")
    _dispatch_all(store)
    [job] = _claim(store)
    assert job.url == "https://app.example/dlr" and len(job.secrets) == 1
    assert json.loads(job.body)["results"][0]["messageId"] == msg.id
    fresh = store.rotate_account_secret(account.id, keep=timedelta(hours=2))
    store.release_webhook_leases("o1")
    assert _claim(store)[0].secrets == (fresh, job.secrets[0])
    [listed] = store.list_webhook_deliveries(account.id, None)
    assert listed.kind == "notify" and listed.status is DeliveryStatus.PENDING


def test_only_events_that_can_cause_a_delivery_are_read_in_full(store: Store,
                                                                account: Account) -> None:
    plain = [make_message(account.id) for _ in range(5)]
    notified = make_message(account.id, options={"notify_url": "https://app.example/dlr"})
    store.enqueue_many([*plain, notified])
    store.append_event(EventType.DELIVERED, message_id=notified.id, recipient="rcpt@example.com")
    windows: list[list[int]] = []

    def spy(window):  # type: ignore[no-untyped-def]
        windows.append([e.id for e in window.events])
        return plan(window)

    assert store.dispatch_events(spy) == 7  # every event passed the cursor ...
    assert store.dispatch_events(spy) == 0
    planned = {i for w in windows for i in w}
    read = {e.message_id for e in store.list_events(limit=100) if e.id in planned}
    assert read == {notified.id}  # ... but only the notify message's were read and planned
    [job] = _claim(store)
    assert job.url == "https://app.example/dlr"


def test_cursor_moves_once_and_history_is_not_replayed(store: Store, account: Account) -> None:
    store.enqueue_many([make_message(account.id)])  # before the webhook: never sent
    _dispatch_all(store)
    hook, _ = store.create_webhook(account.id, "https://h.example/in", batch_size=10)
    assert store.dispatch_events(plan) == 0
    store.enqueue_many([make_message(account.id, "a@x.example", "b@x.example")])
    assert store.dispatch_events(plan) == 2 and store.dispatch_events(plan) == 0
    [d] = store.list_webhook_deliveries(account.id, hook.id)
    assert len(d.event_ids) == 2 and d.give_up_at - d.created_at >= timedelta(hours=24)


def test_concurrent_dispatchers_make_each_delivery_once(store: Store, account: Account,
                                                        store_url: str) -> None:
    store.create_webhook(account.id, "https://h.example/in")
    others = [Store(store_url) for _ in range(3)]
    done = threading.Event()

    def dispatch(s: Store) -> None:
        while not done.is_set():
            s.dispatch_events(plan, limit=7)

    threads = [threading.Thread(target=dispatch, args=(s,)) for s in others]
    for t in threads:
        t.start()
    try:
        for i in range(10):
            store.enqueue_many([make_message(account.id, *(f"r{i}.{j}@x.example"
                                                           for j in range(5)))])
    finally:
        done.set()
        for t in threads:
            t.join()
        for s in others:
            s.close()
    _dispatch_all(store)  # alone now: also picks up ids that were holes for the others
    ids = [i for d in store.list_webhook_deliveries(account.id, None) + _all(store, account)
           for i in d.event_ids]
    assert len(ids) == 50 and len(set(ids)) == 50


def _all(store: Store, account: Account) -> list:
    hook = store.list_webhooks(account.id)[0]
    return store.list_webhook_deliveries(account.id, hook.id, limit=500)


def test_an_event_committed_below_the_cursor_is_still_sent(store: Store,
                                                          account: Account) -> None:
    """PostgreSQL can commit id N after N+1 was seen: the hole is looked at again."""
    store.create_webhook(account.id, "https://h.example/in")
    msg = make_message(account.id)
    store.enqueue_many([msg])
    _dispatch_all(store)
    top = store.list_events()[-1].id
    row = {"type": "delivered", "message_id": msg.id, "recipient": "rcpt@example.com",
           "at": _now(), "data": {}}
    with store._db.write() as conn:
        conn.execute(insert(events).values(id=top + 2, **row))
    _dispatch_all(store)
    with store._db.write() as conn:  # the "slow transaction" commits its lower id now
        conn.execute(insert(events).values(id=top + 1, **{**row, "type": "opened"}))
    _dispatch_all(store)
    sent = sorted(i for d in _all(store, account) for i in d.event_ids)
    assert sent[-2:] == [top + 1, top + 2]


def test_claim_leaves_room_for_other_endpoints_and_records_attempts(
        store: Store, account: Account) -> None:
    dead, _ = store.create_webhook(account.id, "http://dead.example:81/a")
    live, _ = store.create_webhook(account.id, "http://live.example/b", event_types=["queued"])
    store.enqueue_many([make_message(account.id, *(f"r{j}@x.example" for j in range(6)))])
    _dispatch_all(store)
    jobs = _claim(store, room=lambda endpoint: 2)
    assert sorted(j.endpoint for j in jobs) == ["http://dead.example:81"] * 2 + \
        ["http://live.example:80"] * 2
    more = _claim(store, owner="o2", skip={"http://dead.example:81"})
    assert {j.endpoint for j in more} == {"http://live.example:80"} and len(more) == 4
    now = _now()
    retry_at = now + timedelta(seconds=10)
    outcomes = [AttemptOutcome(j.id, 1, now, 12, DeliveryStatus.PENDING, None, "timeout",
                               retry_at) for j in jobs if "dead" in j.endpoint]
    outcomes += [AttemptOutcome(j.id, 1, now, 3, DeliveryStatus.SUCCEEDED, 204)
                 for j in jobs if "live" in j.endpoint]
    assert store.record_webhook_attempts("o1", outcomes) == 4
    assert store.record_webhook_attempts("intruder", outcomes[:1]) == 0  # lease not theirs
    shown = {d.id: d for d in store.list_webhook_deliveries(account.id, dead.id)}
    retried = shown[outcomes[0].delivery_id]
    assert retried.status is DeliveryStatus.PENDING and retried.next_attempt_at == retry_at
    assert [(a.attempt, a.error) for a in retried.history] == [(1, "timeout"), (1, "timeout")]
    ok = store.list_webhook_deliveries(account.id, live.id, status="succeeded")
    assert len(ok) == 2 and ok[0].last_status_code == 204 and ok[0].next_attempt_at is None
    counts = store.webhook_delivery_counts()
    assert counts["succeeded"] == 2 and counts["pending"] == 10
    assert store.next_webhook_due_at() is not None


def test_record_complaint_appends_and_suppresses_together(store: Store,
                                                          account: Account) -> None:
    msg = make_message(account.id, "Reader@Example.com")
    store.enqueue_many([msg])
    event_id = store.record_complaint(account.id, msg.id, "Reader@Example.com",
                                      {"feedback_type": "abuse"})
    [event] = [e for e in store.list_events(msg.id) if e.type is EventType.COMPLAINED]
    assert event.id == event_id and event.recipient == "reader@example.com"
    assert event.data == {"feedback_type": "abuse", "account_id": account.id}
    assert store.suppression_for(account.id, "READER@example.com")["reason"] == "complaint"
    store.record_complaint(account.id, None, "reader@example.com", {})  # a repeat: no error
    assert len(store.list_suppressions(account.id)) == 1


def test_old_finished_deliveries_are_purged_pending_ones_kept(store: Store,
                                                             account: Account) -> None:
    hook, _ = store.create_webhook(account.id, "https://h.example/in")
    store.enqueue_many([make_message(account.id, "a@x.example", "b@x.example")])
    _dispatch_all(store)
    first, second = _claim(store)
    now = _now()
    store.record_webhook_attempts("o1", [
        AttemptOutcome(first.id, 1, now, 5, DeliveryStatus.SUCCEEDED, 200),
        AttemptOutcome(second.id, 1, now, 5, DeliveryStatus.PENDING, 500, "HTTP 500", now)])
    assert store.purge_webhook_deliveries(now - timedelta(minutes=1)) == 0
    assert store.purge_webhook_deliveries(_now() + timedelta(seconds=1)) == 1
    [left] = store.list_webhook_deliveries(account.id, hook.id)
    assert left.id == second.id and len(left.history) == 1


def test_deleting_a_webhook_while_a_post_is_in_flight_keeps_it_cancelled(
        store: Store, account: Account) -> None:
    hook, _ = store.create_webhook(account.id, "https://h.example/in")
    store.enqueue_many([make_message(account.id)])
    _dispatch_all(store)
    [job] = _claim(store)
    store.delete_webhook(account.id, hook.id)
    now = _now()
    retry = AttemptOutcome(job.id, 1, now, 5, DeliveryStatus.PENDING, 503, "HTTP 503", now)
    assert store.record_webhook_attempts("o1", [retry]) == 0
    with store._db.read() as conn:
        from postroom.store.schema import webhook_deliveries

        status = conn.execute(webhook_deliveries.select()).mappings().one()["status"]
    assert status == "cancelled"
