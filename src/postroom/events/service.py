"""The webhook service inside `postroom serve`: a dispatcher and a sender on a loop of their own.

The dispatcher follows the event log (`Store.dispatch_events` with `planner.plan`) and wakes the
sender when it made deliveries; the sender POSTs them (`sender.Sender`). Both run on a plain
asyncio loop in a dedicated thread, so HTTP to slow receivers never shares a loop with SMTP
ingress or mail delivery. On stop, in-flight POSTs get a moment to finish and every lease this
process holds is released, so the next start sends those deliveries at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
from typing import Any

from postroom.config.settings import Settings, WebhookSettings
from postroom.events.planner import plan
from postroom.events.sender import Sender

log = logging.getLogger("postroom.events")
#: In-flight POSTs get this long on stop (`postroom serve` exits 10 s after SIGTERM); a POST cut
#: off is sent again after the restart, with the same Postroom-Delivery-Id.
STOP_GRACE_SECONDS = 4.0


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
        while not self.stopping.is_set():
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


async def run_in_own_thread(settings: Settings, store: Any) -> None:
    """Run the webhook service beside the caller's loop until this coroutine is cancelled."""
    worker = WebhookThread(store, settings.webhooks)
    await asyncio.to_thread(worker.start)
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.to_thread(worker.stop)
