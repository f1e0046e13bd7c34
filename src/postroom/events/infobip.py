"""Infobip-style reports for per-message URLs (X-IB-Notify-Url, X-IB-Tracking-Url and the HTTP
API's `notify_url`): applications written for Infobip keep their report handlers.

Delivery reports go to the notify URL as `{"results": [...]}` (or Infobip's XML when the sender
asked for application/xml), keyed by the queued message id and echoing `callbackData`; deferrals
are reported only with X-IB-Intermediate-Report. Opens, clicks, unsubscribes and complaints go to
the tracking URL, one JSON notification each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET

from postroom.dialects.options import SendOptions
from postroom.model.records import Event, EventType, MessageRecord

JSON, XML = "application/json", "application/xml"
FINAL = frozenset({EventType.DELIVERED, EventType.BOUNCED, EventType.FAILED})
TRACKED = {EventType.OPENED: "OPENED", EventType.CLICKED: "CLICKED",
           EventType.UNSUBSCRIBED: "UNSUBSCRIBED", EventType.COMPLAINED: "COMPLAINED"}
#: (groupId, groupName, id, name, description), Infobip's status vocabulary
_STATUS = {
    "delivered": (3, "DELIVERED", 5, "DELIVERED_TO_HANDSET", "Message delivered to the "
                  "recipient's mail server"),
    "deferred": (1, "PENDING", 3, "PENDING_WAITING_DELIVERY", "Temporary failure, retrying"),
    "bounced": (2, "UNDELIVERABLE", 4, "UNDELIVERABLE_REJECTED_OPERATOR", "Message rejected by "
                "the recipient's mail server"),
    "expired": (4, "EXPIRED", 15, "EXPIRED_EXPIRED", "Message expired before delivery"),
    "rejected": (5, "REJECTED", 6, "REJECTED_NETWORK", "Message not sent (suppressed or "
                 "cancelled)"),
}
_NO_ERROR = {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR",
             "description": "No Error", "permanent": False}


def wants_report(event: Event, options: SendOptions) -> bool:
    return event.type in FINAL or (event.type is EventType.DEFERRED
                                   and bool(options.intermediate_report))


def _time(value: datetime | None) -> str | None:
    """Infobip's yyyy-MM-dd'T'HH:mm:ss.SSSZ."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000" \
        if value else None


def _status_key(event: Event) -> str:
    if event.type is EventType.FAILED:
        return "expired" if event.data.get("expired") else "rejected"
    return event.type.value


def report_result(event: Event, message: MessageRecord | None,
                  options: SendOptions) -> dict[str, Any]:
    """One entry of `results`: the report for one recipient of one message."""
    group_id, group, status_id, name, description = _STATUS[_status_key(event)]
    error = _NO_ERROR
    if event.type in (EventType.BOUNCED, EventType.FAILED, EventType.DEFERRED):
        category = str(event.data.get("category") or "other")
        error = {"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 1,
                 "name": f"EC_{category.upper()}", "description": event.reply or category,
                 "permanent": event.type is not EventType.DEFERRED}
    return {
        "bulkId": options.campaign_id, "messageId": event.message_id, "to": event.recipient,
        "sentAt": _time(message.created_at if message else None), "doneAt": _time(event.at),
        "messageCount": 1, "price": {"pricePerMessage": 0, "currency": "NONE"},
        "status": {"groupId": group_id, "groupName": group, "id": status_id, "name": name,
                   "description": description},
        "error": error, "channel": "EMAIL", "callbackData": options.callback_data,
    }


def report_body(results: Sequence[dict[str, Any]], content_type: str) -> str:
    if content_type == XML:
        root = ET.Element("reportResponse")
        items = ET.SubElement(root, "results")
        for result in results:
            _xml(ET.SubElement(items, "result"), result)
        return ET.tostring(root, encoding="unicode", xml_declaration=True)
    return json.dumps({"results": list(results)}, ensure_ascii=False, separators=(",", ":"))


def _xml(parent: ET.Element, value: dict[str, Any]) -> None:
    for key, item in value.items():
        if item is None:
            continue
        child = ET.SubElement(parent, key)
        if isinstance(item, dict):
            _xml(child, item)
        else:
            child.text = str(item).lower() if isinstance(item, bool) else str(item)


def tracking_body(event: Event, message: MessageRecord | None, options: SendOptions) -> str:
    """One tracking notification (always JSON, as Infobip sends them)."""
    sent = message.created_at if message else None
    note = {
        "notificationType": TRACKED[event.type], "recipient": event.recipient,
        "domain": (event.recipient or "").rpartition("@")[2] or None,
        "url": event.data.get("url"), "messageId": event.message_id,
        "bulkId": options.campaign_id, "callbackData": options.callback_data,
        "sendDateTime": int(sent.timestamp() * 1000) if sent else None,
        "eventDateTime": int(event.at.timestamp() * 1000),
        "recipientInfo": {"userAgent": event.data.get("user_agent"),
                          "machine": event.data.get("machine")},
    }
    return json.dumps(note, ensure_ascii=False, separators=(",", ":"))
