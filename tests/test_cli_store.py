"""Which store the CLI opens: only setup commands may create one; the rest name the path they
looked at instead of quietly making an empty store in the working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postroom.cli import app
from support.databases import postgres_url_or_skip

runner = CliRunner()


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no store and no Postroom environment (default data_dir)."""
    for k in [k for k in os.environ if k.startswith("POSTROOM_")]:
        monkeypatch.delenv(k)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


READERS = [
    ["messages", "list"],
    ["messages", "show", "01m83qh6ay6aq73f6maafm4y7e"],
    ["accounts", "list"],
    ["accounts", "update", "shop", "--daily-limit", "5"],
    ["keys", "create", "--account", "shop"],
    ["keys", "list"],
    ["keys", "revoke", "abc"],
    ["files", "list", "--account", "shop"],
    ["webhooks", "list", "--account", "shop"],
    ["domains", "check", "shop.example"],
    ["domains", "list"],
]


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a[:2]))
def test_commands_refuse_to_create_a_store(elsewhere: Path, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    wanted = elsewhere / "data" / "postroom.db"
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: no store at ")
    assert str(wanted) in line and "working directory" in line
    assert "--config" in line and "POSTROOM_CONFIG" in line and "POSTROOM_DATA_DIR" in line
    assert not (elsewhere / "data").exists()


def test_a_configured_sqlite_url_names_its_own_override(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTROOM_STORAGE__URL", "sqlite:///rel/q.db")
    result = runner.invoke(app, ["accounts", "list"])
    assert result.exit_code == 1
    assert str(elsewhere / "rel" / "q.db") in result.stderr
    assert "POSTROOM_STORAGE__URL" in result.stderr
    assert not (elsewhere / "rel").exists()


def test_setup_commands_create_the_store_and_say_where(elsewhere: Path) -> None:
    result = runner.invoke(app, ["accounts", "create", "shop", "--sender-domain", "shop.example",
                                 "--json"])
    assert result.exit_code == 0, result.output
    db = elsewhere / "data" / "postroom.db"
    assert db.is_file() and f"created a new store at {db}" in result.stderr
    assert result.stdout.lstrip().startswith("{")  # --json output stays clean
    again = runner.invoke(app, ["accounts", "list"])
    assert again.exit_code == 0 and "shop" in again.stdout and not again.stderr
    assert runner.invoke(app, ["keys", "create", "--account", "shop"]).exit_code == 0


def test_domains_add_may_create_the_store(elsewhere: Path) -> None:
    result = runner.invoke(app, ["domains", "add", "shop.example"])
    assert result.exit_code == 0, result.output
    assert "created a new store at" in result.stderr


def test_postgresql_urls_are_not_checked_for_a_file(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTROOM_STORAGE__URL", postgres_url_or_skip())
    result = runner.invoke(app, ["accounts", "list"])
    assert result.exit_code == 0, result.output
    assert not result.stderr
