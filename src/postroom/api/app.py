"""The HTTP application factory (no globals: settings and store are passed in)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from postroom import __version__
from postroom.config.settings import Settings


def create_app(settings: Settings, store: Any) -> FastAPI:
    app = FastAPI(title="Postroom", version=__version__)
    app.state.settings = settings
    app.state.store = store

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, Any]:
        """Liveness plus queue counts (reads the store, so it also proves the store is up)."""
        return {"status": "ok", "version": __version__, "recipients": store.counts_by_status()}

    return app
