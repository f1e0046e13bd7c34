"""What every command shares: the Typer apps, `--config`/`--json` options, errors, the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from postroom.config.settings import ConfigError, Settings, load_settings
from postroom.model.jsonable import jsonable as to_jsonable


class _Commands(TyperGroup):
    """The top-level group: a store error from any command becomes one line on stderr and
    exit code 1 (the database is down, or rejected a value), never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from postroom.store.errors import StoreError

        try:
            return super().invoke(ctx)
        except StoreError as exc:
            raise fail(store_error_message(exc)) from None


def store_error_message(exc: Exception) -> str:
    """One line for a store error (its first line: the driver's text may run on)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


app = typer.Typer(cls=_Commands, no_args_is_help=True, add_completion=False,
                  help="Postroom: a self-hosted SMTP API.")


def _version(value: bool) -> None:
    if value:
        from postroom import __version__

        typer.echo(f"postroom {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    pass


accounts_app = typer.Typer(no_args_is_help=True, help="Sending accounts.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (SMTP password / HTTP bearer).")
messages_app = typer.Typer(no_args_is_help=True, help="Queued messages and their recipients.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(messages_app, name="messages")
app.add_typer(config_app, name="config")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML configuration file (default: $POSTROOM_CONFIG)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
AccountOpt = Annotated[str, typer.Option("--account", help="Account name or id.")]
TrackingUrlOpt = Annotated[
    str | None, typer.Option("--tracking-url", help="Base URL of tracking/unsubscribe links.")]
TrackOpensOpt = Annotated[bool, typer.Option("--track-opens", help="Track opens by default.")]
TrackClicksOpt = Annotated[bool, typer.Option("--track-clicks", help="Track clicks by default.")]
ListUnsubOpt = Annotated[bool, typer.Option(
    "--list-unsubscribe", help="List-Unsubscribe on all mail, not only campaigns.")]
ConsentOpt = Annotated[bool, typer.Option(
    "--require-consent", help="Refuse recipients without recorded consent.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def settings_from(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None


def open_store(settings: Settings, *, create: bool = False) -> Any:
    """Open the configured store. A missing SQLite file is an error (a command run from another
    directory would otherwise make an empty store there, with data_dir "data" relative to the
    working directory) unless `create`: only the setup commands that may run before the first
    `serve` (`accounts create`, `domains add`) pass it, and they say where the store now is."""
    from postroom.store.api import Store
    from postroom.store.location import sqlite_file

    path = sqlite_file(settings.storage_url)
    missing = path is not None and not path.exists()
    if missing and not create:
        raise fail(missing_store_message(settings, path))
    try:
        store = Store.open(settings.storage_url)
    except Exception as exc:  # a bad URL or an unreachable database: say so plainly
        raise fail(f"cannot open the store at {redact(settings.storage_url)}: {exc}") from None
    if missing:
        typer.echo(f"note: created a new store at {path}", err=True)
    return store


def missing_store_message(settings: Settings, path: Path | None) -> str:
    """One line: the path looked at, why there, and how to point at the right store."""
    if settings.storage.url:
        where, override = "[storage] url", "$POSTROOM_STORAGE__URL"
    else:
        where, override = f"data_dir {str(settings.data_dir)!r}", "$POSTROOM_DATA_DIR"
    relative = (f" relative to the working directory {Path.cwd()}"
                if path is not None and not _given_absolute(settings) else "")
    return (f"no store at {path} ({where}{relative}); point at yours with --config FILE, "
            f"$POSTROOM_CONFIG or {override} (`postroom serve` or `postroom accounts create` "
            "makes a new one)")


def _given_absolute(settings: Settings) -> bool:
    if settings.storage.url:
        return settings.storage.url.startswith("sqlite:////")
    return settings.data_dir.expanduser().is_absolute()


def redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url




def echo_json(value: Any) -> None:
    typer.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


def account_id_of(store: Any, account: str) -> str:
    found = store.get_account(account)
    if found is None:
        raise fail(f"no account {account!r}", 2)
    return str(found.id)
