"""Sender domains: create a DKIM key and say what to publish (`postroom domains add`), and
check what is published (`postroom domains check`). One service layer for the CLI and the API.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from postroom.delivery.dns import Resolver
from postroom.delivery.domains import CheckResult, DnsRecord, check_domain, dns_records
from postroom.render.dkim import DkimSigner, generate_key
from postroom.smtp.commands import is_valid_mailbox
from postroom.store.domains import DkimKey

__all__ = ["add_domain", "check", "records_for"]

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
DEFAULT_SELECTOR = "postroom"
MAX_SELECTOR = 63  # the column's width (VARCHAR(63) on PostgreSQL; SQLite does not enforce it)
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$", re.I)


def _normal(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    if not is_valid_mailbox(f"x@{domain}") or "." not in domain:
        raise ValueError(f"not a domain: {domain!r}")
    return domain


def records_for(key: DkimKey, return_path_host: str) -> list[DnsRecord]:
    """What `key.domain` should publish: DKIM TXT, SPF, DMARC and the return-path records."""
    signer = DkimSigner(key.domain, key.selector, key.private_key, key.algorithm)  # type: ignore[arg-type]
    return dns_records(key.domain, key.selector, signer.dns_txt_value,
                       return_path_host=return_path_host)


def add_domain(
    store: Any,
    domain: str,
    selector: str = DEFAULT_SELECTOR,
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256",
    *,
    return_path_host: str,
) -> tuple[DkimKey, list[DnsRecord]]:
    """Create the domain's DKIM key (RSA 2048 or Ed25519) and list the records to publish.

    Raises ValueError (user-facing) for a bad domain, selector or algorithm, or when the domain
    already has a key."""
    domain = _normal(domain)
    selector = selector.strip()
    if not _SELECTOR.match(selector):
        raise ValueError(f"not a DKIM selector: {selector!r}")
    if len(selector) > MAX_SELECTOR:
        raise ValueError(f"a DKIM selector may not exceed {MAX_SELECTOR} characters")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r} (choose from {', '.join(ALGORITHMS)})")
    existing = store.get_dkim_key(domain)
    if existing is not None:
        raise ValueError(f"{domain} already has a DKIM key (selector {existing.selector}, "
                         f"{existing.algorithm}); `postroom domains check {domain}` lists its "
                         "records")
    pem, _ = generate_key(algorithm)
    key = store.add_dkim_key(domain, selector, algorithm, pem)
    return key, records_for(key, return_path_host)


async def check(
    store: Any, domain: str, resolver: Resolver, *, return_path_host: str
) -> tuple[DkimKey | None, list[CheckResult]]:
    """Look up what `domain` publishes against what it should (its key's records when it has
    one, else only that some DKIM key at the default selector, SPF and DMARC exist)."""
    domain = _normal(domain)
    key = store.get_dkim_key(domain)
    expected = records_for(key, return_path_host) if key is not None else []
    selector = key.selector if key is not None else DEFAULT_SELECTOR
    return key, await check_domain(domain, selector, expected, resolver)
