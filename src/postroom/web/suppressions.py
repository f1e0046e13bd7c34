"""Suppressions: search the account's list, and remove an address from it.

Removing is the dashboard's one write. It needs the `send` scope (as `DELETE
/v1/suppressions/{email}` does), a POST from this site, and the session's CSRF token; the
process's in-memory suppression view hears of it at once, as after an API removal.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from postroom.web.auth import checked_form, signed_in, stale_form
from postroom.web.context import dashboard, has_control, run
from postroom.web.render import error_page, href, page

PAGE_SIZE = 100


async def suppression_list(request: Request) -> Response:
    viewer = await signed_in(request)
    q = request.query_params
    search, after = q.get("q", "").strip()[:320], q.get("after", "")[:320] or None
    found = await run(request, viewer.account.id, dashboard(request).data.find_suppressions,
                      viewer.account.id, search=search, limit=PAGE_SIZE + 1, after=after)
    rows = found[:PAGE_SIZE]
    return page(request, "suppressions.html", viewer=viewer, rows=rows, search=search,
                removed=q.get("removed", "")[:320], paged=after is not None,
                first_url=href(request, "/suppressions", q=search),
                next_url=href(request, "/suppressions", q=search, after=rows[-1].address)
                if len(found) > PAGE_SIZE else None)


async def remove(request: Request) -> Response:
    viewer = await signed_in(request)
    form = await checked_form(request, viewer)
    if form is None:
        return stale_form(request, viewer)
    if not viewer.can("send"):
        return error_page(request, 403, "This key lacks the send scope needed to remove a "
                          "suppression.", viewer)
    address = str(form.get("email") or "").strip()
    dash = dashboard(request)
    if not address or has_control(address) or not await run(
            request, viewer.account.id, dash.store.remove_suppression, viewer.account.id,
            address):
        return error_page(request, 404, "That address is not suppressed.", viewer)
    dash.suppression_removed(viewer.account.id, address)
    return RedirectResponse(href(request, "/suppressions", removed=address.lower()),
                            status_code=303)
