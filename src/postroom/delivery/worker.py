"""One delivery batch: load what the claims need, render copies, attempt each destination, record.

A worker hands `deliver_batch(owner, claims)` the recipients it leased. Messages are read in one
query, suppressions checked per account (a recipient suppressed since it was accepted is failed,
not sent; `delivery.batch_inputs`), and the claims are grouped by destination: domains with the
same route or MX hosts form one group, whose transactions share lanes and connections (each
transaction still carries recipients of one domain; `delivery.grouping`). A message whose copies are all alike (`delivery.copies`: no
per-recipient variables, tracking or List-Unsubscribe) is rendered once (Received, DKIM) and all
its recipients on a domain share one transaction, except when the account has a bounce address,
where each recipient gets its own VERP return path and so its own transaction. A personalized
message gets one copy per recipient, rendered and DKIM-signed in a thread, each in its own
transaction; such copies are made and sent in chunks of bounded size. Groups are attempted
concurrently; each group's outcomes are recorded, with their suppressions and DSNs, as soon as
that group is done, merged with other groups' into one store transaction when several finish
together (`delivery.recorder`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from postroom.delivery import outcomes, verp
from postroom.delivery.attempt import DomainDelivery, Job
from postroom.delivery.batch_inputs import BatchInputs, Loaded
from postroom.delivery.classify import LocalError
from postroom.delivery.copies import CopyMaker
from postroom.delivery.dns import DnsError
from postroom.delivery.grouping import Route, by_destination, resolved, route_failed
from postroom.delivery.outcomes import Result, RetryPolicy
from postroom.delivery.recorder import OutcomeRecorder
from postroom.delivery.signing import SignerCache, domain_of, render_copy, resigner
from postroom.model import Account, Claim, MessageRecord
from postroom.smtp.client import DeliveryError
from postroom.store.outbound import Finish, FollowUps

log = logging.getLogger("postroom.delivery")

__all__ = ["BatchDelivery"]

#: Recipients per transaction when they share one (receivers commonly accept 100).
MAX_RCPTS_PER_TRANSACTION = 100
#: Personalized copies are rendered this many at a time, and sent once this many bytes are ready.
RENDER_CHUNK = 50
MAX_CHUNK_BYTES = 32 << 20


class BatchDelivery(BatchInputs):
    def __init__(
        self, *, store: Any, domains: DomainDelivery, signers: SignerCache, policy: RetryPolicy,
        hostname: str, verp_secret: bytes, deadline: float, public_url: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`public_url`: where tracking and unsubscribe links point for accounts without a
        tracking URL of their own (`[http] public_url`, else http://<[http] listen>)."""
        self.store, self.domains, self.signers, self.policy = store, domains, signers, policy
        self.hostname, self.verp_secret, self.deadline = hostname, verp_secret, deadline
        self.clock = clock
        self.copies = CopyMaker(store, public_url=public_url, verp_secret=verp_secret)
        self.recorder = OutcomeRecorder(store)
        self._accounts: dict[str, tuple[float, Account | None]] = {}

    async def deliver_batch(self, owner: str, claims: list[Claim]) -> None:
        now = self.clock()
        loaded = await self._load(claims)
        early = [(c, late) for c in claims if (late := self._too_late(c, loaded, now))]
        expired = {c.recipient_id for c, _ in early}
        skip = await self._suppressed(claims)
        early += [(c, outcomes.finish(outcomes.suppressed_result(c), now, self.policy))
                  for c in claims if c.recipient_id in skip and c.recipient_id not in expired]
        missing = [c for c in claims if c.message_id not in loaded]
        if missing:  # deleted under us: nothing to send; the leases simply expire
            log.warning("%d claimed recipients have no message", len(missing))
        if early:
            await self._record(owner, early, {}, loaded)
        done = {c.recipient_id for c, _ in early} | {c.recipient_id for c in missing}
        by_domain: dict[str, list[Claim]] = defaultdict(list)
        for c in claims:
            if c.recipient_id not in done:
                by_domain[c.domain].append(c)
        groups = await by_destination(self.domains.router, by_domain)
        per_group = await asyncio.gather(
            *(self._destination(owner, label, route, cs, loaded) for label, route, cs in groups))
        total = sum(per_group, Counter(f.status.value for _, f in early))
        log.info("batch of %d recipients over %d domains, %d destinations: %s", len(claims),
                 len(by_domain), len(groups),
                 ", ".join(f"{n} {status}" for status, n in sorted(total.items())) or "nothing")

    def _time_left(self, claims: list[Claim]) -> float:
        """Seconds this group may spend sending: `deadline`, but never past 80 % of what is
        left of its leases (loading, the suppression check and queued outcome writes come
        before it; the rest of the lease is for recording). A lease that has run out is not
        used at all: another worker may hold these recipients now."""
        left = (min(c.lease_until for c in claims) - self.clock()).total_seconds()
        return max(0.0, min(self.deadline, left * 0.8))

    # --- one destination ----------------------------------------------------------------------
    async def _destination(self, owner: str, label: str, route: Route, claims: list[Claim],
                           loaded: Loaded) -> Counter[str]:
        """Deliver the claims of the domains in `label`, which share `route`, and record."""
        results: list[Result] = []
        try:
            async with asyncio.timeout(self._time_left(claims)):
                if isinstance(route, asyncio.Future):
                    route = await resolved(route)
                if isinstance(route, DnsError | DeliveryError):  # DNS, MTA-STS refusal
                    results += route_failed(route, claims)
                elif isinstance(route, BaseException):  # a bug: handled as one, below
                    raise route
                else:
                    async for jobs in self._jobs(claims, loaded, results):
                        await self.domains.deliver_to(route, jobs, results)
            reason = ""
        except TimeoutError:
            reason = "delivery attempt took too long"
        except asyncio.CancelledError:  # shutdown: keep what the servers already answered
            if results:  # (a 250 in hand must not be released and sent again after restart;
                with contextlib.suppress(Exception):  # the rest stay leased until released)
                    await self._record_results(owner, results, loaded)
            raise
        except Exception:  # a bug must not strand the leases: defer what is unsettled
            log.exception("delivery to %s failed", label)
            reason = "internal error during delivery"
        settled = {r.claim.recipient_id for r in results}
        results += [
            outcomes.error_result(c, reason, kind=LocalError.TIMEOUT)
            for c in claims if c.recipient_id not in settled
        ]
        finished = await self._record_results(owner, results, loaded)
        counts = Counter(f.status.value for _, f in finished)
        # Plain success is routine (at 1,000 messages a second a line per domain and batch
        # costs real time; the batch has a summary line); anything else is worth a line.
        level = logging.DEBUG if set(counts) == {"delivered"} else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "%s: %s", label or "(no domain)",
                    ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
        return counts

    async def _record_results(self, owner: str, results: list[Result], loaded: Loaded
                              ) -> list[tuple[Claim, Finish]]:
        """Record a group's results (with suppressions and DSNs). The write runs to its end
        even if this task is cancelled meanwhile: the recorder shields it."""
        now = self.clock()
        finished = [(r.claim, outcomes.finish(r, now, self.policy)) for r in results]
        remote = {r.claim.recipient_id: r.remote_host for r in results}
        sups = {r.claim.recipient_id: s for r in results if (s := outcomes.suppression(r))}
        await self._record(owner, finished, sups, loaded, remote)
        return finished

    async def _jobs(self, claims: list[Claim], loaded: Loaded, failed: list[Result]
                    ) -> AsyncIterator[list[Job]]:
        """The transactions to make, in chunks of at most about MAX_CHUNK_BYTES of copies;
        a copy that cannot be rendered is deferred (a Result in `failed`)."""
        by_message: dict[tuple[str, str], list[Claim]] = defaultdict(list)
        for c in claims:  # a transaction's recipients share a domain, as they always did
            by_message[c.message_id, c.domain].append(c)
        jobs: list[Job] = []
        size = 0
        shared: dict[str, bytes] = {}  # a message's one copy, rendered and signed once
        for (message_id, _), group in by_message.items():
            record, raw, account = loaded[message_id]
            copies, positions = await self.copies.prepare(record, raw, account)
            signer = await self._signer(copies.header_from or record.header_from)
            bounce = account.bounce_address if account and record.mail_from else None
            again = resigner(signer) if signer is not None else None
            if not copies.per_recipient:
                data = shared.get(message_id)
                if data is None:  # the group's other domains of this message reuse it
                    data = shared[message_id] = render_copy(copies.shared(), record,
                                                            self.hostname, signer)
                if bounce:
                    jobs += [Job((c,), self._return_path(c, bounce, record), data, again)
                             for c in group]
                else:
                    jobs += [Job(tuple(group[i : i + MAX_RCPTS_PER_TRANSACTION]),
                                 record.mail_from, data, again)
                             for i in range(0, len(group), MAX_RCPTS_PER_TRANSACTION)]
                size += len(data)
                continue
            step = max(1, min(RENDER_CHUNK, MAX_CHUNK_BYTES // max(1, copies.size)))
            for i in range(0, len(group), step):
                part = group[i : i + step]
                made = await self.copies.render(record, copies, positions, account, part,
                                                self.hostname, signer)
                for c, data in zip(part, made, strict=True):
                    if isinstance(data, Exception):
                        failed.append(outcomes.error_result(
                            c, "internal error: the copy could not be rendered",
                            kind=LocalError.TIMEOUT))
                        continue
                    jobs.append(Job((c,), self._return_path(c, bounce, record), data, again))
                    size += len(data)
                if size >= MAX_CHUNK_BYTES:
                    yield jobs
                    jobs, size = [], 0
        if jobs:
            yield jobs

    def _return_path(self, claim: Claim, bounce: str | None, record: MessageRecord) -> str:
        """The envelope sender: a VERP address when the account has a bounce address."""
        if bounce:
            return verp.encode(bounce, claim.message_id, claim.recipient_id, self.verp_secret)
        return record.mail_from

    async def _signer(self, header_from: str) -> Any:
        domain = domain_of(header_from) if header_from else ""
        known, signer = self.signers.cached(domain)
        if domain and not known:
            signer = await asyncio.to_thread(self.signers.load, domain)
        return signer

    # --- store --------------------------------------------------------------------------------
    async def _record(
        self, owner: str, finished: list[tuple[Claim, Finish]],
        sups: dict[int, tuple[str, str, str]], loaded: Loaded,
        remote: dict[int, str | None] | None = None,
    ) -> None:
        remote = remote or {}
        now = self.clock()

        def follow_ups(recorded: set[int]) -> FollowUps:
            ended = [(c, f, remote.get(c.recipient_id)) for c, f in finished
                     if c.recipient_id in recorded]
            dsns = outcomes.build_dsns(ended, loaded, hostname=self.hostname, now=now)
            return FollowUps([s for rid, s in sups.items() if rid in recorded], dsns)

        recorded = await self.recorder.record(owner, [f for _, f in finished], follow_ups)
        lost = len(finished) - len(recorded)
        if lost:
            log.warning("%d outcomes not recorded: their leases were taken over", lost)
