"""Webhooks (read-only): the account's endpoints, and each one's recent deliveries.

Deliveries to per-message notify/tracking URLs are listed under the pseudo-endpoint `notify`,
as in the API. Secrets are never shown (the API shows them once, when made or rotated).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from postroom.model.webhooks import DeliveryStatus
from postroom.web.auth import signed_in
from postroom.web.context import dashboard, run
from postroom.web.render import error_page, href, page

NOTIFY = "notify"
RECENT, PAGE_SIZE = 5, 50
STATUSES = [s.value for s in DeliveryStatus]


async def webhook_list(request: Request) -> Response:
    viewer = await signed_in(request)
    store = dashboard(request).store
    account = viewer.account.id
    hooks = await run(request, account, store.list_webhooks, account)
    recent = {}
    for hook_id in [h.id for h in hooks] + [NOTIFY]:
        recent[hook_id] = await run(request, account, store.list_webhook_deliveries, account,
                                    None if hook_id == NOTIFY else hook_id, limit=RECENT)
    return page(request, "webhooks.html", viewer=viewer, hooks=hooks, recent=recent,
                notify=NOTIFY)


async def webhook_page(request: Request) -> Response:
    viewer = await signed_in(request)
    store, hook_id = dashboard(request).store, request.path_params["webhook_id"]
    hook = None
    if hook_id != NOTIFY:
        hook = await run(request, viewer.account.id, store.get_webhook, viewer.account.id,
                         hook_id)
        if hook is None:
            return error_page(request, 404, "No such webhook.", viewer)
    status = request.query_params.get("status", "")
    if status and status not in STATUSES:
        return error_page(request, 400, "Unknown delivery status.", viewer)
    before = request.query_params.get("before", "")[:64] or None
    found = await run(request, viewer.account.id, store.list_webhook_deliveries,
                      viewer.account.id, None if hook is None else hook.id,
                      limit=PAGE_SIZE + 1, before=before, status=status or None)
    rows = found[:PAGE_SIZE]
    path = f"/webhooks/{hook_id}"
    return page(request, "webhook.html", viewer=viewer, hook=hook, deliveries=rows,
                status=status, statuses=STATUSES, paged=before is not None,
                first_url=href(request, path, status=status),
                next_url=href(request, path, status=status, before=rows[-1].id)
                if len(found) > PAGE_SIZE else None)
