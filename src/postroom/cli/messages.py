"""`postroom serve`, `postroom messages …` and `postroom config reference`."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from postroom.cli.common import (
    ConfigOpt,
    JsonOpt,
    app,
    config_app,
    echo_json,
    fail,
    messages_app,
    open_store,
    settings_from,
    store_error_message,
    to_jsonable,
)


@app.command()
def serve(config: ConfigOpt = None) -> None:
    """Run the SMTP listeners, the HTTP API and the delivery workers."""
    from postroom.runtime import run_server
    from postroom.store.errors import StoreError

    settings = settings_from(config)
    try:
        run_server(settings)
    except StoreError as exc:  # the store is unreachable, or its upgrade failed
        raise fail(f"cannot start: {store_error_message(exc)}") from None
    except OSError as exc:
        raise fail(f"cannot start: {exc}") from None


@messages_app.command("show")
def messages_show(
    message_id: Annotated[str, typer.Argument(help="Message id (<id> as SMTP replies show it is fine).")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one message: envelope, recipients with their status, and its event history."""
    # as the SMTP reply shows it: `Message queued as <id>` (ids are lowercase)
    message_id = message_id.strip().removeprefix("<").removesuffix(">").strip().lower()
    store = open_store(settings_from(config))
    record = store.get_message(message_id)
    if record is None:
        raise fail(f"no message {message_id!r}", 1)
    events = _all_events(store, message_id)
    if as_json:
        data = to_jsonable(record)
        data["events"] = to_jsonable(events)
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    typer.echo(f"message {record.id}  ({record.size} bytes, via {record.source} "
               f"from {record.client_ip}, {record.created_at.isoformat()})")
    typer.echo(f"  from     <{record.mail_from}>   header From: {record.header_from}")
    typer.echo(f"  subject  {record.subject}")
    for r in record.recipients:
        typer.echo(f"  to       <{r.address}>  {r.status.value}  attempts={r.attempts}"
                   + (f"  {r.last_reply}" if r.last_reply else ""))
    for e in events:
        extra = " ".join(x for x in (e.remote_host or "", e.reply or "") if x)
        typer.echo(f"  {e.at.isoformat()}  {e.type.value:<12} {e.recipient or ''}  {extra}")


#: Events read per query by `messages show` (it pages through all of them).
EVENTS_PAGE = 1000


def _all_events(store: Any, message_id: str) -> list[Any]:
    """The message's whole event history, oldest first, a page at a time."""
    found: list[Any] = []
    while True:
        page = store.list_events(message_id, limit=EVENTS_PAGE,
                                 after=found[-1].id if found else None)
        found.extend(page)
        if len(page) < EVENTS_PAGE:
            return found


@messages_app.command("list")
def messages_list(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent messages, newest first."""
    rows = open_store(settings_from(config)).list_messages(limit=limit)
    if as_json:
        echo_json(rows)
        return
    for m in rows:
        statuses = ",".join(f"{r.address}:{r.status.value}" for r in m.recipients)
        typer.echo(f"{m.id}  <{m.mail_from}>  {statuses}  {m.subject[:40]}")


@config_app.command("reference")
def config_reference() -> None:
    """Print docs/CONFIGURATION.md (generated from the settings model)."""
    from postroom.config.reference import render

    sys.stdout.write(render())
