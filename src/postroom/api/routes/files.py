"""The file cache: upload once, attach by key (HTTP `attachments[].id`, SMTP `X-TM-FILE-KEY`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import Response

from postroom.api.auth import Principal, require
from postroom.api.errors import ApiError
from postroom.api.routes.common import ERRORS, jsonable
from postroom.submission.http_items import MAX_ATTACHMENT_BYTES

router = APIRouter(tags=["files"], responses=ERRORS)


def view(f: Any) -> dict[str, Any]:
    return {"key": f.key, "name": f.name, "content_type": f.content_type, "size": f.size,
            "created_at": jsonable(f.created_at), "expires_at": jsonable(f.expires_at)}


@router.post("/v1/files", summary="Upload a file (multipart/form-data, field `file`)",
             status_code=201)
async def upload(request: Request, file: UploadFile = File(...),
                 principal: Principal = Depends(require("send"))) -> dict[str, Any]:
    data = await file.read(MAX_ATTACHMENT_BYTES + 1)
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise ApiError("FILE_SIZE_EXCEEDS", "A file may not exceed 10 MB.",
                       {"maximum": MAX_ATTACHMENT_BYTES})
    days = request.app.state.settings.http.file_retention_days
    stored = await asyncio.to_thread(
        request.app.state.store.put_file, principal.account.id,
        (file.filename or "attachment")[:255], file.content_type or "application/octet-stream",
        data, datetime.now(UTC) + timedelta(days=days))
    return {"data": view(stored)}


@router.get("/v1/files", summary="List cached files")
async def list_files(request: Request, principal: Principal = Depends(require("read"))
                     ) -> dict[str, Any]:
    found = await asyncio.to_thread(request.app.state.store.list_files, principal.account.id)
    return {"data": [view(f) for f in found]}


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback name, and the real one as RFC 8187 UTF-8 when it differs.
    (A header value holds Latin-1 at most: a name like 文件.pdf made the download a 500.)"""
    fallback = "".join(ch if " " <= ch < "\x7f" and ch not in '"\\' else "_" for ch in name)
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        value += "; filename*=UTF-8''" + quote(name, safe="")
    return value


@router.get("/v1/files/{key}", summary="Download a cached file (?meta=true for its details)")
async def get_file(request: Request, key: str, meta: bool = False,
                   principal: Principal = Depends(require("read"))) -> Any:
    f = await asyncio.to_thread(request.app.state.store.get_file, principal.account.id, key,
                                with_data=not meta)
    if f is None:
        raise ApiError("NOT_FOUND", "No such file (or it expired).", {"key": key})
    if meta:
        return {"data": view(f)}
    return Response(f.data, media_type=f.content_type,
                    headers={"Content-Disposition": content_disposition(f.name)})


@router.delete("/v1/files/{key}", summary="Delete a cached file")
async def delete_file(request: Request, key: str, principal: Principal = Depends(require("send"))
                      ) -> dict[str, Any]:
    if not await asyncio.to_thread(request.app.state.store.delete_file, principal.account.id, key):
        raise ApiError("NOT_FOUND", "No such file.", {"key": key})
    return {"data": {"key": key, "deleted": True}}
