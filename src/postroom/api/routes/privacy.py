"""Consent (GDPR) and data-subject requests, as the Zoho seed describes them.

An account may require consent: recipients without it are refused (NOT_ALLOWED) except in a
mail sent with `consent_email: true`, whose `${ConsentForm}` placeholder becomes a signed link
to a small page here; confirming records the consent with time and IP.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from postroom.api.auth import Principal, client_ip, require
from postroom.api.errors import ApiError
from postroom.api.routes.common import ERRORS, jsonable
from postroom.render import tokens as signing
from postroom.smtp.commands import is_valid_mailbox

router = APIRouter(tags=["privacy"], responses=ERRORS)
PURPOSE = "consent"


def consent_url(request_or_app: Any, account_id: str, address: str) -> str:
    app = getattr(request_or_app, "app", request_or_app)
    token = signing.sign(app.state.secret, PURPOSE, {"a": account_id, "e": address.lower()})
    return f"{app.state.public_url}/consent/{token}"


class ConsentBody(BaseModel):
    email: str
    source: str = "api"


@router.get("/v1/consents", summary="Recorded consents (optionally for one address)")
async def list_consents(request: Request, email: str | None = None,
                        principal: Principal = Depends(require("read"))) -> dict[str, Any]:
    found = await asyncio.to_thread(request.app.state.store.list_consents, principal.account.id,
                                    email)
    return {"data": jsonable(found)}


@router.post("/v1/consents", status_code=201, summary="Record a consent obtained elsewhere")
async def add_consent(request: Request, body: ConsentBody,
                      principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    if not is_valid_mailbox(body.email):
        raise ApiError("INVALID_DATA", "Malformed email address.", {"email": body.email})
    c = await asyncio.to_thread(request.app.state.store.record_consent, principal.account.id,
                                body.email, principal.client_ip, body.source[:50])
    return {"data": jsonable(c)}


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Consent</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">{body}</body></html>"""


@router.get("/consent/{token}", response_class=HTMLResponse, include_in_schema=False)
async def consent_page(request: Request, token: str) -> HTMLResponse:
    data = signing.verify(request.app.state.secret, PURPOSE, token)
    if data is None:
        return HTMLResponse(_PAGE.format(body="<p>This link is not valid.</p>"), 404)
    who = html.escape(str(data.get("e", "")))
    form = (f"<p>May we send email to <b>{who}</b>?</p><form method=post>"
            "<button type=submit>Yes, I agree</button></form>")
    return HTMLResponse(_PAGE.format(body=form))


@router.post("/consent/{token}", response_class=HTMLResponse, include_in_schema=False)
async def consent_confirm(request: Request, token: str) -> HTMLResponse:
    data = signing.verify(request.app.state.secret, PURPOSE, token)
    if data is None:
        return HTMLResponse(_PAGE.format(body="<p>This link is not valid.</p>"), 404)
    await asyncio.to_thread(request.app.state.store.record_consent, str(data["a"]),
                            str(data["e"]), client_ip(request), "consent_form")
    return HTMLResponse(_PAGE.format(body="<p>Thank you: your consent is recorded.</p>"))


class DataSubjectRequest(BaseModel):
    email: str
    type: Literal["access", "export", "erase"]
    format: Literal["json", "csv"] = "json"
    #: one account (name or id); absent: every account, since `admin` is an operator scope
    account: str | None = None


async def _covered(request: Request, account: str | None) -> list[Any]:
    """The accounts a request covers: an erase that skipped one would leave the person's data."""
    store = request.app.state.store
    if account is None:
        return list(await asyncio.to_thread(store.list_accounts))
    found = await asyncio.to_thread(store.get_account, account)
    if found is None:
        raise ApiError("NOT_FOUND", "No such account.", {"account": account})
    return [found]


async def _everything(request: Request, accounts: list[Any], email: str) -> dict[str, Any]:
    store = request.app.state.store
    messages, events, suppressions, consent = [], [], [], []
    for account in accounts:
        ids = await asyncio.to_thread(store.messages_involving, account.id, email)
        for i in ids:
            record = await asyncio.to_thread(store.get_message, i)
            if record is not None:
                messages.append(jsonable(record))
            events += jsonable(await asyncio.to_thread(store.list_events, i))
        suppression = await asyncio.to_thread(store.suppression_for, account.id, email)
        if suppression:
            suppressions.append(jsonable(dict(suppression)))
        consent += jsonable(await asyncio.to_thread(store.list_consents, account.id, email))
    return {"email": email.lower(), "accounts": [_named(a) for a in accounts],
            "messages": messages,
            "events": [e for e in events if (e.get("recipient") or "").lower() == email.lower()
                       or not e.get("recipient")],
            "suppressions": suppressions, "consent": consent}


def _named(account: Any) -> dict[str, str]:
    return {"id": account.id, "name": account.name}


async def _erase(request: Request, accounts: list[Any], email: str) -> dict[str, Any]:
    store = request.app.state.store
    covered, token, total = [], "", 0
    for account in accounts:
        ids = await asyncio.to_thread(store.messages_involving, account.id, email)
        token = await asyncio.to_thread(store.erase_address, account.id, email, ids)
        covered.append({**_named(account), "messages": len(ids)})
        total += len(ids)
    return {"type": "erase", "messages": total, "replaced_by": token, "accounts": covered}


@router.post("/v1/data_subject_requests", summary="Access, export or erase one person's data")
async def data_subject_request(request: Request, body: DataSubjectRequest,
                               _: Principal = Depends(require("admin"))) -> Any:
    if not is_valid_mailbox(body.email):
        raise ApiError("INVALID_DATA", "Malformed email address.", {"email": body.email})
    accounts = await _covered(request, body.account)
    if body.type == "erase":
        return {"data": await _erase(request, accounts, body.email)}
    data = await _everything(request, accounts, body.email)
    if body.format == "csv":
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["kind", "message_id", "recipient", "status_or_type", "at", "detail"])
        for m in data["messages"]:
            for r in m["recipients"]:
                w.writerow(["recipient", m["id"], r["address"], r["status"], m["created_at"],
                            m["subject"]])
        for e in data["events"]:
            w.writerow(["event", e["message_id"], e["recipient"], e["type"], e["at"],
                        e.get("reply") or ""])
        for s in data["suppressions"]:
            w.writerow(["suppression", "", s["address"], s["reason"], s["created_at"], ""])
        for c in data["consent"]:
            w.writerow(["consent", "", c["address"], c["source"], c["granted_at"], c["ip"]])
        return Response(out.getvalue(), media_type="text/csv")
    return {"data": {"type": body.type, **data}}
