"""Admin-scope endpoints mirroring the CLI: accounts, keys, sender domains.

`admin` is an operator scope: such a key manages every account (as the CLI does). The same
service layer (`postroom.admin`) backs both doors.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from postroom.admin import accounts as admin_accounts
from postroom.api.auth import Principal, require
from postroom.api.errors import ApiError
from postroom.api.routes.common import ERRORS, jsonable

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERRORS)
ADMIN = Depends(require("admin"))


class NewAccount(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    sender_domains: list[str] = Field(default_factory=list)
    sender_addresses: list[str] = Field(default_factory=list)
    bounce_address: str | None = None
    daily_limit: int | None = Field(None, ge=1)
    allow_ips: list[str] = Field(default_factory=list)
    trusted_networks: list[str] = Field(default_factory=list)
    require_consent: bool = False
    tracking_base_url: str | None = None
    track_opens: bool = False
    track_clicks: bool = False
    list_unsubscribe: bool = False


class NewKey(BaseModel):
    scopes: list[str] = Field(default_factory=lambda: ["send", "read"])


async def _account(request: Request, name_or_id: str) -> Any:
    found = await asyncio.to_thread(request.app.state.store.get_account, name_or_id)
    if found is None:
        raise ApiError("NOT_FOUND", "No such account.", {"account": name_or_id})
    return found


@router.get("/accounts", summary="All accounts")
async def list_accounts(request: Request, _: Principal = ADMIN) -> dict[str, Any]:
    return {"data": jsonable(await asyncio.to_thread(request.app.state.store.list_accounts))}


@router.post("/accounts", status_code=201, summary="Create an account")
async def create_account(request: Request, body: NewAccount, _: Principal = ADMIN
                         ) -> dict[str, Any]:
    from postroom.store.errors import AlreadyExists

    store = request.app.state.store
    settings = dict(require_consent=body.require_consent, tracking_base_url=body.tracking_base_url,
                    track_opens=body.track_opens, track_clicks=body.track_clicks,
                    list_unsubscribe=body.list_unsubscribe)
    try:
        admin_accounts.checked_settings(**settings)  # before creating: all or nothing
        account = await asyncio.to_thread(
            admin_accounts.create_account, store, body.name, sender_domains=body.sender_domains,
            sender_addresses=body.sender_addresses, bounce_address=body.bounce_address,
            daily_limit=body.daily_limit, allow_ips=body.allow_ips,
            trusted_networks=body.trusted_networks)
    except AlreadyExists:
        raise ApiError("INVALID_DATA", "An account with that name exists.",
                       {"name": body.name}) from None
    except ValueError as exc:
        raise ApiError("INVALID_DATA", str(exc)) from None
    account = await asyncio.to_thread(admin_accounts.update_settings, store, account.id,
                                      **settings)
    return {"data": jsonable(account)}


@router.get("/accounts/{account}", summary="One account")
async def get_account(request: Request, account: str, _: Principal = ADMIN) -> dict[str, Any]:
    return {"data": jsonable(await _account(request, account))}


@router.post("/accounts/{account}/keys", status_code=201,
             summary="Create an API key (the key is in this answer only)")
async def create_key(request: Request, account: str, body: NewKey, _: Principal = ADMIN
                     ) -> dict[str, Any]:
    found = await _account(request, account)
    try:
        record, key = await asyncio.to_thread(admin_accounts.create_key,
                                              request.app.state.store, found.id,
                                              scopes=body.scopes)
    except ValueError as exc:
        raise ApiError("INVALID_DATA", str(exc)) from None
    return {"data": {**jsonable(record), "key": key}}


@router.get("/accounts/{account}/keys", summary="An account's keys (prefixes only)")
async def list_keys(request: Request, account: str, _: Principal = ADMIN) -> dict[str, Any]:
    found = await _account(request, account)
    return {"data": jsonable(await asyncio.to_thread(request.app.state.store.list_api_keys,
                                                     found.id))}


@router.delete("/keys/{key_id}", summary="Revoke a key")
async def revoke_key(request: Request, key_id: str, _: Principal = ADMIN) -> dict[str, Any]:
    try:
        ok = await asyncio.to_thread(request.app.state.store.revoke_api_key, key_id)
        request.app.state.keys.clear()  # takes effect at once in this process
    except ValueError as exc:
        raise ApiError("INVALID_DATA", str(exc)) from None
    if not ok:
        raise ApiError("NOT_FOUND", "No such active key.", {"key_id": key_id})
    return {"data": {"id": key_id, "revoked": True}}


@router.get("/domains", summary="Sender domains with DKIM keys, and the DNS records to publish")
async def list_domains(request: Request, _: Principal = ADMIN) -> dict[str, Any]:
    keys = await asyncio.to_thread(request.app.state.store.list_dkim_keys)
    return {"data": [{"domain": k.domain, "selector": k.selector, "algorithm": k.algorithm,
                      "created_at": jsonable(getattr(k, "created_at", None))} for k in keys]}
