"""Messages: a filtered list, newest first, and one message with its recipients and events.

A message of another account is answered exactly like a message that does not exist (404), so
ids cannot be probed across accounts. Both pages do bounded work whatever the account holds: a
filtered search examines at most `SCAN_BUDGET` messages per request (the page says where it
stopped and links on), and a message's page shows the newest `EVENTS_SHOWN` events of its
timeline (older ones a page at a time).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from postroom.model import RecipientStatus
from postroom.store.dashboard_data import MessageFilter, MessageRow
from postroom.store.dashboard_messages import EVENT_COUNT_CAP, HEAD_CAP, SCAN_BUDGET
from postroom.web.auth import signed_in
from postroom.web.context import dashboard, run
from postroom.web.headers import shown_headers
from postroom.web.render import error_page, href, page
from postroom.web.timeline import timeline

PAGE_SIZE, MAX_PAGE_SIZE = 50, 100
#: Events of a message's timeline per page (the newest first page).
EVENTS_SHOWN = 200
#: Filter fields (query parameters) with their labels, in the form's order.
FILTERS = [("recipient", "Recipient contains"), ("sender", "Sender contains"),
           ("subject", "Subject contains"), ("tag", "Tag"), ("campaign", "Campaign")]
STATUSES = [s.value for s in RecipientStatus]


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    return {name: q.get(name, "").strip()[:200] for name, _ in [*FILTERS, ("status", "")]}


def _page_size(request: Request) -> int:
    try:
        return max(1, min(MAX_PAGE_SIZE, int(request.query_params.get("limit", PAGE_SIZE))))
    except ValueError:
        return PAGE_SIZE


def summary(row: MessageRow) -> dict[str, Any]:
    """One row of the list: who, what, and how its recipients stand."""
    return {"id": row.id, "created_at": row.created_at, "subject": row.subject,
            "sender": row.header_from or row.mail_from, "first": row.first,
            "more": max(0, row.recipients - 1), "statuses": list(row.statuses),
            "tags": list(row.options.get("tags") or ())}


async def message_list(request: Request) -> Response:
    viewer = await signed_in(request)
    filters, limit = _filters(request), _page_size(request)
    if filters["status"] and filters["status"] not in STATUSES:
        return error_page(request, 400, "Unknown status.", viewer)
    before = request.query_params.get("before", "")[:64] or None
    found = await run(request, viewer.account.id, dashboard(request).data.find_messages,
                      viewer.account.id, MessageFilter(**filters), limit=limit, before=before)
    keep = {**filters, "limit": limit if limit != PAGE_SIZE else None}
    return page(request, "messages.html", viewer=viewer, rows=[summary(r) for r in found.rows],
                filters=filters, fields=FILTERS, statuses=STATUSES, paged=before is not None,
                stopped_at=found.stopped_at, budget=SCAN_BUDGET,
                first_url=href(request, "/messages", **keep),
                next_url=href(request, "/messages", **keep, before=found.next_before)
                if found.next_before else None)


def _event_cursor(request: Request) -> int | None:
    value = request.query_params.get("before", "")
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise ValueError(value)
    return int(value)


async def message_page(request: Request) -> Response:
    viewer = await signed_in(request)
    dash, message_id = dashboard(request), request.path_params["message_id"]
    account = viewer.account.id
    try:
        before = _event_cursor(request)
    except ValueError:
        return error_page(request, 400, "Unknown place in the timeline.", viewer)
    record = await run(request, account, dash.store.get_message, message_id)
    if record is None or record.account_id != account:
        return error_page(request, 404, "No such message.", viewer)
    events = await run(request, account, dash.data.message_events, message_id,
                       limit=EVENTS_SHOWN, before=before)
    head = await run(request, account, dash.data.message_head, message_id)
    headers = await run(request, account, shown_headers, head)
    opts = record.options or {}
    path = f"/messages/{message_id}"
    return page(request, "message.html", viewer=viewer, m=record, headers=headers,
                head_cap=HEAD_CAP, timeline=timeline(events.events), earlier=events.earlier,
                count_cap=EVENT_COUNT_CAP,
                earlier_url=href(request, path, before=events.events[0].id)
                if events.earlier else None,
                newest_url=href(request, path) if before is not None else None,
                tags=list(opts.get("tags") or ()),
                campaign=opts.get("campaign_id") or opts.get("campaign_name") or "")
