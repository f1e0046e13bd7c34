"""The delivery service inside `postroom serve`: worker loops that claim, deliver and sleep.

Each worker claims a batch of due recipients under its own lease owner (`host:pid:nonce/wN`, so
no two workers anywhere share one), delivers it (`worker.BatchDelivery`) and claims again. With
nothing due it sleeps until `Store.next_due_at()` or `poll_seconds`, whichever comes first,
never less than a short floor (no busy loop when another process holds the due rows).

Shutdown (`run()` cancelled, as `runtime` does on SIGTERM): workers stop claiming, in-flight
batches get `shutdown_grace_seconds` to finish and record their outcomes, anything still running
is then cut off, and every lease this process holds is released so that the next start (or
another process) picks those recipients up at once instead of after the lease expires.
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
from datetime import UTC, datetime
from typing import Any

from postroom.config.settings import Settings
from postroom.delivery import mta_sts_policies, verp
from postroom.delivery.attempt import DomainDelivery
from postroom.delivery.dns import Resolver
from postroom.delivery.outcomes import RetryPolicy
from postroom.delivery.pool import Pool
from postroom.delivery.routing import Router
from postroom.delivery.signing import SignerCache
from postroom.delivery.worker import BatchDelivery
from postroom.smtp.client import ClientTimeouts
from postroom.store.child_process import run_child, supervise

log = logging.getLogger("postroom.delivery")

__all__ = ["DeliveryService", "client_timeouts", "public_url", "run_in_own_thread"]

MIN_SLEEP = 0.05


def public_url(settings: Settings) -> str:
    """Where recipients reach tracking and unsubscribe links, as the HTTP server says it."""
    return (settings.http.public_url or f"http://{settings.http.listen}").rstrip("/")


def client_timeouts(lease_seconds: float) -> ClientTimeouts:
    """RFC 5321's timeouts, shortened so that one attempt always fits well inside a lease."""
    cap = max(1.0, lease_seconds / 4)
    d = ClientTimeouts()
    return ClientTimeouts(**{name: min(getattr(d, name), cap) for name in d.__dataclass_fields__})


class DeliveryService:
    def __init__(self, settings: Settings, store: Any, *, resolver: Resolver | None = None) -> None:
        d = settings.delivery
        self.settings, self.store = settings, store
        self.resolver = resolver or Resolver.from_settings(d)
        self.pool = Pool(
            max_total=d.max_connections, max_per_key=d.max_connections_per_host,
            max_messages=d.max_messages_per_connection, idle_seconds=d.idle_connection_seconds,
        )
        helo = d.helo_name or settings.smtp.hostname
        self.domains = DomainDelivery(
            router=Router(d, self.resolver, mta_sts_policies.from_settings(d, self.resolver)),
            resolver=self.resolver, pool=self.pool,
            helo_name=helo, timeouts=client_timeouts(d.lease_seconds),
            pipeline_messages=d.pipeline_messages,
        )
        self.base_owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.owners = [f"{self.base_owner}/w{i}" for i in range(d.workers)]
        self._stopping = asyncio.Event()
        self._claiming = asyncio.Lock()
        self._next_claim = 0.0
        self._batch: BatchDelivery | None = None

    async def run(self) -> None:
        """Deliver until cancelled; then shut down gracefully (see the module docstring)."""
        d = self.settings.delivery
        secret = await asyncio.to_thread(self.store.get_or_create_secret, verp.SECRET_NAME)
        self._batch = BatchDelivery(
            store=self.store, domains=self.domains,
            signers=SignerCache(self.store.get_dkim_key),
            policy=RetryPolicy(d.retry_base_seconds, d.retry_max_seconds, d.expire_seconds),
            hostname=d.helo_name or self.settings.smtp.hostname, verp_secret=secret,
            deadline=d.lease_seconds * 0.8, public_url=public_url(self.settings),
        )
        workers = [asyncio.create_task(self._work(owner), name=f"delivery-{owner}")
                   for owner in self.owners]
        reaper = asyncio.create_task(self._reap())
        log.info("delivery: %d workers (owner %s)", len(workers), self.base_owner)
        try:
            await asyncio.wait(workers)  # not gather: cancelling us must not cancel them
        except asyncio.CancelledError:
            await self._shutdown(workers)
            raise
        finally:
            reaper.cancel()

    async def stop(self) -> None:
        """Stop claiming and let the workers end after their current batch."""
        self._stopping.set()

    async def _shutdown(self, workers: list[asyncio.Task[None]]) -> None:
        self._stopping.set()
        grace = self.settings.delivery.shutdown_grace_seconds
        pending = [w for w in workers if not w.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        if self._batch is not None:  # outcomes still being written are guarded by the lease
            await self._batch.recorder.drained(timeout=5.0)  # owner: release after them
        released = 0
        for owner in self.owners:
            with contextlib.suppress(Exception):
                released += await asyncio.to_thread(self.store.release_leases, owner)
        await self.pool.close()
        if self.domains.router.policies is not None:  # MTA-STS checks in the background
            await self.domains.router.policies.close()
        log.info("delivery stopped (%d leases released)", released)

    async def _work(self, owner: str) -> None:
        d = self.settings.delivery
        assert self._batch is not None
        while not self._stopping.is_set():
            try:
                claims = await self._claim(owner)
                if claims:
                    await self._batch.deliver_batch(owner, claims)
                    continue
                delay = await self._idle_delay()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is down, a bug: log, back off, carry on
                log.exception("delivery worker %s failed; retrying shortly", owner)
                delay = d.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _claim(self, owner: str) -> list[Any]:
        """One claim at a time per process, spaced by claim_interval_seconds after a partial
        batch. Why: with mail arriving about as fast as it is sent, every worker claimed as soon
        as its batch was done and found a handful of recipients; end to end, batches averaged 20
        recipients, and each batch's fixed cost (claim, load, outcome transaction, a turn on
        SQLite's write lock) was paid per handful."""
        d = self.settings.delivery
        async with self._claiming:
            wait = self._next_claim - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), wait)
            if self._stopping.is_set():  # no new claims once stopping (SIGTERM)
                return []
            started = time.monotonic()
            claims = await asyncio.to_thread(
                self.store.claim_due, owner, now=datetime.now(UTC), limit=d.batch_size,
                lease_seconds=d.lease_seconds,
            )
            if len(claims) < d.batch_size:
                self._next_claim = started + d.claim_interval_seconds
            return claims

    async def _idle_delay(self) -> float:
        poll = self.settings.delivery.poll_seconds
        due = await asyncio.to_thread(self.store.next_due_at)
        if due is None:
            return poll
        wait = (due - datetime.now(UTC)).total_seconds()
        return min(poll, max(MIN_SLEEP, wait))

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                await self.pool.reap()


async def run_in_own_thread(settings: Settings, store: Any) -> None:
    """Run a DeliveryService on a plain asyncio loop in a thread of its own, until cancelled
    (then it shuts down gracefully, as `DeliveryService.run` does).

    Why a thread: the ingress loop runs on uvloop, whose transports the SMTP client's
    `Connection.open` rejects (it asserts `isinstance(transport, asyncio.Transport)`); a
    separate loop also keeps DKIM signing and delivery bookkeeping off the ingress loop.
    """
    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            loop = runner.get_loop()
            task = loop.create_task(DeliveryService(settings, store).run())
            box["loop"], box["task"] = loop, task
            ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)

    thread = threading.Thread(target=main, name="postroom-delivery", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            await asyncio.sleep(0.5)
    except asyncio.CancelledError:
        if await asyncio.to_thread(ready.wait, 5.0):
            box["loop"].call_soon_threadsafe(box["task"].cancel)
        await asyncio.to_thread(thread.join, settings.delivery.shutdown_grace_seconds + 2.0)
        raise


async def run_in_own_process(settings: Settings) -> None:
    """Run a DeliveryService in a child process until cancelled (then the child gets SIGTERM
    and stops gracefully: no new claims, in-flight work finishes or is released). A child that
    dies is started again.

    Why a process: in the ingress process, delivery and SMTP intake competed for the
    interpreter lock, and intake fell to a fraction of its rate while mail was being sent; the
    store is the only thing the two share."""
    await supervise(_child, settings, name="postroom-delivery",
                    grace=settings.delivery.shutdown_grace_seconds + 3.0, log=log)


def _child(dumped: dict[str, Any], parent: int) -> None:
    """The delivery process (store/child_process.py): the first SIGTERM/SIGINT cancels the
    run, which is DeliveryService's graceful stop; later ones are only logged (a second cancel
    would cut the stop short and keep the leases)."""
    run_child(dumped, parent, lambda settings, store: (DeliveryService(settings, store).run(),
                                                       None), _loop_factory())


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.SelectorEventLoop
    return uvloop.new_event_loop
