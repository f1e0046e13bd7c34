"""How `postroom serve` runs the HTTP app: uvicorn's options, from settings.

Proxy headers are believed only from `[http] trusted_proxies`. uvicorn's own default trusts
X-Forwarded-For and X-Forwarded-Proto from 127.0.0.1 (or $FORWARDED_ALLOW_IPS), so any local
client could name its own address to the accounts' IP allow lists and the sign-in throttle.
With no trusted proxy, uvicorn's proxy-header middleware is not installed at all: the peer is
the client, and the scheme is the connection's.
"""

from __future__ import annotations

from typing import Any

import uvicorn

from postroom.config.settings import Settings


def uvicorn_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    trusted = list(settings.http.trusted_proxies)
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", access_log=False,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,  # never None: uvicorn would read $FORWARDED_ALLOW_IPS
    )
