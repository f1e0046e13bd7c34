"""The `postroom` command (Typer). Every command takes `--config PATH` (or $POSTROOM_CONFIG).

Commands print human text by default and JSON with `--json`; errors go to stderr with exit code 2
(bad arguments) or 1 (the operation failed), never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from postroom.config.settings import ConfigError, Settings, load_settings
from postroom.model.jsonable import jsonable as to_jsonable

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Postroom: a self-hosted SMTP API.")
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


def open_store(settings: Settings) -> Any:
    from postroom.store.api import Store

    try:
        return Store.open(settings.storage_url)
    except Exception as exc:  # a bad URL or an unreachable database: say so plainly
        raise fail(f"cannot open the store at {redact(settings.storage_url)}: {exc}") from None


def redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url




def echo_json(value: Any) -> None:
    typer.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


@app.command()
def serve(config: ConfigOpt = None) -> None:
    """Run the SMTP listeners, the HTTP API and the delivery workers."""
    from postroom.runtime import run_server

    settings = settings_from(config)
    try:
        run_server(settings)
    except OSError as exc:
        raise fail(f"cannot start: {exc}") from None


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Argument(help="Account name (unique).")],
    sender_domain: Annotated[list[str] | None, typer.Option("--sender-domain")] = None,
    sender_address: Annotated[list[str] | None, typer.Option("--sender-address")] = None,
    bounce_address: Annotated[str | None, typer.Option("--bounce-address")] = None,
    daily_limit: Annotated[int | None, typer.Option("--daily-limit", min=1)] = None,
    allow_ip: Annotated[list[str] | None, typer.Option("--allow-ip", help="CIDR")] = None,
    trusted_network: Annotated[
        list[str] | None,
        typer.Option("--trusted-network", help="CIDR whose clients submit without AUTH."),
    ] = None,
    tracking_url: TrackingUrlOpt = None,
    track_opens: TrackOpensOpt = False,
    track_clicks: TrackClicksOpt = False,
    list_unsubscribe: ListUnsubOpt = False,
    require_consent: ConsentOpt = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a sending account."""
    from postroom.admin import accounts
    from postroom.store.errors import AlreadyExists

    store = open_store(settings_from(config))
    try:
        account = accounts.create_account(
            store, name, sender_domains=sender_domain or [], sender_addresses=sender_address or [],
            bounce_address=bounce_address, daily_limit=daily_limit, allow_ips=allow_ip or [],
            trusted_networks=trusted_network or [],
        )
        account = accounts.update_settings(
            store, account.id, tracking_base_url=tracking_url, track_opens=track_opens,
            track_clicks=track_clicks, list_unsubscribe=list_unsubscribe,
            require_consent=require_consent)
    except AlreadyExists:
        raise fail(f"account {name!r} already exists") from None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        echo_json(account)
    else:
        typer.echo(f"account {account.name} created (id {account.id})")


@accounts_app.command("update")
def accounts_update(
    name: Annotated[str, typer.Argument(help="Account name or id.")],
    tracking_url: TrackingUrlOpt = None,
    track_opens: Annotated[bool | None, typer.Option("--track-opens/--no-track-opens")] = None,
    track_clicks: Annotated[bool | None, typer.Option("--track-clicks/--no-track-clicks")] = None,
    list_unsubscribe: Annotated[
        bool | None, typer.Option("--list-unsubscribe/--no-list-unsubscribe")] = None,
    require_consent: Annotated[
        bool | None, typer.Option("--require-consent/--no-require-consent")] = None,
    daily_limit: Annotated[int | None, typer.Option("--daily-limit", min=1)] = None,
    bounce_address: Annotated[str | None, typer.Option("--bounce-address")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an account's settings."""
    from postroom.admin import accounts

    store = open_store(settings_from(config))
    found = store.get_account(name)
    if found is None:
        raise fail(f"no account {name!r}", 2)
    try:
        account = accounts.update_settings(
            store, found.id, tracking_base_url=tracking_url, track_opens=track_opens,
            track_clicks=track_clicks, list_unsubscribe=list_unsubscribe,
            require_consent=require_consent, daily_limit=daily_limit,
            bounce_address=bounce_address)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        echo_json(account)
    else:
        typer.echo(f"account {account.name} updated")


@accounts_app.command("list")
def accounts_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List accounts."""
    rows = open_store(settings_from(config)).list_accounts()
    if as_json:
        echo_json(rows)
        return
    for a in rows:
        typer.echo(f"{a.id}  {a.name}  domains={','.join(a.sender_domains)}")


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option("--account", help="Account name or id.")],
    scope: Annotated[list[str] | None, typer.Option("--scope", help="send, read, admin")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; it is printed once and only its hash is kept."""
    from postroom.admin import accounts

    store = open_store(settings_from(config))
    try:
        api_key, key = accounts.create_key(store, account, scopes=scope or ["send", "read"])
    except LookupError as exc:
        raise fail(str(exc), 2) from None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        echo_json({"key": key, "id": api_key.id, "prefix": api_key.prefix,
                   "account_id": api_key.account_id, "scopes": list(api_key.scopes)})
    else:
        typer.echo(f"API key for {account} (shown once, store it now):\n{key}")


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option("--account")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List API keys (prefixes only)."""
    store = open_store(settings_from(config))
    account_id = None
    if account is not None:
        found = store.get_account(account)
        if found is None:
            raise fail(f"no account {account!r}", 2)
        account_id = found.id
    rows = store.list_api_keys(account_id)
    if as_json:
        echo_json(rows)
        return
    for k in rows:
        state = "revoked" if k.revoked_at else "active"
        typer.echo(f"{k.id}  {k.prefix}…  account={k.account_id}  {','.join(k.scopes)}  {state}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id or prefix.")], config: ConfigOpt = None
) -> None:
    """Revoke an API key."""
    if not open_store(settings_from(config)).revoke_api_key(key_id):
        raise fail(f"no active key {key_id!r}", 1)
    typer.echo(f"key {key_id} revoked")


@messages_app.command("show")
def messages_show(
    message_id: Annotated[str, typer.Argument(help="Message id.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one message: envelope, recipients with their status, and its event history."""
    store = open_store(settings_from(config))
    record = store.get_message(message_id)
    if record is None:
        raise fail(f"no message {message_id!r}", 1)
    events = store.list_events(message_id)
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


def main() -> None:
    app()


# --- sender domains (DKIM, SPF, DMARC, return path) -------------------------------------------
domains_app = typer.Typer(no_args_is_help=True, help="Sender domains: DKIM keys and DNS records.")
app.add_typer(domains_app, name="domains")


def _return_path_host(settings: Settings) -> str:
    return settings.delivery.helo_name or settings.smtp.hostname


@domains_app.command("add")
def domains_add(
    domain: Annotated[str, typer.Argument(help="Sender domain, e.g. example.com.")],
    selector: Annotated[str, typer.Option("--selector", help="DKIM selector.")] = "postroom",
    algorithm: Annotated[
        str, typer.Option("--algorithm", help="rsa-sha256 (2048 bits) or ed25519-sha256.")
    ] = "rsa-sha256",
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a DKIM key for a sender domain and print the DNS records to publish."""
    from postroom.admin import domains

    settings = settings_from(config)
    store = open_store(settings)
    try:
        key, records = domains.add_domain(
            store, domain, selector, algorithm,  # type: ignore[arg-type]
            return_path_host=_return_path_host(settings),
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        echo_json({"domain": key.domain, "selector": key.selector, "algorithm": key.algorithm,
                   "records": records})
        return
    typer.echo(f"DKIM key created for {key.domain} (selector {key.selector}, {key.algorithm}).")
    typer.echo("Publish these DNS records:")
    for r in records:
        typer.echo(f"\n  [{r.purpose}]\n  {r.name}  {r.type}  {r.value}")


@domains_app.command("check")
def domains_check(
    domain: Annotated[str, typer.Argument(help="Sender domain.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Look up a sender domain's DNS records and say what is missing or wrong."""
    import asyncio

    from postroom.admin import domains
    from postroom.delivery.dns import Resolver

    settings = settings_from(config)
    store = open_store(settings)
    resolver = Resolver.from_settings(settings.delivery)
    try:
        key, results = asyncio.run(domains.check(
            store, domain, resolver, return_path_host=_return_path_host(settings)
        ))
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    ok = all(r.ok for r in results)
    if as_json:
        echo_json({"domain": domain, "has_key": key is not None, "ok": ok, "checks": results})
    else:
        if key is None:
            typer.echo(f"{domain} has no DKIM key here (`postroom domains add {domain}`).")
        for r in results:
            mark = "ok     " if r.ok else "MISSING"
            typer.echo(f"{mark} {r.record.purpose:<16} {r.record.name}: {r.message}")
            if not r.ok and r.record.value:
                typer.echo(f"        publish: {r.record.type} {r.record.value}")
    if not ok:
        raise typer.Exit(1)


# --- webhooks (events out) ---------------------------------------------------------------------
webhooks_app = typer.Typer(no_args_is_help=True, help="Account webhooks and their deliveries.")
app.add_typer(webhooks_app, name="webhooks")
AccountOpt = Annotated[str, typer.Option("--account", help="Account name or id.")]


def _account_id(store: Any, account: str) -> str:
    found = store.get_account(account)
    if found is None:
        raise fail(f"no account {account!r}", 2)
    return str(found.id)


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

    problem = url_problem(url) or (f"unknown event types {unknown_types(event or [])}"
                                   if unknown_types(event or []) else None)
    if problem:
        raise fail(problem, 2)
    store = open_store(settings_from(config))
    hook, secret = store.create_webhook(_account_id(store, account), url,
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
    hooks = store.list_webhooks(_account_id(store, account) if account else None)
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
    if not store.delete_webhook(_account_id(store, account), webhook_id):
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
    account_id = _account_id(store, account)
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
    found = store.list_webhook_deliveries(_account_id(store, account),
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
