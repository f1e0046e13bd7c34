"""A batch's domains grouped by destination: one group per route or MX host set.

Domains with the same destinations (a route, one MX host set for many domains) become one
group: its jobs share lanes and connections, and per-domain work (a task, a deadline, pool
turns, an outcome write) is paid per group. With 100 domains routed to one relay, a batch's
~30 recipients were ~30 groups of one. Static routes and cached MX answers are known at once; a
domain whose lookup has to wait for DNS is a group of its own that waits for it alone, so a
slow name server never holds up the rest of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeAlias

from postroom.delivery.classify import LocalError
from postroom.delivery.dns import DnsError, DnsPermanentError
from postroom.delivery.outcomes import Result, error_result
from postroom.delivery.routing import Destination, Router
from postroom.model import Claim
from postroom.smtp.client import DeliveryError

__all__ = ["Group", "Route", "by_destination", "resolved", "route_failed"]

#: Where a domain's mail goes: its destinations, its lookup's error, or a lookup still running.
Route: TypeAlias = list[Destination] | BaseException | asyncio.Future[list[Destination]]
#: Domains that share destinations: a label for the logs, the route, their claims.
Group = tuple[str, Route, list[Claim]]


async def by_destination(router: Router, by_domain: dict[str, list[Claim]]) -> list[Group]:
    """The groups of `by_domain`'s domains (see the module docstring)."""
    routes: dict[str, Route] = {}
    lookups: dict[str, asyncio.Future[list[Destination]]] = {}
    for domain in by_domain:
        static = router.static_route(domain)
        if static is not None:
            routes[domain] = [static]
        else:
            lookups[domain] = asyncio.ensure_future(router.route(domain))
    if lookups:
        try:
            await asyncio.sleep(0)  # a lookup that the cache answers ends in its first step
        except BaseException:  # cancelled (shutdown): leave no lookup behind
            for lookup in lookups.values():
                lookup.cancel()
            raise
        for domain, lookup in lookups.items():
            if not lookup.done():
                routes[domain] = lookup
            elif (error := lookup.exception()) is not None:
                routes[domain] = error
            else:
                routes[domain] = lookup.result()
    groups: dict[object, tuple[list[str], Route, list[Claim]]] = {}
    for domain, claims in by_domain.items():
        route = routes[domain]
        key: object = domain
        if isinstance(route, list):  # every setting and preference alike; MX ties are
            key = tuple(sorted(route, key=lambda d: (d.preference, d.key)))  # shuffled
        if key in groups:
            groups[key][0].append(domain)
            groups[key][2].extend(claims)
        else:
            groups[key] = ([domain], route, list(claims))
    return [(_label(domains), route, claims) for domains, route, claims in groups.values()]


def _label(domains: list[str]) -> str:
    """For the logs: the domains of a group, the first few by name."""
    if len(domains) <= 3:
        return ", ".join(domains)
    return f"{', '.join(domains[:3])} and {len(domains) - 3} more domains"


async def resolved(lookup: asyncio.Future[list[Destination]]) -> list[Destination] | BaseException:
    """A lookup's destinations, or its error."""
    try:
        return await lookup
    except Exception as exc:
        return exc


def route_failed(exc: DnsError | DeliveryError, claims: Sequence[Claim]) -> list[Result]:
    """The results of a failed route: NXDOMAIN and null MX bounce at once; a failed lookup
    defers, and so does a domain whose MTA-STS policy names none of its MX hosts
    (MtaStsRefused: 4.7.5)."""
    if isinstance(exc, DeliveryError):
        return [error_result(c, exc) for c in claims]
    permanent = isinstance(exc, DnsPermanentError)
    return [error_result(c, exc.reason, kind=LocalError.DNS, permanent=permanent)
            for c in claims]
