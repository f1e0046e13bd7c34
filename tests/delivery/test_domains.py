"""`domains add` record suggestions and `domains check` against the DNS stub."""

from __future__ import annotations

import asyncio

from postroom.delivery.dns import Resolver
from postroom.delivery.domains import CheckResult, DnsRecord, check_domain, dns_records
from postroom.render.dkim import generate_key
from support.dns_stub import DnsStub

PEM, DKIM_TXT = generate_key("rsa-sha256")
_, OTHER_TXT = generate_key("ed25519-sha256")
RECORDS = dns_records(
    "Example.com",
    "pr1",
    DKIM_TXT,
    return_path_host="mail.postroom.test",
    spf_include="_spf.relay.test",
)


def check(stub: DnsStub, records: list[DnsRecord] = RECORDS) -> dict[str, CheckResult]:
    resolver = Resolver([stub.address], timeout=0.3, lifetime=0.6)
    results = asyncio.run(check_domain("example.com", "pr1", records, resolver))
    return {r.record.purpose: r for r in results}


def publish_all(stub: DnsStub) -> None:
    for record in RECORDS:
        stub.add(
            record.name, record.type, record.value if record.type == "TXT" else record.value + "."
        )
    stub.add("mail.postroom.test", "A", "127.0.0.1")


def test_suggested_records() -> None:
    by_purpose = {r.purpose: r for r in RECORDS}
    assert by_purpose["dkim"] == DnsRecord("pr1._domainkey.example.com", "TXT", DKIM_TXT, "dkim")
    assert by_purpose["spf"] == DnsRecord(
        "example.com", "TXT", "v=spf1 a:mail.postroom.test include:_spf.relay.test ~all", "spf"
    )
    dmarc = by_purpose["dmarc"]
    assert (dmarc.name, dmarc.type) == ("_dmarc.example.com", "TXT")
    assert dmarc.value.startswith("v=DMARC1; p=none;")
    assert "rua=mailto:postmaster@example.com" in dmarc.value
    assert by_purpose["return-path"] == DnsRecord(
        "bounces.example.com", "MX", "10 mail.postroom.test", "return-path"
    )
    assert by_purpose["return-path-spf"].value == "v=spf1 a:mail.postroom.test ~all"


def test_ip_hosts_and_custom_return_path() -> None:
    records = dns_records(
        "example.com", "s", "v=DKIM1; p=x", return_path_host="192.0.2.25",
        return_path_domain="rp.example.com", dmarc_rua="dmarc@reports.test",
    )  # fmt: skip
    by_purpose = {r.purpose: r for r in records}
    assert by_purpose["spf"].value == "v=spf1 ip4:192.0.2.25 ~all"
    assert by_purpose["return-path"].name == "rp.example.com"
    assert "rua=mailto:dmarc@reports.test" in by_purpose["dmarc"].value
    v6 = dns_records("e.test", "s", "x", return_path_host="2001:db8::25")
    assert v6[1].value == "v=spf1 ip6:2001:db8::25 ~all"


def test_everything_published() -> None:
    with DnsStub() as stub:
        publish_all(stub)
        results = check(stub)
    assert all(r.ok for r in results.values()), [r.message for r in results.values()]
    assert results["dmarc"].message == "DMARC record published (p=none)"
    assert results["return-path"].found == ("10 mail.postroom.test",)


def test_nothing_published() -> None:
    with DnsStub() as stub:
        results = check(stub)
    assert not any(r.ok for r in results.values())
    assert results["dkim"].message == "no DKIM key at TXT pr1._domainkey.example.com: publish it"
    assert results["spf"].message.startswith("no SPF record")
    assert results["dmarc"].message.startswith("no DMARC record")
    assert results["return-path"].message == "no MX record at bounces.example.com: publish it"


def test_wrong_values_are_explained() -> None:
    with DnsStub() as stub:
        stub.add("pr1._domainkey.example.com", "TXT", OTHER_TXT)
        stub.add("example.com", "TXT", "v=spf1 mx -all")
        stub.add("bounces.example.com", "MX", "10 mx.elsewhere.test.")
        stub.add("bounces.example.com", "TXT", "v=spf1 a:mail.postroom.test ~all")
        stub.add("bounces.example.com", "TXT", "v=spf1 -all")
        stub.add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject")
        results = check(stub)
    assert (
        results["dkim"].message
        == "a different DKIM key is published at TXT pr1._domainkey.example.com"
    )
    assert results["dkim"].found == (OTHER_TXT,)
    assert results["spf"].message == (
        "SPF at TXT example.com does not contain a:mail.postroom.test include:_spf.relay.test"
    )
    assert "2 SPF records" in results["return-path-spf"].message
    assert results["return-path"].message == (
        "MX at bounces.example.com points to mx.elsewhere.test, not mail.postroom.test"
    )
    assert results["dmarc"].ok and results["dmarc"].message.endswith("(p=reject)")


def test_implicit_mx_does_not_count() -> None:
    with DnsStub({"bounces.example.com": {"A": "127.0.0.1"}}) as stub:
        results = check(stub)
    assert not results["return-path"].ok


def test_lookup_failures_are_reported() -> None:
    with DnsStub(servfail=["pr1._domainkey.example.com", "bounces.example.com"]) as stub:
        results = check(stub)
    assert results["dkim"].message.startswith("lookup temporarily failed:")
    assert results["return-path"].message.startswith("lookup temporarily failed:")


def test_default_checks_without_expected_records() -> None:
    with DnsStub() as stub:
        publish_all(stub)
        results = check(stub, [])
        assert sorted(results) == ["dkim", "dmarc", "spf"]
        assert all(r.ok for r in results.values())
        stub.remove("pr1._domainkey.example.com")
        assert not check(stub, [])["dkim"].ok
