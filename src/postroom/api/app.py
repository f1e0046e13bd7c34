"""The HTTP application factory (no globals: settings and store are passed in).

OpenAPI at /openapi.json, interactive docs at /docs. Every route lives in `api/routes/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI

from postroom import __version__
from postroom.api import errors
from postroom.api.auth import KeyCache, Principal, require
from postroom.api.limits import RequestLimits, request_limit
from postroom.api.ratelimit import RateLimiter
from postroom.api.routes import (
    admin,
    files,
    messages,
    privacy,
    send,
    suppressions,
    templates,
    tracking,
    webhooks,
)
from postroom.config.settings import Settings
from postroom.submission.http_send import HttpSender
from postroom.submission.suppressions import SuppressionCache


def _noop(account_id: str, address: str) -> None:
    return None


def _both(first: Callable[[str, str], None], second: Callable[[str, str], None]
          ) -> Callable[[str, str], None]:
    if first is second:
        return first

    def both(account_id: str, address: str) -> None:
        first(account_id, address)
        second(account_id, address)

    return both


def create_app(
    settings: Settings,
    store: Any,
    *,
    suppression_added: Callable[[str, str], None] = _noop,
    suppression_removed: Callable[[str, str], None] = _noop,
    suppression_cache: SuppressionCache | None = None,
) -> FastAPI:
    """`suppression_*` let this process's SMTP ingress see API changes at once.

    `suppression_cache` is the in-memory suppression view that send_mail consults (the SMTP
    ingress's own, when given, so one copy serves both doors); API changes update it at once.
    """
    app = FastAPI(
        title="Postroom",
        version=__version__,
        description="Send mail, follow it, manage suppressions, files and templates. "
        "Errors use the envelope {code, details, message, status: error}; see docs/API.md.",
    )
    errors.install(app)
    # added last, so outermost: before the routes and the dashboard mounted beside them
    app.add_middleware(RequestLimits, limit=request_limit(settings))
    app.state.settings = settings
    app.state.store = store
    app.state.secret = store.get_or_create_secret("links")
    host = settings.http.listen
    app.state.public_url = (settings.http.public_url or f"http://{host}").rstrip("/")
    app.state.keys = KeyCache(store)
    app.state.rate_limiter = RateLimiter(settings.http.rate_limit_per_second)
    cache = suppression_cache or SuppressionCache(store)
    app.state.suppression_added = _both(cache.add_local, suppression_added)
    app.state.suppression_removed = _both(cache.remove_local, suppression_removed)
    app.state.sender = HttpSender(
        store, hostname=settings.smtp.hostname,
        consent_link=lambda account_id, address: privacy.consent_url(app, account_id, address),
        suppressions=cache, max_recipients=settings.smtp.max_recipients,
        max_message_size=settings.smtp.max_message_size,
    )
    for module in (send, messages, suppressions, files, templates, privacy, admin, tracking,
                   webhooks):
        # The routes themselves, not include_router(): FastAPI's included routers re-scan every
        # router's routes twice per request (~60 µs, a quarter of an in-process no-op). The routes
        # already carry their router's prefix, tags and responses, so the API is the same.
        app.router.routes.extend(module.router.routes)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, Any]:
        """Liveness plus queue counts (reads the store, so it also proves the store is up)."""
        return {"status": "ok", "version": __version__, "recipients": store.counts_by_status()}

    @app.get("/v1/ping", tags=["ops"], responses=messages.ERRORS)
    async def ping(principal: Principal = Depends(require(None))) -> dict[str, Any]:
        """Authenticated no-op (the benchmark's ceiling for the same app and auth path)."""
        return {"status": "ok", "account": principal.account.name}

    return app
