"""POST /v1/send_mail (Zoho send_mail shape) and POST /v1/send_raw (the twin of SMTP DATA)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from postroom.api.auth import Principal, require
from postroom.api.errors import CODES, ApiError
from postroom.api.routes.common import ERRORS, json_body, json_document
from postroom.dialects import control_headers
from postroom.model import NewMessage, new_id
from postroom.smtp.commands import is_valid_mailbox
from postroom.submission import checks
from postroom.submission.http_items import MAX_ITEMS, SENT, ItemResult, SendMailRequest
from postroom.submission.message import (
    MAX_HEADER_BLOCK,
    header_block,
    missing_headers,
    parse_headers,
)

router = APIRouter(tags=["sending"], responses=ERRORS)


def overall_status(results: list[ItemResult]) -> int:
    """200 when all succeed, 207 when mixed, else the errors' own status (400 when they differ)."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return 200
    if len(failed) < len(results):
        return 207
    statuses = {CODES.get(r.code, (400, ""))[0] for r in failed}
    return statuses.pop() if len(statuses) == 1 else 400


async def idempotent(request: Request, principal: Principal, body: bytes, run: Any
                     ) -> JSONResponse:
    """Run `run()` at most once per Idempotency-Key (24 h); repeats get the first answer."""
    key = request.headers.get("idempotency-key")
    store = request.app.state.store
    if not key:
        status, payload = await run()
        return JSONResponse(payload, status)
    if len(key) > 255:
        raise ApiError("INVALID_DATA", "Idempotency-Key is longer than 255 characters.")
    digest = hashlib.sha256(body).hexdigest()
    state, status, stored = await asyncio.to_thread(
        store.idempotency_claim, principal.account.id, key, digest)
    if state == "done":
        return JSONResponse(stored, status, headers={"Idempotent-Replayed": "true"})
    if state == "busy":
        raise ApiError("INVALID_DATA", "A request with this Idempotency-Key is in progress.",
                       {"idempotency_key": key})
    if state == "mismatch":
        raise ApiError("INVALID_DATA", "This Idempotency-Key was used for another request.",
                       {"idempotency_key": key})
    # Shielded: a client that hangs up must not cancel the send between its commit and the
    # record of its answer, which would release the key and let the retry send it again.
    task = asyncio.ensure_future(_run_once(store, principal.account.id, key, run))
    task.add_done_callback(_retrieved)
    status, payload = await asyncio.shield(task)
    return JSONResponse(payload, status)


async def _run_once(store: Any, account_id: str, key: str, run: Any) -> tuple[int, Any]:
    """`run()`, then its answer kept under the key; the key is released if it failed."""
    try:
        status, payload = await run()
    except BaseException:
        await asyncio.to_thread(store.idempotency_release, account_id, key)
        raise
    await asyncio.to_thread(store.idempotency_finish, account_id, key, status, payload)
    return status, payload


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Nobody may be waiting any more (the request was cancelled): consume the outcome."""
    if not task.cancelled():
        task.exception()


@router.post("/v1/send_mail", include_in_schema=False)
async def send_mail(request: Request, document: Any = Depends(json_document),
                    principal: Principal = Depends(require("send"))) -> JSONResponse:
    """The route that answers: the body is read as FastAPI would, but cheaper (`json_body`)."""
    return await _send_mail(request, principal, json_body(SendMailRequest, document))


# Shadowed by the route above (same path, matched first): it gives the OpenAPI document the
# body's schema (no docstring: that would become the operation's description), and would
# answer the same if it were reached.
@router.post("/v1/send_mail", name="send_mail",
             summary="Send mail (Zoho CRM send_mail compatible)")
async def send_mail_documented(request: Request, payload: SendMailRequest,
                               principal: Principal = Depends(require("send"))) -> JSONResponse:
    return await _send_mail(request, principal, payload)


async def _send_mail(request: Request, principal: Principal, payload: SendMailRequest
                     ) -> JSONResponse:
    if len(payload.data) > MAX_ITEMS:
        raise ApiError("INVALID_DATA", f"At most {MAX_ITEMS} items per request.",
                       {"api_name": "data", "maximum": MAX_ITEMS})

    async def run() -> tuple[int, dict[str, Any]]:
        results = await request.app.state.sender.send(principal.account, payload.data,
                                                      principal.client_ip)
        return overall_status(results), {"data": [r.body() for r in results]}

    return await idempotent(request, principal, await request.body(), run)


class SendRaw(BaseModel):
    raw: str = Field(description="The RFC 5322 message, base64-encoded.")
    mail_from: str = Field(description="Envelope sender (MAIL FROM).")
    recipients: list[str] = Field(min_length=1, description="Envelope recipients (RCPT TO).")


@router.post("/v1/send_raw", summary="Queue a complete RFC 5322 message",
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": SendRaw.model_json_schema()},
                 "message/rfc822": {"schema": {"type": "string", "format": "binary"}}}}})
async def send_raw(request: Request, principal: Principal = Depends(require("send")),
                   mail_from: str | None = None,
                   to: list[str] | None = Query(None)) -> JSONResponse:
    body = await request.body()
    if request.headers.get("content-type", "").startswith("message/rfc822"):
        raw, sender, rcpts = body, mail_from or "", list(to or [])
    else:
        try:
            parsed = SendRaw.model_validate_json(body)
            raw = base64.b64decode(parsed.raw, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise ApiError("INVALID_DATA", "Body must be JSON {raw (base64), mail_from, "
                           "recipients} or a message/rfc822 document.",
                           {"problem": str(exc)[:200]}) from None
        sender, rcpts = parsed.mail_from, parsed.recipients

    async def run() -> tuple[int, dict[str, Any]]:
        record = await _raw_record(request, principal, raw, sender, rcpts)
        await request.app.state.store.enqueue_batch([record])
        item = {"code": "SUCCESS", "details": {"message_id": record.id}, "message": SENT,
                "status": "success"}
        return 200, {"data": [item]}

    return await idempotent(request, principal, body, run)


def _no_control_headers(raw: bytes) -> None:
    """send_raw does not read providers' control headers (X-SMTPAPI, X-Mailgun-*, X-TM-*…):
    left in, they went to every recipient (one recipient's variables shown to all, a test-mode
    message really sent). Refused, with where to send such mail instead."""
    names = sorted({n.lower() for n in control_headers(header_block(raw[:MAX_HEADER_BLOCK]))})
    if names:
        raise ApiError("INVALID_DATA", "send_raw does not take provider control headers: send "
                       "such mail over SMTP, or use send_mail.", {"headers": names[:10]})


async def _raw_record(request: Request, principal: Principal, raw: bytes, sender: str,
                      rcpts: list[str]) -> NewMessage:
    settings = request.app.state.settings
    account = principal.account
    if not sender:
        raise ApiError("MANDATORY_NOT_FOUND", "mail_from is missing.", {"api_name": "mail_from"})
    if not rcpts:
        raise ApiError("MANDATORY_NOT_FOUND", "recipients are missing.", {"api_name": "to"})
    if len(rcpts) > settings.smtp.max_recipients:
        raise ApiError("INVALID_DATA", "Too many recipients.",
                       {"api_name": "recipients", "maximum": settings.smtp.max_recipients})
    for name, addr in [("mail_from", sender), *(("recipients", r) for r in rcpts)]:
        if not is_valid_mailbox(addr):
            raise ApiError("INVALID_DATA", "Malformed email address.",
                           {"api_name": name, "email": addr})
    if len(raw) > settings.smtp.max_message_size:
        raise ApiError("INVALID_DATA", "Message exceeds the maximum message size.",
                       {"maximum": settings.smtp.max_message_size})
    if checks.sender_allowed(account, sender):
        raise ApiError("INVALID_DATA", "You cannot use this email address to send mails from.",
                       {"api_name": "mail_from", "email": sender})
    _no_control_headers(raw)
    headers = parse_headers(raw[:65536])
    if headers.from_count != 1 or checks.sender_allowed(account, headers.header_from):
        raise ApiError("INVALID_DATA", "The From header must be one allowed sender address.",
                       {"api_name": "From", "email": headers.header_from})
    reason = checks.aligned(headers.header_from, sender)
    if reason:
        raise ApiError("INVALID_DATA", reason[0].upper() + reason[1:], {"api_name": "From"})
    if account.daily_limit is not None:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        used = await asyncio.to_thread(request.app.state.store.daily_count, account.id, day)
        if used >= account.daily_limit:
            raise ApiError("LIMIT_EXCEEDED", details={"limit": account.daily_limit})
    blocked = await asyncio.to_thread(request.app.state.store.suppressed_among, account.id, rcpts)
    if blocked:
        raise ApiError("NOT_ALLOWED", "The recipient's address is blocked.",
                       {"email": sorted(blocked)[0]})
    mid = new_id()
    extra, header_mid = missing_headers(headers, mid, settings.smtp.hostname)
    return NewMessage(id=mid, account_id=account.id, mail_from=sender, recipients=tuple(rcpts),
                      raw=extra + raw, header_from=headers.header_from, subject=headers.subject,
                      message_id_header=header_mid, source="http", client_ip=principal.client_ip)


