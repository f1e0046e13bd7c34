"""`postroom domains …`: DKIM keys and the DNS records to publish."""

from __future__ import annotations

from typing import Annotated

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
