"""Account webhooks: create, list, delete, rotate secrets, and see every delivery attempt.

The secret is in the answer to create and rotate only. Per-message notify/tracking URLs are
signed with the account's notify secret (`POST /v1/webhooks/notify_secret` makes a new one and
shows it) and their deliveries are listed under the pseudo-webhook id `notify`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from postroom.api.auth import Principal, require
from postroom.api.errors import ApiError
from postroom.api.routes.common import ERRORS, jsonable
from postroom.events.endpoints import MAX_BATCH, url_problem
from postroom.model import EventType
from postroom.model.webhooks import DeliveryStatus, Webhook

router = APIRouter(tags=["webhooks"], responses=ERRORS)
NOTIFY = "notify"


class NewWebhook(BaseModel):
    url: str = Field(description="http(s) URL that receives signed POSTs.")
    event_types: list[EventType] = Field(default_factory=list,
                                         description="Types to send; empty: every type.")
    batch_size: int = Field(1, ge=1, le=MAX_BATCH, description="Events per POST at most.")
    description: str = Field("", max_length=200)


class Rotation(BaseModel):
    keep_hours: float | None = Field(
        None, ge=0, le=720, description="How long the previous secret keeps signing "
        "(default: [webhooks] secret_overlap_hours).")


def view(hook: Webhook) -> dict[str, Any]:
    data = jsonable(hook)
    data["previous_secret_valid_until"] = data.pop("previous_secret_until")
    return data


def _keep(request: Request, body: Rotation | None) -> timedelta:
    hours = body.keep_hours if body and body.keep_hours is not None else \
        request.app.state.settings.webhooks.secret_overlap_hours
    return timedelta(hours=hours)


def _missing(webhook_id: str) -> ApiError:
    return ApiError("NOT_FOUND", "No such webhook.", {"webhook_id": webhook_id})


@router.post("/v1/webhooks", status_code=201, summary="Create a webhook (the secret is shown once)")
async def create(request: Request, body: NewWebhook,
                 principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    problem = url_problem(
        body.url, allow_private=request.app.state.settings.webhooks.allow_private_targets)
    if problem:
        raise ApiError("INVALID_DATA", f"Unusable webhook URL: {problem}.", {"api_name": "url"})
    hook, secret = await asyncio.to_thread(
        request.app.state.store.create_webhook, principal.account.id, body.url,
        event_types=[t.value for t in body.event_types], batch_size=body.batch_size,
        description=body.description)
    return {"data": {**view(hook), "secret": secret}}


@router.get("/v1/webhooks", summary="List webhooks")
async def list_all(request: Request, principal: Principal = Depends(require("read"))
                   ) -> dict[str, Any]:
    found = await asyncio.to_thread(request.app.state.store.list_webhooks, principal.account.id)
    return {"data": [view(h) for h in found]}


@router.post("/v1/webhooks/notify_secret", summary="New secret for notify/tracking URL reports")
async def rotate_notify_secret(request: Request, body: Rotation | None = None,
                               principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    keep = _keep(request, body)
    secret = await asyncio.to_thread(request.app.state.store.rotate_account_secret,
                                     principal.account.id, keep=keep)
    return {"data": {"secret": secret, "previous_secret_valid_until": _until(keep)}}


@router.get("/v1/webhooks/{webhook_id}", summary="One webhook")
async def get_one(request: Request, webhook_id: str,
                  principal: Principal = Depends(require("read"))) -> dict[str, Any]:
    hook = await asyncio.to_thread(request.app.state.store.get_webhook, principal.account.id,
                                   webhook_id)
    if hook is None:
        raise _missing(webhook_id)
    return {"data": view(hook)}


@router.delete("/v1/webhooks/{webhook_id}", summary="Delete a webhook (pending deliveries stop)")
async def delete(request: Request, webhook_id: str,
                 principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    if not await asyncio.to_thread(request.app.state.store.delete_webhook,
                                   principal.account.id, webhook_id):
        raise _missing(webhook_id)
    return {"data": {"id": webhook_id, "deleted": True}}


@router.post("/v1/webhooks/{webhook_id}/rotate_secret",
             summary="New secret; the old one keeps signing for a while (two v1 signatures)")
async def rotate(request: Request, webhook_id: str, body: Rotation | None = None,
                 principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    keep = _keep(request, body)
    secret = await asyncio.to_thread(request.app.state.store.rotate_webhook_secret,
                                     principal.account.id, webhook_id, keep=keep)
    if secret is None:
        raise _missing(webhook_id)
    return {"data": {"id": webhook_id, "secret": secret,
                     "previous_secret_valid_until": _until(keep)}}


def _until(keep: timedelta) -> str | None:
    return (datetime.now(UTC) + keep).isoformat() if keep.total_seconds() > 0 else None


@router.get("/v1/webhooks/{webhook_id}/deliveries",
            summary="Deliveries, newest first, with every attempt and the next retry")
async def deliveries(
    request: Request, webhook_id: str, principal: Principal = Depends(require("read")),
    status: DeliveryStatus | None = None, limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> dict[str, Any]:
    store = request.app.state.store
    if webhook_id != NOTIFY and await asyncio.to_thread(
            store.get_webhook, principal.account.id, webhook_id) is None:
        raise _missing(webhook_id)
    found = await asyncio.to_thread(
        store.list_webhook_deliveries, principal.account.id,
        None if webhook_id == NOTIFY else webhook_id, limit=limit, before=cursor,
        status=status.value if status else None)
    return {"data": jsonable(found), "next_cursor": found[-1].id if len(found) == limit else None}
