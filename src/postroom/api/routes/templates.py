"""Templates: subject, HTML and text with merge variables, plus default attachments."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from postroom.api.auth import Principal, require
from postroom.api.errors import ApiError
from postroom.api.routes.common import ERRORS, jsonable
from postroom.render.merge import MergeError, render
from postroom.store.http_resources import TemplateNameTaken
from postroom.submission.http_templates import find_template

router = APIRouter(tags=["templates"], responses=ERRORS)


class TemplateBody(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    subject: str = ""
    html: str = ""
    text: str = ""
    attachments: list[str] = Field(default_factory=list, description="File-cache keys.")
    missing_policy: Literal["error", "empty"] = "error"


class TemplatePatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    attachments: list[str] | None = None
    missing_policy: Literal["error", "empty"] | None = None


def _taken(exc: TemplateNameTaken) -> ApiError:
    return ApiError("INVALID_DATA", "A template with that name exists; names are unique.",
                    {"api_name": "name", "name": exc.name, "id": exc.template_id})


async def _not_found(request: Request, account_id: str, ref: str) -> ApiError:
    _, problem, details = await find_template(request.app.state.store, account_id, ref)
    return ApiError("NOT_FOUND", "No such template." if "id" in details and "ids" not in details
                    else problem, details)


def _check_syntax(fields: dict[str, Any]) -> None:
    for name in ("subject", "html", "text"):
        if fields.get(name):
            try:
                render(fields[name], {}, html=name == "html", missing="empty")
            except MergeError as exc:
                raise ApiError("INVALID_DATA", f"Template syntax error in {name}: {exc}",
                               {"api_name": name}) from None


@router.post("/v1/templates", status_code=201, summary="Create a template")
async def create(request: Request, body: TemplateBody,
                 principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    fields = body.model_dump()
    _check_syntax(fields)
    try:
        t = await asyncio.to_thread(request.app.state.store.save_template, principal.account.id,
                                    fields)
    except TemplateNameTaken as exc:
        raise _taken(exc) from None
    return {"data": jsonable(t)}


@router.get("/v1/templates", summary="List templates")
async def list_all(request: Request, principal: Principal = Depends(require("read"))
                   ) -> dict[str, Any]:
    found = await asyncio.to_thread(request.app.state.store.list_templates, principal.account.id)
    return {"data": jsonable(found)}


@router.get("/v1/templates/{template_id}", summary="One template")
async def get_one(request: Request, template_id: str,
                  principal: Principal = Depends(require("read"))) -> dict[str, Any]:
    t = await asyncio.to_thread(request.app.state.store.get_template, principal.account.id,
                                template_id)
    if t is None:
        raise await _not_found(request, principal.account.id, template_id)
    return {"data": jsonable(t)}


@router.patch("/v1/templates/{template_id}", summary="Change a template")
async def update(request: Request, template_id: str, body: TemplatePatch,
                 principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    fields = body.model_dump(exclude_none=True)
    _check_syntax(fields)
    try:
        t = await asyncio.to_thread(request.app.state.store.save_template, principal.account.id,
                                    fields, template_id)
    except TemplateNameTaken as exc:
        raise _taken(exc) from None
    if t is None:
        raise await _not_found(request, principal.account.id, template_id)
    return {"data": jsonable(t)}


@router.delete("/v1/templates/{template_id}", summary="Delete a template")
async def delete(request: Request, template_id: str,
                 principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    if not await asyncio.to_thread(request.app.state.store.delete_template, principal.account.id,
                                   template_id):
        raise await _not_found(request, principal.account.id, template_id)
    return {"data": {"id": template_id, "deleted": True}}
