"""The real inbound SMTP listener on loopback, run in a thread beside a test.

It is what `runtime` builds (`IngressHandler` over `SubmissionService` and `InboundService`,
listener `inbound`) on a real store, without the rest of `postroom serve`: a test talks to it
with smtplib and reads the store it writes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from tests.store.factories import make_message

from postroom.delivery import verp
from postroom.inbound.handler import INBOUND_LISTENER, IngressHandler
from postroom.inbound.service import InboundService
from postroom.smtp.server import ConnectionLimiter, ListenerConfig, ServerOptions, start_listeners
from postroom.store import Store
from postroom.submission.service import SubmissionService
from postroom.submission.throttle import AuthThrottle
from support.databases import postgres_url_or_skip, sqlite_url

#: The accounts' bounce address in these tests: VERP return paths are built on it.
BOUNCE_ADDRESS = "bounces@bounce.test"


class InboundListener:
    """`with InboundListener(store) as port:` serves SMTP on 127.0.0.1:<port>;
    `feedback_address` takes ARF complaints as `[smtp] feedback_address` does."""

    def __init__(self, store: Any, *, feedback_address: str | None = None) -> None:
        self.store = store
        self.feedback_address = feedback_address
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []

    async def _start(self) -> int:
        opts = ServerOptions(
            hostname="postroom.test", max_message_size=10_000_000, max_recipients=100,
            allow_plaintext_auth=True, idle_timeout=30, data_timeout=30, ssl_context=None,
            limiter=ConnectionLimiter(100, 100))
        submission = SubmissionService(self.store, hostname="postroom.test",
                                       throttle=AuthThrottle(10, 60))
        handler = IngressHandler(submission, InboundService(
            self.store, on_suppressed=submission.suppressions.add_local,
            feedback_address=self.feedback_address, hostname="postroom.test"))
        self._servers = await start_listeners(
            opts, [ListenerConfig(INBOUND_LISTENER, "127.0.0.1", 0)], lambda: handler)
        return int(self._servers[0].sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()

    def __enter__(self) -> int:
        self._thread.start()
        started: Future[int] = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        return started.result(10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def open_store(request: pytest.FixtureRequest, tmp_path: Path, kind: type[Store]
               ) -> Iterator[Any]:
    """A migrated store of class `kind` on the backend `request.param` names (a fixture's
    body: the tests' stores fail once where each test needs it)."""
    url = sqlite_url(tmp_path) if request.param == "sqlite" else postgres_url_or_skip()
    opened = kind(url)
    opened.migrate()
    try:
        yield opened
    finally:
        opened.close()


def sent(store: Store, account_id: str, *rcpts: str) -> tuple[str, dict[str, str]]:
    """A queued message; its id and each recipient's VERP return path."""
    message = make_message(account_id, *rcpts)
    store.enqueue_many([message])
    return message.id, verp_paths(store, message.id, BOUNCE_ADDRESS)


def verp_paths(store: Store, message_id: str, base: str) -> dict[str, str]:
    secret = store.get_or_create_secret(verp.SECRET_NAME)
    record = store.get_message(message_id)
    assert record is not None
    return {r.address: verp.encode(base, message_id, r.id, secret) for r in record.recipients}
