"""From a window of the event log to the deliveries it causes (pure: no I/O, no clock).

An event goes to every live webhook of its account that wants its type and existed when it
happened, to the message's notify URL when it is a delivery report the sender asked for, and
to the message's tracking URL when it is an open, click, unsubscribe or complaint. Mail that
Postroom itself sends (DSNs) causes nothing. A webhook with batch_size N gets up to N events
per POST; notify URLs get up to REPORTS_PER_POST reports per POST, like Infobip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from postroom.dialects.options import SendOptions
from postroom.events import infobip, payloads
from postroom.model.records import Event
from postroom.model.webhooks import DeliveryKind, NewDelivery, Webhook
from postroom.store.webhook_queue import Window

log = logging.getLogger("postroom.events")
REPORTS_PER_POST = 100


def plan(window: Window) -> list[NewDelivery]:
    hooks: dict[str, tuple[Webhook, list[dict[str, Any]]]] = {}
    reports: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    out: list[NewDelivery] = []
    options: dict[str, SendOptions] = {}
    for event in window.events:
        try:
            _route(event, window, options, hooks, reports, out)
        except Exception:  # one malformed event must not stop the log: skip it, loudly
            log.exception("webhooks: event %s not dispatched", event.id)
    for hook, items in hooks.values():
        for chunk in _chunks(items, hook.batch_size):
            out.append(NewDelivery(
                account_id=hook.account_id, kind=DeliveryKind.WEBHOOK, url=hook.url,
                content_type=payloads.CONTENT_TYPE, body=payloads.body(chunk),
                event_ids=tuple(p["id"] for p in chunk), webhook_id=hook.id))
    for (account_id, url, ctype), results in reports.items():
        for chunk in _chunks(results, REPORTS_PER_POST):
            out.append(NewDelivery(
                account_id=account_id, kind=DeliveryKind.NOTIFY, url=url, content_type=ctype,
                body=infobip.report_body([r for _, r in chunk], ctype),
                event_ids=tuple(i for i, _ in chunk)))
    return out


def _route(event: Event, window: Window, cache: dict[str, SendOptions],
           hooks: dict[str, tuple[Webhook, list[dict[str, Any]]]],
           reports: dict[tuple[str, str, str], list[Any]], out: list[NewDelivery]) -> None:
    message = window.messages.get(event.message_id or "")
    if message is not None and message.options.get("dsn_for"):
        return
    account_id = message.account_id if message else event.data.get("account_id")
    if not account_id:
        return
    opts = cache.get(message.id) if message else None
    if opts is None:
        opts = SendOptions.from_json(message.options) if message else SendOptions()
        if message:
            cache[message.id] = opts
    wanted = [h for h in window.webhooks.get(account_id, ())
              if h.wants(event.type.value) and (h.created_at is None or event.at >= h.created_at)]
    if wanted:
        payload = payloads.event_payload(event, message, opts, account_id)
        for hook in wanted:
            hooks.setdefault(hook.id, (hook, []))[1].append(payload)
    if opts.notify_url and infobip.wants_report(event, opts):
        ctype = opts.notify_content_type or infobip.JSON
        reports.setdefault((account_id, opts.notify_url, ctype), []).append(
            (event.id, infobip.report_result(event, message, opts)))
    if opts.tracking_url and event.type in infobip.TRACKED:
        out.append(NewDelivery(
            account_id=account_id, kind=DeliveryKind.TRACKING, url=opts.tracking_url,
            content_type=infobip.JSON, body=infobip.tracking_body(event, message, opts),
            event_ids=(event.id,)))


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    size = max(1, size)
    return [items[i:i + size] for i in range(0, len(items), size)]
