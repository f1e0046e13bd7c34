"""`postroom accounts …` and `postroom keys …`."""

from __future__ import annotations

from typing import Annotated

import typer

from postroom.cli.common import (
    ConfigOpt,
    ConsentOpt,
    JsonOpt,
    ListUnsubOpt,
    TrackClicksOpt,
    TrackingUrlOpt,
    TrackOpensOpt,
    accounts_app,
    echo_json,
    fail,
    keys_app,
    open_store,
    settings_from,
)

#: A repeatable list-entry option of `accounts update`.
_Entries = Annotated[list[str] | None, typer.Option()]


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

    store = open_store(settings_from(config), create=True)
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
    add_sender_domain: _Entries = None,
    remove_sender_domain: _Entries = None,
    add_sender_address: _Entries = None,
    remove_sender_address: _Entries = None,
    add_allow_ip: Annotated[list[str] | None, typer.Option(help="CIDR")] = None,
    remove_allow_ip: Annotated[list[str] | None, typer.Option(help="CIDR")] = None,
    add_trusted_network: Annotated[list[str] | None, typer.Option(help="CIDR")] = None,
    remove_trusted_network: Annotated[list[str] | None, typer.Option(help="CIDR")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an account's settings, and add or remove entries of its lists (each option may
    be repeated). A running server sees the change within about 5 seconds (accounts are cached
    2 s by SMTP and HTTP, 5 s by delivery); an SMTP session that has already authenticated
    keeps the account as it was until it ends."""
    from postroom.admin import accounts

    store = open_store(settings_from(config))
    found = store.get_account(name)
    if found is None:
        raise fail(f"no account {name!r}", 2)
    settings = dict(tracking_base_url=tracking_url, track_opens=track_opens,
                    track_clicks=track_clicks, list_unsubscribe=list_unsubscribe,
                    require_consent=require_consent, daily_limit=daily_limit,
                    bounce_address=bounce_address)
    try:
        accounts.checked_settings(**settings)  # before the lists change: all or nothing
        accounts.change_lists(
            store, found.id,
            add=dict(sender_domains=add_sender_domain, sender_addresses=add_sender_address,
                     allow_ips=add_allow_ip, trusted_networks=add_trusted_network),
            remove=dict(sender_domains=remove_sender_domain,
                        sender_addresses=remove_sender_address, allow_ips=remove_allow_ip,
                        trusted_networks=remove_trusted_network))
        account = accounts.update_settings(store, found.id, **settings)
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
