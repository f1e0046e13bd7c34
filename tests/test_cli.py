"""The CLI in-process (Typer's runner) against a real SQLite store: output, JSON, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postroom.cli import app

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for k in list(__import__("os").environ):
        if k.startswith("POSTROOM_"):
            monkeypatch.delenv(k)
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    return str(cfg)


def run(config: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", config])
    return result.exit_code, result.output


def test_accounts_keys_and_revocation(config: str) -> None:
    code, out = run(config, "accounts", "create", "shop", "--sender-domain", "shop.example",
                    "--sender-address", "a@gmail.com", "--bounce-address", "b@shop.example",
                    "--daily-limit", "10", "--allow-ip", "10.0.0.0/8", "--trusted-network",
                    "192.168.1.0/24", "--json")
    assert code == 0, out
    account = json.loads(out)
    assert account["allow_ips"] == ["10.0.0.0/8"] and account["daily_limit"] == 10
    code, out = run(config, "keys", "create", "--account", "shop", "--json")
    key = json.loads(out)
    assert code == 0 and key["key"].startswith("pr_") and key["scopes"] == ["send", "read"]
    code, out = run(config, "keys", "list")
    assert key["prefix"] in out and key["key"] not in out and "active" in out
    assert run(config, "keys", "revoke", key["id"])[0] == 0
    assert "revoked" in run(config, "keys", "list", "--account", "shop")[1]
    assert run(config, "keys", "revoke", key["id"])[0] == 1


def test_bad_arguments_exit_nonzero_with_a_clear_message(config: str, tmp_path: Path) -> None:
    assert run(config, "accounts", "create", "x")[0] == 2  # no sender domain or address
    code, out = run(config, "accounts", "create", "x", "--sender-domain", "not a domain")
    assert code == 2 and "not a domain" in out
    code, out = run(config, "accounts", "create", "x", "--sender-domain", "x.example",
                    "--allow-ip", "300.1.1.1/8")
    assert code == 2 and "not a network" in out
    assert run(config, "accounts", "create", "x", "--sender-domain", "x.example")[0] == 0
    code, out = run(config, "accounts", "create", "x", "--sender-domain", "x.example")
    assert code == 1 and "already exists" in out
    code, out = run(config, "keys", "create", "--account", "nobody")
    assert code == 2 and "no account" in out
    code, out = run(config, "keys", "create", "--account", "x", "--scope", "root")
    assert code == 2 and "unknown scope" in out
    assert run(config, "messages", "show", "01nonexistent")[0] == 1
    assert run(config, "accounts", "create", "y", "--daily-limit", "zero")[0] == 2
    result = runner.invoke(app, ["messages", "list", "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and "not found" in result.output


def test_messages_list_and_show_json(config: str) -> None:
    import asyncio

    from postroom.config.settings import load_settings
    from postroom.model import NewMessage, new_id
    from postroom.store.api import Store

    run(config, "accounts", "create", "m", "--sender-domain", "m.example")
    store = Store.open(load_settings(config).storage_url)
    account = store.get_account("m")
    mid = new_id()
    asyncio.run(store.enqueue(NewMessage(mid, account.id, "a@m.example", ("r@example.org",),
                                         b"Subject: hi\r\n\r\nx\r\n", subject="hi")))
    store.close()
    code, out = run(config, "messages", "list", "--json", "--limit", "5")
    assert code == 0 and json.loads(out)[0]["id"] == mid
    code, out = run(config, "messages", "show", mid, "--json")
    shown = json.loads(out)
    assert shown["recipients"][0]["status"] == "queued"
    assert [e["type"] for e in shown["events"]] == ["queued"]
    assert "r@example.org" in run(config, "messages", "show", mid)[1]


def test_files_add_and_list(config: str, tmp_path: Path) -> None:
    run(config, "accounts", "create", "f", "--sender-domain", "f.example")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.1 test")
    code, out = run(config, "files", "add", str(pdf), "--account", "f", "--json")
    assert code == 0, out
    stored = json.loads(out)
    assert stored["name"] == "report.pdf" and stored["content_type"] == "application/pdf"
    assert stored["key"] in run(config, "files", "list", "--account", "f")[1]
    assert run(config, "files", "add", str(tmp_path / "missing"), "--account", "f")[0] == 2
    assert run(config, "files", "add", str(pdf), "--account", "nobody")[0] == 2
