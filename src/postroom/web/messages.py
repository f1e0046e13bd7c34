"""Messages: a filtered list, newest first, and one message with its recipients and events.

A message of another account is answered exactly like a message that does not exist (404), so
ids cannot be probed across accounts.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from postroom.model import MessageRecord, RecipientStatus
from postroom.store.dashboard_data import MessageFilter
from postroom.web.auth import signed_in
from postroom.web.context import dashboard, run
from postroom.web.render import error_page, href, page

PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
#: Filter fields (query parameters) with their labels, in the form's order.
FILTERS = [("recipient", "Recipient contains"), ("sender", "Sender contains"),
           ("subject", "Subject contains"), ("tag", "Tag"), ("campaign", "Campaign")]
STATUSES = [s.value for s in RecipientStatus]
#: Headers shown on a message's page, as stored (after providers' control headers were read
#: and stripped); Bcc is never among them.
SHOWN_HEADERS = ("From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
                 "In-Reply-To", "List-Unsubscribe")


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    return {name: q.get(name, "").strip()[:200] for name, _ in [*FILTERS, ("status", "")]}


def _page_size(request: Request) -> int:
    try:
        return max(1, min(MAX_PAGE_SIZE, int(request.query_params.get("limit", PAGE_SIZE))))
    except ValueError:
        return PAGE_SIZE


def summary(record: MessageRecord) -> dict[str, Any]:
    """One row of the list: who, what, and how its recipients stand."""
    statuses = Counter(r.status.value for r in record.recipients)
    first = record.recipients[0].address if record.recipients else ""
    opts = record.options or {}
    return {"id": record.id, "created_at": record.created_at, "subject": record.subject,
            "sender": record.header_from or record.mail_from, "first": first,
            "more": max(0, len(record.recipients) - 1), "statuses": sorted(statuses.items()),
            "tags": list(opts.get("tags") or ())}


async def message_list(request: Request) -> Response:
    viewer = await signed_in(request)
    filters, limit = _filters(request), _page_size(request)
    if filters["status"] and filters["status"] not in STATUSES:
        return error_page(request, 400, "Unknown status.", viewer)
    before = request.query_params.get("before", "")[:64] or None
    found = await run(dashboard(request).data.find_messages, viewer.account.id,
                      MessageFilter(**filters), limit=limit + 1, before=before)
    rows = [summary(m) for m in found[:limit]]
    more = len(found) > limit
    keep = {**filters, "limit": limit if limit != PAGE_SIZE else None}
    return page(request, "messages.html", viewer=viewer, rows=rows, filters=filters,
                fields=FILTERS, statuses=STATUSES, paged=before is not None,
                first_url=href(request, "/messages", **keep),
                next_url=href(request, "/messages", **keep, before=rows[-1]["id"])
                if more else None)


def shown_headers(head: bytes) -> list[tuple[str, str]]:
    """The display headers of a message's header block, decoded (RFC 2047 words and UTF-8;
    undecodable bytes become U+FFFD, a malformed header is shown as written)."""
    block = head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    text = block.decode("utf-8", errors="replace")
    parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
    out = []
    for name in SHOWN_HEADERS:
        for raw in parsed.get_all(name) or ():
            try:
                value = str(email.policy.default.header_factory(name, str(raw)))
            except Exception:
                value = str(raw)
            out.append((name, " ".join(value.split())))
    return out


async def message_page(request: Request) -> Response:
    viewer = await signed_in(request)
    dash, message_id = dashboard(request), request.path_params["message_id"]
    record = await run(dash.store.get_message, message_id)
    if record is None or record.account_id != viewer.account.id:
        return error_page(request, 404, "No such message.", viewer)
    events = await run(dash.store.list_events, message_id)
    head = await run(dash.data.message_head, message_id)
    opts = record.options or {}
    return page(request, "message.html", viewer=viewer, m=record, events=events,
                headers=shown_headers(head), tags=list(opts.get("tags") or ()),
                campaign=opts.get("campaign_id") or opts.get("campaign_name") or "")
