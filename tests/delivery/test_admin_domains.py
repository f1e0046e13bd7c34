"""`domains add` / `domains check` service layer against a store and the loopback DNS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from postroom.admin.domains import add_domain, check
from postroom.delivery.dns import Resolver
from postroom.store.api import Store
from support.dns_stub import DnsStub


def test_add_then_check_reports_missing_then_published(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'q.db'}") as store, DnsStub() as dns:
        key, records = add_domain(store, "Mail.Example.", "s1", "ed25519-sha256",
                                  return_path_host="mx.postroom.test")
        assert key.domain == "mail.example" and store.get_dkim_key("mail.example") == key
        purposes = [r.purpose for r in records]
        assert purposes == ["dkim", "spf", "dmarc", "return-path", "return-path-spf"]
        with pytest.raises(ValueError, match="already has a DKIM key"):
            add_domain(store, "mail.example", return_path_host="mx.postroom.test")
        with pytest.raises(ValueError):
            add_domain(store, "other.example", "bad selector!", return_path_host="h")
        resolver = Resolver([dns.address], timeout=0.3, lifetime=0.6)
        _, results = asyncio.run(check(store, "mail.example", resolver,
                                       return_path_host="mx.postroom.test"))
        assert not any(r.ok for r in results)
        for r in records:
            dns.add(r.name, r.type, r.value if r.type == "TXT" else r.value + ".")
        dns.add("mx.postroom.test", "A", "127.0.0.1")
        resolver.clear_cache()
        _, results = asyncio.run(check(store, "mail.example", resolver,
                                       return_path_host="mx.postroom.test"))
        assert all(r.ok for r in results), [(r.record.purpose, r.message) for r in results]
