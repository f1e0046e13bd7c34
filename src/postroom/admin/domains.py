"""Sender domains: create a DKIM key and say what to publish (`postroom domains add`), and
check what is published (`postroom domains check`). One service layer for the CLI and the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from postroom.delivery.dns import Resolver
from postroom.delivery.domains import CheckResult, DnsRecord, check_domain, dns_records
from postroom.model import Account
from postroom.render.dkim import DkimSigner, generate_key
from postroom.smtp.commands import is_valid_mailbox
from postroom.store.domains import DkimKey
from postroom.submission.checks import sender_allowed

__all__ = ["ReturnPaths", "add_domain", "check", "list_domains", "records_for", "return_paths"]

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
DEFAULT_SELECTOR = "postroom"
MAX_SELECTOR = 63  # the column's width (VARCHAR(63) on PostgreSQL; SQLite does not enforce it)
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$", re.I)


def _normal(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    if not is_valid_mailbox(f"x@{domain}") or "." not in domain:
        raise ValueError(f"not a domain: {domain!r}")
    return domain


@dataclass(frozen=True, slots=True)
class ReturnPaths:
    """Where bounces for mail from a sender domain go: the domains of the bounce addresses of
    the accounts that send from it (their VERP return paths are `local+token@<that domain>`),
    or `bounces.<domain>` as a suggestion when none has one; `notes` say which and why."""

    domains: tuple[str, ...]
    notes: tuple[str, ...]
    #: False: no account sending from the domain has a bounce address (`domains` suggests one)
    in_use: bool = True


def _sends_from(account: Account, domain: str) -> bool:
    return sender_allowed(account, f"x@{domain}") is None or any(
        a.lower().endswith(f"@{domain}") for a in account.sender_addresses)


def return_paths(store: Any, domain: str) -> ReturnPaths:
    """The return-path domains that mail from `domain` uses, read from the accounts' bounce
    addresses (delivery builds the VERP sender on the bounce address's domain)."""
    domain = _normal(domain)
    senders = [a for a in store.list_accounts() if _sends_from(a, domain)]
    used = sorted({a.bounce_address.rpartition("@")[2].rstrip(".").lower()
                   for a in senders if a.bounce_address})
    suggestion = f"--bounce-address bounces@bounces.{domain}"
    notes = []
    if not senders:
        notes.append(f"no account sends from {domain} yet; the return-path records are for "
                     f"bounce addresses at bounces.{domain} (`postroom accounts create NAME "
                     f"--sender-domain {domain} {suggestion}`)")
    for a in senders:
        if not a.bounce_address:
            notes.append(f"account {a.name} has no bounce address, so its mail keeps the "
                         "sender's own return path and asynchronous bounces never reach "
                         f"Postroom: `postroom accounts update {a.name} {suggestion}`")
    if domain in used:
        notes.append(f"a bounce address at {domain} itself makes the return-path MX the MX of "
                     f"{domain}, which then sends all of its mail to Postroom; a bounce domain "
                     f"of its own ({suggestion}) leaves {domain}'s mail where it is")
    return ReturnPaths(tuple(used) or (f"bounces.{domain}",), tuple(notes), bool(used))


def records_for(
    key: DkimKey, return_path_host: str, return_path_domains: tuple[str, ...] = ()
) -> list[DnsRecord]:
    """What `key.domain` should publish: DKIM TXT, SPF, DMARC, and the return-path MX and SPF
    for each of `return_path_domains` (default `bounces.<domain>`)."""
    signer = DkimSigner(key.domain, key.selector, key.private_key, key.algorithm)  # type: ignore[arg-type]
    records: list[DnsRecord] = []
    for rp in return_path_domains or (f"bounces.{key.domain}",):
        for r in dns_records(key.domain, key.selector, signer.dns_txt_value,
                             return_path_host=return_path_host, return_path_domain=rp):
            # the domain's own SPF record already covers a return path at the domain itself
            same_spf = r.purpose == "return-path-spf" and r.name == key.domain
            if r not in records and not same_spf:
                records.append(r)
    return records


def list_domains(store: Any) -> list[dict[str, Any]]:
    """Sender domains with a DKIM key (no private keys), as `GET /v1/admin/domains` lists them."""
    return [{"domain": k.domain, "selector": k.selector, "algorithm": k.algorithm,
             "created_at": k.created_at} for k in store.list_dkim_keys()]


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
    return key, records_for(key, return_path_host, return_paths(store, domain).domains)


async def check(
    store: Any, domain: str, resolver: Resolver, *, return_path_host: str
) -> tuple[DkimKey | None, list[CheckResult]]:
    """Look up what `domain` publishes against what it should (its key's records when it has
    one, else only that some DKIM key at the default selector, SPF and DMARC exist)."""
    domain = _normal(domain)
    key = store.get_dkim_key(domain)
    expected = (records_for(key, return_path_host, return_paths(store, domain).domains)
                if key is not None else [])
    selector = key.selector if key is not None else DEFAULT_SELECTOR
    return key, await check_domain(domain, selector, expected, resolver)
