"""The webhook service inside `postroom serve`: a dispatcher and a sender on a loop of their own.

The dispatcher follows the event log (`Store.dispatch_events` with `planner.plan`) and wakes the
sender when it made deliveries; the sender POSTs them (`sender.Sender`). `postroom serve` runs
them in a child process (`run_in_own_process`), so HTTP to slow receivers never shares a loop, a
thread or the interpreter lock with SMTP ingress or mail delivery; tests and tools can run them
in a thread (`WebhookThread`). On stop, in-flight POSTs get a moment to finish and every lease
this service holds is released, so the next start sends those deliveries at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from postroom.config.settings import Settings, WebhookSettings
from postroom.events.planner import plan
from postroom.events.sender import Sender
from postroom.store.child_process import run_child, supervise

log = logging.getLogger("postroom.events")
#: In-flight POSTs get this long on stop (`postroom serve` exits 10 s after SIGTERM); a POST cut
#: off is sent again after the restart, with the same Postroom-Delivery-Id.
STOP_GRACE_SECONDS = 4.0
PURGE_EVERY_SECONDS = 3600.0


class WebhookService:
    def __init__(self, store: Any, settings: WebhookSettings) -> None:
        self.store, self.settings = store, settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}/webhooks"
        self.stopping = asyncio.Event()
        self.sender = Sender(store, settings, self.owner)

    def stop(self) -> None:
        self.stopping.set()
        self.sender.wake.set()

    async def run(self) -> None:
        """Dispatch and send until `stop()` (or cancellation)."""
        sending = asyncio.create_task(self.sender.run(self.stopping))
        log.info("webhooks: dispatcher and sender running (owner %s)", self.owner)
        try:
            await self._dispatch_loop()
        finally:
            self.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(sending), STOP_GRACE_SECONDS + 1)
            with contextlib.suppress(Exception):
                released = await asyncio.to_thread(self.store.release_webhook_leases, self.owner)
                log.info("webhooks stopped (%d leases released)", released)

    async def _dispatch_loop(self) -> None:
        s = self.settings
        purged_at = 0.0
        while not self.stopping.is_set():
            if time.monotonic() - purged_at > PURGE_EVERY_SECONDS:
                purged_at = time.monotonic()
                await self._purge()
            try:
                read = await asyncio.to_thread(self.store.dispatch_events, plan,
                                               limit=s.dispatch_batch,
                                               give_up_after=s.give_up_after_seconds)
            except Exception:
                log.exception("webhooks: dispatching failed; retrying shortly")
                read = 0
            if read:
                self.sender.wake.set()
            if read < s.dispatch_batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), s.poll_seconds)

    async def _purge(self) -> None:
        before = datetime.now(UTC) - timedelta(days=self.settings.retention_days)
        try:
            while await asyncio.to_thread(self.store.purge_webhook_deliveries, before) and \
                    not self.stopping.is_set():
                pass
        except Exception:
            log.exception("webhooks: purging old deliveries failed")


class WebhookThread:
    """A WebhookService on a plain asyncio loop in a thread of its own (`start`, `stop`)."""

    def __init__(self, store: Any, settings: WebhookSettings) -> None:
        self.store, self.settings = store, settings
        self._thread = threading.Thread(target=self._main, name="postroom-webhooks",
                                        daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.service: WebhookService | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5.0)

    def _main(self) -> None:
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.service = WebhookService(self.store, self.settings)
        self._ready.set()
        await self.service.run()

    def stop(self) -> None:
        """Ask the service to stop and wait for it (bounded by the POST timeout)."""
        if self._loop is not None and self.service is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self.service.stop)
        self._thread.join(STOP_GRACE_SECONDS + 3)


async def run_in_own_process(settings: Settings) -> None:
    """Run the webhook service in a child process until this coroutine is cancelled (then the
    child gets SIGTERM and stops gracefully). A child that dies is started again.

    Why a process: planning and signing thousands of events is Python work; in a process of
    its own it never competes with mail delivery for the interpreter lock, and a receiver that
    misbehaves can at worst take that process down, never the mail server."""
    await supervise(_child, settings, name="postroom-webhooks", grace=STOP_GRACE_SECONDS + 3,
                    log=log)


def _child(dumped: dict[str, Any], parent: int) -> None:
    """The webhook process (store/child_process.py): SIGTERM or orphaned → `service.stop()`,
    which lets the POSTs in flight finish."""

    def serve(settings: Settings, store: Any) -> tuple[Any, Any]:
        service = WebhookService(store, settings.webhooks)
        return service.run(), service.stop

    run_child(dumped, parent, serve, asyncio.SelectorEventLoop)
