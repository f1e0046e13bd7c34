"""POSTing deliveries: leased from the store, signed at send time, retried by `policy`.

Isolation is the point. Every receiver (scheme, host, port) has at most `max_per_endpoint`
POSTs in flight and the claim query leaves out receivers that are full or cooling down after a
timeout or refused connection, so a dead receiver costs a few slots and a probe now and then,
never the other receivers' turn (no head-of-line blocking). Every account has at most
`max_per_account` in flight (by default half of `max_concurrency`: `account_cap`): one
account's many dead receivers (a notify URL per message, each on its own host) cannot take
every slot either. Outcomes are buffered and
written in one transaction per ~50 ms, so a busy sender does not take the store's write lock
per POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from postroom import __version__
from postroom.config.settings import WebhookSettings
from postroom.events import policy, signing
from postroom.events.egress import RefusedTarget, guarded_transport
from postroom.model.webhooks import AttemptOutcome, DeliveryJob, DeliveryStatus
from postroom.store.webhook_rows import CREDENTIALS, carries_credentials

log = logging.getLogger("postroom.events")
FLUSH_SECONDS = 0.05
DEBOUNCE_SECONDS = 0.01
CLAIM_LIMIT = 200
MAX_ANSWER = 64 * 1024
USER_AGENT = f"Postroom-Webhooks/{__version__}"


def headers(job: DeliveryJob, attempt: int, timestamp: int | None = None) -> dict[str, str]:
    """The headers of one attempt: the delivery id is the same on every attempt (dedupe on
    it); the signature is made anew (its time is part of what is signed)."""
    return {
        "Content-Type": job.content_type,
        "User-Agent": USER_AGENT,
        "Postroom-Delivery-Id": job.id,
        "Postroom-Event-Id": ",".join(str(i) for i in job.event_ids),
        "Postroom-Attempt": str(attempt),
        signing.HEADER: signing.sign(job.body.encode(), job.secrets, timestamp),
    }


#: What a URL httpx cannot use raises (a bad port, IDNA name or scheme): the doors refuse such
#: URLs now, but one stored before they did must fail, not be retried for days.
_INVALID_URL = (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError)


def _final(exc: Exception) -> bool:
    """An error no retry can mend: an unusable URL, or a non-public receiver (it stays one
    until the URL or the setting changes)."""
    return isinstance(exc, _INVALID_URL) or isinstance(exc.__cause__, RefusedTarget)


def _describe(exc: Exception) -> str:
    """The attempt's error as the delivery's history shows it (a refused receiver as
    WEBHOOKS.md documents it: `refused: HOST resolves to …`, not httpx's class name)."""
    if isinstance(exc.__cause__, RefusedTarget):
        return str(exc)[:300]
    kind = ("invalid URL" if isinstance(exc, _INVALID_URL) else
            "connection error" if isinstance(exc, httpx.HTTPError | OSError) else "error")
    return f"{kind}: {type(exc).__name__}: {exc}"[:300]


def account_cap(settings: WebhookSettings) -> int:
    """POSTs one account may have in flight: `max_per_account`, by default half the slots,
    so that the other accounts always keep the other half."""
    if settings.max_per_account is not None:
        return settings.max_per_account
    return max(1, settings.max_concurrency // 2)


def _release(counts: dict[str, int], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]


class Sender:
    def __init__(self, store: Any, settings: WebhookSettings, owner: str,
                 client: httpx.AsyncClient | None = None) -> None:
        self.store, self.settings, self.owner = store, settings, owner
        limits = httpx.Limits(max_connections=settings.max_concurrency,
                              max_keepalive_connections=settings.max_concurrency)
        self.client = client or httpx.AsyncClient(
            timeout=settings.timeout_seconds, follow_redirects=False, trust_env=False,
            limits=limits,
            transport=None if settings.allow_private_targets else guarded_transport(limits))
        self.in_flight: dict[str, int] = defaultdict(int)
        self.account_in_flight: dict[str, int] = defaultdict(int)
        self.account_cap = account_cap(settings)
        self.cooling: dict[str, float] = {}
        self.wake = asyncio.Event()
        self._outcomes: list[AttemptOutcome] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def room(self, endpoint: str) -> int:
        return self.settings.max_per_endpoint - self.in_flight.get(endpoint, 0)

    def account_room(self, account_id: str) -> int:
        return self.account_cap - self.account_in_flight.get(account_id, 0)

    def _skip(self) -> set[str]:
        now = time.monotonic()
        self.cooling = {e: t for e, t in self.cooling.items() if t > now}
        return set(self.cooling) | {e for e in self.in_flight if self.room(e) <= 0}

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and send until `stopping` is set; then wait for what is in flight."""
        flusher = asyncio.create_task(self._flush_loop())
        s = self.settings
        try:
            while not stopping.is_set():
                free = s.max_concurrency - sum(self.in_flight.values())
                limit = min(free, CLAIM_LIMIT)
                jobs = await self._claim(limit) if limit > 0 else []
                for account_id, job in jobs:
                    self.in_flight[job.endpoint] += 1
                    self.account_in_flight[account_id] += 1
                    task = asyncio.create_task(self._attempt(job, account_id))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if jobs and len(jobs) == limit < free:
                    continue  # a full claim with slots to spare: more may be due now
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), await self._idle_delay())
                await asyncio.sleep(DEBOUNCE_SECONDS)  # one claim for several finished POSTs
        finally:
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=min(s.timeout_seconds, 4.0))
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self._flush()
            await self.client.aclose()

    async def _claim(self, limit: int) -> list[tuple[str, DeliveryJob]]:
        full = {a for a in self.account_in_flight if self.account_room(a) <= 0}
        try:
            return list(await asyncio.to_thread(
                self.store.claim_webhook_deliveries_by_account, self.owner,
                now=datetime.now(UTC), limit=limit, lease_seconds=self.settings.lease_seconds,
                skip=self._skip(), room=self.room, skip_accounts=full,
                account_room=self.account_room))
        except Exception:
            log.exception("webhooks: claiming failed; retrying shortly")
            return []

    async def _idle_delay(self) -> float:
        """Until the next retry is due, at most poll_seconds. Deliveries already due but left
        out (their receiver is full or cooling down) do not shorten it: no busy loop."""
        poll = self.settings.poll_seconds
        try:
            due = await asyncio.to_thread(self.store.next_webhook_due_at)
        except Exception:
            return poll
        wait = (due - datetime.now(UTC)).total_seconds() if due is not None else poll
        return min(poll, wait) if wait > 0 else poll

    async def _attempt(self, job: DeliveryJob, account_id: str) -> None:
        attempt = job.attempts + 1
        at, started = datetime.now(UTC), time.monotonic()
        code: int | None = None
        error: str | None = None
        asked: float | None = None
        final = False
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                code, text, retry_after = await self._post(job, attempt)
            if not 200 <= code < 300:
                error = f"HTTP {code}: {text}"
                asked = policy.retry_after(retry_after, at)
        except (TimeoutError, httpx.TimeoutException):
            code, error = None, f"timeout after {self.settings.timeout_seconds:g} s"
        except Exception as exc:  # anything else is still an attempt: recorded, never lost
            error, final = _describe(exc), _final(exc)
            if error.startswith("error:"):  # neither the network nor the URL: a bug, say where
                log.warning("webhooks: delivery %s: unexpected error", job.id, exc_info=True)
        finally:
            _release(self.in_flight, job.endpoint)
            _release(self.account_in_flight, account_id)
        outcome = self._outcome(job, attempt, at, started, code, error, asked)
        if final:  # no retry can succeed until the URL or the setting changes
            outcome = replace(outcome, status=DeliveryStatus.FAILED, next_attempt_at=None)
        self._outcomes.append(outcome)
        self.wake.set()

    async def _post(self, job: DeliveryJob, attempt: int) -> tuple[int, str, str | None]:
        """(status, the start of the answer's body, Retry-After). At most MAX_ANSWER bytes of
        the answer are read: a receiver cannot make Postroom hold a huge reply in memory.
        A URL with credentials (queued before dispatch refused them) is never POSTed: httpx
        would send them as Basic auth; the delivery fails as an invalid URL."""
        if carries_credentials(job.url):
            raise httpx.InvalidURL(CREDENTIALS)
        async with self.client.stream("POST", job.url, content=job.body.encode(),
                                      headers=headers(job, attempt)) as response:
            seen = b""
            async for part in response.aiter_bytes():
                seen += part
                if len(seen) > MAX_ANSWER:
                    break
            text = seen[:200].decode("utf-8", "replace")
            return response.status_code, text, response.headers.get("retry-after")

    def _outcome(self, job: DeliveryJob, attempt: int, at: datetime, started: float,
                 code: int | None, error: str | None, asked: float | None) -> AttemptOutcome:
        s = self.settings
        took = int((time.monotonic() - started) * 1000)
        verdict = policy.verdict(code)
        base = AttemptOutcome(job.id, attempt, at, took, DeliveryStatus.SUCCEEDED, code, error)
        if verdict is policy.Verdict.DONE:
            return base
        if verdict is policy.Verdict.STOP:
            return replace(base, status=DeliveryStatus.FAILED)
        if code is None or code in (429, 503):  # the receiver is down or asks us to slow down
            pause = asked if asked is not None else s.retry_base_seconds
            self.cooling[job.endpoint] = time.monotonic() + min(pause, s.retry_max_seconds)
        when = policy.next_attempt(attempt, datetime.now(UTC), job.give_up_at,
                                   base=s.retry_base_seconds, cap=s.retry_max_seconds,
                                   asked=asked)
        if when is None:
            since = f"{job.created_at:%Y-%m-%d %H:%M} UTC"
            return replace(base, status=DeliveryStatus.FAILED,
                           error=f"{error} (gave up: failing since {since})")
        return replace(base, status=DeliveryStatus.PENDING, next_attempt_at=when)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self._flush()

    async def _flush(self) -> None:
        if not self._outcomes:
            return
        batch, self._outcomes = self._outcomes, []
        try:
            await asyncio.to_thread(self.store.record_webhook_attempts, self.owner, batch)
        except Exception:  # keep them: the leases still hold, the next flush tries again
            log.exception("webhooks: recording %d attempts failed", len(batch))
            self._outcomes = batch + self._outcomes
            await asyncio.sleep(1.0)
