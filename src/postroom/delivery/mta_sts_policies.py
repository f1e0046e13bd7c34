"""MTA-STS policies for delivery: the `_mta-sts` lookup and a per-process policy cache.

`MtaStsPolicies.policy(domain)` answers "which policy applies to mail for this domain now",
following RFC 8461 §3.3 and §5.1, and makes a batch wait only when nothing is known yet:

- a cached policy whose max_age has not run out is used at once; the TXT record is checked
  again in the background (one check per domain at a time), and a new `id` there is fetched,
  so that the batches after it use the new policy;
- with nothing cached, the caller waits for the TXT lookup (`txt_timeout`, 3 s: less than the
  resolver's 8 s lifetime) and, when a record names an `id`, for its fetch (`mta_sts_fetch`);
- a TXT lookup that fails or times out is not repeated for `txt_retry_seconds` (2 minutes):
  meanwhile the domain has what is kept, the cached policy or none, at once;
- a fetch that fails leaves a still valid cached policy in force (else the domain has no
  policy), and that `id` is not fetched again for `retry_seconds`; the failure is logged by the
  fetch (once, however many callers wait for it), and at most once an hour per (domain, id);
- no TXT record, or an invalid one: a still valid cached policy stays in force (an attacker who
  can hide the record must not be able to switch enforcement off); otherwise no policy.

A fetch is a task that keeps its own result: callers who all gave up on it (a batch's
deadline) do not lose it. A fetch for an `id` that is no longer the latest one seen in the TXT
record (it changed while the fetch ran) does not replace the newer policy.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from postroom.delivery.dns import DnsError
from postroom.delivery.mta_sts import Policy, PolicyError, select_txt_record
from postroom.delivery.mta_sts_fetch import DomainResolver, FetchError, PolicyFetcher
from postroom.delivery.mta_sts_state import Expiring, Tasks
from postroom.smtp.tls import client_context

if TYPE_CHECKING:
    from postroom.config.settings import DeliverySettings

log = logging.getLogger("postroom.delivery")

__all__ = ["MtaStsPolicies", "from_settings"]

#: A policy is kept at least this long, whatever its max_age says (no fetch per batch).
MIN_CACHE_SECONDS = 60.0
#: A warning is repeated at most this often per key.
WARN_SECONDS = 3600.0


@dataclass(slots=True)
class _Cached:
    record_id: str
    policy: Policy
    expires: float


class MtaStsPolicies:
    """The policies in force, per delivery process (see the module docstring)."""

    def __init__(
        self, resolver: DomainResolver, fetch: Callable[[str], Awaitable[Policy]], *,
        tls_context: ssl.SSLContext | None = None, retry_seconds: float = 300.0,
        txt_timeout: float = 3.0, txt_retry_seconds: float = 120.0,
        max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`tls_context` is what MX sessions under a policy verify with (None: the client's
        default verifying context)."""
        self._resolver, self._fetch = resolver, fetch
        self.tls_context = tls_context
        self.txt_timeout = txt_timeout
        self._retry, self._txt_retry = retry_seconds, txt_retry_seconds
        self._max_entries, self._clock = max_entries, clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._latest: OrderedDict[str, str] = OrderedDict()  # domain -> latest TXT id seen
        self._txt_failed: Expiring[str] = Expiring(max_entries)  # its lookup failed
        self._failed: Expiring[tuple[str, str]] = Expiring(max_entries)  # (domain, id) fetch
        self._warned: Expiring[str] = Expiring(max_entries)  # warn()'s key
        self._checks: Tasks[str] = Tasks("MTA-STS check")  # background checks, per domain
        self._fetches: Tasks[tuple[str, str]] = Tasks("MTA-STS fetch")

    async def policy(self, domain: str) -> Policy | None:
        """The policy for `domain` (an A-label name), or None. Mode "none" comes back as is."""
        kept = self._kept(domain)
        if self._txt_failed.active(domain, self._clock()):
            return kept
        if kept is not None:
            self._checks.start(domain, lambda: self._check(domain))
            return kept
        return await self._check(domain)

    def warn(self, key: str, message: str, *args: Any) -> None:
        """Log a warning at most once an hour per `key` (testing mode would otherwise say the
        same thing for every batch)."""
        now = self._clock()
        if not self._warned.active(key, now):
            self._warned.add(key, now + WARN_SECONDS)
            log.warning(message, *args)

    def unverified(self, host: str) -> bool:
        """Whether verified TLS with MX host `host` failed in testing mode within the hour
        its warning stays quiet: it would fail again and cost a connection per session."""
        return self._warned.active(f"tls:{host}", self._clock())

    async def settled(self) -> None:
        """Wait for the checks and fetches running in the background (tests, shutdown)."""
        while self._checks or self._fetches:
            await asyncio.wait(self._checks.running() + self._fetches.running())

    async def close(self) -> None:
        """Cancel what runs in the background."""
        await self._checks.cancel()
        await self._fetches.cancel()

    async def _check(self, domain: str) -> Policy | None:
        """Look the record up, fetch the policy of a new `id`; the policy in force after."""
        try:
            async with asyncio.timeout(self.txt_timeout):
                texts = await self._resolver.txt(f"_mta-sts.{domain}")
            record = select_txt_record(texts)
        except (DnsError, TimeoutError) as exc:
            self._txt_failed.add(domain, self._clock() + self._txt_retry)
            log.debug("MTA-STS lookup for %s failed: %s", domain,
                      exc.reason if isinstance(exc, DnsError) else "no answer in time")
            return self._kept(domain)
        except PolicyError as exc:
            self.warn(f"txt:{domain}", "MTA-STS record of %s ignored: %s", domain, exc)
            return self._kept(domain)
        if record is None:
            return self._kept(domain)
        self._latest[domain] = record.id
        self._latest.move_to_end(domain)
        while len(self._latest) > self._max_entries:
            self._latest.popitem(last=False)
        kept = self._kept(domain)
        if kept is not None and self._cache[domain].record_id == record.id:
            self._cache.move_to_end(domain)
            return kept
        key = (domain, record.id)
        if not self._failed.active(key, self._clock()):
            await asyncio.shield(self._fetches.start(key, lambda: self._fetch_and_keep(*key)))
        return self._kept(domain)

    async def _fetch_and_keep(self, domain: str, record_id: str) -> None:
        """One fetch, shared by every caller asking meanwhile: it keeps (and logs) what it
        found itself, whether or not anyone still waits for it."""
        try:
            policy = await self._fetch(domain)
        except FetchError as exc:
            self._failed.add((domain, record_id), self._clock() + self._retry)
            kept = self._kept(domain) is not None
            self.warn(f"fetch:{domain}:{record_id}", "MTA-STS policy of %s (id %s) could not "
                      "be fetched: %s%s", domain, record_id, exc,
                      "; the cached policy stays in force" if kept else "")
            return
        self._failed.discard((domain, record_id))
        latest = self._latest.get(domain, record_id)
        if latest != record_id:
            log.info("MTA-STS policy of %s (id %s) not used: the record names id %s now",
                     domain, record_id, latest)
            return
        expires = self._clock() + max(float(policy.max_age), MIN_CACHE_SECONDS)
        self._cache[domain] = _Cached(record_id, policy, expires)
        self._cache.move_to_end(domain)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        log.info("MTA-STS policy of %s (id %s): %s, mx %s, max_age %d", domain, record_id,
                 policy.mode, " ".join(policy.mx) or "-", policy.max_age)

    def _kept(self, domain: str) -> Policy | None:
        """The cached policy of `domain` while its max_age lasts."""
        cached = self._cache.get(domain)
        if cached is None:
            return None
        if cached.expires <= self._clock():
            del self._cache[domain]
            return None
        return cached.policy


def from_settings(settings: DeliverySettings, resolver: DomainResolver) -> MtaStsPolicies | None:
    """The policies for `[delivery]`: None when `mta_sts = false`. Policy servers and the MX
    hosts under a policy are verified against `mta_sts_cafile`, else the system trust store,
    and only a subjectAltName names them (RFC 8461 §4.2: a subject CN alone does not count)."""
    if not settings.mta_sts:
        return None
    context = client_context(True, cafile=settings.mta_sts_cafile, dns_id_only=True)
    fetch = PolicyFetcher(resolver, context, port=settings.mta_sts_port)
    return MtaStsPolicies(resolver, fetch, tls_context=context)
