"""The HTTP application factory (no globals: settings and store are passed in).

OpenAPI at /openapi.json, interactive docs at /docs. Every route lives in `api/routes/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI

from postroom import __version__
from postroom.api import errors
from postroom.api.auth import Principal, require
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


def _noop(account_id: str, address: str) -> None:
    return None


def create_app(
    settings: Settings,
    store: Any,
    *,
    suppression_added: Callable[[str, str], None] = _noop,
    suppression_removed: Callable[[str, str], None] = _noop,
) -> FastAPI:
    """`suppression_*` let this process's SMTP ingress see API changes at once."""
    app = FastAPI(
        title="Postroom",
        version=__version__,
        description="Send mail, follow it, manage suppressions, files and templates. "
        "Errors use the envelope {code, details, message, status: error}; see docs/API.md.",
    )
    errors.install(app)
    app.state.settings = settings
    app.state.store = store
    app.state.secret = store.get_or_create_secret("links")
    host = settings.http.listen
    app.state.public_url = (settings.http.public_url or f"http://{host}").rstrip("/")
    app.state.rate_limiter = RateLimiter(settings.http.rate_limit_per_second)
    app.state.suppression_added = suppression_added
    app.state.suppression_removed = suppression_removed
    app.state.sender = HttpSender(
        store, hostname=settings.smtp.hostname,
        consent_link=lambda account_id, address: privacy.consent_url(app, account_id, address),
    )
    for module in (send, messages, suppressions, files, templates, privacy, admin, tracking,
                   webhooks):
        app.include_router(module.router)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, Any]:
        """Liveness plus queue counts (reads the store, so it also proves the store is up)."""
        return {"status": "ok", "version": __version__, "recipients": store.counts_by_status()}

    @app.get("/v1/ping", tags=["ops"], responses=messages.ERRORS)
    async def ping(principal: Principal = Depends(require(None))) -> dict[str, Any]:
        """Authenticated no-op (the benchmark's ceiling for the same app and auth path)."""
        return {"status": "ok", "account": principal.account.name}

    return app
