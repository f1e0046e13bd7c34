"""What the dashboard's pages share: its services (`Dashboard`), who is looking (`Viewer`), and
the gate every store read of a page goes through (`ReadGate`, `run`)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from starlette.requests import Request

from postroom.config.settings import Settings
from postroom.model import Account, ApiKey
from postroom.store.dashboard_data import DashboardData
from postroom.web.session import Session, SessionSigner
from postroom.web.throttle import SignInThrottle

P = ParamSpec("P")
T = TypeVar("T")
#: C0 and C1 controls and DEL: no id, cursor, search term or address of the dashboard holds
#: one (and PostgreSQL refuses NUL in text outright).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


class ReadGate:
    """How many dashboard reads may hold a worker thread at once: `per_process` in all, and
    `per_account` for any one account. The threads are the event loop's default pool, which
    the API's own store calls use too; the gate keeps the dashboard to a small share of it, so
    one key opening many heavy pages at once queues here instead of starving the API."""

    def __init__(self, per_process: int = 2, per_account: int = 1) -> None:
        self._process = asyncio.Semaphore(per_process)
        self._per_account = per_account
        #: account id -> (its semaphore, how many reads hold or wait for it)
        self._accounts: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def _account(self, account_id: str | None) -> AsyncIterator[None]:
        if account_id is None:
            yield
            return
        gate, users = self._accounts.get(account_id) or (asyncio.Semaphore(self._per_account),
                                                         0)
        self._accounts[account_id] = (gate, users + 1)
        try:
            async with gate:
                yield
        finally:
            gate, users = self._accounts[account_id]
            if users > 1:
                self._accounts[account_id] = (gate, users - 1)
            else:
                del self._accounts[account_id]

    async def run(self, account_id: str | None, fn: Callable[P, T], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        async with self._account(account_id), self._process:
            return await asyncio.to_thread(fn, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class Dashboard:
    settings: Settings
    #: the `Store` (or the ingress's RemoteEnqueue in front of it)
    store: Any
    data: DashboardData
    sessions: SessionSigner
    #: sign-in attempts per client IP, with the SMTP AUTH limits
    throttle: SignInThrottle
    #: tells this process's in-memory suppression view (API and SMTP) of a removal
    suppression_removed: Callable[[str, str], None]
    #: the API's per-key rate limit (`[http] rate_limit_per_second`), shared with it
    allow: Callable[[str], bool]
    gate: ReadGate = field(default_factory=ReadGate)


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


async def run(request: Request, account_id: str | None, fn: Callable[P, T], *args: P.args,
              **kwargs: P.kwargs) -> T:
    """A blocking call (the store's methods are synchronous, and so is parsing a header block)
    off the event loop, through the dashboard's `ReadGate` (`account_id`: on whose behalf;
    None before a session is known)."""
    return await dashboard(request).gate.run(account_id, fn, *args, **kwargs)
