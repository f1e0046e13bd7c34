"""The CLI in-process (Typer's runner) against a real SQLite store: output, JSON, exit codes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
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
    created = runner.invoke(app, [
        "accounts", "create", "shop", "--sender-domain", "shop.example", "--sender-address",
        "a@gmail.com", "--bounce-address", "b@shop.example", "--daily-limit", "10",
        "--allow-ip", "10.0.0.0/8", "--trusted-network", "192.168.1.0/24", "--json",
        "--config", config])
    assert created.exit_code == 0, created.output
    account = json.loads(created.stdout)  # stderr says a new store was made
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


def _serve(config_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`postroom serve` in a child process (serve changes process-wide state: logging, loop)."""
    cfg = tmp_path / "serve.toml"
    cfg.write_text(config_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    return subprocess.run([sys.executable, "-m", "postroom", "serve", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120, env=env)


_SERVE = """data_dir = "{data}"
[smtp]
hostname = "mx.test"
listen_plain = "127.0.0.1:0"
listen_implicit_tls = ""
listen_starttls = ""
[http]
listen = "127.0.0.1:0"
[delivery]
enabled = false
[webhooks]
enabled = false
"""


def test_serve_with_an_unreachable_store_says_so_without_a_traceback(tmp_path: Path) -> None:
    done = _serve(_SERVE.format(data=tmp_path / "data")
                  + '[storage]\nurl = "postgresql://postgres@127.0.0.1:1/nothing"\n', tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout and "╭" not in done.stderr
    assert "error: cannot start: store unavailable" in done.stderr


def test_serve_with_a_store_it_cannot_upgrade_says_so_without_a_traceback(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "postroom.db") as db:  # migrated by some newer Postroom
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES ('9999')")
    done = _serve(_SERVE.format(data=data), tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "╭" not in done.stderr
    assert "error: cannot start: cannot upgrade the store" in done.stderr
    assert "9999" in done.stderr


def test_values_too_large_for_the_database_are_refused_on_every_backend(config: str) -> None:
    """PostgreSQL rejects them (INTEGER, VARCHAR(n)); SQLite would store them: check first."""
    code, out = run(config, "accounts", "create", "big", "--sender-domain", "big.example",
                    "--daily-limit", "99999999999")
    assert code == 2 and "daily limit" in out, out
    assert run(config, "accounts", "create", "big", "--sender-domain", "big.example",
               "--daily-limit", str(2**31 - 1))[0] == 0
    code, out = run(config, "accounts", "update", "big", "--daily-limit", str(2**31))
    assert code == 2 and "daily limit" in out, out
    code, out = run(config, "webhooks", "create", "https://hooks.example.com/x", "--account",
                    "big", "--description", "d" * 201)
    assert code == 2 and "description" in out, out
    code, out = run(config, "domains", "add", "big.example", "--selector",
                    "a" * 40 + "." + "b" * 30)
    assert code == 2 and "selector" in out, out


def test_store_errors_are_one_line_not_a_traceback(
    config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postroom.store.api import Store
    from postroom.store.errors import InvalidData

    def rejected(*_args: object, **_kwargs: object) -> None:
        raise InvalidData("rejected by the database: value too long\nDETAIL: more")

    assert run(config, "accounts", "create", "a", "--sender-domain", "a.example")[0] == 0
    monkeypatch.setattr(Store, "list_accounts", rejected)
    result = runner.invoke(app, ["accounts", "list", "--config", config])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not the InvalidData itself
    assert result.output.strip() == "error: rejected by the database: value too long"


def test_messages_show_lists_every_event(config: str) -> None:
    """More events than one page of list_events: `messages show` pages through them all."""
    from datetime import UTC, datetime

    from postroom.config.settings import load_settings
    from postroom.model import NewMessage, new_id
    from postroom.store.api import Store
    from postroom.store.schema import events

    run(config, "accounts", "create", "m", "--sender-domain", "m.example")
    store = Store.open(load_settings(config).storage_url)
    account = store.get_account("m")
    mid = new_id()
    store.enqueue_many([NewMessage(mid, account.id, "a@m.example", ("r@example.org",),
                                   b"Subject: hi\r\n\r\nx\r\n", subject="hi")])
    with store._db.write() as conn:
        conn.execute(events.insert(), [
            dict(type="opened", message_id=mid, recipient="r@example.org", attempt=None,
                 remote_host=None, reply=None, data={"n": n}, at=datetime.now(UTC))
            for n in range(2100)])
    store.close()
    code, out = run(config, "messages", "show", mid, "--json")
    assert code == 0, out
    shown = json.loads(out)["events"]
    assert len(shown) == 2101 and shown[0]["type"] == "queued"
    assert [e["data"]["n"] for e in shown[1:]] == list(range(2100))
    code, out = run(config, "messages", "show", mid)
    assert code == 0 and out.count(" opened ") == 2100
