"""`postroom files …`: the file cache (attachments by key: HTTP `attachments[].id`, SMTP
`X-TM-FILE-KEY`)."""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from postroom.cli.common import (
    AccountOpt,
    ConfigOpt,
    JsonOpt,
    account_id_of,
    app,
    echo_json,
    fail,
    open_store,
    settings_from,
)

files_app = typer.Typer(no_args_is_help=True, help="The file cache (attachments by key).")
app.add_typer(files_app, name="files")
MAX_FILE_BYTES = 10 * 1024 * 1024


@files_app.command("add")
def files_add(
    path: Annotated[Path, typer.Argument(help="File to upload.")],
    account: AccountOpt,
    name: Annotated[str | None, typer.Option("--name", help="Name recipients see.")] = None,
    content_type: Annotated[str | None, typer.Option("--content-type")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload a file; prints its key (use it in X-TM-FILE-KEY or attachments[].id)."""
    if path.is_dir():
        raise fail(f"{path} is a directory, not a file", 2)
    if not path.is_file():
        raise fail(f"no such file: {path}", 2)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise fail("a file may not exceed 10 MB", 2)
    settings = settings_from(config)
    store = open_store(settings)
    guessed = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    expires = datetime.now(UTC) + timedelta(days=settings.http.file_retention_days)
    stored = store.put_file(account_id_of(store, account), (name or path.name)[:255], guessed,
                            path.read_bytes(), expires)
    if as_json:
        echo_json(stored)
    else:
        typer.echo(f"{stored.key}  {stored.name}  {stored.content_type}  {stored.size} bytes  "
                   f"expires {stored.expires_at.date().isoformat()}")


@files_app.command("list")
def files_list(account: AccountOpt, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Files in the cache for an account (newest first)."""
    store = open_store(settings_from(config))
    found = store.list_files(account_id_of(store, account))
    if as_json:
        echo_json(found)
        return
    for f in found:
        typer.echo(f"{f.key}  {f.name}  {f.content_type}  {f.size} bytes")
