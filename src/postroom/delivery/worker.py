"""One delivery batch: load what the claims need, render copies, attempt each domain, record.

A worker hands `deliver_batch(owner, claims)` the recipients it leased. Messages are read in one
query, suppressions checked per account (a recipient suppressed since it was accepted is failed,
not sent), copies rendered once per message (Received, DKIM), and the claims of each domain
become transactions: all recipients of a message on that domain share one transaction, except
when the account has a bounce address, where each recipient gets its own VERP return path and so
its own transaction. Domains are attempted concurrently; each domain's outcomes are recorded in
one store transaction, with their suppressions and DSNs, as soon as that domain is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from postroom.delivery import outcomes, verp
from postroom.delivery.attempt import DomainDelivery, Job
from postroom.delivery.classify import LocalError
from postroom.delivery.outcomes import Result, RetryPolicy
from postroom.delivery.schedule import should_expire
from postroom.delivery.signing import SignerCache, domain_of, render_copy
from postroom.model import Account, Claim, MessageRecord
from postroom.store.outbound import Finish, FollowUps

log = logging.getLogger("postroom.delivery")

__all__ = ["BatchDelivery"]

#: Recipients per transaction when they share one (receivers commonly accept 100).
MAX_RCPTS_PER_TRANSACTION = 100
Loaded = dict[str, tuple[MessageRecord, bytes, Account | None]]


class BatchDelivery:
    def __init__(
        self, *, store: Any, domains: DomainDelivery, signers: SignerCache, policy: RetryPolicy,
        hostname: str, verp_secret: bytes, deadline: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.domains, self.signers, self.policy = store, domains, signers, policy
        self.hostname, self.verp_secret, self.deadline = hostname, verp_secret, deadline
        self.clock = clock
        self._accounts: dict[str, tuple[float, Account | None]] = {}

    async def deliver_batch(self, owner: str, claims: list[Claim]) -> None:
        now = self.clock()
        loaded = await self._load(claims)
        expired = {c.recipient_id for c in claims
                   if should_expire(c.created_at, now, self.policy.expire)}
        skip = await self._suppressed(claims)
        early = [(c, outcomes.expired_finish(c, self.policy)) for c in claims
                 if c.recipient_id in expired]
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
        await asyncio.gather(*(self._domain(owner, d, cs, loaded) for d, cs in by_domain.items()))

    # --- one domain --------------------------------------------------------------------------
    async def _domain(self, owner: str, domain: str, claims: list[Claim], loaded: Loaded) -> None:
        jobs = await self._jobs(claims, loaded)
        results: list[Result] = []
        try:
            async with asyncio.timeout(self.deadline):
                await self.domains.deliver(domain, jobs, results)
            reason = ""
        except TimeoutError:
            reason = "delivery attempt took too long"
        except Exception:  # a bug must not strand the leases: defer what is unsettled
            log.exception("delivery to %s failed", domain)
            reason = "internal error during delivery"
        settled = {r.claim.recipient_id for r in results}
        results += [
            outcomes.error_result(c, reason, kind=LocalError.TIMEOUT)
            for c in claims if c.recipient_id not in settled
        ]
        now = self.clock()
        finished = [(r.claim, outcomes.finish(r, now, self.policy)) for r in results]
        remote = {r.claim.recipient_id: r.remote_host for r in results}
        sups = {r.claim.recipient_id: s for r in results if (s := outcomes.suppression(r))}
        await self._record(owner, finished, sups, loaded, remote)
        counts = Counter(f.status.value for _, f in finished)
        log.info("%s: %s", domain or "(no domain)",
                 ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))

    async def _jobs(self, claims: list[Claim], loaded: Loaded) -> list[Job]:
        by_message: dict[str, list[Claim]] = defaultdict(list)
        for c in claims:
            by_message[c.message_id].append(c)
        jobs = []
        for message_id, group in by_message.items():
            record, raw, account = loaded[message_id]
            data = await self._render(record, raw)
            bounce = account.bounce_address if account else None
            if bounce and record.mail_from:
                jobs += [Job((c,), verp.encode(bounce, c.message_id, c.recipient_id,
                                               self.verp_secret), data) for c in group]
                continue
            for i in range(0, len(group), MAX_RCPTS_PER_TRANSACTION):
                part = tuple(group[i : i + MAX_RCPTS_PER_TRANSACTION])
                jobs.append(Job(part, record.mail_from, data))
        return jobs

    async def _render(self, record: MessageRecord, raw: bytes) -> bytes:
        domain = domain_of(record.header_from) if record.header_from else ""
        known, signer = self.signers.cached(domain)
        if domain and not known:
            signer = await asyncio.to_thread(self.signers.load, domain)
        return render_copy(raw, record, self.hostname, signer)

    # --- store --------------------------------------------------------------------------------
    async def _load(self, claims: list[Claim]) -> Loaded:
        found = await asyncio.to_thread(
            self.store.load_for_delivery, sorted({c.message_id for c in claims})
        )
        out: Loaded = {}
        for message_id, (record, raw) in found.items():
            out[message_id] = (record, raw, await self._account(record.account_id))
        return out

    async def _account(self, account_id: str) -> Account | None:
        hit = self._accounts.get(account_id)
        if hit is None or hit[0] < time.monotonic():
            account = await asyncio.to_thread(self.store.get_account, account_id)
            hit = self._accounts[account_id] = (time.monotonic() + 5.0, account)
        return hit[1]

    async def _suppressed(self, claims: list[Claim]) -> set[int]:
        by_account: dict[str, list[Claim]] = defaultdict(list)
        for c in claims:
            by_account[c.account_id].append(c)
        out: set[int] = set()
        for account_id, group in by_account.items():
            hits = await asyncio.to_thread(
                self.store.suppressed_among, account_id, [c.address for c in group]
            )
            out |= {c.recipient_id for c in group if c.address in hits}
        return out

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

        recorded = await asyncio.to_thread(
            self.store.record_outcomes, owner, [f for _, f in finished], follow_ups
        )
        lost = len(finished) - len(recorded)
        if lost:
            log.warning("%d outcomes not recorded: their leases were taken over", lost)
