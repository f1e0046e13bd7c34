"""The API app with the dashboard mounted, served by uvicorn on 127.0.0.1 (a thread of the test
process) over a real SQLite store: the same composition as `postroom serve` (runtime.py), and
real HTTP requests through httpx. One server for the session (opening a store costs a second);
each test makes its own accounts, so no test sees another's mail."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from postroom.admin import accounts as admin_accounts
from postroom.api.app import create_app
from postroom.config.settings import Settings
from postroom.model import Account
from postroom.store.api import Store
from postroom.web import with_dashboard
from postroom.web.context import Dashboard
from support.smtp_sinks import free_port

from .pages import Page

_names = itertools.count()


class Served:
    """An ASGI app on a free loopback port until `stop()`."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Tenant:
    account: Account
    key: str
    domain: str
    keys: dict[str, str] = field(default_factory=dict)


@dataclass
class Site:
    base: str
    store: Store
    settings: Settings
    #: the dashboard's services (its `data` reads, sessions, throttle)
    dashboard: Dashboard

    def client(self, **kw: Any) -> httpx.Client:
        kw.setdefault("base_url", self.base)
        return httpx.Client(timeout=20, **kw)

    def tenant(self, *, allow_ips: list[str] | None = None) -> Tenant:
        """A new account with a send+read key (and read-only and send-only ones in `keys`)."""
        n = next(_names)
        domain = f"t{n}.example"
        account = admin_accounts.create_account(
            self.store, f"tenant{n}", sender_domains=[domain], sender_addresses=[],
            allow_ips=allow_ips)
        tenant = Tenant(account, self.new_key(account, ["send", "read"]), domain)
        tenant.keys = {"read": self.new_key(account, ["read"]),
                       "send": self.new_key(account, ["send"])}
        return tenant

    def new_key(self, account: Account, scopes: list[str]) -> str:
        return admin_accounts.create_key(self.store, account.id, scopes=scopes)[1]

    def send(self, tenant: Tenant, *items: dict[str, Any]) -> list[str]:
        """Send over the HTTP API; the message ids, in order."""
        data = [{"from": {"email": f"news@{tenant.domain}"},
                 "to": [{"email": "someone@example.org"}], "subject": "Hello",
                 "content": "Hi", "mail_format": "text", **item} for item in items]
        with self.client(headers={"Authorization": f"Bearer {tenant.key}"}) as c:
            r = c.post("/v1/send_mail", json={"data": data})
        assert r.status_code == 200, r.text
        return [d["details"]["message_id"] for d in r.json()["data"]]

    def settle(self, message_id: str, outcomes: dict[str, tuple[str, str]]) -> None:
        """Record delivery outcomes through the store's real delivery path (claim, mark):
        {address: ("delivered" | "deferred" | "bounced", reply)}."""
        now = datetime.now(UTC)
        claims = self.store.claim_due("web-test", now=now, limit=10_000, lease_seconds=60)
        try:
            for c in claims:
                if c.message_id != message_id or c.address not in outcomes:
                    continue
                kind, reply = outcomes[c.address]
                common = {"reply": reply, "remote_host": "mx.example.org", "attempt": 1}
                if kind == "delivered":
                    assert self.store.mark_delivered(c.recipient_id, "web-test", **common)
                elif kind == "bounced":
                    assert self.store.mark_bounced(c.recipient_id, "web-test", **common)
                else:
                    assert self.store.mark_deferred(c.recipient_id, "web-test", **common,
                                                    next_attempt_at=now + timedelta(hours=1))
        finally:
            self.store.release_leases("web-test")

    @contextmanager
    def own_server(self, **settings: Any) -> Iterator[Browser]:
        """Another server on this store with these settings (and its own throttle and rate
        limiter), and a browser pointed at it."""
        configured = Settings(data_dir=self.settings.data_dir, **settings)
        served = Served(with_dashboard(create_app(configured, self.store), configured,
                                       self.store))
        browser = Browser(self.client(base_url=served.base))
        try:
            yield browser
        finally:
            browser.close()
            served.stop()

    def browser(self, key: str) -> Browser:
        """A client signed in to the dashboard with `key`."""
        b = Browser(self.client())
        r = b.post("/dashboard/login", data={"key": key})
        assert r.status_code == 303, r.text
        return b


class Browser:
    """An httpx client that keeps the session cookie, with HTML pages parsed."""

    def __init__(self, client: httpx.Client) -> None:
        self.http = client

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def page(self, path: str, status: int = 200, **kw: Any) -> Page:
        r = self.http.get(path, **kw)
        assert r.status_code == status, (r.status_code, r.text[:500])
        return Page(r.text)

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root: Path = tmp_path_factory.mktemp("web")
    settings = Settings(data_dir=root, smtp={"auth_failure_limit": 50})
    store = Store.open(settings.storage_url)
    app = with_dashboard(create_app(settings, store), settings, store)
    served = Served(app)
    [mount] = [r for r in app.routes if getattr(r, "path", "") == "/dashboard"]
    try:
        yield Site(served.base, store, settings, mount.app.state.dashboard)
    finally:
        served.stop()
        store.close()
