"""`postroom domains add/check/list`: the return-path records follow the bounce address the
sending accounts use (delivery builds VERP senders on its domain), not always bounces.<domain>."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postroom.cli import app
from support.dns_stub import DnsStub

runner = CliRunner()


@pytest.fixture
def dns() -> DnsStub:
    with DnsStub() as stub:
        stub.add("mx.postroom.test", "A", "127.0.0.1")
        yield stub


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dns: DnsStub) -> str:
    for k in [k for k in os.environ if k.startswith("POSTROOM_")]:
        monkeypatch.delenv(k)
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[smtp]\nhostname = "mx.postroom.test"\n'
                   f'[delivery]\nnameservers = ["{dns.address}"]\n')
    return str(cfg)


def run(config: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", config])
    return result.exit_code, result.output


def add(config: str, domain: str) -> dict:
    code, out = run(config, "domains", "add", domain, "--json")
    assert code == 0, out
    return json.loads(out)


def return_path(records: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["purpose"], r["name"], r["type"]) for r in records
            if r["purpose"].startswith("return-path")]


def test_records_follow_a_bounce_address_at_the_sender_domain(config: str) -> None:
    """README's `--bounce-address bounces@shop.example`: VERP senders are @shop.example."""
    run(config, "accounts", "create", "shop", "--sender-domain", "shop.example",
        "--bounce-address", "bounces@shop.example")
    added = add(config, "shop.example")
    assert return_path(added["records"]) == [("return-path", "shop.example", "MX")]
    assert [r["name"] for r in added["records"]].count("shop.example") == 2  # SPF + MX, one SPF
    assert added["return_path_domains"] == ["shop.example"]
    assert any("itself" in n and "bounces@bounces.shop.example" in n for n in added["notes"])
    code, out = run(config, "domains", "check", "shop.example", "--json")
    checked = [c["record"] for c in json.loads(out)["checks"]]
    assert code == 1 and return_path(checked) == [("return-path", "shop.example", "MX")]


def test_records_follow_a_bounce_domain_of_its_own(config: str) -> None:
    run(config, "accounts", "create", "shop", "--sender-domain", "shop.example",
        "--bounce-address", "bounces@returns.example")
    added = add(config, "shop.example")
    assert return_path(added["records"]) == [("return-path", "returns.example", "MX"),
                                             ("return-path-spf", "returns.example", "TXT")]
    assert added["notes"] == []
    code, out = run(config, "domains", "add", "other.example")
    assert code == 0, out
    assert "Return path: bounces.other.example" in out and "no account sends from" in out


def test_an_account_without_a_bounce_address_is_named(config: str) -> None:
    run(config, "accounts", "create", "shop", "--sender-domain", "shop.example")
    code, out = run(config, "domains", "add", "shop.example")
    assert code == 0, out
    assert "bounces.shop.example  MX" in out
    assert "account shop has no bounce address" in out
    assert "postroom accounts update shop --bounce-address bounces@bounces.shop.example" in out


def test_check_looks_where_the_bounce_address_points(config: str, dns: DnsStub) -> None:
    run(config, "accounts", "create", "shop", "--sender-domain", "shop.example",
        "--bounce-address", "bounces@bounces.shop.example")
    added = add(config, "shop.example")
    assert return_path(added["records"])[0][1] == "bounces.shop.example"
    for r in added["records"]:
        dns.add(r["name"], r["type"], r["value"] if r["type"] == "TXT" else r["value"] + ".")
    code, out = run(config, "domains", "check", "shop.example")
    assert code == 0, out
    run(config, "accounts", "update", "shop", "--bounce-address", "b@returns.example")
    code, out = run(config, "domains", "check", "shop.example", "--json")
    checked = json.loads(out)
    assert code == 1 and checked["return_path_domains"] == ["returns.example"]
    failed = [(c["record"]["purpose"], c["record"]["name"]) for c in checked["checks"]
              if not c["ok"]]
    assert failed == [("return-path", "returns.example"), ("return-path-spf", "returns.example")]


def test_domains_list(config: str) -> None:
    run(config, "accounts", "create", "shop", "--sender-domain", "shop.example")
    assert run(config, "domains", "list")[1] == ""
    add(config, "shop.example")
    run(config, "domains", "add", "b.example", "--selector", "s2", "--algorithm",
        "ed25519-sha256")
    code, out = run(config, "domains", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("b.example  selector=s2  ed25519-sha256")
    assert lines[1].startswith("shop.example  selector=postroom  rsa-sha256")
    code, out = run(config, "domains", "list", "--json")
    listed = json.loads(out)
    assert [d["domain"] for d in listed] == ["b.example", "shop.example"]
    assert "private_key" not in out and listed[0]["created_at"]
