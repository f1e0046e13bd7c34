"""What the HTTP app refuses before any route runs: request bodies over a size limit (for the
API and the dashboard mounted on it alike), and NUL characters in the API's paths and query
strings.

Bodies: nothing else bounded them, so one client could make the process hold any amount (a
300 MB body to send_mail took the server to 1.2 GB). A declared Content-Length over the limit
is answered 413 at once, before the app runs. A body without one (chunked) is counted as the
app reads it; once it passes the limit the 413 goes out, the app's read fails, and whatever
the app answers after that is dropped: no more than the limit plus one chunk is ever read.
Every 413 closes the connection, so the rest of the body is not read either.

NUL: PostgreSQL refuses NUL in text (compared or stored), SQLite does not; refused here, an
id or filter with a NUL is the same 400 on both backends instead of a store error on one.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

from postroom.api.errors import ApiError, error_response
from postroom.config.settings import Settings
from postroom.submission.http_items import MAX_ATTACHMENT_BYTES

MIB = 1 << 20


def request_limit(settings: Settings) -> int:
    """`[http] max_request_bytes`, or room for the largest legitimate request: a message of
    `[smtp] max_message_size` in base64 (send_raw's JSON form), or a file upload of
    MAX_ATTACHMENT_BYTES, plus 1 MiB for the JSON fields or multipart framing around it."""
    if settings.http.max_request_bytes is not None:
        return settings.http.max_request_bytes
    base64_size = 4 * -(-settings.smtp.max_message_size // 3)
    return max(base64_size, MAX_ATTACHMENT_BYTES) + MIB


class BodyTooLarge(HTTPException):
    """Raised into the app's body read once the body passes the limit. An HTTPException, so
    that the API's and the dashboard's own handlers take it quietly (no error log); their
    answer is dropped, since the 413 has already gone out."""

    def __init__(self) -> None:
        super().__init__(413)


class RequestLimits:
    """Pure ASGI middleware, outermost in the API's app (the dashboard is mounted inside it)."""

    def __init__(self, app: Any, limit: int, nul_free_prefix: str = "/v1/") -> None:
        self.app, self.limit, self.nul_free_prefix = app, limit, nul_free_prefix

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(self.nul_free_prefix) and (
                "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")):
            await error_response(ApiError(
                "INVALID_DATA", "The path or query string contains a NUL character (%00).",
            ))(scope, receive, send)
            return
        declared = content_length(scope["headers"])
        if declared is not None:
            if declared > self.limit:
                await self.too_large(scope, receive, send)
                return
            # the server itself stops the body at its declared length: nothing to count
            await self.app(scope, receive, send)
            return
        await self.counted(scope, receive, send)

    async def counted(self, scope: Any, receive: Any, send: Any) -> None:
        """A body of unknown length: count it as the app reads it."""
        received, over, answered, started = 0, False, False, False

        async def counting_receive() -> Any:
            nonlocal received, over, answered
            if over:
                raise BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    if not started:
                        answered = True
                        await self.too_large(scope, receive, send)
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal started
            if answered:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not answered:
                raise

    async def too_large(self, scope: Any, receive: Any, send: Any) -> None:
        response = error_response(ApiError("REQUEST_TOO_LARGE", details={"maximum": self.limit}))
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The declared length, or None when the body is not framed by it: none given, or a
    Transfer-Encoding beside it (which wins, RFC 9112 6.3, so the length says nothing). The
    server has already refused a malformed or repeated Content-Length."""
    declared = None
    for name, value in headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return None
    return declared
