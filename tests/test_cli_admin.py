"""Account management from the CLI: list edits in `accounts update`, `--version`, and the small
conveniences (message ids copied with their brackets, a directory given to `files add`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import postroom
from postroom.cli import app

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for k in [k for k in os.environ if k.startswith("POSTROOM_")]:
        monkeypatch.delenv(k)
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    return str(cfg)


def run(config: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", config])
    return result.exit_code, result.output


def update(config: str, *args: str) -> dict:
    code, out = run(config, "accounts", "update", "shop", *args, "--json")
    assert code == 0, out
    return json.loads(out)


def test_update_adds_and_removes_list_entries(config: str) -> None:
    assert run(config, "accounts", "create", "shop", "--sender-domain", "shop.exmaple")[0] == 0
    shop = update(config, "--add-sender-domain", "Shop.Example.", "--remove-sender-domain",
                  "shop.exmaple", "--add-sender-domain", "news.example")
    assert shop["sender_domains"] == ["shop.example", "news.example"]
    shop = update(config, "--add-sender-address", "ceo@gmail.com", "--add-allow-ip", "10.1.2.3/8",
                  "--add-trusted-network", "192.168.1.7/24", "--add-allow-ip", "2001:db8::/32")
    assert shop["sender_addresses"] == ["ceo@gmail.com"]
    assert shop["allow_ips"] == ["10.0.0.0/8", "2001:db8::/32"]
    assert shop["trusted_networks"] == ["192.168.1.0/24"]
    shop = update(config, "--add-sender-domain", "shop.example")  # already there: unchanged
    assert shop["sender_domains"] == ["shop.example", "news.example"]
    shop = update(config, "--remove-sender-address", "CEO@gmail.com", "--remove-allow-ip",
                  "10.0.0.0/8", "--remove-trusted-network", "192.168.1.0/24",
                  "--daily-limit", "7")
    assert (shop["sender_addresses"], shop["allow_ips"], shop["trusted_networks"]) == (
        [], ["2001:db8::/32"], [])
    assert shop["daily_limit"] == 7
    code, out = run(config, "accounts", "update", "shop", "--add-sender-domain", "x.example")
    assert code == 0 and "account shop updated" in out


def test_update_validates_like_create_and_changes_nothing_on_error(config: str) -> None:
    run(config, "accounts", "create", "shop", "--sender-domain", "shop.example")
    before = json.loads(run(config, "accounts", "list", "--json")[1])
    cases = [
        (["--add-sender-domain", "not a domain"], "not a domain"),
        (["--add-sender-address", "nobody"], "not an email address"),
        (["--add-allow-ip", "300.1.1.1/8"], "not a network"),
        (["--add-trusted-network", "x"], "not a network"),
        (["--remove-sender-domain", "other.example"], "has no sender domain 'other.example'"),
        (["--remove-allow-ip", "10.0.0.0/8"], "has no allowed IP network"),
        (["--remove-sender-domain", "shop.example"], "at least one sender domain or"),
        (["--add-allow-ip", "10.0.0.0/8", "--daily-limit", "0"], "daily"),
        (["--add-allow-ip", "10.0.0.0/8", "--tracking-url", "ftp://x"], "tracking URL"),
    ]
    for args, wanted in cases:
        code, out = run(config, "accounts", "update", "shop", *args)
        assert code == 2 and wanted in out, (args, out)
        assert "Traceback" not in out
    assert json.loads(run(config, "accounts", "list", "--json")[1]) == before
    # the last sender domain may go once an address takes over
    shop = update(config, "--add-sender-address", "a@shop.example", "--remove-sender-domain",
                  "shop.example")
    assert shop["sender_domains"] == [] and shop["sender_addresses"] == ["a@shop.example"]
    code, out = run(config, "accounts", "update", "nobody", "--add-allow-ip", "10.0.0.0/8")
    assert code == 2 and "no account 'nobody'" in out


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"postroom {postroom.__version__}"


def test_message_ids_copied_with_brackets(config: str) -> None:
    """The SMTP reply says `Message queued as <id>`; the id pasted as shown still works."""
    from postroom.config.settings import load_settings
    from postroom.model import NewMessage, new_id
    from postroom.store.api import Store

    run(config, "accounts", "create", "m", "--sender-domain", "m.example")
    with Store.open(load_settings(config).storage_url) as store:
        mid = new_id()
        store.enqueue_many([NewMessage(mid, store.get_account("m").id, "a@m.example",
                                       ("r@example.org",), b"Subject: hi\r\n\r\nx\r\n",
                                       subject="hi")])
    code, out = run(config, "messages", "show", f"<{mid}>", "--json")
    assert code == 0, out
    assert json.loads(out)["id"] == mid
    code, out = run(config, "messages", "show", f" <{mid.upper()}> ")
    assert code == 0 and mid in out


def test_files_add_names_a_directory(config: str, tmp_path: Path) -> None:
    run(config, "accounts", "create", "f", "--sender-domain", "f.example")
    code, out = run(config, "files", "add", str(tmp_path), "--account", "f")
    assert code == 2 and f"{tmp_path} is a directory, not a file" in out
    code, out = run(config, "files", "add", str(tmp_path / "nope"), "--account", "f")
    assert code == 2 and "no such file" in out
