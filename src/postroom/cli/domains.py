"""`postroom domains …`: DKIM keys and the DNS records to publish."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from postroom.cli.common import (
    ConfigOpt,
    JsonOpt,
    app,
    echo_json,
    fail,
    open_store,
    settings_from,
)
from postroom.config.settings import Settings

if TYPE_CHECKING:
    from postroom.admin.domains import ReturnPaths

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
    store = open_store(settings, create=True)
    try:
        key, records = domains.add_domain(
            store, domain, selector, algorithm,  # type: ignore[arg-type]
            return_path_host=_return_path_host(settings),
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    paths = domains.return_paths(store, key.domain)
    if as_json:
        echo_json({"domain": key.domain, "selector": key.selector, "algorithm": key.algorithm,
                   "records": records, "return_path_domains": paths.domains,
                   "notes": paths.notes})
        return
    typer.echo(f"DKIM key created for {key.domain} (selector {key.selector}, {key.algorithm}).")
    typer.echo("Publish these DNS records:")
    for r in records:
        typer.echo(f"\n  [{r.purpose}]\n  {r.name}  {r.type}  {r.value}")
    _notes(paths)


def _notes(paths: ReturnPaths) -> None:
    """Which return path the records are for, and what to change when it is not in use."""
    why = ("the domain of the sending accounts' --bounce-address, which their VERP return "
           "paths use" if paths.in_use else "suggested: no account sending from this domain has "
           "a --bounce-address yet")
    typer.echo(f"\nReturn path: {', '.join(paths.domains)} ({why}).")
    for note in paths.notes:
        typer.echo(f"note: {note}")


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
    paths = domains.return_paths(store, domain)
    if as_json:
        echo_json({"domain": domain, "has_key": key is not None, "ok": ok, "checks": results,
                   "return_path_domains": paths.domains, "notes": paths.notes})
    else:
        if key is None:
            typer.echo(f"{domain} has no DKIM key here (`postroom domains add {domain}`).")
        for r in results:
            mark = "ok     " if r.ok else "MISSING"
            typer.echo(f"{mark} {r.record.purpose:<16} {r.record.name}: {r.message}")
            if not r.ok and r.record.value:
                typer.echo(f"        publish: {r.record.type} {r.record.value}")
        if key is not None:
            _notes(paths)
    if not ok:
        raise typer.Exit(1)


@domains_app.command("list")
def domains_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List sender domains with a DKIM key (`domains check DOMAIN` shows a domain's records)."""
    from postroom.admin import domains

    found = domains.list_domains(open_store(settings_from(config)))
    if as_json:
        echo_json(found)
        return
    for d in found:
        created = d["created_at"].date().isoformat() if d["created_at"] else ""
        typer.echo(f"{d['domain']}  selector={d['selector']}  {d['algorithm']}  {created}")
