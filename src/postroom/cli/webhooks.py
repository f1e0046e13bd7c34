"""`postroom webhooks …`: account webhooks and their deliveries."""

from __future__ import annotations

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
    to_jsonable,
)

# --- webhooks (events out) ---------------------------------------------------------------------
webhooks_app = typer.Typer(no_args_is_help=True, help="Account webhooks and their deliveries.")
app.add_typer(webhooks_app, name="webhooks")
MAX_DESCRIPTION = 200  # the column's width (as the HTTP API's max_length)


@webhooks_app.command("create")
def webhooks_create(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives signed POSTs.")],
    account: AccountOpt,
    event: Annotated[list[str] | None, typer.Option(
        "--event", help="Event type to send (repeat); none: every type.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1000,
                                            help="Events per POST at most.")] = 1,
    description: Annotated[str, typer.Option("--description")] = "",
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a webhook; its signing secret is printed once."""
    from postroom.events.endpoints import unknown_types, url_problem

    settings = settings_from(config)
    problem = url_problem(url, allow_private=settings.webhooks.allow_private_targets) or (
        f"unknown event types {unknown_types(event or [])}" if unknown_types(event or [])
        else None)
    if not problem and len(description) > MAX_DESCRIPTION:
        problem = f"the description may not exceed {MAX_DESCRIPTION} characters"
    if problem:
        raise fail(problem, 2)
    store = open_store(settings)
    hook, secret = store.create_webhook(account_id_of(store, account), url,
                                        event_types=event or [], batch_size=batch_size,
                                        description=description)
    if as_json:
        echo_json({**to_jsonable(hook), "secret": secret})
        return
    typer.echo(f"webhook {hook.id} -> {hook.url}\nsigning secret (shown once, store it now):\n"
               f"{secret}")


@webhooks_app.command("list")
def webhooks_list(
    account: Annotated[str | None, typer.Option("--account")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List webhooks (secrets are never shown again)."""
    store = open_store(settings_from(config))
    hooks = store.list_webhooks(account_id_of(store, account) if account else None)
    if as_json:
        echo_json(hooks)
        return
    for h in hooks:
        kinds = ",".join(h.event_types) or "all"
        typer.echo(f"{h.id}  {h.url}  account={h.account_id}  events={kinds}  "
                   f"batch={h.batch_size}")


@webhooks_app.command("delete")
def webhooks_delete(webhook_id: Annotated[str, typer.Argument()], account: AccountOpt,
                    config: ConfigOpt = None) -> None:
    """Delete a webhook; its pending deliveries are cancelled."""
    store = open_store(settings_from(config))
    if not store.delete_webhook(account_id_of(store, account), webhook_id):
        raise fail(f"no webhook {webhook_id!r}", 1)
    typer.echo(f"webhook {webhook_id} deleted")


@webhooks_app.command("rotate-secret")
def webhooks_rotate(
    webhook_id: Annotated[str, typer.Argument(help="Webhook id, or `notify` for the account's "
                                              "notify/tracking URL secret.")],
    account: AccountOpt,
    keep_hours: Annotated[float | None, typer.Option(
        "--keep-hours", min=0, max=720, help="How long the old secret keeps signing.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Make a new signing secret; the old one stays valid (a second signature) meanwhile."""
    from datetime import timedelta

    settings = settings_from(config)
    store = open_store(settings)
    account_id = account_id_of(store, account)
    keep = timedelta(hours=settings.webhooks.secret_overlap_hours if keep_hours is None
                     else keep_hours)
    secret = store.rotate_account_secret(account_id, keep=keep) if webhook_id == "notify" \
        else store.rotate_webhook_secret(account_id, webhook_id, keep=keep)
    if secret is None:
        raise fail(f"no webhook {webhook_id!r}", 1)
    typer.echo(f"new signing secret (shown once):\n{secret}")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    webhook_id: Annotated[str, typer.Argument(help="Webhook id, or `notify`.")],
    account: AccountOpt,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recent deliveries, newest first, with every attempt and the next retry."""
    store = open_store(settings_from(config))
    found = store.list_webhook_deliveries(account_id_of(store, account),
                                          None if webhook_id == "notify" else webhook_id,
                                          limit=limit)
    if as_json:
        echo_json(found)
        return
    for d in found:
        retry = f"  next {d.next_attempt_at.isoformat()}" if d.next_attempt_at else ""
        typer.echo(f"{d.id}  {d.status.value:<9} attempts={d.attempts}  events="
                   f"{','.join(map(str, d.event_ids))}{retry}")
        for a in d.history:
            typer.echo(f"    #{a.attempt} {a.at.isoformat()} {a.duration_ms} ms  "
                       f"{a.status_code or '-'}  {a.error or ''}")
