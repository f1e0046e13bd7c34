"""One delivery attempt for the recipients of one destination: connect, send, collect results.

Transactions (`Job`s: one message, one envelope sender, one or more recipients of one domain)
go out over up to `max_connections_per_host` lanes that share a queue, each lane keeping its
session for the next job (connection reuse) until the pool's per-connection message limit.
Destinations are tried in order: a static route, or the MX hosts by preference and, within one
host, each of its addresses; a refused connection, a refused greeting or a failed TLS setup
moves on to the next one. A lane that reaches none gives up alone while another lane is still
sending; when the last one gives up, every job still queued is deferred with its last error.
A lane that fails with anything else (a bug) stops its siblings: they are cancelled and awaited
before the error reaches the caller, which defers whatever the group had not settled; no lane
keeps sending, or holding a connection, for a group that has already been recorded.
DNS answers decide at once: NXDOMAIN and null MX bounce, a failed lookup defers. An MX host
under an enforced MTA-STS policy gets a session only over TLS verified for its name; one that
fails is skipped like a refused connection (`_session`), never used in plaintext.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from postroom.delivery.dns import DnsError, Resolver
from postroom.delivery.outcomes import Result, error_result, reply_result
from postroom.delivery.pool import Pool
from postroom.delivery.routing import Destination, Router
from postroom.model import Claim
from postroom.smtp.client import (
    AuthenticationFailed,
    ClientTimeouts,
    DeliveryError,
    SessionRefused,
    TlsError,
    open_session,
)

__all__ = ["DomainDelivery", "Job"]


@dataclass(frozen=True, slots=True)
class Job:
    """One SMTP transaction to make: these recipients, this return path, these bytes."""

    claims: tuple[Claim, ...]
    mail_from: str
    data: bytes
    #: signs `data` again when the client must convert it for a peer (None: not signed)
    resign: Callable[[bytes], bytes] | None = None


def _envelope(job: Job) -> tuple[str, list[str], bytes]:
    return job.mail_from, [c.address for c in job.claims], job.data


class _Unreachable(Exception):
    def __init__(self, error: BaseException, remote_host: str | None) -> None:
        super().__init__(str(error))
        self.error, self.remote_host = error, remote_host


class DomainDelivery:
    def __init__(
        self, *, router: Router, resolver: Resolver, pool: Pool, helo_name: str,
        timeouts: ClientTimeouts, pipeline_messages: bool = True,
    ) -> None:
        self.router, self.resolver, self.pool = router, resolver, pool
        self.helo_name, self.timeouts = helo_name, timeouts
        self.pipeline_messages = pipeline_messages  # [delivery] pipeline_messages

    async def deliver_to(self, destinations: list[Destination], jobs: Sequence[Job],
                         results: list[Result]) -> None:
        """Attempt `jobs` at `destinations` (the worker routed them: jobs of several domains
        that share destinations go out over the same lanes), appending one Result per claim to
        `results` as they are known (so a caller that times out keeps what was settled)."""
        queue = deque(jobs)
        lanes = max(1, min(len(jobs), self.pool.slots.max_per_key))
        alive = [lanes]  # lanes still running
        if lanes == 1:
            await self._lane(destinations, queue, results, alive)
            return
        tasks = [asyncio.ensure_future(self._lane(destinations, queue, results, alive))
                 for _ in range(lanes)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # a lane failed (a bug: DeliveryError is handled inside), or we are cancelled
            await _stop(tasks)
        errors = [e for t in tasks if not t.cancelled() and (e := t.exception()) is not None]
        if errors:  # every lane's error is retrieved; the first one is the group's
            raise errors[0]

    async def _lane(
        self, destinations: list[Destination], queue: deque[Job], results: list[Result],
        alive: list[int],
    ) -> None:
        held: tuple[Destination, Any] | None = None
        following: Job | None = None  # the job whose commands went out behind the last one
        running = True  # counted in `alive`
        try:
            while queue or following is not None:
                if held is None:
                    try:
                        held = await self._connect(destinations)
                    except _Unreachable as exc:
                        alive[0] -= 1
                        running = False
                        if alive[0]:  # another lane is sending (a "421 too many connections"
                            return    # on the n-th connection): leave the queue to it
                        while queue:  # nowhere to go: all of it waits for a retry
                            results += [error_result(c, exc.error, remote_host=exc.remote_host)
                                        for c in queue.popleft().claims]
                        return
                dest, session = held
                if following is not None:
                    job, following = following, None
                elif queue:
                    job = queue.popleft()
                else:  # other lanes took the rest while this one connected
                    break
                if (self.pipeline_messages and session.capabilities.pipelining
                        and len(queue) >= alive[0]
                        and session.transactions + 2 <= self.pool.max_messages):
                    following = queue.popleft()  # its commands ride behind this message
                try:
                    outcome = await session.send(
                        *_envelope(job),
                        then=_envelope(following) if following is not None else None,
                        resign=job.resign,
                        then_resign=following.resign if following is not None else None,
                    )
                except DeliveryError as exc:  # the session broke; retry these later
                    results += [error_result(c, exc, remote_host=dest.host) for c in job.claims]
                    held = None
                    await self.pool.release(dest.key, session, reuse=False)
                    if following is not None:  # its message was never sent: try it again now
                        queue.appendleft(following)
                        following = None
                    continue
                if following is not None and not session.opened:
                    queue.appendleft(following)  # not sent (DATA refused), or the session
                    following = None             # ended after this message: as usual
                mail = outcome.mail_reply
                about_sender = mail is not None and mail.code >= 400
                for claim in job.claims:
                    reply = outcome.outcomes.get(claim.address)
                    results.append(
                        reply_result(claim, reply, dest.host, about_sender=about_sender)
                        if reply is not None
                        else error_result(claim, "no reply for this recipient",
                                          remote_host=dest.host)
                    )
                if not session.usable or session.transactions >= self.pool.max_messages:
                    held = None
                    await self.pool.release(dest.key, session)
        finally:
            if following is not None:  # cancelled mid-send: its message was not sent
                queue.appendleft(following)
            if running:  # a lane that later cannot connect must not count on this one
                alive[0] -= 1
            if held is not None:
                with contextlib.suppress(Exception):
                    await self.pool.release(held[0].key, held[1],
                                            reuse=not queue and not held[1].opened)

    async def _connect(self, destinations: list[Destination]) -> tuple[Destination, Any]:
        """A session with the first destination that answers; _Unreachable when none does."""
        last: tuple[BaseException, str | None] = (DeliveryError("no destination"), None)
        for dest in destinations:
            try:
                session = await self.pool.acquire(dest.key, lambda d=dest: self._open(d))
                return dest, session
            except AuthenticationFailed as exc:  # a smarthost config problem: retry later
                last = (exc, dest.host)
                break
            except SessionRefused as exc:
                last = (exc, dest.host)
                if exc.reply is not None and exc.reply.code >= 500 and len(destinations) == 1:
                    break
            except (DeliveryError, DnsError) as exc:
                last = (exc if isinstance(exc, DeliveryError) else DeliveryError(exc.reason),
                        dest.host)
        raise _Unreachable(*last)

    async def _open(self, dest: Destination) -> Any:
        if dest.source == "mx":
            addresses = await self.resolver.resolve_addresses(dest.host)
            if not addresses:
                raise DeliveryError(f"mail server {dest.host} has no address")
        else:
            addresses = [dest.host]  # a route: the system resolver handles names like localhost
        error: DeliveryError | None = None
        for address in addresses:
            try:
                return await self._session(address, dest)
            except SessionRefused:
                raise
            except DeliveryError as exc:
                error = exc
        assert error is not None
        raise error

    async def _session(self, address: str, dest: Destination) -> Any:
        """A session with `address`. MTA-STS enforce: TLS 1.2+ verified for the MX host name,
        or TlsError. Testing: verified TLS first (not again within the hour after it failed
        with that host); when that fails, the usual session, and a warning that enforce mode
        would not have delivered there (RFC 8461 §5)."""
        policies = self.router.policies if dest.mta_sts else None
        if policies is None:
            return await self._open_session(address, dest)
        if dest.mta_sts == "testing" and policies.unverified(dest.host):
            return await self._open_session(address, dest)
        if dest.mta_sts == "enforce" or dest.tls != "off":
            try:
                return await self._open_session(address, dest, verified=True)
            except TlsError as exc:
                if dest.mta_sts == "enforce":
                    raise TlsError(f"MTA-STS policy: TLS with {dest.host} could not be "
                                   f"verified ({exc.text})") from None
                problem = exc.text
        else:
            problem = "[delivery] tls is off"
        policies.warn(f"tls:{dest.host}", "MTA-STS policy (testing) for MX host %s: %s; "
                      "enforce mode would not deliver there", dest.host, problem)
        return await self._open_session(address, dest)

    async def _open_session(self, address: str, dest: Destination, *,
                            verified: bool = False) -> Any:
        """open_session; `verified`: TLS required and checked (MTA-STS; default: system CAs)."""
        return await open_session(
            address, dest.port, helo_name=self.helo_name,
            tls="required" if verified else dest.tls, verify=verified or dest.verify,
            server_hostname=dest.host, username=dest.username, password=dest.password,
            timeouts=self.timeouts,
            tls_context=self.router.policies.tls_context if verified else None,
        )


async def _stop(lanes: list[asyncio.Task[None]]) -> None:
    """Cancel the lanes still running and wait for them: each gives its session back to the
    pool and its job opened behind the last one back to the queue, and adds no result after
    the caller has recorded the group (what it had not settled is deferred there). `gather`
    waits for them even if this task is cancelled once more meanwhile."""
    running = [lane for lane in lanes if not lane.done()]
    if running:  # none when every lane ended on its own (the usual case)
        for lane in running:
            lane.cancel()
        await asyncio.gather(*running, return_exceptions=True)
