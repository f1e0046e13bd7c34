"""Pure verdicts on what an account may do (cf. Postfix smtpd_check: None or a reason).

Each function takes values and returns a reason string when something is refused, else None; the
caller turns the reason into an SMTP reply or an HTTP error code.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from postroom.model import Account

#: usernames the vendors document; the key alone authenticates (Zoho/SendGrid, ZeptoMail, Infobip)
GENERIC_USERNAMES = frozenset({"apikey", "emailapikey", "app"})

_psl = PublicSuffixList()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


@lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix plus one label (the domain itself when unknown)."""
    domain = domain.lower().rstrip(".")
    return _psl.privatesuffix(domain) or domain


def sender_allowed(account: Account, address: str) -> str | None:
    """The address is one of the account's senders, or in (a subdomain of) one of its domains."""
    addr = address.lower()
    if addr in (a.lower() for a in account.sender_addresses):
        return None
    domain = domain_of(addr)
    for allowed in account.sender_domains:
        allowed = allowed.lower()
        if domain == allowed or domain.endswith("." + allowed):
            return None
    return "not allowed for this account"


def aligned(header_from: str, envelope_from: str) -> str | None:
    """DMARC relaxed alignment of the From header with the envelope sender."""
    if not envelope_from:
        return None
    a = organizational_domain(domain_of(header_from))
    b = organizational_domain(domain_of(envelope_from))
    return None if a == b else f"header From domain does not align with <{envelope_from}>"


def username_accepted(account: Account, username: str) -> bool:
    """A typo in the username surfaces early: only documented names or the account's senders."""
    name = username.strip().lower()
    if name in GENERIC_USERNAMES:
        return True
    if name in (a.lower() for a in account.sender_addresses):
        return True
    return "@" in name and sender_allowed(account, name) is None


@lru_cache(maxsize=1024)
def _networks(networks: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parsed once per distinct list: parsing them on every connection cost 6 % of the loop."""
    out = []
    for net in networks:
        try:
            out.append(ipaddress.ip_network(net, strict=False))
        except ValueError:
            continue
    return tuple(out)


def _in_networks(ip: str, networks: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in _networks(tuple(networks)))


def ip_allowed(account: Account, ip: str) -> str | None:
    """An empty allow list allows every address."""
    if not account.allow_ips or _in_networks(ip, account.allow_ips):
        return None
    return f"client address {ip} not allowed for this account"


def trusted_from(account: Account, ip: str) -> bool:
    return bool(account.trusted_networks) and _in_networks(ip, account.trusted_networks)


def validate_networks(values: list[str]) -> list[str]:
    """Normalise CIDRs for storage; raises ValueError naming the bad one."""
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_network(v, strict=False)))
        except ValueError:
            raise ValueError(f"not a network: {v}") from None
    return out
