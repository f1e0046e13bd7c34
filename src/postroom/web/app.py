"""The dashboard application, mounted at /dashboard on the HTTP API's server.

It is a small Starlette app of its own (no OpenAPI, HTML answers, its own error pages) that
reads the store directly, like the API does; `with_dashboard` mounts it on the API's app and
shares that app's suppression-removal hook, so the in-memory suppression view of the process
learns of a removal made here at once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from postroom.config.settings import Settings
from postroom.store.dashboard_data import DashboardData
from postroom.store.errors import InvalidData, StoreError
from postroom.web import auth, messages, overview, suppressions, webhooks
from postroom.web.context import Dashboard, has_control
from postroom.web.render import SECURITY_HEADERS, error_page
from postroom.web.session import SessionSigner
from postroom.web.throttle import SignInThrottle

log = logging.getLogger("postroom.web")
PREFIX = "/dashboard"


def _refused(scope: Any) -> tuple[int, str] | None:
    """An error for a path or query with control characters, before any page sees them."""
    if has_control(scope.get("path", "")):
        return 404, "No such page."
    query = scope.get("query_string", b"").decode("latin-1")
    if any(has_control(k) or has_control(v) for k, v in parse_qsl(query,
                                                                    keep_blank_values=True)):
        return 400, "The address holds control characters, which no field here takes."
    return None


def _noop(account_id: str, address: str) -> None:
    return None


class Guard:
    """Pure ASGI middleware: the security headers on every response; a 404/400 page for a path
    or query with control characters; and an error page (logged under a reference, no
    internals shown) instead of an exception escaping to the server: 400 when the store
    refused the request's values (`InvalidData`: the client's doing), 503 when the store is
    unavailable, else 500."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def with_headers(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name for name, _ in SECURITY_HEADERS}
                message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                      if k.lower() not in names] + SECURITY_HEADERS
            await send(message)

        refused = _refused(scope)
        if refused is not None:
            await error_page(Request(scope), *refused)(scope, receive, with_headers)
            return
        try:
            await self.app(scope, receive, with_headers)
        except Exception as exc:
            if started:
                raise
            ref = secrets.token_hex(6)
            if isinstance(exc, InvalidData):
                log.info("dashboard request refused by the store (ref %s) on %s %s: %s", ref,
                         scope.get("method"), scope.get("path"), exc)
                status, text = 400, "The request holds values the store cannot take."
            else:
                unavailable = isinstance(exc, StoreError)
                log.error("dashboard %s (ref %s) on %s %s",
                          "store error" if unavailable else "internal error", ref,
                          scope.get("method"), scope.get("path"), exc_info=not unavailable)
                status, text = (503, "The store is unavailable; try again shortly.") \
                    if unavailable else (500, "Something went wrong on our side.")
            response = error_page(Request(scope), status, f"{text} (reference {ref})")
            await response(scope, receive, with_headers)


def _allow_all(key_id: str) -> bool:
    return True


_MESSAGES = {404: "No such page.", 429: "Too many requests with this key: slow down."}


def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return error_page(request, status, _MESSAGES.get(status, "Not allowed."))


def create_dashboard(settings: Settings, store: Any, *,
                     suppression_removed: Callable[[str, str], None] = _noop,
                     allow: Callable[[str], bool] = _allow_all) -> Starlette:
    """`suppression_removed` and `allow` (a per-key rate limit) come from the API's app when
    mounted on it (`with_dashboard`)."""
    routes = [
        Route("/", overview.overview),
        Route("/login", auth.login_form, methods=["GET"]),
        Route("/login", auth.login, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/messages", messages.message_list),
        Route("/messages/{message_id}", messages.message_page),
        Route("/suppressions", suppressions.suppression_list),
        Route("/suppressions/remove", suppressions.remove, methods=["POST"]),
        Route("/webhooks", webhooks.webhook_list),
        Route("/webhooks/{webhook_id}", webhooks.webhook_page),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard)], exception_handlers={
        auth.SignInRequired: auth.sign_in_redirect, HTTPException: _http_error})
    s = settings.smtp
    app.state.dashboard = Dashboard(
        settings=settings, store=store, data=DashboardData(store),
        sessions=SessionSigner(store.get_or_create_secret("dashboard")),
        throttle=SignInThrottle(s.auth_failure_limit, s.auth_failure_window),
        suppression_removed=suppression_removed, allow=allow)
    return app


def with_dashboard(app: Any, settings: Settings, store: Any) -> Any:
    """Mount the dashboard on the API's `app` (at /dashboard) and return `app`."""
    removed = getattr(app.state, "suppression_removed", _noop)
    limiter = getattr(app.state, "rate_limiter", None)
    app.mount(PREFIX, create_dashboard(settings, store, suppression_removed=removed,
                                       allow=limiter.allow if limiter else _allow_all))
    return app
