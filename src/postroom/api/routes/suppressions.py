"""The account's suppression list: bounced, unsubscribed, complained or manually blocked."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from postroom.api.auth import Principal, require
from postroom.api.errors import ApiError
from postroom.api.routes.common import ERRORS, jsonable
from postroom.smtp.commands import is_valid_mailbox

router = APIRouter(tags=["suppressions"], responses=ERRORS)


class NewSuppression(BaseModel):
    email: str
    reason: Literal["bounce", "unsubscribe", "complaint", "manual"] = "manual"


@router.get("/v1/suppressions", summary="List suppressed addresses")
async def list_suppressions(request: Request, principal: Principal = Depends(require("read"))
                            ) -> dict[str, Any]:
    rows = await asyncio.to_thread(request.app.state.store.list_suppressions, principal.account.id)
    return {"data": [{"email": r.address, "reason": r.reason, "created_at": jsonable(r.created_at)}
                     for r in rows]}


@router.post("/v1/suppressions", summary="Suppress an address", status_code=201)
async def add_suppression(request: Request, body: NewSuppression,
                          principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    if not is_valid_mailbox(body.email):
        raise ApiError("INVALID_DATA", "Malformed email address.", {"email": body.email})
    store = request.app.state.store
    await asyncio.to_thread(store.add_suppression, principal.account.id, body.email, body.reason)
    request.app.state.suppression_added(principal.account.id, body.email)
    # an address suppressed before keeps its first reason: say which one is stored
    row = await asyncio.to_thread(store.suppression_for, principal.account.id, body.email)
    reason = row["reason"] if row else body.reason
    return {"data": {"email": body.email.lower(), "reason": reason}}


@router.delete("/v1/suppressions/{email:path}", summary="Remove an address from the list")
async def remove_suppression(request: Request, email: str,
                             principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    removed = await asyncio.to_thread(request.app.state.store.remove_suppression,
                                      principal.account.id, email)
    if not removed:
        raise ApiError("NOT_FOUND", "That address is not suppressed.", {"email": email})
    request.app.state.suppression_removed(principal.account.id, email)
    return {"data": {"email": email.lower(), "removed": True}}
