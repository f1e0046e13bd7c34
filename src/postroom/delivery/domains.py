"""The DNS records a sending domain needs, and a check of what is actually published.

Backs `postroom domains add` (print what to publish) and `postroom domains check` (say what is
missing or wrong). Receivers judge mail by DKIM, SPF and DMARC, and bounces only come back when
the return-path domain has an MX pointing at us, so the check is specific about each record.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from postroom.delivery.dns import DnsError, DnsTemporaryError, MxResult

__all__ = ["CheckResult", "DnsRecord", "TxtMxResolver", "check_domain", "dns_records"]


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One record to publish. `purpose`: dkim, spf, dmarc, return-path or return-path-spf."""

    name: str
    type: str
    value: str
    purpose: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    record: DnsRecord
    ok: bool
    found: tuple[str, ...]
    message: str


class TxtMxResolver(Protocol):
    async def txt(self, name: str) -> list[str]: ...

    async def resolve_mx(self, domain: str) -> MxResult: ...


def dns_records(
    domain: str,
    selector: str,
    dkim_txt: str,
    *,
    return_path_host: str,
    spf_include: str | None = None,
    return_path_domain: str | None = None,
    dmarc_rua: str | None = None,
) -> list[DnsRecord]:
    """Records for `domain`. `return_path_host` is this Postroom's host name (or IP): it sends
    the mail and receives the bounces for `return_path_domain` (default bounces.<domain>)."""
    domain = domain.strip().rstrip(".").lower()
    bounce_domain = (return_path_domain or f"bounces.{domain}").rstrip(".").lower()
    spf = _spf_value(return_path_host, spf_include)
    rua = dmarc_rua or f"postmaster@{domain}"
    return [
        DnsRecord(f"{selector}._domainkey.{domain}", "TXT", dkim_txt, "dkim"),
        DnsRecord(domain, "TXT", spf, "spf"),
        DnsRecord(
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p=none; adkim=r; aspf=r; rua=mailto:{rua}",
            "dmarc",
        ),
        DnsRecord(bounce_domain, "MX", f"10 {return_path_host.rstrip('.')}", "return-path"),
        DnsRecord(bounce_domain, "TXT", _spf_value(return_path_host, None), "return-path-spf"),
    ]


async def check_domain(
    domain: str,
    selector: str,
    expected_records: Sequence[DnsRecord],
    resolver: TxtMxResolver,
) -> list[CheckResult]:
    """Look each expected record up and say whether it is published as needed. With no
    expected records, check only that some DKIM key (at `selector`), SPF and DMARC exist."""
    domain = domain.strip().rstrip(".").lower()
    records = list(expected_records) or [
        DnsRecord(f"{selector}._domainkey.{domain}", "TXT", "", "dkim"),
        DnsRecord(domain, "TXT", "v=spf1 ~all", "spf"),
        DnsRecord(f"_dmarc.{domain}", "TXT", "v=DMARC1", "dmarc"),
    ]
    results = []
    for record in records:
        try:
            if record.type == "MX":
                results.append(await _check_mx(record, resolver))
            elif record.type == "TXT":
                found = tuple(await resolver.txt(record.name))
                results.append(_check_txt(record, found))
            else:
                results.append(CheckResult(record, False, (), f"{record.type} is not checked"))
        except DnsError as exc:
            kind = "temporarily failed" if isinstance(exc, DnsTemporaryError) else "failed"
            results.append(CheckResult(record, False, (), f"lookup {kind}: {exc.reason}"))
    return results


def _check_txt(record: DnsRecord, found: tuple[str, ...]) -> CheckResult:
    where = f"{record.type} {record.name}"
    if record.purpose == "dkim":
        keys = [v for v in found if "p=" in v.replace(" ", "")]
        if not keys:
            return CheckResult(record, False, found, f"no DKIM key at {where}: publish it")
        wanted = _tag(record.value, "p")
        if not wanted or any(_tag(v, "p") == wanted for v in keys):
            return CheckResult(record, True, found, "DKIM key published")
        return CheckResult(record, False, found, f"a different DKIM key is published at {where}")
    if record.purpose in ("spf", "return-path-spf"):
        spf = [v for v in found if v.strip().lower().startswith("v=spf1")]
        if not spf:
            return CheckResult(record, False, found, f"no SPF record at {where}: publish it")
        if len(spf) > 1:
            return CheckResult(
                record,
                False,
                found,
                f"{len(spf)} SPF records at {where}: merge them into one "
                "(receivers treat several as an error)",
            )
        have = {t.lower() for t in spf[0].split()}
        missing = [t for t in record.value.split()[1:-1] if t.lower() not in have]
        if missing:
            return CheckResult(
                record, False, found, f"SPF at {where} does not contain {' '.join(missing)}"
            )
        return CheckResult(record, True, found, "SPF record authorizes this server")
    if record.purpose == "dmarc":
        dmarc = [v for v in found if v.strip().upper().startswith("V=DMARC1")]
        if not dmarc:
            return CheckResult(record, False, found, f"no DMARC record at {where}: publish one")
        if len(dmarc) > 1:
            return CheckResult(record, False, found, f"{len(dmarc)} DMARC records at {where}")
        policy = _tag(dmarc[0], "p") or "?"
        return CheckResult(record, True, found, f"DMARC record published (p={policy})")
    ok = record.value in found
    return CheckResult(record, ok, found, "published" if ok else f"{where} not found")


async def _check_mx(record: DnsRecord, resolver: TxtMxResolver) -> CheckResult:
    expected = record.value.split()[-1].rstrip(".").lower()
    try:
        mx = await resolver.resolve_mx(record.name)
    except DnsTemporaryError:
        raise
    except DnsError:
        return CheckResult(record, False, (), f"no MX record at {record.name}: publish it")
    found = tuple(f"{h.preference} {h.host}" for h in mx.hosts)
    if mx.implicit:
        return CheckResult(record, False, (), f"no MX record at {record.name}: publish it")
    if expected in mx.names:
        return CheckResult(record, True, found, "bounces reach this server")
    return CheckResult(
        record, False, found, f"MX at {record.name} points to {', '.join(mx.names)}, not {expected}"
    )


def _spf_value(host: str, include: str | None) -> str:
    host = host.rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
        mechanism = f"ip{ip.version}:{ip}"
    except ValueError:
        mechanism = f"a:{host}"
    parts = ["v=spf1", mechanism] + ([f"include:{include}"] if include else []) + ["~all"]
    return " ".join(parts)


def _tag(value: str, name: str) -> str | None:
    """A tag's value from a "k=v; k=v" record, whitespace removed (DKIM keys may be split)."""
    for part in value.split(";"):
        key, sep, val = part.partition("=")
        if sep and key.strip().lower() == name:
            return "".join(val.split())
    return None
