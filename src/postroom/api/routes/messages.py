"""Status and history: messages, events, schedule cancellation, allowed senders."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from postroom.api.auth import Principal, require
from postroom.api.errors import ApiError
from postroom.api.routes.common import ERRORS, jsonable, parse_when
from postroom.model import EventType, RecipientStatus

router = APIRouter(tags=["status"], responses=ERRORS)


def message_view(record: Any, events: list[Any] | None = None) -> dict[str, Any]:
    data = jsonable(record)
    opts = record.options or {}
    data["tags"] = list(opts.get("tags") or [])
    data["campaign"] = opts.get("campaign_id") or opts.get("campaign_name")
    if events is not None:
        data["events"] = jsonable(events)
    return data


async def owned_message(request: Request, principal: Principal, message_id: str) -> Any:
    record = await asyncio.to_thread(request.app.state.store.get_message, message_id)
    if record is None or record.account_id != principal.account.id:
        raise ApiError("NOT_FOUND", "No such message.", {"message_id": message_id})
    return record


@router.get("/v1/messages/{message_id}", summary="A message with recipients and event history")
async def get_message(request: Request, message_id: str,
                      principal: Principal = Depends(require("read"))) -> dict[str, Any]:
    record = await owned_message(request, principal, message_id)
    events = await asyncio.to_thread(request.app.state.store.list_events, message_id)
    return {"data": message_view(record, events)}


@router.get("/v1/messages", summary="Messages, newest first, with filters and a cursor")
async def list_messages(
    request: Request,
    principal: Principal = Depends(require("read")),
    status: RecipientStatus | None = None,
    recipient: str | None = None,
    since: str | None = None,
    until: str | None = None,
    campaign: str | None = None,
    tag: str | None = None,
    message_id: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> dict[str, Any]:
    store = request.app.state.store
    if message_id:
        others = [name for name, value in (("status", status), ("recipient", recipient),
                  ("since", since), ("until", until), ("campaign", campaign), ("tag", tag),
                  ("cursor", cursor)) if value]
        if others:  # they were silently ignored: an exact lookup filters nothing
            raise ApiError("INVALID_DATA", "message_id cannot be combined with other filters.",
                           {"filters": others})
        record = await asyncio.to_thread(store.get_message, message_id)
        found = [record] if record and record.account_id == principal.account.id else []
        return {"data": [message_view(r) for r in found], "next_cursor": None}
    ids = await asyncio.to_thread(
        store.find_message_ids, principal.account.id, status=status.value if status else None,
        recipient=recipient, since=parse_when(since, "since"), until=parse_when(until, "until"),
        campaign=campaign, tag=tag, limit=limit, before=cursor)
    records = [await asyncio.to_thread(store.get_message, i) for i in ids]
    return {"data": [message_view(r) for r in records if r],
            "next_cursor": ids[-1] if len(ids) == limit else None}


@router.get("/v1/events", summary="The event log, oldest first, with filters and a cursor")
async def list_events(
    request: Request,
    principal: Principal = Depends(require("read")),
    message_id: str | None = None,
    type: EventType | None = None,
    recipient: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: int | None = Query(None, ge=0, le=2**63 - 1),
) -> dict[str, Any]:
    events = await asyncio.to_thread(
        request.app.state.store.find_events, principal.account.id, message_id=message_id,
        type_=type.value if type else None, recipient=recipient,
        since=parse_when(since, "since"), until=parse_when(until, "until"), limit=limit,
        after=cursor)
    return {"data": jsonable(events),
            "next_cursor": events[-1].id if len(events) == limit else None}


@router.delete("/v1/messages/{message_id}/schedule", summary="Cancel a scheduled mail")
async def cancel_schedule(request: Request, message_id: str,
                          principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    await owned_message(request, principal, message_id)
    cancelled = await asyncio.to_thread(request.app.state.store.cancel_scheduled,
                                        principal.account.id, message_id)
    if not cancelled:
        raise ApiError("NOT_FOUND", "The message has no scheduled recipients left to cancel.",
                       {"message_id": message_id})
    return {"data": {"message_id": message_id, "cancelled": cancelled}}


@router.get("/v1/from_addresses", summary="The senders this key may use")
async def from_addresses(principal: Principal = Depends(require("read"))) -> dict[str, Any]:
    a = principal.account
    return {"from_addresses": [{"email": e, "type": "address"} for e in a.sender_addresses]
            + [{"domain": d, "type": "domain", "email": f"*@{d}"} for d in a.sender_domains]}
