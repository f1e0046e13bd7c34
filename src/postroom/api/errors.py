"""The JSON error envelope and its stable codes (Zoho CRM's vocabulary, see docs/API.md).

Every error the API returns has the seed's shape:
`{"code": "INVALID_DATA", "details": {...}, "message": "...", "status": "error"}`.
Internals never reach the client: unexpected exceptions become `INTERNAL_ERROR` (500) and are
logged with a correlation id that the response carries in `details`.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("postroom.api")

#: code → (HTTP status, default message). The table in docs/API.md is generated from it.
CODES: dict[str, tuple[int, str]] = {
    "AUTHENTICATION_FAILURE": (401, "Authentication failed: send a valid API key."),
    "NO_PERMISSION": (403, "This API key is not allowed to do that."),
    "MANDATORY_NOT_FOUND": (400, "A mandatory field is missing."),
    "INVALID_DATA": (400, "The request contains invalid data."),
    "LIMIT_EXCEEDED": (400, "You have exceeded the maximum email limit for the day."),
    "NOT_ALLOWED": (400, "The recipient may not receive mail from this account."),
    "FILE_SIZE_EXCEEDS": (400, "The total size of the attachments has exceeded 10 MB."),
    "NOT_FOUND": (404, "No such resource."),
    "REQUEST_TOO_LARGE": (413, "The request body is larger than this server accepts."),
    "RATE_LIMITED": (429, "Too many requests; slow down."),
    "INTERNAL_ERROR": (500, "Something went wrong on our side; try again."),
    "SERVICE_UNAVAILABLE": (503, "The store is temporarily unavailable; try again."),
}


class ApiError(Exception):
    """Raise anywhere in a route; the handler renders the envelope."""

    def __init__(self, code: str, message: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        status, default = CODES[code]
        super().__init__(message or default)
        self.code, self.status = code, status
        self.message = message or default
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "message": self.message,
                "status": "error"}


def error_response(err: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


class CatchAll:
    """Pure ASGI middleware inside Starlette's ServerErrorMiddleware: an unexpected exception
    becomes INTERNAL_ERROR here, so it is not re-raised to the server (which would drop the
    keep-alive connection) and its details go only to the log, under a reference."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            ref = secrets.token_hex(6)
            log.exception("internal error (ref %s) on %s %s", ref, scope.get("method"),
                          scope.get("path"))
            if started:
                raise
            response = error_response(ApiError("INTERNAL_ERROR", details={"ref": ref}))
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_middleware(CatchAll)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:20]:
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            problems.append({"api_name": ".".join(loc), "problem": str(err.get("msg", ""))})
        missing = [p for p, e in zip(problems, exc.errors(), strict=False)
                   if e.get("type") == "missing"]
        if missing and len(missing) == len(problems):
            return error_response(ApiError("MANDATORY_NOT_FOUND", details={"fields": missing}))
        return error_response(ApiError("INVALID_DATA", details={"fields": problems}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(ApiError("NOT_FOUND"))
        if exc.status_code == 405:
            return JSONResponse({"code": "METHOD_NOT_ALLOWED", "details": {},
                                 "message": "Method not allowed.", "status": "error"}, 405)
        if exc.status_code == 413:
            return error_response(ApiError("REQUEST_TOO_LARGE"))
        return error_response(ApiError("INVALID_DATA", str(exc.detail)))

    from postroom.store.errors import BatchTooLarge, InvalidData, StoreError

    @app.exception_handler(StoreError)  # handled here, so the connection stays usable
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        if isinstance(exc, BatchTooLarge):  # the request's fault: a retry cannot succeed
            return error_response(ApiError("INVALID_DATA", f"{exc}: use fewer items per request."))
        ref = secrets.token_hex(6)
        if isinstance(exc, InvalidData):  # values the database refuses (a NUL on PostgreSQL)
            log.warning("invalid data (ref %s) on %s %s: %s", ref, request.method,
                        request.url.path, exc)
            return error_response(ApiError(
                "INVALID_DATA", "A value in the request is not one the store takes (a NUL "
                "character, or a value too long).", {"ref": ref}))
        log.error("store error (ref %s): %s", ref, exc)
        return error_response(ApiError("SERVICE_UNAVAILABLE", details={"ref": ref}))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        ref = secrets.token_hex(6)
        log.exception("internal error (ref %s) on %s %s", ref, request.method, request.url.path)
        return error_response(ApiError("INTERNAL_ERROR", details={"ref": ref}))
