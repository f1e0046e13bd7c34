"""Open pixel, click redirect and unsubscribe endpoints (RFC 8058 one-click).

Tokens are verified before anything happens; a tampered or foreign token is a 404 and never
redirects. Each open and click is an event with time, IP and user agent; likely machine
traffic (Apple Mail Privacy Protection, link scanners fetching within seconds of delivery) is
flagged in the event, not dropped.
"""

from __future__ import annotations

import asyncio
import base64
import html
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from postroom.api.auth import client_ip
from postroom.model import EventType
from postroom.render import tokens
from postroom.render.tracking import CLICK, OPEN, UNSUBSCRIBE

router = APIRouter(include_in_schema=False)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
SCANNER_AGENTS = ("bot", "spider", "scanner", "barracuda", "mimecast", "proofpoint",
                  "symantec", "zscaler", "python-requests", "curl/", "go-http-client",
                  "bingpreview", "safelinks", "urldefense", "trendmicro")
OPEN_PREFETCH_SECONDS = 2.0
CLICK_PREFETCH_SECONDS = 10.0


def machine_reason(user_agent: str, since_delivery: float | None, window: float) -> str | None:
    ua = user_agent.strip().lower()
    if ua in ("", "mozilla/5.0"):
        return "apple_privacy_proxy" if ua else "no_user_agent"
    if any(s in ua for s in SCANNER_AGENTS):
        return "scanner_user_agent"
    if since_delivery is not None and since_delivery < window:
        return "within_seconds_of_delivery"
    return None


async def _seconds_since_delivery(store: Any, message_id: str, recipient: str) -> float | None:
    events = await asyncio.to_thread(store.list_events, message_id)
    times = [e.at for e in events if e.type == EventType.DELIVERED and e.recipient == recipient]
    return (datetime.now(UTC) - times[-1]).total_seconds() if times else None


async def _record(request: Request, kind: EventType, data: dict[str, Any], window: float) -> None:
    store = request.app.state.store
    ua = request.headers.get("user-agent", "")
    since = await _seconds_since_delivery(store, data["m"], data["r"])
    reason = machine_reason(ua, since, window)
    extra = {"ip": client_ip(request), "user_agent": ua[:500], "machine": reason is not None}
    if reason:
        extra["machine_reason"] = reason
    if "u" in data:
        extra["url"] = data["u"]
    await asyncio.to_thread(store.append_event, kind, message_id=data["m"], recipient=data["r"],
                            data=extra)


@router.get("/t/o/{token}")
async def opened(request: Request, token: str) -> Response:
    data = tokens.verify(request.app.state.secret, OPEN, token)
    if data is None:
        return Response(status_code=404)
    await _record(request, EventType.OPENED, data, OPEN_PREFETCH_SECONDS)
    return Response(PIXEL, media_type="image/gif",
                    headers={"Cache-Control": "no-store, no-cache, must-revalidate, private"})


@router.get("/t/c/{token}")
async def clicked(request: Request, token: str) -> Response:
    data = tokens.verify(request.app.state.secret, CLICK, token)
    url = str((data or {}).get("u", ""))
    if data is None or not _web_url(url):
        return Response(status_code=404)
    await _record(request, EventType.CLICKED, data, CLICK_PREFETCH_SECONDS)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


def _web_url(url: str) -> bool:
    """http(s), in any case: links are found case-insensitively (HTTPS://… is a link too)."""
    scheme, colon, rest = url.partition(":")
    return bool(colon) and scheme.lower() in ("http", "https") and rest.startswith("//")


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Unsubscribe</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">{body}</body></html>"""


@router.get("/u/{token}", response_class=HTMLResponse)
async def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    data = tokens.verify(request.app.state.secret, UNSUBSCRIBE, token)
    if data is None:
        return HTMLResponse(_PAGE.format(body="<p>This link is not valid.</p>"), 404)
    who = html.escape(str(data["r"]))
    return HTMLResponse(_PAGE.format(
        body=f"<p>Stop sending email to <b>{who}</b>?</p><form method=post>"
             "<button type=submit>Unsubscribe</button></form>"))


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str) -> HTMLResponse:
    """The one-click POST (body `List-Unsubscribe=One-Click`) and the page's button alike."""
    data = tokens.verify(request.app.state.secret, UNSUBSCRIBE, token)
    if data is None:
        return HTMLResponse(_PAGE.format(body="<p>This link is not valid.</p>"), 404)
    await unsubscribe_address(request.app, str(data["a"]), str(data["m"]), str(data["r"]),
                              {"ip": client_ip(request), "method": "one_click_or_page"})
    return HTMLResponse(_PAGE.format(body="<p>You are unsubscribed.</p>"))


async def unsubscribe_address(app: Any, account_id: str, message_id: str | None, address: str,
                              data: dict[str, Any]) -> None:
    """Suppress `address` and record the event once per message: RFC 8058 clients retry the
    one-click POST, and a click on the page after it is no second unsubscribe (nor a second
    webhook); the store records `unsubscribed` once per message and recipient. A link of
    another message after the first unsubscribe is recorded too: the sender learns which
    mail it came from."""
    store = app.state.store
    before = await asyncio.to_thread(store.suppression_for, account_id, address)
    if before is None or before["reason"] != "unsubscribe":
        await asyncio.to_thread(store.add_suppression, account_id, address, "unsubscribe")
        app.state.suppression_added(account_id, address)
    await asyncio.to_thread(store.append_event, EventType.UNSUBSCRIBED, message_id=message_id,
                            recipient=address, data=data)
