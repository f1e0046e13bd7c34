"""MTA-STS policies for delivery: the `_mta-sts` lookup and a per-process policy cache.

`MtaStsPolicies.policy(domain)` answers "which policy applies to mail for this domain now",
following RFC 8461 §3.3 and §5.1:

- a cached policy whose `id` still matches the TXT record is used without fetching again, until
  its max_age runs out (then it is fetched again);
- a new `id`, or nothing cached, means a fetch (`mta_sts_fetch`); a fetch that fails leaves a
  still valid cached policy in force (else the domain has no policy), and is not tried again
  for that `id` for `retry_seconds`;
- no TXT record, an invalid one or a failed lookup: a still valid cached policy stays in force
  (an attacker who can hide the record must not be able to switch enforcement off); otherwise
  the domain has no policy.
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
from postroom.smtp.tls import client_context

if TYPE_CHECKING:
    from postroom.config.settings import DeliverySettings

log = logging.getLogger("postroom.delivery")

__all__ = ["MtaStsPolicies", "from_settings"]

#: A policy is kept at least this long, whatever its max_age says (no fetch per batch).
MIN_CACHE_SECONDS = 60.0


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
        max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`tls_context` is what enforce-mode MX sessions verify with (None: the client's
        default verifying context, the system trust store)."""
        self._resolver, self._fetch = resolver, fetch
        self.tls_context = tls_context
        self._retry, self._max_entries, self._clock = retry_seconds, max_entries, clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._failed: dict[tuple[str, str], float] = {}  # (domain, id) -> retry after
        self._fetching: dict[tuple[str, str], asyncio.Future[Policy]] = {}
        self._warned: dict[str, float] = {}

    async def policy(self, domain: str) -> Policy | None:
        """The policy for `domain` (an A-label name), or None. Mode "none" comes back as is."""
        now = self._clock()
        cached = self._cache.get(domain)
        if cached is not None and cached.expires <= now:
            del self._cache[domain]
            cached = None
        kept = cached.policy if cached is not None else None
        try:
            record = select_txt_record(await self._resolver.txt(f"_mta-sts.{domain}"))
        except DnsError as exc:
            log.debug("MTA-STS lookup for %s failed: %s", domain, exc.reason)
            return kept
        except PolicyError as exc:
            self.warn(f"txt:{domain}", "MTA-STS record of %s ignored: %s", domain, exc)
            return kept
        if record is None:
            return kept
        if cached is not None and cached.record_id == record.id:
            self._cache.move_to_end(domain)
            return kept
        key = (domain, record.id)
        if self._failed.get(key, 0.0) > now:
            return kept
        try:
            policy = await self._fetch_once(key)
        except FetchError as exc:
            if len(self._failed) >= self._max_entries:
                self._failed = {k: t for k, t in self._failed.items() if t > now}
            self._failed[key] = now + self._retry
            log.warning("MTA-STS policy of %s (id %s) could not be fetched: %s%s", domain,
                        record.id, exc, "; the cached policy stays in force" if kept else "")
            return kept
        self._failed.pop(key, None)
        self._store(domain, record.id, policy)
        log.info("MTA-STS policy of %s (id %s): %s, mx %s, max_age %d", domain, record.id,
                 policy.mode, " ".join(policy.mx) or "-", policy.max_age)
        return policy

    def warn(self, key: str, message: str, *args: Any) -> None:
        """Log a warning at most once an hour per `key` (testing mode would otherwise say the
        same thing for every batch)."""
        now = self._clock()
        if self._warned.get(key, -1.0) > now:
            return
        if len(self._warned) >= self._max_entries:
            self._warned = {k: t for k, t in self._warned.items() if t > now}
        self._warned[key] = now + 3600.0
        log.warning(message, *args)

    async def _fetch_once(self, key: tuple[str, str]) -> Policy:
        """One fetch per (domain, id) at a time, shared by every worker asking meanwhile;
        a caller that is cancelled does not cancel it for the others."""
        task = self._fetching.get(key)
        if task is None:
            task = self._fetching[key] = asyncio.ensure_future(self._fetch(key[0]))
            task.add_done_callback(lambda t: self._fetched(key, t))
        return await asyncio.shield(task)

    def _fetched(self, key: tuple[str, str], task: asyncio.Future[Policy]) -> None:
        self._fetching.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here too: every caller may have been cancelled

    def _store(self, domain: str, record_id: str, policy: Policy) -> None:
        expires = self._clock() + max(float(policy.max_age), MIN_CACHE_SECONDS)
        self._cache[domain] = _Cached(record_id, policy, expires)
        self._cache.move_to_end(domain)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)


def from_settings(settings: DeliverySettings, resolver: DomainResolver) -> MtaStsPolicies | None:
    """The policies for `[delivery]`: None when `mta_sts = false`. Policy servers and the MX
    hosts under a policy are verified against `mta_sts_cafile`, else the system trust store."""
    if not settings.mta_sts:
        return None
    context = client_context(True, cafile=settings.mta_sts_cafile)
    fetch = PolicyFetcher(resolver, context, port=settings.mta_sts_port)
    return MtaStsPolicies(resolver, fetch,
                          tls_context=context if settings.mta_sts_cafile else None)
