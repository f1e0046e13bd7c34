"""What the dashboard's pages share: its services (`Dashboard`) and who is looking (`Viewer`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from starlette.requests import Request

from postroom.config.settings import Settings
from postroom.model import Account, ApiKey
from postroom.store.dashboard_data import DashboardData
from postroom.submission.throttle import AuthThrottle
from postroom.web.session import Session, SessionSigner

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Dashboard:
    settings: Settings
    #: the `Store` (or the ingress's RemoteEnqueue in front of it)
    store: Any
    data: DashboardData
    sessions: SessionSigner
    #: failed sign-ins per client IP, with the SMTP AUTH limits
    throttle: AuthThrottle
    #: tells this process's in-memory suppression view (API and SMTP) of a removal
    suppression_removed: Callable[[str, str], None]
    #: the API's per-key rate limit (`[http] rate_limit_per_second`), shared with it
    allow: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in session whose key was found active on this request."""

    key: ApiKey
    account: Account
    session: Session
    #: the token this session's forms carry
    csrf: str

    def can(self, scope: str) -> bool:
        return scope in self.key.scopes


def dashboard(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dashboard
    return found


async def run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A blocking store call off the event loop (the store's methods are synchronous)."""
    return await asyncio.to_thread(fn, *args, **kwargs)
