"""Which events go where: webhooks by type and age, notify and tracking URLs, batching."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET

from postroom.events.planner import plan
from postroom.model.records import Event, EventType, MessageRecord
from postroom.model.webhooks import DeliveryKind, Webhook
from postroom.store.webhook_queue import Window

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OPTIONS = {"campaign_id": "bulk-9", "tags": ["news"], "metadata": {"crm": "42"},
           "client_reference": "ref-1", "callback_data": '{"id": 1}',
           "notify_url": "https://app.example/dlr", "tracking_url": "https://app.example/trk"}


def message(mid: str = "m1", **options: Any) -> MessageRecord:
    return MessageRecord(mid, "acct", "s@x.example", "s@x.example", "Hi", "<a@b>", 10, "smtp",
                         "127.0.0.1", {**OPTIONS, **options}, T0, None)


def event(i: int, kind: EventType, mid: str | None = "m1", **data: Any) -> Event:
    return Event(i, kind, mid, "r@rcpt.example", T0 + timedelta(seconds=i), 1, "mx", "250 ok",
                 data)


def hook(types: tuple[str, ...] = (), batch: int = 1, created: datetime = T0) -> Webhook:
    return Webhook("w1", "acct", "https://hooks.example/in", types, batch, created_at=created)


def window(events: list[Event], hooks: list[Webhook], *messages: MessageRecord) -> Window:
    found = {m.id: m for m in messages} or {"m1": message()}
    return Window(events, found, {"acct": hooks})


def test_webhook_gets_every_type_with_the_message_fields() -> None:
    out = plan(window([event(1, EventType.QUEUED), event(2, EventType.DELIVERED)], [hook()]))
    hooks = [d for d in out if d.kind is DeliveryKind.WEBHOOK]
    assert [d.event_ids for d in hooks] == [(1,), (2,)]
    [payload] = json.loads(hooks[1].body)["events"]
    assert payload["type"] == "delivered" and payload["reply"] == "250 ok"
    assert payload["campaign_id"] == "bulk-9" and payload["tags"] == ["news"]
    assert payload["metadata"] == {"crm": "42"} and payload["client_reference"] == "ref-1"
    assert payload["callback_data"] == '{"id": 1}' and hooks[1].webhook_id == "w1"


def test_types_filter_batches_and_events_older_than_the_webhook() -> None:
    events = [event(i, EventType.DELIVERED) for i in range(1, 6)] + [event(6, EventType.OPENED)]
    out = plan(window(events, [hook(("delivered",), batch=2, created=T0 + timedelta(seconds=2))]))
    hooks = [d.event_ids for d in out if d.kind is DeliveryKind.WEBHOOK]
    assert hooks == [(2, 3), (4, 5)]


def test_notify_url_gets_final_reports_and_deferred_only_when_asked() -> None:
    events = [event(1, EventType.QUEUED), event(2, EventType.DEFERRED, category="greylist"),
              event(3, EventType.DELIVERED), event(4, EventType.BOUNCED, category="invalid")]
    [dlr] = [d for d in plan(window(events, [])) if d.kind is DeliveryKind.NOTIFY]
    results = json.loads(dlr.body)["results"]
    assert [r["status"]["groupName"] for r in results] == ["DELIVERED", "UNDELIVERABLE"]
    assert results[0]["messageId"] == "m1" and results[0]["callbackData"] == '{"id": 1}'
    assert results[0]["bulkId"] == "bulk-9" and results[1]["error"]["permanent"] is True
    assert dlr.url == "https://app.example/dlr" and dlr.event_ids == (3, 4)
    asked = window(events, [], message(intermediate_report=True))
    [dlr] = [d for d in plan(asked) if d.kind is DeliveryKind.NOTIFY]
    assert [r["status"]["groupName"] for r in json.loads(dlr.body)["results"]] == \
        ["PENDING", "DELIVERED", "UNDELIVERABLE"]


def test_notify_content_type_xml() -> None:
    out = plan(window([event(1, EventType.DELIVERED)], [],
                      message(notify_content_type="application/xml")))
    [dlr] = [d for d in out if d.kind is DeliveryKind.NOTIFY]
    assert dlr.content_type == "application/xml"
    root = ET.fromstring(dlr.body)
    assert root.tag == "reportResponse"
    assert root.findtext("results/result/messageId") == "m1"
    assert root.findtext("results/result/status/groupName") == "DELIVERED"


def test_tracking_url_gets_one_notification_per_engagement() -> None:
    events = [event(1, EventType.OPENED), event(2, EventType.CLICKED, url="https://s/p"),
              event(3, EventType.DELIVERED)]
    tracks = [d for d in plan(window(events, [])) if d.kind is DeliveryKind.TRACKING]
    notes = [json.loads(d.body) for d in tracks]
    assert [n["notificationType"] for n in notes] == ["OPENED", "CLICKED"]
    assert notes[1]["url"] == "https://s/p" and notes[1]["callbackData"] == '{"id": 1}'


def test_dsns_cause_nothing_and_complaints_without_a_message_reach_the_account() -> None:
    dsn = message("m2", dsn_for="m1")
    complaint = event(2, EventType.COMPLAINED, mid=None, account_id="acct")
    out = plan(window([event(1, EventType.DELIVERED, mid="m2"), complaint], [hook()], dsn))
    assert [d.event_ids for d in out] == [(2,)]
    assert "account_id" not in json.loads(out[0].body)["events"][0]["data"]


def test_a_broken_event_is_skipped_not_fatal() -> None:
    bad = message(tags=5)  # not a list: SendOptions cannot take it
    out = plan(window([event(1, EventType.DELIVERED)], [hook()], bad))
    assert out == []
